"""Cohort gating relative to each file's own landmarks (negative mode and its spread): a gate that moved
with its file's gain and spread is not an outlier, a gate that did not follow its data is, and the range
the cohort supports is mapped back into each file's coordinates."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.gates import RectangleGate
from cytokit.gating.cohort import cohort_outliers, fit_landmarks, gate_positions
from cytokit.gating.methods.density import ThresholdParams, fit_threshold
from cytokit.gating.methods.threshold import ThresholdGateParams, fit_threshold_gate


def _bimodal(rng: np.random.Generator, neg: float, sd: float, pos: float, n: int = 6000) -> np.ndarray:
    return np.concatenate([rng.normal(neg, sd, int(n * 0.7)), rng.normal(pos, sd * 1.2, n - int(n * 0.7))])


def test_threshold_fit_records_the_negative_mode_and_its_lower_half_sd():
    x = _bimodal(np.random.default_rng(1), 0.25, 0.04, 0.65)
    marks = fit_threshold(x, ThresholdParams()).info["landmarks"]
    assert marks["low_mode"] == pytest.approx(0.25, abs=0.015)
    assert marks["low_sd"] == pytest.approx(0.04, rel=0.15)
    assert marks["high_mode"] == pytest.approx(0.65, abs=0.03)
    fit = fit_threshold_gate(x[:, None], ThresholdGateParams(), dims=("CD25",), gate_id="CD25+")
    stored = fit_landmarks(fit.info, ("CD25",))
    assert stored["CD25"]["low_mode"] == marks["low_mode"]
    assert fit_landmarks({"CD25": {"peaks": [0.2]}}, ("CD25",)) == {}  # nothing recorded: nothing invented


def _records(files: list[tuple[float, float, float]]) -> dict:
    """sample -> one stored threshold record with landmarks: (negative mode, its SD, gate position)."""
    return {f"s{i}": [{"population": "CD25+ CD4",
                       "gate": RectangleGate(id="CD25+ CD4", dims=("CD25",), lower=(t,), upper=(None,)).to_dict(),
                       "landmarks": {"CD25": {"low_mode": m, "low_sd": s, "high_mode": m + 0.4}}}]
            for i, (m, s, t) in enumerate(files)}


def test_gain_shifted_file_is_no_outlier_relative_to_its_own_negatives_but_a_misplaced_gate_is():
    rng = np.random.default_rng(3)
    files = [(0.25 + d, 0.04, 0.25 + d + 3.0 * 0.04 + e) for d, e in zip(rng.normal(0, 0.01, 9), rng.normal(0, 0.004, 9))]
    files.append((0.45, 0.06, 0.45 + 3.0 * 0.06))  # brighter, broader negatives (gain): the gate followed them
    files.append((0.25, 0.04, 0.25))  # a gate cut through its own negative peak
    pos = gate_positions(_records(files), {"CD25+ CD4": "threshold"})
    assert pos[["low_mode", "low_sd"]].notna().all().all()
    rel = cohort_outliers(pos, k=4.0, min_shift=0.05, frame="sd").set_index("sample_id")
    ab = cohort_outliers(pos, k=4.0, min_shift=0.05, frame="absolute").set_index("sample_id")
    assert ab.loc["s9", "outlier"] and not rel.loc["s9", "outlier"]  # absolute: a false outlier
    assert rel.loc["s9", "shifted"] and rel.loc["s9", "outlier_absolute"] and not rel.loc["s9", "outlier_relative"]
    assert rel.loc["s10", "outlier"] and not rel.loc["s10", "shifted"]
    assert not rel.drop(index=["s10"])["outlier"].any()
    assert not ab["shifted"].any()  # the absolute frame has nothing to explain a position by
    assert (rel["frame"] == "sd").all() and (ab["frame"] == "absolute").all()
    # the cohort's range in the misplaced file's own coordinates: ~mode + 3 SD, the gate lies below it
    lo, hi = rel.loc["s10", "range_low"], rel.loc["s10", "range_high"]
    assert lo < 0.25 + 3 * 0.04 < hi and rel.loc["s10", "position"] < lo
    # and in the bright file's coordinates the range is shifted and stretched with its negatives
    assert rel.loc["s9", "range_low"] < 0.45 + 3 * 0.06 < rel.loc["s9", "range_high"]
    assert rel.loc["s9", "range_high"] - rel.loc["s9", "range_low"] == pytest.approx(
        (rel.loc["s10", "range_high"] - rel.loc["s10", "range_low"]) * 0.06 / 0.04, rel=1e-6)


def test_a_cohort_with_a_file_without_landmarks_is_compared_as_before():
    files = [(0.25, 0.04, 0.37)] * 6
    recs = _records(files)
    recs["s0"][0].pop("landmarks")
    table = cohort_outliers(gate_positions(recs, {"CD25+ CD4": "threshold"}), frame="sd")
    assert (table["frame"] == "absolute").all()
    assert table["median"].tolist() == pytest.approx([0.37] * 6)
    with pytest.raises(ValueError, match="frame"):
        cohort_outliers(pd.DataFrame(table), frame="zscore")


def _valley_records(files: list[tuple[float, float, float]]) -> dict:
    """sample -> a stored CD3 threshold with two-mode landmarks: (negative mode, positive mode, gate)."""
    return {f"s{i}": [{"population": "T cells",
                       "gate": RectangleGate(id="T cells", dims=("CD3",), lower=(t,), upper=(None,)).to_dict(),
                       "landmarks": {"CD3": {"low_mode": lo, "low_sd": 0.05, "high_mode": hi}}}]
            for i, (lo, hi, t) in enumerate(files)}


def test_modes_frame_places_a_valley_gate_between_the_files_own_modes():
    rng = np.random.default_rng(5)
    files = [(0.20 + a, 0.65 + b, 0.20 + a + 0.4 * (0.45 + b - a) + e)
             for a, b, e in zip(rng.normal(0, 0.01, 9), rng.normal(0, 0.01, 9), rng.normal(0, 0.004, 9))]
    files.append((0.35, 0.90, 0.35 + 0.4 * 0.55))  # a brighter file: both modes moved, the valley with them
    files.append((0.20, 0.65, 0.58))  # a gate up against the positive mode
    table = cohort_outliers(gate_positions(_valley_records(files), {"T cells": "threshold"}),
                            frame="modes").set_index("sample_id")
    assert (table["frame"] == "modes").all()
    assert table.loc["s9", "shifted"] and not table.loc["s9", "outlier"]
    assert table.loc["s10", "outlier"]
    assert not table.drop(index=["s9", "s10"])[["outlier", "shifted"]].any().any()
    # its re-fit range, in its own coordinates: around 40 % of the way from its negative to its positive mode
    assert table.loc["s10", "range_low"] < 0.20 + 0.4 * 0.45 < table.loc["s10", "range_high"] < 0.58
    # an all-positive file among two-mode files: its only mode is its positives, the gate went above it (a
    # tail from the wrong mode); its landmarks say nothing comparable, so the common scale decides
    files[8] = (0.62, 0.62, 0.62 + 2.5 * 0.05)
    table = cohort_outliers(gate_positions(_valley_records(files), {"T cells": "threshold"}),
                            frame="modes").set_index("sample_id")
    assert table.loc["s8", "frame"] == "absolute" and table.loc["s8", "outlier"] and not table.loc["s8", "shifted"]
    assert table.loc["s8", "range_high"] == pytest.approx(table.loc["s8", "abs_median"] + 4 * table.loc["s8", "abs_spread"])
    assert table.loc["s9", "shifted"] and table.loc["s10", "outlier"]  # the others as before
    # most files with a single mode: the cohort is compared in SDs of the negative mode instead
    one = cohort_outliers(gate_positions(_valley_records([(lo, lo + 0.02, t) for lo, _, t in files]),
                                         {"T cells": "threshold"}), frame="modes")
    assert (one["frame"] == "sd").all()
