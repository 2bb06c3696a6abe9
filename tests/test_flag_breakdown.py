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

from gating_accuracy import BREAKDOWN_COLUMNS, FMO_FLAG_COLUMNS, flag_breakdown, flags_against_fmo  # noqa: E402


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


def test_flags_against_fmo_split_errors_into_truth_definition_and_placement() -> None:
    rows = [  # (population, truth %, automated %, ideal FMO gate %, review)
        ("CD25+ CD4", 18.0, 13.0, 13.5, True),   # 5 pp off, the FMO gate 4.5 pp off too: the truth's definition
        ("CD25+ CD4", 18.0, 13.0, 17.5, True),   # 5 pp off, 4.5 pp from the FMO gate: placement
        ("CD25+ CD4", 15.0, 12.0, 14.8, False),  # 3 pp off, placement, silent
        ("CD25+ CD4", 15.0, 15.2, 13.8, True),   # right, but 1.4 pp from the FMO gate
        ("CD25+ CD4", 15.0, 14.8, 14.9, True),   # right, as an FMO control would place it
        ("CD28+ CD8", 40.0, 40.5, 40.2, False),
        ("CD4 T", 50.0, 55.0, np.nan, True),     # no FMO gate (not a one-marker + gate): left out
    ]
    df = pd.DataFrame(rows, columns=["population", "truth_pct", "auto_pct", "fmo_pct", "review"])
    df = df.assign(err=(df.auto_pct - df.truth_pct).abs())
    out = flags_against_fmo(df).set_index("population")
    assert list(out.reset_index().columns) == FMO_FLAG_COLUMNS
    assert list(out.index) == ["CD25+ CD4", "CD28+ CD8", "all"]
    cd25 = out.loc["CD25+ CD4"]
    assert (cd25.estimates, cd25.flagged, cd25.flagged_within_1pp, cd25.flagged_within_1pp_of_fmo) == (5, 4, 2, 2)
    assert (cd25.gt_2pp, cd25.gt_2pp_caught) == (3, 2)
    assert (cd25.fmo_off_gt_2pp, cd25.fmo_off_caught) == (1, 1)
    assert (cd25.placement_gt_2pp, cd25.placement_caught) == (2, 1)
    assert (out.loc["all"].estimates, out.loc["all"].flagged) == (6, 4)
    assert flags_against_fmo(df.drop(columns="fmo_pct")).empty
