"""A failed sample or a clinical visit without a sample leaves the per-visit n one patient short: the analysis
notes name them (summary.html, trial_config.json) instead of losing them without a word."""
from __future__ import annotations

import json

import pandas as pd

from cytokit.results import schema as S
from cytokit.trial import TrialConfig, run_comparisons
from test_trial_data import make_trial


def _folder(tmp_path):
    pops, clin = make_trial(4, seed=11)
    samples = pops.drop_duplicates(S.SAMPLE_ID)[[S.SAMPLE_ID, S.PATIENT, S.VISIT, S.ARM, S.TUBE]].assign(
        **{S.STATUS: "ok", S.ERROR: ""})
    failed = samples[S.SAMPLE_ID] == "P000_W74_tmem"
    samples.loc[failed, [S.STATUS, S.ERROR]] = ["failed", "QC: 412 events after QC (< 1000)"]
    pops = pops[(pops[S.SAMPLE_ID] != "P000_W74_tmem")  # the failed sample has no population rows
                & ~((pops[S.PATIENT] == "P101") & (pops[S.VISIT] == "W48"))]  # P101 missed W48: no sample at all
    pops.to_parquet(tmp_path / "populations.parquet")
    clin.to_csv(tmp_path / "clinical.csv", index=False)
    samples.to_csv(tmp_path / "samples.csv", index=False)
    return tmp_path


def test_failed_sample_and_visit_without_sample_are_named(tmp_path):
    root = _folder(tmp_path)
    res = run_comparisons(root, TrialConfig(figures=False, longitudinal={"model": "none"}), force=True)
    s = res.summaries
    cd4 = s[(s[S.POPULATION] == "CD4 T") & (s["measure"] == "abs_count_per_uL") & (s["quantity"] == "change")
            & (s[S.ARM] == "IL-2") & (s[S.VISIT] == "W74")]
    assert int(cd4["n"].iloc[0]) == 3  # the failed sample's patient is left out ...
    failed = [n for n in res.notes if "failed" in n]
    assert len(failed) == 1 and "P000 W74 tmem (QC: 412 events after QC (< 1000))" in failed[0]  # ... and named
    absent = [n for n in res.notes if "no sample analysed" in n]
    assert len(absent) == 1 and "P101 W48" in absent[0] and "P000 W74" not in absent[0]
    saved = json.loads((root / "trial" / "trial_config.json").read_text())
    assert saved["notes"] == res.notes
    html = (root / "trial" / "summary.html").read_text()
    assert "P000 W74 tmem" in html and "P101 W48" in html


def test_nothing_missing_adds_no_note(tmp_path):
    pops, clin = make_trial(3, seed=12)
    pops.to_parquet(tmp_path / "populations.parquet")
    clin.to_csv(tmp_path / "clinical.csv", index=False)
    pd.DataFrame({S.SAMPLE_ID: pops[S.SAMPLE_ID].unique(), S.STATUS: "ok"}).assign(
        **{S.PATIENT: "", S.VISIT: ""}).to_csv(tmp_path / "samples.csv", index=False)
    res = run_comparisons(tmp_path, TrialConfig(figures=False, html=False, longitudinal={"model": "none"}))
    assert not [n for n in res.notes if "failed" in n or "no sample analysed" in n]


def test_auc_test_names_patients_whose_auc_stops_before_the_final_visit():
    """A withdrawn patient's AUC minus baseline covers fewer weeks; the AUC rank-sum row says so."""
    from cytokit.trial import TrialInputs, analyse

    pops, clin = make_trial(4, seed=13)
    pops = pops[~((pops[S.PATIENT] == "P001") & pops[S.VISIT].isin(["W48", "W74"]))]  # withdrew after W24
    res = analyse(TrialInputs(pops, clin), TrialConfig(figures=False, html=False, longitudinal={"model": "none"}))
    t = res.tests
    row = t[(t["test"] == "rank_sum") & (t["endpoint"] == "auc_mb") & (t[S.POPULATION] == "CD4 T")
            & (t["measure"] == "abs_count_per_uL")].iloc[0]
    assert row["n"] == 8  # the patient stays in the test ...
    assert "1 of the 8 patients' AUC stops before the final visit (no value there: P001)" in row["note"]  # ... named
    ps = res.patient_summaries
    assert ps.loc[(ps[S.PATIENT] == "P001") & (ps[S.POPULATION] == "CD4 T"), "weeks_observed"].max() < 30
    others = t[(t["test"] == "rank_sum") & (t["endpoint"] == "auc_mb")]
    assert others["note"].str.contains("AUC stops").sum() == others["n"].gt(0).sum()  # every AUC row with P001


def test_an_arm_too_small_to_test_says_so_in_notes_headline_and_cli(tmp_path, capsys):
    """One control patient: exit 0 with the tables written, and every place that shows an empty P says why."""
    from cytokit.cli.main import main

    pops, clin = make_trial(4, seed=14)
    keep = (pops[S.ARM] == "IL-2") | (pops[S.PATIENT] == "P100")
    root = tmp_path / "res"
    root.mkdir()
    pops[keep].to_csv(root / "populations.csv", index=False)
    clin[clin[S.PATIENT].isin(pops.loc[keep, S.PATIENT].unique())].to_csv(root / "clinical.csv", index=False)
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("name: demo\ntrial:\n  longitudinal:\n    model: none\n", encoding="utf-8")
    assert main(["compare", str(root), "--config", str(cfg), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "P not computed (fewer than 3 values in an arm)" in out and "P=nan" not in out
    head = pd.read_csv(root / "trial" / "headline.csv")
    assert head["p"].isna().all() and head["note"].str.startswith("fewer than 3").all()
    notes = json.loads((root / "trial" / "trial_config.json").read_text())["notes"]
    assert any("arm 'control' has 1 patient(s), fewer than trial.min_per_arm = 3" in n for n in notes)
    assert not any("arm 'IL-2'" in n for n in notes)
