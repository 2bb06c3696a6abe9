"""Threshold placement on activation continua (a smear or shoulder above a negative mode, no valley): the
shipped rule against variants, re-fitted on the same files (docs/gating.md, "An activation smear with a stated
cut").

Sets of (generator, seeds, population): lab B's ``HLA-DR+ CD8`` (a log-uniform smear on CD8 T cells; as the
shipped activation-marker rule, ``user_yaml_b`` ``dr_gate="activation"``: the lab's stated cut is the variant
``"mode=fixed,value=0.45"``) and ``CD25+ CD4``; the simulator's CD25 continuum families
(``gating_accuracy.FAMILIES``: the reference trial's dim-to-bright continuum, dim continua at low gain, a dim
shoulder at high gain, wide and mostly-positive CD25, broad negatives); lab A's ``CD25+ CD4``, ``CD28+ CD4``
and ``CD28+ CD8``. Each file is gated once with its strategy as shipped (lab strategies as their users wrote
them); then the population's threshold is re-fitted exactly as the engine fits it
(:func:`cytokit.gating.methods.density.fit_threshold` on the fit events of the gated parent and of the negative
reference) with the strategy's parameters and with each variant (the same parameters with some replaced:
``--variant "fallback=excess"``, values are YAML). Printed per set
and population: median / p95 / max of |% of parent - truth| (pp), files > 2 pp off, and how many files a
variant changes.

    nice .venv/bin/python benchmarks/continuum_placement.py --set tune_b=labb:11,12,13,7777
        [--set sim=sim:101,404] [--set laba=lab:4040] [--variant KEY=YAML,...] [--cache DIR]

``--cache`` keeps each (generator, family, seed)'s extracted events, so later runs skip generating and
gating. The reserved held-out seeds (``gating_accuracy.HELD_OUT_SEED``, ``independent_lab.RESERVED_A_SEED`` and
``RESERVED_B_SEED``) are refused.
"""
from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gating_accuracy import FAMILIES, HELD_OUT_SEED  # noqa: E402
from independent_lab import RESERVED_A_SEED, RESERVED_B_SEED  # noqa: E402
from independent_lab import strategies as lab_strategies  # noqa: E402
from independent_lab import LABS  # noqa: E402
from independent_lab_gen import generate_trial, truth_masks as lab_truth_masks  # noqa: E402
from independent_lab_gen.trial_b import generate_trial_b  # noqa: E402
from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402
from independent_lab_gen.user_yaml_b import write_lab_b_strategies  # noqa: E402

from cytokit.fcs import read_fcs  # noqa: E402
from cytokit.gating import load_strategy  # noqa: E402
from cytokit.gating.fit_state import FIT_EVENTS, reference_mask  # noqa: E402
from cytokit.gating.methods.base import every_nth  # noqa: E402
from cytokit.gating.methods.density import ThresholdParams, fit_threshold  # noqa: E402
from cytokit.simulate import load_config, simulate_trial, truth_masks  # noqa: E402

RESERVED = {("sim", HELD_OUT_SEED), ("lab", RESERVED_A_SEED), ("labb", RESERVED_B_SEED)}
#: the simulator's families whose CD25 is a continuum (or a dim shoulder) rather than a separate mode
SIM_CONTINUA = ("reference", "broad_negative", "dim_stains_low_gain", "high_gain", "cd28_all_positive_wide_cd25",
                "high_gain_dim_cd25_shoulder", "cd25_mostly_positive", "cd25_dim_continuum_low_gain")
POPULATIONS = {"labb": ("HLA-DR+ CD8", "CD25+ CD4"), "lab": ("CD25+ CD4", "CD28+ CD4", "CD28+ CD8"),
               "sim": ("CD25+ CD4",)}


def extract(res: Any, masks: dict[str, np.ndarray], population: str, truth_pct: float) -> dict[str, Any]:
    """What ``population``'s fit saw in one gated file: the fit events of its parent (``x``) and of its negative
    reference (``ref``), all of the gated parent's values (``xg``), the threshold parameters and the truth %."""
    spec = res.definition.population(population)
    col = res.sample.column(res.fits[population].gate.dims[0])
    gated = res.masks[spec.parent]
    ref = None
    if spec.negative_reference:
        ref_mask = reference_mask(spec.negative_reference, res.masks)
        ref = None if ref_mask is None else col[every_nth(np.flatnonzero(ref_mask), FIT_EVENTS)]
    reported = float(res.populations.set_index("population").loc[population, "pct_parent"])
    return {"x": col[every_nth(np.flatnonzero(gated), FIT_EVENTS)], "ref": ref, "xg": col[gated],
            "params": dict(spec.params["threshold"]), "truth_pct": truth_pct, "reported_pct": reported,
            "population": population}


def _gate_files(trial: Path, strat: dict[str, Any], pops: tuple[str, ...], mask_fn: Any, family: str,
                seed: int) -> list[dict[str, Any]]:
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    out = []
    for r in man.itertuples():
        tube = getattr(r, "tube", "tmem")
        if not any(p.name in pops for p in strat[tube].definition.populations):
            continue
        res = strat[tube].apply(read_fcs(trial / r.file), qc=False)
        t = truth[truth.file == r.file].set_index("population")
        masks = mask_fn(trial, r.file)
        for pop in pops:
            if pop in res.fits and pop in t.index:
                out.append({**extract(res, masks, pop, float(t.loc[pop, "pct_parent"])),
                            "family": family, "seed": seed, "file": r.file})
    return out


