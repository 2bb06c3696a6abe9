"""benchmarks/compensation_check.py: its scoring, and a tiny parametric family it scores."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from compensation_check import ParamFamily, check_variants, param_file, score  # noqa: E402


def test_score_counts_each_variant_in_its_own_column():
    rows = pd.DataFrame([
        # file a: once passes, twice flagged, over50 flagged
        {"source": "s", "family": "f", "file": "a", "variant": "once", "flagged": False, "unchecked": False, "d": 0.0},
        {"source": "s", "family": "f", "file": "a", "variant": "twice", "flagged": True, "unchecked": False, "d": -1.0},
        {"source": "s", "family": "f", "file": "a", "variant": "over50", "flagged": True, "unchecked": False, "d": -0.7},
        # file a over-scaled by 25 %: not flagged, but noted compensation_suspect
        {"source": "s", "family": "f", "file": "a", "variant": "over25", "flagged": False, "unchecked": False, "d": -0.3},
        # file b: once a false positive, twice missed silently
        {"source": "s", "family": "f", "file": "b", "variant": "once", "flagged": True, "unchecked": False, "d": -0.7},
        {"source": "s", "family": "f", "file": "b", "variant": "twice", "flagged": False, "unchecked": False, "d": -0.2},
        # file c: undecidable both ways (not a silent miss)
        {"source": "s", "family": "f", "file": "c", "variant": "once", "flagged": False, "unchecked": True, "d": np.nan},
        {"source": "s", "family": "f", "file": "c", "variant": "twice", "flagged": False, "unchecked": True, "d": np.nan},
        {"source": "t", "family": "g", "file": "d", "variant": "twice", "flagged": True, "unchecked": False, "d": -1.2},
    ])
    rows["suspect"] = rows["variant"] == "over25"
    rows["d_mode"] = rows["d"]
    t = score(rows).set_index("family")
    f = t.loc["f"]
    assert f["files"] == 3
    assert f["detect_twice"] == 1 / 3 and f["silent_twice"] == 1 / 3
    assert f["fp_once"] == 1 / 3
    assert f["unchecked"] == 2 / 6
    assert f["detect_over50"] == 1.0 and np.isnan(f["detect_over10"]) and np.isnan(f["flag_wrong"])
    assert f["d_once"] == -0.35 and f["d_twice"] == -0.6
    assert f["detect_over25"] == 0.0 and f["seen_over25"] == 1.0 and f["seen_over50"] == 1.0
    assert f["seen_once"] == 1 / 3 and f["dm_once"] == -0.35 and f["dm_over50"] == -0.7
    assert t.loc["g", "detect_twice"] == 1.0 and np.isnan(t.loc["g", "fp_once"])


def test_tiny_strong_family_once_passes_twice_is_flagged():
    # seed 3: a file whose twice-compensated copy keeps informative pairs (on some seeds of small strongly
    # spilled files the second subtraction widens the dim events' spread until no pair qualifies: unchecked)
    fam = ParamFamily("tiny", colours=4, spill="few_large", brightness=(100.0, 300.0), events=5000)
    bf = param_file(fam, 3)
    assert bf.events.shape == (5000, 4) and bf.matrix.n == 4
    rows = pd.DataFrame(check_variants(bf))
    by = rows.set_index("variant")
    assert list(rows["variant"]) == ["once", "twice", "over10", "over25", "over50"]  # no wrong matrix given
    assert not by.loc["once", "flagged"] and abs(by.loc["once", "d"]) < 0.3
    assert by.loc["twice", "flagged"] and by.loc["twice", "d"] < -0.8
    # the check is given the over-scaled matrix: d ~ -(k - 1) / k, first order
    assert by.loc["over10", "d"] > by.loc["over50", "d"]
    assert score(rows).loc[0, "detect_twice"] == 1.0


def test_dim_family_is_noted_unchecked_not_passed():
    fam = ParamFamily("tiny_dim", colours=4, spill="weak", brightness=(3.0, 6.0), events=4000)
    rows = pd.DataFrame(check_variants(param_file(fam, 1)))
    twice = rows[rows["variant"] == "twice"].iloc[0]
    assert twice["unchecked"] and not twice["flagged"] and np.isnan(twice["d"])
