"""CD25+ CD4 threshold placement, the shipped rule against variants, on the same files (docs/gating.md).

For every tmem file of the simulator's CD25-bearing families (``gating_accuracy.FAMILIES`` without the NK-only
and scatter families, whose tmem files are the reference family's or differ only in scatter), of the
independent lab's T-cell tube and of lab B's mem tube (``labb``), the file is gated once with the shipped strategy; then ``CD25+ CD4``'s
threshold is re-fitted exactly as the engine fits it (the same events of the gated ``CD4 T`` and of its
negative reference, :func:`cytokit.gating.methods.density.fit_threshold`) with the shipped parameters and
with each variant. Printed per group of draws, median / p95 / max (pp) of |% of parent - truth| and of
|% - ideal FMO gate| (the placement error: the gate at the 99.5th percentile of the truly CD25- events,
``gating_accuracy.ideal_fmo_pct``), and how many files a variant changes. Where the strategy has a ``Treg``
gate (CD25 x CD127 under the same parent), its reported % vs truth is printed too, and how many files report
more Treg than CD25+ CD4. Variants are the shipped
parameters with some replaced: ``--variant "dim_mode_tail=null,tail_knee=null"`` (values are YAML).

    nice .venv/bin/python benchmarks/cd25_placement.py [--group tune=sim:101,404,505,606,707,808]
        [--group check=sim:909,1010] [--group lab=lab:2026,2027,2028,2029,3031] [--group lab4040=lab:4040]
        [--group labb=labb:11,12,13,7777] [--variant "tail_knee=null"] [--cache DIR]

Without ``--group`` the four groups above; without ``--variant`` the shipped rule without its dim-mode check
and its knee (the rule as it was before them). ``--cache`` keeps each (generator, family, seed)'s extracted
events so that later runs skip simulating and gating. The reserved held-out seeds are refused.
"""
from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gating_accuracy import FAMILIES, FMO_QUANTILE, HELD_OUT_SEED  # noqa: E402
from independent_lab import HELD_OUT_SEED as LAB_FIRST_SEED  # noqa: E402,F401
from independent_lab import LABS, RESERVED_A_SEED, RESERVED_B_SEED  # noqa: E402
from independent_lab import strategies as lab_strategies  # noqa: E402
from independent_lab_gen import generate_trial, truth_masks as lab_truth_masks  # noqa: E402
from independent_lab_gen.trial_b import generate_trial_b  # noqa: E402
from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402
from independent_lab_gen.user_yaml_b import write_lab_b_strategies  # noqa: E402

from cytokit.fcs import read_fcs  # noqa: E402
from cytokit.gating import load_strategy  # noqa: E402
from cytokit.gating.fit_state import FIT_EVENTS  # noqa: E402
from cytokit.gating.methods.base import every_nth  # noqa: E402
from cytokit.gating.methods.density import ThresholdParams, fit_threshold  # noqa: E402
from cytokit.simulate import load_config, simulate_trial, truth_masks  # noqa: E402

POPULATION = "CD25+ CD4"
TREG = "Treg"
#: held-out seeds reserved for the final measurements (gating_accuracy, independent_lab): never drawn here
RESERVED = {HELD_OUT_SEED, RESERVED_A_SEED}
#: lab B's seed reserved for its final measurement (``independent_lab.py --lab b``)
RESERVED_B = {RESERVED_B_SEED}
SIM_FAMILIES = tuple(f for f in FAMILIES if not f.startswith(("cd56", "nk_", "scatter")))
DEFAULT_GROUPS = ("tune=sim:101,404,505,606,707,808", "check=sim:909,1010", "lab=lab:2026,2027,2028,2029,3031",
                  "lab4040=lab:4040")


def extract(res: Any, masks: dict[str, np.ndarray], truth_pct: float, treg_truth: float = np.nan) -> dict[str, Any]:
    """What the CD25+ CD4 fit saw in one gated file: the fit events of its parent (``x``) and of its negative
    reference (``ref``), all of the gated parent's values (``xg``), the ideal FMO threshold and the truth %; with a
    Treg gate under the same parent, its reported % and the CD25 values of its events (``treg_cd25``)."""
    spec = res.definition.population(POPULATION)
    col = res.sample.column(res.fits[POPULATION].gate.dims[0])
    gated = res.masks[spec.parent]
    ref = None
    if spec.negative_reference:
        ref = col[every_nth(np.flatnonzero(res.masks[spec.negative_reference]), FIT_EVENTS)]
    xg = col[gated]
    true_parent = masks.get(spec.parent, np.ones_like(gated))[gated]
    neg = xg[true_parent & ~masks[POPULATION][gated]]
    neg = neg[np.isfinite(neg)]
    table = res.populations.set_index("population")
    reported = float(table.loc[POPULATION, "pct_parent"])
    treg: dict[str, Any] = {}
    if TREG in res.masks and TREG in masks and res.definition.population(TREG).parent == spec.parent:
        treg = {"treg_pct": float(table.loc[TREG, "pct_parent"]), "treg_truth_pct": treg_truth,
                "treg_cd25": col[res.masks[TREG]]}  # the reported Treg events' CD25 values
    return {"x": col[every_nth(np.flatnonzero(gated), FIT_EVENTS)], "ref": ref, "xg": xg, "truth_pct": truth_pct,
            "fmo_t": float(np.quantile(neg, FMO_QUANTILE)) if neg.size >= 50 else np.nan, "reported_pct": reported,
            **treg}


