"""benchmarks/noise_valley.py: a valley between noise bumps of a sparse smear above one mode is told from a valley
between two populations, the recording wrapper leaves the threshold as it was, and the rule table counts what a flag
on noise valleys would catch."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from noise_valley import recording, rule_table, summary, valley_features  # noqa: E402

from cytokit.gating.methods import shared_fits  # noqa: E402
from cytokit.gating.methods.density import ThresholdParams, fit_threshold  # noqa: E402

PARAMS = ThresholdParams(bounds=(0.3, 0.7))


def _smear(seed: int = 5) -> np.ndarray:
    """One negative mode (logicle units) with a sparse smear of 7.6 % of the events above it (CD4 in B cells)."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0.165, 0.039, 2200), 0.3 + rng.exponential(0.2, 180)]


def _two_populations() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.r_[rng.normal(0.17, 0.04, 1800), rng.normal(0.6, 0.05, 500)]


def test_noise_valley_is_shallow_in_noise_sds_and_away_from_the_main_mode() -> None:
    x = _smear()
    fit = fit_threshold(x, PARAMS)
    f = valley_features(x, PARAMS, fit)
    assert f is not None and fit.info["method"] == "valley"
    assert f["sds"] < 2.0 and not f["lower_is_main"] and not f["beside_main"]
    assert max(f["lower_pct"], f["upper_pct"]) < 2.0  # both modes are a few events
    assert f["above_pct"] < 2.0 < 100.0 * np.mean(x >= 0.3)  # the gate holds a fraction of the smear
    assert f["merged"] is not None and f["merged"] < fit.value and f["moved_pp"] > 4.0  # rule M takes the smear in


def test_valley_between_populations_is_deep_and_kept() -> None:
    x = _two_populations()
    fit = fit_threshold(x, PARAMS)
    f = valley_features(x, PARAMS, fit)
    assert f is not None
    assert f["sds"] > 10.0 and f["lower_is_main"] and f["beside_main"]
    assert abs(f["upper_pct"] - 100.0 * 500 / 2300) < 1.0
    assert f["merged"] == round(fit.value, 5) and f["moved_pp"] == 0.0


def test_recording_adds_features_without_moving_the_threshold() -> None:
    x = _smear()
    plain = fit_threshold(x, PARAMS)
    with shared_fits.shared_threshold_fits(), recording():
        recorded = shared_fits.fit_threshold_shared(x, PARAMS)
    assert recorded.value == plain.value and recorded.flags == plain.flags
    assert recorded.info["noise_valley"]["sds"] < 2.0
    assert shared_fits.fit_threshold is fit_threshold  # the wrapper is removed on exit
    assert "noise_valley" not in shared_fits.fit_threshold_shared(x, PARAMS).info


def _row(pop: str, sds: float, err: float, review: bool, merged: float | None, moved_pp: float,
         beside_main: bool = False) -> dict:
    nv = {"sds": sds, "lower_pct": 0.5, "upper_pct": 1.0, "above_pct": 1.0, "lower_is_main": beside_main,
          "beside_main": beside_main, "index": 3, "n_valleys": 5, "merged": merged, "moved_pp": moved_pp}
    detail = {"threshold": 0.6, "sign": "+", "CD4": {"method": "valley", "threshold": 0.6, "noise_valley": nv}}
    return {"population": pop, "file": "f.fcs", "family": "x", "truth_pct": 5.0, "auto_pct": 5.0 + err,
            "review": review, "fit_detail": json.dumps(detail)}


def test_rule_table_counts_new_flags_caught_and_false() -> None:
    df = pd.DataFrame([_row("a", 1.2, -3.5, False, 0.3, 3.0),   # noise valley, 3.5 pp off, silent: caught
                       _row("b", 1.5, 0.4, False, 0.6, 0.0, True),  # noise valley beside the main mode, within 1 pp
                       _row("c", 1.0, 4.0, True, 0.6, 0.0),     # already flagged
                       _row("d", 6.0, 2.5, False, 0.6, 0.0),    # a real valley, 2.5 pp off: not a noise valley
                       {"population": "e", "truth_pct": 1.0, "auto_pct": 1.0, "review": False,
                        "fit_detail": json.dumps({"CD4": {"method": "tail", "threshold": 0.3}})}])
    t = rule_table(df)
    assert list(t.population) == ["a", "b", "c", "d"]
    s = summary(t)
    assert s["noise_valleys"] == 3 and s["already_flagged"] == 1 and s["F_new_flags"] == 2
    assert s["F_caught_gt2pp"] == 1 and s["F_within_1pp"] == 1
    assert s["FI_new_flags"] == 1 and s["FI_caught_gt2pp"] == 1 and s["FI_within_1pp"] == 0
    assert s["M_moved"] == 1 and s["M_moved_gt1pp"] == 1 and s["silent_gt2pp_all"] == 2
