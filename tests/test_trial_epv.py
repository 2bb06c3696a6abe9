"""Events per variable of the logistic models: a column of the trial tests table (not only note text), read
by the HTML summary's warning."""
from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd
import pytest

from cytokit.results import schema as S
from cytokit.trial import TrialConfig, run_comparisons
from cytokit.trial.config import EPV_MIN
from cytokit.trial.run import render_html
from cytokit.trial.stats import TEST_COLUMNS
from test_trial_data import make_trial


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A small trial's comparisons (results folder, run_comparisons result), shared by the tests here."""
    pops, clin = make_trial(4, seed=5)
    root = tmp_path_factory.mktemp("epv") / "res"
    root.mkdir()
    pops.to_parquet(root / "populations.parquet")
    clin.to_csv(root / "clinical.csv", index=False)
    return root, run_comparisons(root, TrialConfig(measures=["abs_count_per_uL"], longitudinal={"model": "none"}))


def test_tests_table_carries_events_per_variable(compared):
    root, res = compared
    tests = res.tests
    assert list(tests.columns) == TEST_COLUMNS and TEST_COLUMNS[-1] == S.EPV
    logistic = tests[tests["test"] == "logistic"]
    fitted = logistic[logistic["term"] != "(model)"]
    assert not fitted.empty
    for r in fitted.itertuples():
        # the note's own numbers: "<events> events / <n> patients" and "<k> terms are too many"
        events, n = map(int, re.search(r"(\d+) events / (\d+) patients", r.note).groups())
        terms = int(re.search(r"(\d+) terms are too many", r.note).group(1))
        assert r.epv == min(events, n - events) / terms < EPV_MIN
        assert f"events per variable {r.epv:.1f}" in r.note
    assert tests.loc[tests["test"] != "logistic", S.EPV].isna().all()
    written = pd.read_csv(root / "trial" / "tests.csv")
    assert list(written.columns)[:len(TEST_COLUMNS)] == TEST_COLUMNS  # + the inputs_sha256 stamp
    assert written.loc[written["test"] == "logistic", S.EPV].notna().any()


def test_summary_warning_follows_the_column(compared):
    root, res = compared

    def html(tests: pd.DataFrame) -> str:
        return render_html(dataclasses.replace(res, tests=tests))

    # the note without its EPV sentence: the column alone still raises the warning
    stripped = res.tests.assign(note=res.tests["note"].str.replace(r"; events per variable [^;]*", "", regex=True))
    assert not stripped["note"].str.contains("events per variable").any()
    assert re.search(r'class="warning epv">[^<]*events per variable [0-9.]+ \(&lt; 10', html(stripped))
    # enough events per variable: no warning
    plenty = stripped.assign(**{S.EPV: stripped[S.EPV].where(stripped[S.EPV].isna(), 12.0)})
    assert 'class="warning epv"' not in html(plenty)
    assert math.isnan(float(plenty.loc[plenty["test"] == "rank_sum", S.EPV].iloc[0]))