def sim_files(family: str, seed: int, root: Path, *, patients: int = 2, events: int = 20000) -> list[dict[str, Any]]:
    """Simulate ``family`` with ``seed`` (tmem tube only: with the defaults, the same files as
    ``gating_accuracy`` draws) and extract every file."""
    cfg = load_config(None, seed=seed, patients_per_arm=patients, visits=["W0", "W74"], events=events,
                      tubes=["tmem"], **FAMILIES[family].overrides)
    trial = root / f"{family}_{seed}"
    simulate_trial(trial, cfg, force=True)
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    strategy = load_strategy("tmem")
    out = []
    for r in man.itertuples():
        res = strategy.apply(read_fcs(trial / r.file), qc=False)
        t = truth[truth.file == r.file].set_index("population")
        out.append({**extract(res, truth_masks(trial, r.file), float(t.loc[POPULATION, "pct_parent"]),
                              _truth(t, TREG)), "family": family, "seed": seed, "file": r.file})
    return out


def _truth(t: pd.DataFrame, population: str) -> float:
    return float(t.loc[population, "pct_parent"]) if population in t.index else np.nan


def lab_files(seed: int, root: Path, lab: str = "lab") -> list[dict[str, Any]]:
    """Generate the independent lab's trial with ``seed`` (lab A: 8 patients, lab B (``lab="labb"``): 6 patients
    and up to 60,000 events per file, as ``independent_lab.py``) and extract every T-cell file."""
    if lab == "labb":
        trial = generate_trial_b(root / f"labb_{seed}", patients=6, events=60000, seed=seed, max_files=None)
        strat = lab_strategies(write_lab_b_strategies(root / f"labb_{seed}_strategies"), LABS["b"])
    else:
        trial = generate_trial(root / f"lab_{seed}", patients=8, events=20000, seed=seed, max_files=None)
        strat = lab_strategies(write_lab_strategies(root / f"lab_{seed}_strategies", "shipped"))
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    out = []
    for r in man.itertuples():
        if POPULATION not in {p.name for p in strat[r.tube].definition.populations}:
            continue  # a tube without the gate (lab B's nk tube)
        res = strat[r.tube].apply(read_fcs(trial / r.file), qc=False)
        if POPULATION not in res.fits:
            continue
        t = truth[truth.file == r.file].set_index("population")
        out.append({**extract(res, lab_truth_masks(trial, r.file), float(t.loc[POPULATION, "pct_parent"]),
                              _truth(t, TREG)), "family": lab, "seed": seed, "file": r.file})
    shutil.rmtree(trial, ignore_errors=True)  # lab B's draws are ~100 MB each
    return out


def load_group(kind: str, seeds: list[int], root: Path, cache: Path | None) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    for seed in seeds:
        for family in (SIM_FAMILIES if kind == "sim" else (kind,)):
            path = cache / f"{family}_{seed}.pkl" if cache else None
            if path is not None and path.exists():
                recs += pickle.loads(path.read_bytes())
                continue
            got = sim_files(family, seed, root) if kind == "sim" else lab_files(seed, root, kind)
            if path is not None:
                path.write_bytes(pickle.dumps(got))
            recs += got
            print(f"  {kind} {family} seed {seed}: {len(got)} files", flush=True)
    return recs


def placement(recs: list[dict[str, Any]], params: ThresholdParams) -> pd.DataFrame:
    """% of parent per file with ``params`` (threshold fitted as the engine fits it), truth and ideal FMO %."""
    rows = []
    for r in recs:
        t = fit_threshold(r["x"], params, reference=r["ref"])
        xg = r["xg"]
        treg = r.get("treg_cd25")
        rows.append({"family": r["family"], "seed": r["seed"], "file": r["file"],
                     "pct": 100.0 * float(np.mean(xg >= t.value)), "truth": r["truth_pct"],
                     "fmo": 100.0 * float(np.mean(xg >= r["fmo_t"])), "method": t.info.get("method"),
                     "treg": r.get("treg_pct", np.nan), "treg_truth": r.get("treg_truth_pct", np.nan),
                     # the reported Treg events at or above this CD25+ threshold, % of the parent
                     "treg_within": 100.0 * float(np.sum(treg >= t.value)) / max(xg.size, 1) if treg is not None
                     else np.nan})
    df = pd.DataFrame(rows)
    df["vs_truth"] = (df.pct - df.truth).abs()
    df["vs_fmo"] = (df.pct - df.fmo).abs()
    return df


