"""Lab C's TBNK tube gated with the lab's own strategy (CD45 x SSC lymphocyte gate), for the tests of that gate.

Not a test module: the fixtures of tests/test_gating_cd45_*.py read the files it gates.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.result import GatingResult

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from independent_lab_gen import truth_masks  # noqa: E402
from independent_lab_gen.trial_c import generate_trial_c  # noqa: E402
from independent_lab_gen.user_yaml_c import write_lab_c_strategies  # noqa: E402


@dataclass(frozen=True)
class GatedTbnk:
    """One gated TBNK file: its name in the trial folder, the gating result, the generator's true masks and the
    populations table with the true % of parent in column ``truth``."""

    file: str
    trial: Path
    result: GatingResult
    masks: dict[str, np.ndarray]
    table: pd.DataFrame


def gate_lab_c_tbnk(tmp: Path, *, redraw: bool = True, seed: int = 8, patients: int = 3,
                    events: int = 40000) -> list[GatedTbnk]:
    """Generate lab C's trial into ``tmp`` (seed 8: none of the gating rules was chosen on it) and gate each TBNK
    file with the lab's strategy, the Lymphocytes gate with or without its ``redraw``."""
    trial = generate_trial_c(tmp / "trial", patients=patients, events=events, seed=seed)
    strategy = load_strategy(write_lab_c_strategies(tmp / "strategies") / "lab_tbnk.yaml")
    if not redraw:
        spec = strategy.definition.population("Lymphocytes")
        strategy = strategy.set_params("Lymphocytes", **{**spec.params, "redraw": False})
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    out = []
    for f in man[man.tube == "tbnk"].file:
        res = strategy.apply(read_fcs(trial / f), qc=False)
        table = res.populations.set_index("population")
        table["truth"] = truth[truth.file == f].set_index("population").pct_parent.reindex(table.index)
        out.append(GatedTbnk(f, trial, res, truth_masks(trial, f), table))
    return out
