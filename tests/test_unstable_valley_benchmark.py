"""benchmarks/unstable_valley.py: the candidate rules on recorded fit details select the rows they describe, and the
event measures tell a sparse plateau from an empty valley and find where mirrored negatives end."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from unstable_valley import (floor_ratio, main, mirrored_negative_edge, move_to_negative_max,  # noqa: E402
                             recorded_floor_ratio, rule_table, valley_features)


def _detail(method: str, thr: float, refits: list[float], negmax: float, spread_lower: float) -> str:
    return json.dumps({"threshold": thr, "sign": "+",
                       "CD25": {"method": method, "threshold": thr, "stability_thresholds": refits,
                                "negative_reference": {"negative_max": negmax, "half_sd": 0.07}},
                       "est_error_parts": {"spread_lower_pp": spread_lower}})


def _rows() -> pd.DataFrame:
    rows = [  # (notes, detail, sensitivity_pp, err, review)
        # a valley inside a plateau, its refit at negative_max: the silent kind (4.5 pp off)
        ("unstable;edge_sensitive", _detail("valley", 0.462, [0.338, 0.458], 0.341, 3.29), 0.44, 4.5, False),
        # a valley below negative_max (inside the reference's negatives): B and D leave it
        ("unstable", _detail("valley", 0.35, [0.30], 0.40, 9.0), 0.4, 0.1, False),
        # an empty valley whose refit reached the negatives' edge: floor ratio 14, D leaves it
        ("unstable", _detail("valley", 0.432, [0.277], 0.320, 2.22), 0.02, 0.04, False),
        # a tail and a row with no `unstable` note: no rule selects them
        ("unstable", _detail("tail", 0.40, [0.30], 0.30, 3.0), 0.5, 3.0, False),
        ("edge_sensitive", _detail("valley", 0.46, [0.34], 0.34, 3.0), 0.4, 3.0, False),
        # already flagged
        ("uncertain", _detail("valley", 0.46, [0.34], 0.34, 3.0), 0.4, 0.5, True),
    ]
    return pd.DataFrame([{"population": "CD25+ CD4", "flag_words": n, "fit_detail": d, "sensitivity_pp": s,
                          "err": e, "review": r} for n, d, s, e, r in rows])


def test_features_of_a_recorded_fit() -> None:
    f = valley_features(_detail("valley", 0.462, [0.338, 0.458], 0.341, 3.29))
    assert f["method"] == "valley" and f["low_refit"] == pytest.approx(0.338)
    assert f["negative_max"] == pytest.approx(0.341) and f["spread_lower_pp"] == pytest.approx(3.29)
    assert valley_features("not json")["method"] is None
    low = valley_features(_detail("valley", 0.3, [0.35], 0.2, 0.0))["low_refit"]
    assert isinstance(low, float) and np.isnan(low)  # no refit below


def test_rules_select_what_they_describe(tmp_path: Path) -> None:
    from unstable_valley import load
    path = tmp_path / "rows.csv"
    _rows().to_csv(path, index=False)
    t = rule_table(load(path))
    assert t["current"] == {"caught": 0, "gt2": 3, "flagged": 1, "within_1pp": 1}
    assert t["A"] == {"caught": 1, "gt2": 3, "flagged": 4, "within_1pp": 3}  # + plateau, below-negmax, empty valley
    assert t["B"] == {"caught": 1, "gt2": 3, "flagged": 3, "within_1pp": 2}  # not the valley below negative_max
    assert t["D"] == {"caught": 1, "gt2": 3, "flagged": 2, "within_1pp": 1}  # nor the empty valley
    assert main([str(path)]) == 0
    assert main([str(tmp_path / "missing.csv")]) == 2


def test_floor_ratio_plateau_against_empty_valley() -> None:
    rng = np.random.default_rng(1)
    negatives = rng.normal(0.2, 0.035, 5000)
    plateau = np.concatenate([negatives, rng.uniform(0.30, 0.65, 400)])
    assert floor_ratio(plateau, 0.46, 0.33) == pytest.approx(1.0, abs=0.35)
    gap = np.concatenate([negatives, rng.normal(0.55, 0.05, 400)])  # a nearly empty valley, the refit in the tail
    assert floor_ratio(gap, 0.40, 0.28) > 3
    assert np.isnan(floor_ratio(np.concatenate([negatives, rng.normal(0.7, 0.02, 400)]), 0.45, 0.3))  # empty
    assert recorded_floor_ratio(3.29, 0.462, 0.338, 0.44) == pytest.approx((3.29 / 0.124) / 22.0)
    assert np.isnan(recorded_floor_ratio(2.0, 0.4, 0.3, 0.0))


def test_mirrored_negative_edge_ignores_the_positives() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0.2, 0.04, 20000), rng.normal(0.5, 0.05, 3000)])
    edge = mirrored_negative_edge(x, 0.2)
    assert edge == pytest.approx(0.2 + 2.576 * 0.04, abs=0.005)  # the 99.5th percentile of the negatives alone
    assert np.isnan(mirrored_negative_edge(np.array([0.5, 0.6]), 0.2))


def _counted(thr: float, negmax: float, shift_pp: float | None, sd_pp: float = 1.0) -> str:
    parts = {"spread_lower_pp": 0.0} if shift_pp is None else {
        "spread_lower_pp": 0.0, "n_second": 1.0, "second_shift_pp": shift_pp, "second_sd_pp": sd_pp}
    return json.dumps({"threshold": thr, "sign": "+",
                       "CD25": {"method": "valley", "threshold": thr, "stability_thresholds": [thr],
                                "negative_reference": {"negative_max": negmax, "half_sd": 0.07}},
                       "est_error_parts": parts})


def test_move_to_negative_max_carries_the_cut_density_down() -> None:
    assert move_to_negative_max(0.44, 0.462, 0.341) == pytest.approx(0.44 * 0.121 / 0.02)
    assert move_to_negative_max(0.9, 0.30, 0.34) == 0.0  # a valley inside the reference's negatives
    assert np.isnan(move_to_negative_max(float("nan"), 0.4, 0.3))
    f = valley_features(_counted(0.456, 0.36, 3.36, 1.46))
    assert f["count_sds"] == pytest.approx(3.36 / 1.46)
    none = valley_features(_counted(0.456, 0.36, None))["count_sds"]
    assert isinstance(none, float) and np.isnan(none)  # no count


def test_negative_max_rules_select_what_they_describe(tmp_path: Path) -> None:
    from unstable_valley import load
    rows = [  # (detail, sensitivity_pp, err): no `unstable` note on any
        # a stable valley 1.4 half-SDs above negative_max on a plateau, the count 2.3 SDs towards more positives
        (_counted(0.456, 0.36, 3.36, 1.46), 0.29, 2.96),
        # a valley just above negative_max at a dense cut, the count 11.7 SDs the other way: N only
        (_counted(0.356, 0.339, -11.8, 1.01), 1.43, 2.50),
        # a dense cut 0.4 half-SDs above negative_max, a count that agrees: N and NC, not NCH
        (_counted(0.37, 0.34, 0.5), 1.0, 0.3),
        # a sparse cut: its move down to negative_max stays under 1 pp
        (_counted(0.45, 0.34, 0.2), 0.1, 0.1),
    ]
    path = tmp_path / "rows.csv"
    pd.DataFrame([{"population": "CD25+ CD4", "flag_words": "", "fit_detail": d, "sensitivity_pp": s, "err": e,
                   "review": False} for d, s, e in rows]).to_csv(path, index=False)
    t = rule_table(load(path))
    assert t["current"] == {"caught": 0, "gt2": 2, "flagged": 0, "within_1pp": 0}
    assert t["B"] == t["current"]  # no `unstable` note: rule B leaves them all
    assert t["N"] == {"caught": 2, "gt2": 2, "flagged": 3, "within_1pp": 1}
    assert t["NC"] == {"caught": 1, "gt2": 2, "flagged": 2, "within_1pp": 1}
    assert t["NCH"] == {"caught": 1, "gt2": 2, "flagged": 1, "within_1pp": 0}
