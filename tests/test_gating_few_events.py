"""A % of parent counted from few events: its counting SD (count_sd_pp) and the few_events flag, in the gating
table, for parents from a few hundred events down to none; and the benchmark's untuned few-event families."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.count_error import FEW_EVENTS, count_sd_pp, few_events
from cytokit.gating.methods.confidence import with_error as total_error_pp
from cytokit.gating.methods import needs_review
from cytokit.results import schema as S
from cytokit.simulate import load_config, simulate_trial

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_count_sd_is_the_binomial_sd_of_a_percentage() -> None:
    # 8 of 40 events (20 %): ~6 pp by counting alone, whatever the gate
    assert 5.5 < count_sd_pp(8, 40) < 6.6
    # large counts: the plug-in binomial SD 100 sqrt(p(1-p)/n)
    for k, n in ((2000, 10000), (150, 1000), (9900, 10000)):
        p = k / n
        assert count_sd_pp(k, n) == pytest.approx(100 * math.sqrt(p * (1 - p) / n), rel=0.03)
    # 0 of 40 is not known to 0 pp (the plug-in SD would be 0)
    assert count_sd_pp(0, 40) > 2.0 and count_sd_pp(40, 40) == pytest.approx(count_sd_pp(0, 40))
    assert math.isnan(count_sd_pp(0, 0))
    # the SD of the share of a binomial draw, measured
    rng = np.random.default_rng(3)
    draws = 100 * rng.binomial(60, 0.25, size=20000) / 60
    assert count_sd_pp(15, 60) == pytest.approx(draws.std(), rel=0.1)


def test_total_error_combines_both_parts() -> None:
    assert total_error_pp(3.0, 4.0) == pytest.approx(5.0)
    assert total_error_pp(float("nan"), 4.0) == 4.0
    assert total_error_pp(2.0, float("nan")) == 2.0
    assert few_events(FEW_EVENTS - 1) and not few_events(FEW_EVENTS) and few_events(0)


def _trial(tmp_path: Path, cd4: float, events: int, seed: int) -> Path:
    cfg = load_config(None, seed=seed, patients_per_arm=1, visits=["W0"], tubes=["tmem"], events=events,
                      course={"baseline_cd4_median": cd4, "baseline_cd8_median": 700.0,
                              "arms": {"IL-2": {"cd4_gain_median": 3 * cd4, "pct_reaching_80": 60.0},
                                       "control": {"cd4_gain_median": cd4 / 10, "pct_reaching_80": 35.0}}})
    simulate_trial(tmp_path / "trial", cfg, force=True)
    return tmp_path / "trial"


def test_low_cd4_file_carries_count_sd_and_few_events(tmp_path: Path) -> None:
    trial = _trial(tmp_path, cd4=40.0, events=6000, seed=11)
    strategy = load_strategy("tmem")
    tables = [strategy.apply(read_fcs(f), qc=False).populations for f in sorted((trial / "fcs").glob("*.fcs"))]
    seen_few = seen_many = False
    for t in tables:
        assert S.COUNT_SD_PP in t.columns
        for r in t.itertuples():
            assert r.count_sd_pp == pytest.approx(count_sd_pp(r.count, r.parent_count), nan_ok=True)
            words = [w.split(":")[-1] for w in r.flags.split(";") if w]
            if r.parent_count < FEW_EVENTS:
                seen_few = True
                assert "few_events" in words and needs_review(r.flags), (r.population, r.parent_count, r.flags)
                assert r.count_sd_pp > 1.0  # a % from < FEW_EVENTS events is not known to better than ~1 pp
            else:
                seen_many = True
                assert "few_events" not in words, (r.population, r.parent_count, r.flags)
            assert words.count("few_events") <= 1  # one word per row (the fit's own few_events is not repeated)
    assert seen_few and seen_many  # CD4 subsets below the limit, T cells above it
    cd25 = [t.set_index("population").loc["CD25+ CD4"] for t in tables]
    assert all(r.parent_count < FEW_EVENTS for r in cd25)


def test_empty_and_near_empty_parents_do_not_fail(tmp_path: Path) -> None:
    # CD4 of ~1 cell/µL in 1,500 events: CD4 subsets from 0-5 parent events
    trial = _trial(tmp_path, cd4=1.0, events=1500, seed=7)
    strategy = load_strategy("tmem")
    empty = 0
    for f in sorted((trial / "fcs").glob("*.fcs")):
        t = strategy.apply(read_fcs(f), qc=False).populations.set_index("population")
        for pop in ("CD25+ CD4", "Treg", "Naive CD4"):
            r = t.loc[pop]
            assert r.parent_count < 20
            assert "few_events" in r[S.FLAGS] and needs_review(r[S.FLAGS])
            if r.parent_count == 0:
                empty += 1
                assert math.isnan(r.pct_parent) and math.isnan(r.count_sd_pp)
            else:
                assert r.count_sd_pp > 5.0
    assert empty  # (this draw has a file without any CD4 T cell)


def test_untuned_families_stay_out_of_the_tuning_and_held_out_groups() -> None:
    sys.path.insert(0, str(BENCH))
    from gating_accuracy import FAMILIES, UNTUNED_FAMILIES, planned_runs

    assert UNTUNED_FAMILIES and all(FAMILIES[n].split == "untuned" for n in UNTUNED_FAMILIES)
    names = list(FAMILIES)
    for split in ("tuning", "held-out", "all"):
        runs = planned_runs(names, split, 1111, [101, 404])
        assert not [r for r in runs if r[0] in UNTUNED_FAMILIES and r[2] != "untuned"]
        assert not [r for r in runs if r[0] not in UNTUNED_FAMILIES and r[2] == "untuned"]
    assert {r[1] for r in planned_runs(names, "untuned", 1111, [101, 404])} == {101, 404}
    assert {r[1] for r in planned_runs(names, "held-out", 1111, [101]) if r[2] == "untuned"} == {1111}
    assert not [r for r in planned_runs(names, "tuning", 1111, [101]) if r[2] == "untuned"]
    # the families are what they say: few events per file, or a low CD4 count with a high CD8 count
    assert all(FAMILIES[n].events is not None for n in UNTUNED_FAMILIES)
    low = FAMILIES["advanced_hiv_low_cd4"].overrides["course"]
    assert low["baseline_cd4_median"] <= 100 and low["baseline_cd4_median"] / low["baseline_cd8_median"] < 0.3


def test_patient_report_shows_the_counting_sd_of_few_event_percentages(tmp_path: Path) -> None:
    """A % of parent from a parent below FEW_EVENTS events shows '± SD' next to it and a note says what it is;
    an empty parent shows '—', never 'nan'; a % from a large parent shows no ±."""
    import re

    import pandas as pd

    from cytokit.report import ReportOptions, build_reports
    from test_report import make_results

    root = make_results(tmp_path / "results", patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")
    pops["parent_count"] = 2000
    pops["count_sd_pp"] = 1.1
    w0 = pops.visit == "W0"
    few = w0 & (pops.population == "CD25+ CD4")
    empty = w0 & (pops.population == "Naive CD4")
    pops.loc[few, ["count", "parent_count", "pct_parent"]] = [3, 40, 7.5]
    pops.loc[few, "count_sd_pp"] = count_sd_pp(3, 40)
    pops.loc[empty, ["count", "parent_count", "pct_parent", "count_sd_pp"]] = [0, 0, np.nan, np.nan]
    pops.to_parquet(root / "populations.parquet")
    (html,) = build_reports(root, options=ReportOptions(pdf=False), generated="2026-01-01")
    text = html.read_text(encoding="utf-8")
    assert "nan" not in re.sub(r"data:image/[^\"]+", "", text).lower()
    rows = re.findall(r'<tr data-population="([^"]+)" data-tube="tmem"[^>]*>(.*?)</tr>', text, flags=re.S)
    w0_rows = dict(rows[: len({p for p, _ in rows})])  # the first visit's rows come first
    assert f"±&nbsp;{count_sd_pp(3, 40):.1f}" in w0_rows["CD25+ CD4"]
    assert "±" not in w0_rows["CD4 T"] and "±" not in w0_rows["Memory CD4"]
    assert re.search(r'<td class="num">—', w0_rows["Naive CD4"])
    assert f"fewer than {FEW_EVENTS} events" in text


#: the shipped nkb strategy's CD56dim/bright threshold (gating/nkb.yaml)
CD56_SPLIT = {"valley": "last", "separates": "positive", "negative_max": 0.3, "reference_peak": "last",
              "bounds": [0.35, 0.9], "min_peak_fraction": 0.02, "max_valley_ratio": 0.7}


def _nk(seed: int, n_dim: int, n_bright: int, dim_sd: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.15, 0.04, 4), rng.normal(0.56, dim_sd, n_dim),
                           rng.normal(0.76, 0.035, n_bright)])


def test_few_event_dim_and_bright_modes_are_split_at_the_less_smoothed_valley() -> None:
    """~85 NK events, 40 % CD56bright: the default bandwidth merges the two modes, the tail from the merged
    mode is clipped at the upper bound (0 % bright); the less smoothed density's valley splits them."""
    from cytokit.gating.methods.density import ThresholdParams, fit_threshold

    p = ThresholdParams(**CD56_SPLIT)
    rescued = 0
    for seed in range(12):
        x = _nk(seed, 50, 33)
        t = fit_threshold(x, p)
        pos = x[x > 0.3]
        assert abs(100 * np.mean(pos >= t.value) - 100 * 33 / pos.size) < 5, (seed, t.value, t.flags)
        if "valley_less_smoothed" in t.flags:
            rescued += 1
            assert t.info["method"] == "valley" and "clipped" not in t.flags and 0.62 < t.value < 0.72
    assert rescued >= 4  # (the default smoothing alone misses the valley in these draws)