def load(kind: str, family: str, seed: int, root: Path, kept: Path | None = None, *, patients: int = 2,
         events: int = 20000) -> list[dict[str, Any]]:
    """Generate and gate one (generator, family, seed) and extract every file's continuum populations; a lab
    trial already generated with the same seed (``independent_lab.py --keep``) is read from ``kept``."""
    pops = POPULATIONS[kind]
    if kind == "labb" and kept is not None and (kept / "trial" / "manifest.csv").exists():
        folder = write_lab_b_strategies(root / f"labb_{seed}_strategies", "shipped", "activation")
        return _gate_files(kept / "trial", lab_strategies(folder, LABS["b"]), pops, lab_truth_masks, "lab B", seed)
    if kind == "sim":
        cfg = load_config(None, seed=seed, patients_per_arm=patients, visits=["W0", "W74"], events=events,
                          tubes=["tmem"], **FAMILIES[family].overrides)
        trial = root / f"{family}_{seed}"
        simulate_trial(trial, cfg, force=True)
        return _gate_files(trial, {"tmem": load_strategy("tmem")}, pops, truth_masks, family, seed)
    if kind == "lab":
        trial = generate_trial(root / f"lab_{seed}", patients=8, events=20000, seed=seed, max_files=None)
        strat = lab_strategies(write_lab_strategies(root / f"lab_{seed}_strategies", "shipped"))
        return _gate_files(trial, strat, pops, lab_truth_masks, "lab A", seed)
    trial = generate_trial_b(root / f"labb_{seed}", patients=6, events=60000, seed=seed)
    folder = write_lab_b_strategies(root / f"labb_{seed}_strategies", "shipped", "activation")
    return _gate_files(trial, lab_strategies(folder, LABS["b"]), pops, lab_truth_masks, "lab B", seed)


def load_set(kind: str, seeds: list[int], root: Path, cache: Path | None, trials: Path | None = None
             ) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    for seed in seeds:
        for family in (SIM_CONTINUA if kind == "sim" else (kind,)):
            path = cache / f"{kind}_{family}_{seed}.pkl" if cache else None
            if path is not None and path.exists():
                recs += pickle.loads(path.read_bytes())
                continue
            w, c = time.perf_counter(), time.process_time()
            got = load(kind, family, seed, root, trials / f"{kind}_{seed}" if trials else None)
            if path is not None:
                path.write_bytes(pickle.dumps(got))
            recs += got
            for sub in root.iterdir():  # simulated draws are large: keep only the extracted events
                shutil.rmtree(sub, ignore_errors=True) if sub.is_dir() else sub.unlink()
            print(f"  {kind} {family} seed {seed}: {len(got)} estimates ({time.perf_counter() - w:.0f} s wall, "
                  f"{time.process_time() - c:.0f} s CPU)", flush=True)
    return recs


def placement(recs: list[dict[str, Any]], update: dict[str, Any] | None = None) -> pd.DataFrame:
    """% of parent per file with each record's parameters (``update`` replacing some), fitted as the engine
    fits them, against truth."""
    rows = []
    for r in recs:
        p = ThresholdParams(**{**r["params"], **(update or {})})
        t = fit_threshold(r["x"], p, reference=r["ref"])
        rows.append({"family": r["family"], "seed": r["seed"], "file": r["file"], "population": r["population"],
                     "pct": 100.0 * float(np.mean(r["xg"] >= t.value)), "truth": r["truth_pct"],
                     "method": t.info.get("method"), "flags": ";".join(t.flags)})
    df = pd.DataFrame(rows)
    df["err"] = (df.pct - df.truth).abs()
    return df


def _stats(s: pd.Series) -> str:
    return f"{s.median():.2f} / {np.quantile(s, 0.95):.2f} / {s.max():.2f} ({int((s > 2).sum())} > 2 pp)"


def parse_variant(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", required=True, help="NAME=sim|lab|labb:SEED,SEED,... (repeatable)")
    ap.add_argument("--variant", action="append", default=[], help="KEY=YAML,KEY=YAML (repeatable)")
    ap.add_argument("--cache", type=Path, default=None, help="keep the extracted events here (pickle files)")
    ap.add_argument("--trials", type=Path, default=None,
                    help="lab B trials kept by independent_lab.py --keep DIR/labb_SEED (read, not regenerated)")
    ap.add_argument("--families", action="store_true", help="also print the shipped rule per family")
    args = ap.parse_args(argv)
    sets = []
    for g in args.set:
        name, _, rest = g.partition("=")
        kind, _, seeds_text = rest.partition(":")
        seeds = [int(s) for s in seeds_text.split(",") if s]
        if kind not in POPULATIONS or not seeds:
            ap.error(f"--set {g!r}: give NAME=sim|lab|labb:SEEDS")
        if any((kind, s) in RESERVED for s in seeds):
            ap.error(f"--set {g!r}: a reserved held-out seed")
        sets.append((name, kind, seeds))
    variants = [parse_variant(v) for v in args.variant]
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="continuum_placement_"))
    try:
        for name, kind, seeds in sets:
            recs = load_set(kind, seeds, root, args.cache, args.trials)
            base = placement(recs)
            print(f"\n{name} ({kind} seeds {','.join(map(str, seeds))}), |% - truth| median / p95 / max pp:")
            for pop, b in base.groupby("population", sort=False):
                print(f"  {pop} ({len(b)} files)\n    {'as shipped':40s} {_stats(b.err)}")
                for v in variants:
                    d = placement([r for r in recs if r["population"] == pop], v)
                    changed = int(((d.pct.to_numpy() - b.pct.to_numpy()) ** 2 > 1e-12).sum())
                    label = ", ".join(f"{k}={v[k]}" for k in v)
                    print(f"    {label:40s} {_stats(d.err)}  {changed} files differ")
                if args.families and b.family.nunique() > 1:
                    print(b.groupby("family").err.agg(["size", "median", lambda s: np.quantile(s, 0.95), "max"])
                          .round(2).to_string())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