def _stats(s: pd.Series) -> str:
    return f"{s.median():.2f} / {np.quantile(s, 0.95):.2f} / {s.max():.1f}"


def parse_variant(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", action="append", default=None, help="NAME=sim|lab:SEED,SEED,... (repeatable)")
    ap.add_argument("--variant", action="append", default=None, help="KEY=YAML,KEY=YAML (repeatable)")
    ap.add_argument("--cache", type=Path, default=None, help="keep the extracted events here (pickle files)")
    args = ap.parse_args(argv)
    groups = []
    for g in args.group or DEFAULT_GROUPS:
        name, _, rest = g.partition("=")
        kind, _, seeds_text = rest.partition(":")
        seeds = [int(s) for s in seeds_text.split(",") if s]
        if kind not in ("sim", "lab", "labb") or not seeds:
            ap.error(f"--group {g!r}: give NAME=sim:SEEDS, NAME=lab:SEEDS or NAME=labb:SEEDS")
        reserved = (RESERVED_B if kind == "labb" else RESERVED) & set(seeds)
        if reserved:
            ap.error(f"seeds {sorted(reserved)} are reserved for the final held-out measurements")
        groups.append((name, kind, seeds))
    shipped = ThresholdParams(**load_strategy("tmem").definition.population(POPULATION).params["threshold"])
    variants = [parse_variant(v) for v in (args.variant or ["dim_mode_tail=null,tail_knee=null"])]
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cd25_placement_"))
    try:
        report_groups(groups, shipped, variants, root, args.cache)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # the simulated draws (0.1-1 GB)
    return 0


def _treg_line(df: pd.DataFrame) -> str:
    """Treg as reported and Treg kept within CD25+ CD4 (its events at or above the CD25+ threshold) vs truth."""
    t = df.dropna(subset=["treg", "treg_truth"])
    if t.empty:
        return ""
    above = int((t.treg > t.pct + 1e-9).sum())
    return (f"Treg vs truth {_stats((t.treg - t.treg_truth).abs()):20s} within CD25+ CD4 "
            f"{_stats((t.treg_within - t.treg_truth).abs()):20s} ({above} of {len(t)} files: Treg > CD25+ CD4)")


def report_groups(groups: list[tuple[str, str, list[int]]], shipped: ThresholdParams,
                  variants: list[dict[str, Any]], root: Path, cache: Path | None) -> None:
    """Print, per group of draws, the shipped placement and each variant's (see the module docstring)."""
    print(f"shipped CD25+ CD4 threshold: {shipped.model_dump(exclude_defaults=True)}")
    for name, kind, seeds in groups:
        recs = load_group(kind, seeds, root, cache)
        base = placement(recs, shipped)
        print(f"\n{name} ({kind} seeds {','.join(map(str, seeds))}; {len(base)} files), median / p95 / max pp:")
        print(f"  {'shipped':44s} vs truth {_stats(base.vs_truth):20s} vs ideal FMO {_stats(base.vs_fmo):20s} "
              f"(ideal FMO vs truth {_stats((base.fmo - base.truth).abs())})")
        if _treg_line(base):
            print(f"  {'':44s} {_treg_line(base)}")
        for v in variants:
            df = placement(recs, shipped.model_copy(update=v))
            changed = int(((df.pct - base.pct).abs() > 1e-9).sum())
            label = ", ".join(f"{k}={v[k]}" for k in v)
            print(f"  {label:44s} vs truth {_stats(df.vs_truth):20s} vs ideal FMO {_stats(df.vs_fmo):20s} "
                  f"({changed} files differ)")
            if _treg_line(df):
                print(f"  {'':44s} {_treg_line(df)}")
        fam = base.groupby("family").agg(n=("pct", "size"), vs_truth_p95=("vs_truth", lambda s: np.quantile(s, 0.95)),
                                         vs_fmo_p95=("vs_fmo", lambda s: np.quantile(s, 0.95)))
        if len(fam) > 1:
            print("  shipped, per family (p95 pp):\n" + fam.round(2).to_string())


if __name__ == "__main__":
    sys.exit(main())