def test_a_lone_few_event_mode_keeps_its_clipped_tail() -> None:
    """All NK CD56dim (no bright mode) from 40-80 events: the less smoothed density's dips inside or just above
    the lone mode are noise and are not used."""
    from cytokit.gating.methods.density import ThresholdParams, fit_threshold

    p = ThresholdParams(**CD56_SPLIT)
    for n, sd in ((40, 0.06), (60, 0.1), (80, 0.05)):
        for seed in range(20):
            x = _nk(seed, n, 0, sd)
            t = fit_threshold(x, p)
            assert "valley_less_smoothed" not in t.flags, (n, seed, t.value)


def test_trial_analysis_notes_values_from_few_event_parents() -> None:
    """Per-visit summaries and arm comparisons run with a population counted from 40 and from 0 parent events
    (no failure, the % of parent of the empty parent is missing, not 0) and the analysis notes name them."""
    import pandas as pd

    from cytokit.trial import TrialConfig, TrialInputs, analyse
    from test_trial_data import make_trial

    pops, clin = make_trial(4, seed=3)
    cfg = TrialConfig(figures=False, html=False, longitudinal={"model": "none"})
    assert not [n for n in analyse(TrialInputs(pops, clin), cfg).notes if "few_events" in n]
    cd25 = (pops.population == "CD25+ CD4") & (pops.visit == pops.visit.iloc[0])
    (few, empty) = pops.index[cd25][:2]
    pops.loc[few, ["count", "parent_count", "pct_parent"]] = [4, 40, 10.0]
    pops.loc[empty, ["count", "parent_count", "pct_parent"]] = [0, 0, np.nan]
    result = analyse(TrialInputs(pops, clin), cfg)
    (note,) = [n for n in result.notes if "few_events" in n]
    assert note.startswith("2 patient-visit values") and "CD25+ CD4 (2)" in note and "1 with an empty parent" in note
    s = result.summaries
    row = s[(s.population == "CD25+ CD4") & (s.measure == "pct_parent") & (s.quantity == "value")
            & (s.visit == pops.visit.iloc[0])]
    assert len(row) == 2 and row["n"].sum() == int(cd25.sum()) - 1 and row["median"].notna().all()
    assert pd.notna(result.tests["p"]).any()
