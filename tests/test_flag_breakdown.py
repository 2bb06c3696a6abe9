"""The benchmarks' breakdown of flagged estimates (benchmarks/gating_accuracy.py ``flag_breakdown``, printed by
gating_accuracy.py and independent_lab.py): per review word, how many of its estimates were within 1 pp, 1-2 pp
and > 2 pp off, and the est_error_pp / count_sd_pp they carried."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from gating_accuracy import BREAKDOWN_COLUMNS, flag_breakdown  # noqa: E402


def _table() -> pd.DataFrame:
    rows = [  # (population, flags, review, err pp, est_error_pp, count, parent_count)
        ("CD25+ CD4", "uncertain", True, 0.4, 1.5, 100, 1000),
        ("CD25+ CD4", "uncertain;tail_drift", True, 1.5, 2.5, 120, 1000),
        ("CD25+ CD4", "uncertain;few_events", True, 3.0, 4.0, 20, 150),
        ("Treg", "few_events", True, 0.2, 0.3, 10, 150),
        ("Treg", "CD25:ambiguous_mode", True, 2.5, np.nan, 5, 150),
        ("CD4 T", "no_valley", False, 5.0, 0.1, 500, 1000),  # a note only: not in the breakdown
    ]
    df = pd.DataFrame(rows, columns=["population", "flag_words", "review", "err", "est_error_pp", "count",
                                     "parent_count"])
    return df.assign(placement="valley")


def test_breakdown_counts_each_word_by_band_of_error_and_reports_what_it_carried() -> None:
    out = flag_breakdown(_table())
    assert list(out.columns) == BREAKDOWN_COLUMNS
    words = out[out.by == "word"].set_index("group")
    assert set(words.index) == {"uncertain", "few_events", "ambiguous_mode"}  # prefixes dropped, notes left out
    unc = words.loc["uncertain"]
    assert (unc.flagged, unc.n_within_1pp, unc.n_1_2pp, unc.gt_2pp) == (3, 1, 1, 1)
    assert unc.only_catch == 0  # its one estimate > 2 pp off is also flagged few_events
    assert unc.est_error_pp_median == 2.5 and unc.est_error_pp_median_within_1pp == 1.5
    assert unc.est_error_pp_median_gt_2pp == 4.0
    few = words.loc["few_events"]
    assert (few.flagged, few.n_within_1pp, few.n_1_2pp, few.gt_2pp) == (2, 1, 0, 1)
    # the counting SD is computed from the counts when the table has no count_sd_pp column (lab tables)
    p = (10 + 2) / 154, (20 + 2) / 154
    expected = np.median([100 * np.sqrt(q * (1 - q) / 154) for q in p])
    assert abs(few.count_sd_pp_median - round(expected, 3)) < 1e-3
    assert words.loc["ambiguous_mode"].only_catch == 1
    total = out[out.by == "all review"].iloc[0]
    assert (total.flagged, total.n_within_1pp, total.n_1_2pp, total.gt_2pp) == (5, 2, 1, 2)
    assert total.within_1pp == 0.4
    assert "family" not in set(out.by)  # a table without families (independent lab) has no family rows


def test_breakdown_reads_a_stored_count_sd_column() -> None:
    df = _table().assign(count_sd_pp=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], family="f")
    out = flag_breakdown(df)
    assert out[(out.by == "word") & (out.group == "few_events")].iloc[0].count_sd_pp_median == 3.5
    assert set(out[out.by == "family"].group) == {"f"}
