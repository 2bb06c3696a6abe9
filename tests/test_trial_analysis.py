"""End-to-end trial analysis on hand-made tables: every reported statistic recomputed directly with
scipy / statsmodels, multiplicity families, outputs, HTML escaping, determinism and the CLI."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cytokit.cli.main import main
from cytokit.errors import PipelineError, StatsError
from cytokit.trial import TrialConfig, TrialInputs, analyse, load_inputs, run_comparisons, run_trial
from test_trial_data import make_trial

FAST = dict(figures=False, html=False, longitudinal={"model": "none"})


@pytest.fixture(scope="module")
def trial():
    pops, clin = make_trial(8, seed=7)
    cycles = pd.DataFrame({"patient": ["P000", "P000", "P001"], "cycle": [1, 2, 1]})
    cfg = TrialConfig(longitudinal={"populations": ["CD4 T"]}, figures=False)
    return pops, clin, analyse(TrialInputs(pops, clin, cycles), cfg)


def _changes(pops, pop, visit, arm, measure="abs_count_per_uL", tube="tmem"):
    p = pops[(pops["population"] == pop) & (pops["arm"] == arm) & (pops["tube"] == tube)]
    w = p.pivot(index="patient", columns="visit", values=measure)
    return (w[visit] - w["W0"]).dropna()


def test_rank_sum_row_recomputed_from_raw_table(trial):
    pops, _, res = trial
    t = res.tests
    row = t[(t["test"] == "rank_sum") & (t["endpoint"] == "change") & (t["population"] == "CD4 T")
            & (t["measure"] == "abs_count_per_uL") & (t["visit"] == "W48")].iloc[0]
    x, y = _changes(pops, "CD4 T", "W48", "IL-2"), _changes(pops, "CD4 T", "W48", "control")
    ref = stats.mannwhitneyu(x, y, alternative="two-sided")
    assert row["p"] == pytest.approx(ref.pvalue) and row["statistic"] == pytest.approx(ref.statistic)
    assert row["estimate"] == pytest.approx(np.median(x) - np.median(y))
    assert (row["n_treatment"], row["n_control"]) == (8, 8)


def test_signed_rank_rows_recomputed(trial):
    pops, _, res = trial
    t = res.tests
    for arm in ("IL-2", "control"):
        row = t[(t["test"] == "signed_rank") & (t["population"] == "NK cells") & (t["measure"] == "pct_parent")
                & (t["visit"] == "W24") & (t["arm"] == arm)].iloc[0]
        d = _changes(pops, "NK cells", "W24", arm, "pct_parent", tube="nkb")
        assert row["p"] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
        assert row["estimate"] == pytest.approx(np.median(d))


def test_summaries_median_iqr_recomputed(trial):
    pops, _, res = trial
    s = res.summaries
    row = s[(s["population"] == "Naive CD4") & (s["measure"] == "abs_count_per_uL") & (s["quantity"] == "change")
            & (s["arm"] == "control") & (s["visit"] == "W74")].iloc[0]
    d = _changes(pops, "Naive CD4", "W74", "control")
    assert row["median"] == pytest.approx(np.median(d))
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(d, [25, 75])))
    assert row["unit"] == "cells/µL" and row["n"] == 8


def test_auc_rank_sum_row(trial):
    _, _, res = trial
    ps = res.patient_summaries
    ps = ps[(ps["population"] == "CD4 T") & (ps["measure"] == "abs_count_per_uL")]
    ref = stats.mannwhitneyu(ps.loc[ps["arm"] == "IL-2", "auc_mb"], ps.loc[ps["arm"] == "control", "auc_mb"])
    t = res.tests
    row = t[(t["test"] == "rank_sum") & (t["endpoint"] == "auc_mb") & (t["population"] == "CD4 T")
            & (t["measure"] == "abs_count_per_uL")].iloc[0]
    assert row["p"] == pytest.approx(ref.pvalue)


def test_fisher_row_and_rates_recomputed(trial):
    pops, _, res = trial
    cd4 = pops[(pops["population"] == "CD4 T")].pivot(index="patient", columns="visit", values="abs_count_per_uL")
    arm = pops.drop_duplicates("patient").set_index("patient")["arm"]
    reached = (cd4["W74"] >= 1.8 * cd4["W0"])
    table = [[int(reached[arm == "IL-2"].sum()), int((~reached[arm == "IL-2"]).sum())],
             [int(reached[arm == "control"].sum()), int((~reached[arm == "control"]).sum())]]
    t = res.tests
    row = t[(t["test"] == "fisher") & (t["endpoint"] == "cd4_increase_ge_80pct") & (t["visit"] == "W74")].iloc[0]
    assert row["p"] == pytest.approx(stats.fisher_exact(table)[1])
    r = res.rates.set_index(["endpoint", "arm", "visit"])
    assert r.loc[("cd4_increase_ge_80pct", "IL-2", "W74"), "responders"] == table[0][0]
    assert r.loc[("cd4_increase_ge_80pct", "control", "W74"), "pct"] == pytest.approx(100 * table[1][0] / 8)
    # an increase over baseline is not tested at baseline; state flags are
    assert not ((t["test"] == "fisher") & (t["endpoint"] == "cd4_increase_ge_80pct") & (t["visit"] == "W0")).any()
    assert ((t["test"] == "fisher") & (t["endpoint"] == "cd4_gt_350_per_uL") & (t["visit"] == "W0")).any()


def test_logistic_rows_recomputed_with_statsmodels(trial):
    pops, clin, res = trial
    y = clin.dropna(subset=["recall_antigen_responder"]).set_index("patient")["recall_antigen_responder"]
    base = pops[(pops["population"] == "CD4 T") & (pops["visit"] == "W0")].set_index("patient")
    d = pd.DataFrame({"y": y.astype(int), "arm": base["arm"], "cd4": base["abs_count_per_uL"] / 100,
                      "stratum": clin[clin["visit"] == "W0"].set_index("patient")["stratum"]})
    ref = smf.logit("y ~ C(arm, Treatment('control')) + cd4 + C(stratum)", data=d).fit(disp=0)
    t = res.tests
    row = t[(t["test"] == "logistic") & (t["term"] == "arm[IL-2 vs control]")].iloc[0]
    term = "C(arm, Treatment('control'))[T.IL-2]"
    assert row["estimate"] == pytest.approx(np.exp(ref.params[term]), rel=1e-5)
    assert row["p"] == pytest.approx(ref.pvalues[term], rel=1e-5)
    assert row["ci_low"] == pytest.approx(np.exp(ref.conf_int().loc[term, 0]), rel=1e-5)
    assert row["endpoint"] == "recall_antigen_responder" and row["n"] == 16 and row["flag"] == ""
    assert set(t.loc[t["test"] == "logistic", "term"]) == {"arm[IL-2 vs control]", "baseline_cd4 (per 100)",
                                                           "stratum[B vs A]"}


def test_mixed_model_rows(trial):
    _, _, res = trial
    t = res.tests
    m = t[t["test"] == "mixedlm"]
    assert set(m["population"]) == {"CD4 T"}
    joint = m[m["term"] == "arm x visit (joint)"]
    assert len(joint) == 2 and set(joint["measure"]) == {"abs_count_per_uL", "pct_parent"}
    # IL-2 CD4 counts rise ~3x faster by design
    assert joint.loc[joint["measure"] == "abs_count_per_uL", "p"].iloc[0] < 1e-6
    per_visit = m[(m["term"] == "arm x visit") & (m["measure"] == "abs_count_per_uL")]
    assert list(per_visit["visit"]) == ["W12", "W24", "W48", "W74"]
    assert per_visit["estimate"].is_monotonic_increasing
    s = res.summaries
    med = s[(s["population"] == "CD4 T") & (s["measure"] == "abs_count_per_uL") & (s["quantity"] == "change")
            & (s["visit"] == "W74")].set_index("arm")["mean"]
    # the model's W74 interaction is the difference in mean change (balanced, complete data)
    assert per_visit["estimate"].iloc[-1] == pytest.approx(med["IL-2"] - med["control"], rel=1e-3)


def test_multiplicity_holm_within_test_and_measure(trial):
    _, _, res = trial
    t = res.tests
    fam = t[(t["test"] == "rank_sum") & (t["measure"] == "pct_parent")]
    assert (fam["adjust_family"] == "rank_sum|pct_parent").all() and (fam["adjust_method"] == "holm").all()
    np.testing.assert_allclose(fam["p_adj"], multipletests(fam["p"], method="holm")[1])
    assert t.loc[t["test"] == "logistic", "p_adj"].isna().all()
    assert (t["p_adj"].dropna() >= t.loc[t["p_adj"].notna(), "p"] - 1e-15).all()


def test_bh_over_all_tests():
    pops, clin = make_trial(5, seed=8)
    cfg = TrialConfig(multiplicity={"method": "fdr_bh", "family": "all"}, **FAST)
    t = analyse(TrialInputs(pops, clin), cfg).tests
    adj = t[t["adjust_method"] == "fdr_bh"]
    ok = adj["p"].notna()
    np.testing.assert_allclose(adj.loc[ok, "p_adj"], multipletests(adj.loc[ok, "p"], method="fdr_bh")[1])
    assert set(adj["test"]) == {"rank_sum", "signed_rank", "fisher"}


def test_headline_mirrors_the_trial_report(trial):
    _, _, res = trial
    h = res.headline
    assert h.iloc[0]["population"] == "CD4 T" and h.iloc[0]["measure"] == "abs_count_per_uL"
    assert "80% CD4 increase" in h.iloc[1]["endpoint"]
    assert {"Naive CD4", "Memory CD4", "CD28+ CD4", "CD25+ CD4", "NK cells"} <= set(h["population"])
    t = res.tests
    p = t[(t["test"] == "rank_sum") & (t["population"] == "CD4 T") & (t["measure"] == "abs_count_per_uL")
          & (t["visit"] == "W74") & (t["endpoint"] == "change")]["p"].iloc[0]
    assert h.iloc[0]["p"] == p


def test_baseline_table(trial):
    pops, clin, res = trial
    b = res.baseline
    pats = b[b["characteristic"] == "Patients"].set_index("arm")["count"]
    assert pats.to_dict() == {"IL-2": 8, "control": 8}
    age = b[(b["characteristic"] == "age") & (b["arm"] == "control")].iloc[0]
    ages = clin[(clin["visit"] == "W0") & (clin["arm"] == "control")]["age"]
    assert age["median"] == pytest.approx(ages.median()) and age["unit"] == "years"
    sex = b[(b["characteristic"] == "sex") & (b["arm"] == "IL-2")]
    assert sex["count"].sum() == 8 and sex["pct"].sum() == pytest.approx(100)
    cyc = b[(b["characteristic"] == "IL-2 cycles") & (b["arm"] == "IL-2")].iloc[0]
    assert cyc["median"] == pytest.approx(np.median([2, 1, 0, 0, 0, 0, 0, 0]))


def test_patient_visit_values_carry_flags(trial):
    _, _, res = trial
    pv = res.patient_visit_values
    assert len(pv) == len(res.values)
    assert {"cd4_increase_ge_80pct", "cd4_cd8_ratio", "cd4_gt_500_per_uL", "abs_count_per_uL_change_pct"} <= set(pv)
    one = pv[(pv["patient"] == "P000") & (pv["visit"] == "W74")]
    assert one["cd4_increase_ge_80pct"].nunique() == 1 and len(one) == pv["population"].nunique()


def test_outputs_written_sorted_deterministic_and_escaped(tmp_path):
    pops, clin = make_trial(4, seed=9)
    evil = '<script>alert("x")</script>'
    pops.loc[pops["population"] == "NK cells", "population"] = evil
    root = tmp_path / "results"
    root.mkdir()
    pops.to_parquet(root / "populations.parquet")
    clin.to_csv(root / "clinical.csv", index=False)
    cfg = TrialConfig(headline_populations=["CD4 T", evil], longitudinal={"populations": ["CD4 T"]},
                      measures=["abs_count_per_uL"])
    res = run_comparisons(root, cfg)
    out = root / "trial"
    for stem in ("patient_visit_values", "patient_summaries", "summaries", "responder_rates", "tests", "headline",
                 "baseline_characteristics"):
        assert (out / f"{stem}.parquet").is_file() and (out / f"{stem}.csv").is_file()
    html = (out / "summary.html").read_text(encoding="utf-8")
    assert evil not in html and "&lt;script&gt;" in html
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == len(res.figures) == 3
    assert base64.b64decode(imgs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in html.replace("http-equiv", "")  # self-contained
    tests1 = pd.read_parquet(out / "tests.parquet")
    assert set(tests1["inputs_sha256"]) == {res.inputs_sha256}  # provenance stamped on every row
    pd.testing.assert_frame_equal(tests1.drop(columns=["inputs_sha256"]), res.tests.reset_index(drop=True),
                                  check_dtype=False)
    csv1 = (out / "tests.csv").read_bytes()
    info = json.loads((out / "trial_config.json").read_text())
    assert info["final_visit"] == "W74" and info["config"]["multiplicity"]["method"] == "holm"
    with pytest.raises(PipelineError, match="--force"):
        run_comparisons(root, cfg)
    run_trial(root, cfg, force=True)
    assert (out / "tests.csv").read_bytes() == csv1  # same input, same bytes
    pv = pd.read_parquet(out / "patient_visit_values.parquet")
    assert pv[["patient", "visit_index", "population"]].equals(
        pv[["patient", "visit_index", "population"]].sort_values(["patient", "visit_index", "population"]))


def test_missing_arm_and_bad_outcome_are_clear_errors():
    pops, clin = make_trial(3, seed=1)
    with pytest.raises(StatsError, match="arm 'placebo' has no patients.*control_arm"):
        analyse(TrialInputs(pops, clin), TrialConfig(control_arm="placebo", **FAST))
    clin = clin.astype({"recall_antigen_responder": object})
    clin.loc[clin["visit"] == "W74", "recall_antigen_responder"] = "yes"
    with pytest.raises(StatsError, match="site/clinical.csv: .*recall_antigen_responder.*0/1.*yes"):
        analyse(TrialInputs(pops, clin, clinical_source="site/clinical.csv"), TrialConfig(**FAST))


def test_separated_outcome_is_flagged_not_crashed():
    pops, clin = make_trial(5, seed=2)
    last = clin["visit"] == "W74"
    clin.loc[last, "recall_antigen_responder"] = (clin.loc[last, "arm"] == "IL-2").astype(int)
    t = analyse(TrialInputs(pops, clin), TrialConfig(**FAST)).tests
    rows = t[t["test"] == "logistic"]
    assert (rows["flag"] == "separation").all()
    assert rows["note"].str.contains("Firth").all() and np.isfinite(rows["estimate"]).all()


def test_cli_compare(tmp_path, capsys):
    pops, clin = make_trial(4, seed=6)
    root = tmp_path / "res"
    root.mkdir()
    pops.to_csv(root / "populations.csv", index=False)
    clin.to_csv(root / "clinical.csv", index=False)
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("name: demo\ntrial:\n  longitudinal:\n    model: gee\n    populations: [CD4 T]\n", encoding="utf-8")
    assert main(["compare", str(root), "--config", str(cfg), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "CD4 T" in out and "wrote" in out
    tests = pd.read_csv(root / "trial" / "tests.csv")
    assert "gee" in set(tests["test"]) and not (root / "trial" / "figures").exists()
    assert main(["compare", str(root), "--config", str(cfg)]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "results folder not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("trial:\n  measures: [cells]\n", encoding="utf-8")
    assert main(["compare", str(root), "--config", str(bad), "--force"]) == 2
    assert "bad.yaml:2: measures.0" in capsys.readouterr().err


def test_load_inputs_reads_results_store(tmp_path):
    pops, clin = make_trial(2, seed=6)
    pops.to_parquet(tmp_path / "populations.parquet")
    inp = load_inputs(tmp_path)
    assert inp.clinical.empty and len(inp.populations) == len(pops)
    (tmp_path / "populations.parquet").write_bytes(b"not parquet")
    with pytest.raises(StatsError, match="populations.parquet: cannot read table"):
        load_inputs(tmp_path)


def test_too_small_arms_give_notes_not_crashes_and_unknown_visit_is_an_error():
    pops, clin = make_trial(2, seed=4)
    res = analyse(TrialInputs(pops, clin), TrialConfig(**FAST))
    t = res.tests
    rs = t[t["test"] == "rank_sum"]
    assert rs["p"].isna().all() and rs["note"].str.contains("fewer than 3").all()
    assert t.loc[t["test"] == "fisher", "note"].str.contains("fewer than 3 patients").all()
    assert (t.loc[t["test"] == "logistic", "flag"] == "not_estimable").all()
    assert res.summaries["n"].max() == 2  # summaries are still reported
    with pytest.raises(StatsError, match="trial.final_visit 'W96' not found.*W74"):
        analyse(TrialInputs(pops, clin), TrialConfig(final_visit="W96", **FAST))


def test_unconverged_longitudinal_model_stays_out_of_the_multiplicity_family(monkeypatch):
    """A joint test whose model did not converge keeps p_adj empty and does not change the others' p_adj."""
    from dataclasses import replace

    from cytokit.trial import longitudinal

    pops, clin = make_trial(8, seed=7)
    cfg = TrialConfig(longitudinal={"populations": ["CD4 T", "CD8 T", "T cells"]}, multiplicity={"method": "holm", "family": "test"},
                      figures=False, html=False)
    fit_fn = longitudinal.LONGITUDINAL_MODELS["mixedlm"]
    calls = []

    def flaky(data, baseline, visits):  # the first model (CD4 T, first measure) does not converge
        fit = fit_fn(data, baseline, visits)
        calls.append(1)
        return replace(fit, flags=["not_converged"]) if len(calls) == 1 else fit

    monkeypatch.setitem(longitudinal.LONGITUDINAL_MODELS, "mixedlm", flaky)
    t = analyse(TrialInputs(pops, clin), cfg).tests
    joint = t[(t["test"] == "mixedlm") & (t["term"] == "arm x visit (joint)")]
    bad, good = joint[joint["flag"].str.contains("not_converged")], joint[~joint["flag"].str.contains("not_converged")]
    assert len(good) >= 2 and "not_converged" in joint["flag"].iloc[0]  # the forced one, and real ones
    assert bad["p_adj"].isna().all() and "did not converge" in bad["note"].iloc[0]
    np.testing.assert_allclose(good["p_adj"], multipletests(good["p"], method="holm")[1])
