"""Responder proportions say how many of their patients' flags rest on a value that may be wrong (a review flag
on the CD4 / CD8 estimate or its baseline, a count flag on a count), as the per-visit medians do."""
from __future__ import annotations

import pandas as pd
import pytest

from cytokit.results import schema as S
from cytokit.trial import TrialConfig, TrialInputs, analyse
from test_trial_data import make_trial


@pytest.fixture(scope="module")
def flagged():
    pops, clin = make_trial(5, seed=3)
    pops = pops.assign(**{S.REVIEW: False, S.REVIEW_FLAGS: "", S.COUNT_FLAGS: ""})
    cd4, cd8 = pops[S.POPULATION] == "CD4 T", pops[S.POPULATION] == "CD8 T"
    # P000 (IL-2): its W74 CD4 estimate may be wrong; P001 (IL-2): its baseline CD4; P100 (control): CD8 count at W74
    pops.loc[cd4 & (pops[S.PATIENT] == "P000") & (pops[S.VISIT] == "W74"), [S.REVIEW, S.REVIEW_FLAGS]] = [True, "uncertain"]
    pops.loc[cd4 & (pops[S.PATIENT] == "P001") & (pops[S.VISIT] == "W0"), [S.REVIEW, S.REVIEW_FLAGS]] = [True, "uncertain"]
    pops.loc[cd8 & (pops[S.PATIENT] == "P100") & (pops[S.VISIT] == "W74"), S.COUNT_FLAGS] = "count_low"
    return analyse(TrialInputs(pops, clin), TrialConfig(figures=False, longitudinal={"model": "none"}))


def _rate(res, endpoint, arm, visit):
    r = res.rates
    return r[(r["endpoint"] == endpoint) & (r[S.ARM] == arm) & (r[S.VISIT] == visit)].iloc[0]


def test_rates_count_flags_resting_on_values_flagged_for_review(flagged):
    # the +80 % flag uses the CD4 value and its baseline: P000 at W74, P001 at every follow-up visit
    assert _rate(flagged, "cd4_increase_ge_80pct", "IL-2", "W74")["n_review"] == 2
    assert _rate(flagged, "cd4_increase_ge_80pct", "IL-2", "W24")["n_review"] == 1
    assert _rate(flagged, "cd4_increase_ge_80pct", "control", "W74")["n_review"] == 0
    # a CD4 threshold uses the count of that visit only
    assert _rate(flagged, "cd4_gt_350_per_uL", "IL-2", "W74")["n_review"] == 1
    assert _rate(flagged, "cd4_gt_350_per_uL", "IL-2", "W0")["n_review"] == 1
    assert _rate(flagged, "cd4_gt_350_per_uL", "IL-2", "W24")["n_review"] == 0
    # the ratio of counts uses the CD8 count as well: its count flag counts
    assert _rate(flagged, "cd4_cd8_ratio_gt_1", "control", "W74")["n_review"] == 1
    assert _rate(flagged, "cd4_gt_350_per_uL", "control", "W74")["n_review"] == 0


def test_headline_html_and_fisher_note_name_the_flagged_responder_values(flagged):
    row = flagged.headline[flagged.headline["endpoint"].str.startswith("patients reaching")].iloc[0]
    assert row["treatment"].endswith(", 2 flagged for review") and "flagged" not in row["control"]
    t = flagged.tests
    fisher = t[(t["test"] == "fisher") & (t["endpoint"] == "cd4_increase_ge_80pct") & (t[S.VISIT] == "W74")].iloc[0]
    assert "2 of the 10 flags rest on a value flagged for review" in fisher["note"]
    assert not fisher["note"].startswith(" ")
    html = analyse_html(flagged)
    responders = html[html.index('id="responders"'):]
    responders = responders[:responders.index("</table>")]
    assert responders.count(", 2 flagged for review") == 1  # the +80 % row, IL-2 column
    # ratio: IL-2 (P000 CD4) and control (P100 CD8 count); the three CD4 thresholds: IL-2 (P000)
    assert responders.count(", 1 flagged for review") == 5
    assert 'id="review-legend"' in html


def analyse_html(res) -> str:
    from cytokit.trial.run import render_html

    return render_html(res)


def test_tables_without_review_columns_leave_n_review_unknown():
    pops, clin = make_trial(4, seed=5)
    res = analyse(TrialInputs(pops, clin), TrialConfig(figures=False, html=False, longitudinal={"model": "none"}))
    assert res.rates["n_review"].isna().all()
    assert "flagged" not in " ".join(res.headline["treatment"].astype(str))
    t = res.tests
    notes = t.loc[t["test"] == "fisher", "note"]
    assert notes.str.match(r"^(no variation in response: odds ratio undefined; )?responders \d+/\d+ vs \d+/\d+$").all()


def _test_row(res, test, pop, measure, visit, arm=""):
    t = res.tests
    sel = t[(t["test"] == test) & (t["endpoint"] == "change") & (t[S.POPULATION] == pop) & (t["measure"] == measure)
            & (t[S.VISIT] == visit) & (t[S.ARM].fillna("") == arm)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_rank_tests_of_changes_name_their_values_flagged_for_review(flagged):
    """The tests table's change rows say how many of their values may be wrong, as summaries' n_review does."""
    rs = _test_row(flagged, "rank_sum", "CD4 T", "abs_count_per_uL", "W74")
    assert "2 of the 10 values flagged for review" in rs["note"]
    assert "2 of the 5 values flagged for review" in _test_row(flagged, "signed_rank", "CD4 T", "abs_count_per_uL",
                                                                "W74", "IL-2")["note"]
    assert "flagged" not in _test_row(flagged, "signed_rank", "CD4 T", "abs_count_per_uL", "W74", "control")["note"]
    assert "1 of the 5 values" in _test_row(flagged, "signed_rank", "CD4 T", "pct_parent", "W24", "IL-2")["note"]
    # a count flag puts the count's change in doubt, not its percentages
    assert "1 of the 10 values" in _test_row(flagged, "rank_sum", "CD8 T", "abs_count_per_uL", "W74")["note"]
    assert "flagged" not in _test_row(flagged, "rank_sum", "CD8 T", "pct_parent", "W74")["note"]
    s = flagged.summaries
    summ = s[(s[S.POPULATION] == "CD4 T") & (s["measure"] == "abs_count_per_uL") & (s["quantity"] == "change")
             & (s[S.VISIT] == "W74")]
    assert summ["n_review"].sum() == 2  # the same count as the summaries'
