"""CD25+ CD4 threshold placement, the shipped rule against variants, on the same files (docs/gating.md).

For every tmem file of the simulator's CD25-bearing families (``gating_accuracy.FAMILIES`` without the NK-only
and scatter families, whose tmem files are the reference family's or differ only in scatter) and of the
independent lab's T-cell tube, the file is gated once with the shipped strategy; then ``CD25+ CD4``'s
threshold is re-fitted exactly as the engine fits it (the same events of the gated ``CD4 T`` and of its
negative reference, :func:`cytokit.gating.methods.density.fit_threshold`) with the shipped parameters and
with each variant. Printed per group of draws, median / p95 / max (pp) of |% of parent - truth| and of
|% - ideal FMO gate| (the placement error: the gate at the 99.5th percentile of the truly CD25- events,
``gating_accuracy.ideal_fmo_pct``), and how many files a variant changes. Variants are the shipped
parameters with some replaced: ``--variant "dim_mode_tail=null,tail_knee=null"`` (values are YAML).

    nice .venv/bin/python benchmarks/cd25_placement.py [--group tune=sim:101,404,505,606,707,808]
        [--group check=sim:909,1010] [--group lab=lab:2026,2027,2028,2029,3031] [--group lab4040=lab:4040]
        [--variant "tail_knee=null"] [--cache DIR]

Without ``--group`` the four groups above; without ``--variant`` the shipped rule without its dim-mode check
and its knee (the rule as it was before them). ``--cache`` keeps each (generator, family, seed)'s extracted
events so that later runs skip simulating and gating. The reserved held-out seeds are refused.
"""
from __future__ import annotations

import argparse
import pickle
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
from independent_lab import strategies as lab_strategies  # noqa: E402
from independent_lab_gen import generate_trial, truth_masks as lab_truth_masks  # noqa: E402
from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402

from cytokit.fcs import read_fcs  # noqa: E402
from cytokit.gating import load_strategy  # noqa: E402
from cytokit.gating.engine import FIT_EVENTS  # noqa: E402
from cytokit.gating.methods.base import every_nth  # noqa: E402
from cytokit.gating.methods.density import ThresholdParams, fit_threshold  # noqa: E402
from cytokit.simulate import load_config, simulate_trial, truth_masks  # noqa: E402

POPULATION = "CD25+ CD4"
#: held-out seeds reserved for the final measurements (gating_accuracy, independent_lab): never drawn here
RESERVED = {HELD_OUT_SEED, 7070}
SIM_FAMILIES = tuple(f for f in FAMILIES if not f.startswith(("cd56", "nk_", "scatter")))
DEFAULT_GROUPS = ("tune=sim:101,404,505,606,707,808", "check=sim:909,1010", "lab=lab:2026,2027,2028,2029,3031",
                  "lab4040=lab:4040")


def extract(res: Any, masks: dict[str, np.ndarray], truth_pct: float) -> dict[str, Any]:
    """What the CD25+ CD4 fit saw in one gated file: the fit events of its parent (``x``) and of its negative
    reference (``ref``), all of the gated parent's values (``xg``), the ideal FMO threshold and the truth %."""
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
    reported = float(res.populations.set_index("population").loc[POPULATION, "pct_parent"])
    return {"x": col[every_nth(np.flatnonzero(gated), FIT_EVENTS)], "ref": ref, "xg": xg, "truth_pct": truth_pct,
            "fmo_t": float(np.quantile(neg, FMO_QUANTILE)) if neg.size >= 50 else np.nan, "reported_pct": reported}


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
        out.append({**extract(res, truth_masks(trial, r.file), float(t.loc[POPULATION, "pct_parent"])),
                    "family": family, "seed": seed, "file": r.file})
    return out


def lab_files(seed: int, root: Path) -> list[dict[str, Any]]:
    """Generate the independent lab's trial with ``seed`` (8 patients, as ``independent_lab.py``) and extract
    every T-cell file."""
    trial = generate_trial(root / f"lab_{seed}", patients=8, events=20000, seed=seed, max_files=None)
    strat = lab_strategies(write_lab_strategies(root / f"lab_{seed}_strategies", "shipped"))
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    out = []
    for r in man.itertuples():
        res = strat[r.tube].apply(read_fcs(trial / r.file), qc=False)
        if POPULATION not in res.fits:
            continue
        t = truth[truth.file == r.file].set_index("population")
        out.append({**extract(res, lab_truth_masks(trial, r.file), float(t.loc[POPULATION, "pct_parent"])),
                    "family": "lab", "seed": seed, "file": r.file})
    return out


def load_group(kind: str, seeds: list[int], root: Path, cache: Path | None) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    for seed in seeds:
        for family in (SIM_FAMILIES if kind == "sim" else ("lab",)):
            path = cache / f"{family}_{seed}.pkl" if cache else None
            if path is not None and path.exists():
                recs += pickle.loads(path.read_bytes())
                continue
            got = sim_files(family, seed, root) if kind == "sim" else lab_files(seed, root)
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
        rows.append({"family": r["family"], "seed": r["seed"], "file": r["file"],
                     "pct": 100.0 * float(np.mean(xg >= t.value)), "truth": r["truth_pct"],
                     "fmo": 100.0 * float(np.mean(xg >= r["fmo_t"])), "method": t.info.get("method")})
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
        if kind not in ("sim", "lab") or not seeds:
            ap.error(f"--group {g!r}: give NAME=sim:SEEDS or NAME=lab:SEEDS")
        if RESERVED & set(seeds):
            ap.error(f"seeds {sorted(RESERVED & set(seeds))} are reserved for the final held-out measurements")
        groups.append((name, kind, seeds))
    shipped = ThresholdParams(**load_strategy("tmem").definition.population(POPULATION).params["threshold"])
    variants = [parse_variant(v) for v in (args.variant or ["dim_mode_tail=null,tail_knee=null"])]
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cd25_placement_"))
    print(f"shipped CD25+ CD4 threshold: {shipped.model_dump(exclude_defaults=True)}")
    for name, kind, seeds in groups:
        recs = load_group(kind, seeds, root, args.cache)
        base = placement(recs, shipped)
        print(f"\n{name} ({kind} seeds {','.join(map(str, seeds))}; {len(base)} files), median / p95 / max pp:")
        print(f"  {'shipped':44s} vs truth {_stats(base.vs_truth):20s} vs ideal FMO {_stats(base.vs_fmo):20s} "
              f"(ideal FMO vs truth {_stats((base.fmo - base.truth).abs())})")
        for v in variants:
            df = placement(recs, shipped.model_copy(update=v))
            changed = int(((df.pct - base.pct).abs() > 1e-9).sum())
            label = ", ".join(f"{k}={v[k]}" for k in v)
            print(f"  {label:44s} vs truth {_stats(df.vs_truth):20s} vs ideal FMO {_stats(df.vs_fmo):20s} "
                  f"({changed} files differ)")
        fam = base.groupby("family").agg(n=("pct", "size"), vs_truth_p95=("vs_truth", lambda s: np.quantile(s, 0.95)),
                                         vs_fmo_p95=("vs_fmo", lambda s: np.quantile(s, 0.95)))
        if len(fam) > 1:
            print("  shipped, per family (p95 pp):\n" + fam.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
