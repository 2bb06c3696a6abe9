"""Which population of the tmem tube can be CD28's negative reference? (measured, docs/gating.md)

For ``CD28+ CD4`` and ``CD28+ CD8``, every candidate population of the same file (``Singlets``,
``T cells``, ``CD8 T`` and the CD3- single lymphocytes, ``Singlets & !T cells``, the reference the shipped
strategy names) is judged as a negative reference is used
(:func:`cytokit.gating.methods.negative_model.negative_model`, the count behind the second estimate in
``confidence.py``): its share of CD28- events (truth), its CD28 main mode and the SD of that mode's lower
half (logicle scale) next to those of the gate's truly CD28- events, whether the count is ``valid``
(:attr:`~cytokit.gating.methods.negative_model.NegativeModel.valid`: the misfit check, and the reference's
main mode is its lowest, i.e. the reference is negative for the marker) and |count - truth| (pp of the
parent, valid or not: the second estimate uses only a valid count). Files: the simulator's tuning families
``reference``, ``broad_negative``, ``cd28_dim_mode``, ``cd28_all_positive`` (tmem tube; ``--seed``, a
tuning seed) and the independent lab's T-cell tube (``--lab-seed``, a seed already looked at).

    nice .venv/bin/python benchmarks/cd28_reference.py [--seed 101] [--lab-seed 2026] [--patients 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods.density import kde_1d
from cytokit.gating.methods.negative_model import negative_model
from cytokit.simulate import load_config, simulate_trial, truth_masks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gating_accuracy import FAMILIES, HELD_OUT_SEED  # noqa: E402
from independent_lab import RESERVED_A_SEED  # noqa: E402
from independent_lab_gen import generate_trial, truth_masks as lab_truth_masks  # noqa: E402
from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402

SIM_FAMILIES = ("reference", "broad_negative", "cd28_dim_mode", "cd28_all_positive")
GATES = (("CD4 T", "CD28+ CD4"), ("CD8 T", "CD28+ CD8"))
RESERVED = {HELD_OUT_SEED, RESERVED_A_SEED}  # the next held-out seeds of gating_accuracy / independent_lab: never drawn here


def main_mode(x: np.ndarray) -> tuple[float, float]:
    """Highest-density mode and the SD of the values below it (logicle scale)."""
    d = kde_1d(x)
    mode = float(d.grid[int(np.argmax(d.density))])
    below = x[x <= mode] - mode
    return mode, float(np.sqrt(np.mean(below ** 2)))


def measure(source: str, res: object, truth: dict[str, np.ndarray]) -> list[dict]:
    """One row per (gate, candidate reference) of one gated tmem/T-cell file."""
    x = res.sample.column("CD28")  # type: ignore[attr-defined]
    m = res.masks  # type: ignore[attr-defined]
    positive = truth["CD28+ CD4"] | truth["CD28+ CD8"]
    candidates = {"Singlets": m["Singlets"], "T cells": m["T cells"], "CD8 T": m["CD8 T"],
                  "Singlets & !T cells (shipped)": m["Singlets"] & ~m["T cells"]}
    rows = []
    for parent, gate in GATES:
        inside = m[parent]
        truth_pct = 100.0 * truth[gate][inside].mean()
        neg_mode, neg_sd = main_mode(x[inside & ~truth[gate]])
        for name, ref in candidates.items():
            if name == parent:
                continue
            ref_mode, ref_sd = main_mode(x[ref])
            model = negative_model(x[inside], reference=x[ref])
            valid = bool(model is not None and model.method == "reference" and model.valid)
            count = model.positive_pct if model is not None and model.method == "reference" else np.nan
            rows.append({"source": source, "gate": gate, "reference": name,
                         "ref_cd28neg_pct": 100.0 * float((~positive[ref]).mean()),
                         "ref_mode": ref_mode, "neg_mode": neg_mode, "ref_half_sd": ref_sd, "neg_half_sd": neg_sd,
                         "valid": valid, "count_err_pp": abs(count - truth_pct)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=101, help="simulator seed (a tuning seed)")
    ap.add_argument("--lab-seed", type=int, default=2026, help="independent lab seed (a seen seed)")
    ap.add_argument("--patients", type=int, default=1, help="patients per arm (simulator); lab: 4 x this")
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args(argv)
    if {args.seed, args.lab_seed} & RESERVED:
        ap.error(f"seeds {sorted(RESERVED)} are reserved for held-out measurements")
    root = Path(tempfile.mkdtemp(prefix="cd28_reference_"))
    rows: list[dict] = []
    tmem = load_strategy("tmem")
    for fam in SIM_FAMILIES:
        cfg = load_config(None, seed=args.seed, patients_per_arm=args.patients, visits=["W0", "W74"],
                          events=args.events, **FAMILIES[fam].overrides)
        simulate_trial(root / fam, cfg, force=True)
        man = pd.read_csv(root / fam / "manifest.csv")
        for r in man[man.tube == "tmem"].itertuples():
            rows += measure(f"simulator {args.seed}: {fam}", tmem.apply(read_fcs(root / fam / r.file), qc=False),
                            truth_masks(root / fam, r.file))
    trial = generate_trial(root / "lab", patients=4 * args.patients, events=args.events, seed=args.lab_seed,
                           tubes=("tcell",))
    lab = load_strategy(str(write_lab_strategies(root / "lab_yaml") / "lab_tcell.yaml"))
    for r in pd.read_csv(trial / "manifest.csv").itertuples():
        rows += measure(f"lab {args.lab_seed}", lab.apply(read_fcs(trial / r.file), qc=False),
                        lab_truth_masks(trial, r.file))
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 220)
    table = df.groupby(["gate", "reference", "source"], sort=False).agg(
        files=("valid", "size"), cd28neg_pct=("ref_cd28neg_pct", "median"), ref_mode=("ref_mode", "median"),
        neg_mode=("neg_mode", "median"), ref_half_sd=("ref_half_sd", "median"),
        neg_half_sd=("neg_half_sd", "median"), valid=("valid", "mean"),
        err_median=("count_err_pp", "median"), err_max=("count_err_pp", "max"))
    print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
