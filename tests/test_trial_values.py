"""Per patient × visit values: tube selection, absolute-count fallback, change from baseline, time,
AUC, responder flags, input checks."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import ConfigError, StatsError
from cytokit.trial import TrialConfig
from cytokit.trial.config import TubeSelection, load_trial_config
from cytokit.trial.inputs import check_clinical, check_populations, visit_order
from cytokit.trial.responders import flag_names, responder_flags
from cytokit.trial.values import auc_minus_baseline, patient_summaries, patient_visit_values, select_tubes
from test_trial_data import make_trial


def _rows(spec):
    cols = ["patient", "visit", "week", "arm", "tube", "population", "parent_count", "pct_parent",
            "pct_lymphocytes", "abs_count_per_uL"]
    return pd.DataFrame(spec, columns=cols)


def _two_tube_table():
    return check_populations(_rows([
        ("P1", "W0", 0, "IL-2", "tmem", "T cells", 5000, 70.0, 70.0, 700.0),
        ("P1", "W0", 0, "IL-2", "nkb", "T cells", 9000, 68.0, 68.0, 680.0),
        ("P1", "W0", 0, "IL-2", "weird", "T cells", 100, 60.0, 60.0, 600.0),
    ]))


@pytest.mark.parametrize("rule, expected_tube, expected_abs", [
    ("preference", "tmem", 700.0), ("most_events", "nkb", 680.0), ("mean", "nkb+tmem+weird", 660.0)])
def test_select_tubes_rules(rule, expected_tube, expected_abs):
    out = select_tubes(_two_tube_table(), TubeSelection(rule=rule))
    assert len(out) == 1
    assert out["tube"].iloc[0] == expected_tube
    assert out["abs_count_per_uL"].iloc[0] == pytest.approx(expected_abs)
    assert out["n_tubes"].iloc[0] == 3


def test_select_tubes_pins_a_population_to_a_tube():
    out = select_tubes(_two_tube_table(), TubeSelection(rule="preference", per_population={"T cells": "weird"}))
    assert out["tube"].iloc[0] == "weird" and out["abs_count_per_uL"].iloc[0] == 600.0
    # a pin to a tube that did not measure the population falls back to the rule
    out = select_tubes(_two_tube_table(), TubeSelection(per_population={"T cells": "absent"}))
    assert out["tube"].iloc[0] == "tmem"


def test_values_change_relative_change_and_visit_order():
    pops, clin = make_trial(3, seed=4)
    cfg = TrialConfig()
    v = patient_visit_values(check_populations(pops), check_clinical(clin), cfg)
    assert not v.duplicated(["patient", "visit", "population"]).any()
    assert visit_order(check_populations(pops)) == ["W0", "W12", "W24", "W48", "W74"]
    row = v[(v["patient"] == "P001") & (v["visit"] == "W48") & (v["population"] == "CD4 T")].iloc[0]
    src = pops[(pops["patient"] == "P001") & (pops["population"] == "CD4 T")].set_index("visit")
    base, val = src.loc["W0", "abs_count_per_uL"], src.loc["W48", "abs_count_per_uL"]
    assert row["abs_count_per_uL"] == pytest.approx(val)
    assert row["abs_count_per_uL_change"] == pytest.approx(val - base)
    assert row["abs_count_per_uL_change_pct"] == pytest.approx(100 * (val - base) / base)
    # "T cells" is in both tubes: the preferred tube (tmem) is used, not the 5 % lower nkb copy
    t = v[(v["population"] == "T cells") & (v["patient"] == "P001") & (v["visit"] == "W0")].iloc[0]
    assert t["tube"] == "tmem" and t["n_tubes"] == 2
    tm = pops[(pops["population"] == "T cells") & (pops["patient"] == "P001") & (pops["visit"] == "W0")
              & (pops["tube"] == "tmem")]
    assert t["abs_count_per_uL"] == pytest.approx(tm["abs_count_per_uL"].iloc[0])


def test_weeks_from_baseline_use_actual_dates_or_nominal_weeks():
    pops, clin = make_trial(2, seed=2)
    cp, cc = check_populations(pops), check_clinical(clin)
    by_date = patient_visit_values(cp, cc, TrialConfig())
    nominal = patient_visit_values(cp, cc, TrialConfig(auc_time="week"))
    c = cc.set_index(["patient", "visit"])["date"]
    r = by_date[(by_date["patient"] == "P100") & (by_date["visit"] == "W74")].iloc[0]
    assert r["weeks_from_baseline"] == pytest.approx((c["P100", "W74"] - c["P100", "W0"]).days / 7)
    assert set(nominal.loc[nominal["visit"] == "W74", "weeks_from_baseline"]) == {74.0}


def test_absolute_counts_derived_from_lymphocytes_when_missing():
    pops, clin = make_trial(2, seed=3)
    pops.loc[(pops["patient"] == "P000") & (pops["visit"] == "W12"), "abs_count_per_uL"] = np.nan
    v = patient_visit_values(check_populations(pops), check_clinical(clin), TrialConfig())
    r = v[(v["patient"] == "P000") & (v["visit"] == "W12") & (v["population"] == "CD4 T")].iloc[0]
    lym = clin[(clin["patient"] == "P000") & (clin["visit"] == "W12")]["lymphocytes_per_uL"].iloc[0]
    assert r["abs_source"] == "dual_platform_derived"
    assert r["abs_count_per_uL"] == pytest.approx(r["pct_lymphocytes"] / 100 * lym)
    off = patient_visit_values(check_populations(pops), check_clinical(clin), TrialConfig(abs_from_lymphocytes=False))
    r = off[(off["patient"] == "P000") & (off["visit"] == "W12") & (off["population"] == "CD4 T")].iloc[0]
    assert np.isnan(r["abs_count_per_uL"]) and r["abs_source"] == ""


def test_patient_summaries_auc_and_final_change():
    pops, clin = make_trial(2, seed=5)
    cfg = TrialConfig(measures=["abs_count_per_uL"])
    v = patient_visit_values(check_populations(pops), check_clinical(clin), cfg)
    ps = patient_summaries(v, cfg, "W74")
    g = v[(v["patient"] == "P101") & (v["population"] == "NK cells")]
    r = ps[(ps["patient"] == "P101") & (ps["population"] == "NK cells")].iloc[0]
    assert r["auc_mb"] == pytest.approx(auc_minus_baseline(g["weeks_from_baseline"], g["abs_count_per_uL_change"]))
    span = g["weeks_from_baseline"].max()
    assert r["auc_mb_per_week"] == pytest.approx(r["auc_mb"] / span)
    assert r["change_final"] == pytest.approx(g.loc[g["visit"] == "W74", "abs_count_per_uL_change"].iloc[0])
    assert r["n_visits"] == 5
    # a missing final visit gives NaN, not the last value carried forward
    v2 = v[~((v["patient"] == "P101") & (v["visit"] == "W74"))]
    r2 = patient_summaries(v2, cfg, "W74")
    r2 = r2[(r2["patient"] == "P101") & (r2["population"] == "NK cells")].iloc[0]
    assert np.isnan(r2["change_final"]) and r2["n_visits"] == 4 and np.isfinite(r2["auc_mb"])


def test_responder_flags_thresholds_and_missing_values():
    spec = []
    for visit, week, cd4, cd8 in (("W0", 0, 300.0, 600.0), ("W24", 24, 539.0, 500.0), ("W74", 74, 540.0, 400.0)):
        spec.append(("P1", visit, week, "IL-2", "tmem", "CD4 T", 1000, 40.0, 20.0, cd4))
        spec.append(("P1", visit, week, "IL-2", "tmem", "CD8 T", 1000, 50.0, 30.0, cd8))
    spec.append(("P2", "W0", 0, "control", "tmem", "CD8 T", 1000, 50.0, 30.0, 500.0))
    cfg = TrialConfig()
    v = patient_visit_values(check_populations(_rows(spec)), check_clinical(pd.DataFrame()), cfg)
    f = responder_flags(v, cfg).set_index(["patient", "visit"])
    inc, ratio, t200, t350, t500 = flag_names(cfg)
    assert inc == "cd4_increase_ge_80pct" and t500 == "cd4_gt_500_per_uL"
    assert f.loc[("P1", "W74"), inc] == True  # noqa: E712  (+80.0 % exactly reaches the threshold)
    assert f.loc[("P1", "W24"), inc] == False  # noqa: E712  (+79.7 %)
    assert f.loc[("P1", "W74"), "cd4_cd8_ratio"] == pytest.approx(540 / 400)
    assert f.loc[("P1", "W74"), ratio] == True and f.loc[("P1", "W24"), ratio] == True  # noqa: E712
    assert f.loc[("P1", "W0"), t200] == True and f.loc[("P1", "W0"), t350] == False  # noqa: E712
    assert f.loc[("P1", "W74"), t500] == True  # noqa: E712
    assert pd.isna(f.loc[("P2", "W0"), inc]) and pd.isna(f.loc[("P2", "W0"), t200])
    assert str(f[inc].dtype) == "boolean"


def test_population_table_errors_name_the_problem():
    with pytest.raises(StatsError, match="lacks columns.*tube"):
        check_populations(pd.DataFrame({"patient": ["P1"], "visit": ["W0"], "week": [0], "arm": ["IL-2"],
                                        "population": ["CD4 T"], "pct_parent": [1.0]}), "x/populations.csv")
    bad = _rows([("P1", "W0", 0, "IL-2", "tmem", "CD4 T", 1, 1.0, 1.0, 1.0),
                 ("P1", "W12", 12, "control", "tmem", "CD4 T", 1, 1.0, 1.0, 1.0)])
    with pytest.raises(StatsError, match="more than one arm"):
        check_populations(bad, "res/populations.parquet")
    weeks = _rows([("P1", "W0", "zero", "IL-2", "tmem", "CD4 T", 1, 1.0, 1.0, 1.0)])
    with pytest.raises(StatsError, match="res/populations.parquet.*week"):
        check_populations(weeks, "res/populations.parquet")
    no_base = check_populations(_rows([("P1", "W12", 12, "IL-2", "tmem", "CD4 T", 1, 1.0, 1.0, 1.0)]))
    with pytest.raises(StatsError, match="baseline visit 'W0' not found"):
        patient_visit_values(no_base, check_clinical(pd.DataFrame()), TrialConfig())


def test_non_numeric_measures_become_missing_with_a_warning(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("cytokit"), "propagate", True)  # the CLI tests may have turned it off
    t = _rows([("P1", "W0", 0, "IL-2", "tmem", "CD4 T", 1, "n/a", 1.0, 350.0)])
    out = check_populations(t, "res/populations.csv")
    assert np.isnan(out["pct_parent"].iloc[0]) and out["abs_count_per_uL"].iloc[0] == 350.0
    assert "res/populations.csv: 1 non-numeric pct_parent" in caplog.text


def test_clinical_table_errors():
    with pytest.raises(ConfigError, match="clin.csv.*more than one row"):
        check_clinical(pd.DataFrame({"patient": ["P1", "P1"], "visit": ["W0", "W0"]}), "clin.csv")
    with pytest.raises(ConfigError, match="unreadable dates"):
        check_clinical(pd.DataFrame({"patient": ["P1"], "visit": ["W0"], "date": ["31/02/2001x"]}), "clin.csv")


def test_trial_config_from_pipeline_yaml_and_errors_name_file_and_line(tmp_path):
    p = tmp_path / "pipe.yaml"
    p.write_text("name: x\ntrial:\n  treatment_arm: IL-2\n  multiplicity:\n    method: fdr_bh\n"
                 "  responders:\n    cd4_thresholds_per_uL: [500, 200]\n", encoding="utf-8")
    cfg = load_trial_config(p)
    assert cfg.multiplicity.method == "fdr_bh" and cfg.responders.cd4_thresholds_per_uL == [200.0, 500.0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("trial:\n  baseline_visit: W0\n  multiplicity:\n    method: bonferonni\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: multiplicity.method"):
        load_trial_config(bad)
    with pytest.raises(Exception, match="must differ"):
        TrialConfig(treatment_arm="A", control_arm="A")
    assert load_trial_config(None) == TrialConfig()
    alone = tmp_path / "block.yaml"
    alone.write_text("control_arm: placebo\nmin_per_arm: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"block.yaml:2: min_per_arm"):
        load_trial_config(alone)
    alone.write_text("control_arm: placebo\nfinal_visti: W48\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"block.yaml:2: final_visti: Extra inputs"):
        load_trial_config(alone)
    other = tmp_path / "other.yaml"
    other.write_text("name: x\nmanifest: {path: m.csv}\n", encoding="utf-8")
    assert load_trial_config(other) == TrialConfig()


def test_a_missing_week_names_the_samples_and_visits_and_what_to_do():
    pops = _rows([("P1", "W0", None, "IL-2", "tmem", "T cells", 5000, 70.0, 70.0, 700.0),
                  ("P1", "W24", 24, "IL-2", "tmem", "T cells", 5000, 71.0, 71.0, 710.0)])
    pops["sample_id"] = ["P1_W0_tmem", "P1_W24_tmem"]
    with pytest.raises(StatsError) as err:
        check_populations(pops, source="results/populations.csv")
    text = str(err.value)
    assert "for 1 row(s) (samples ['P1_W0_tmem'], visits ['W0'])" in text
    assert "give the manifest a numeric 'week' column" in text and "results/populations.csv" in text
    assert "W24" not in text


def test_increase_flag_is_missing_at_baseline_not_false():
    """An increase over baseline is undefined at the baseline visit: the flag is missing there (patient reports
    show '—'), as the responder rates and Fisher tests, which skip that visit, already treat it."""
    spec = []
    for visit, week, cd4 in (("W0", 0, 300.0), ("W24", 24, 600.0)):
        spec.append(("P1", visit, week, "IL-2", "tmem", "CD4 T", 1000, 40.0, 20.0, cd4))
        spec.append(("P1", visit, week, "IL-2", "tmem", "CD8 T", 1000, 50.0, 30.0, 500.0))
    cfg = TrialConfig()
    v = patient_visit_values(check_populations(_rows(spec)), check_clinical(pd.DataFrame()), cfg)
    f = responder_flags(v, cfg).set_index(["patient", "visit"])
    inc = flag_names(cfg)[0]
    assert pd.isna(f.loc[("P1", "W0"), inc]) and f.loc[("P1", "W24"), inc] == True  # noqa: E712
    assert f.loc[("P1", "W0"), "cd4_change_pct"] == 0  # the change itself stays 0 at baseline
