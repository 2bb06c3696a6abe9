"""End-to-end runs with the real per-sample analysis (read, QC, compensation, transforms, gating, stats)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main as cli_main
from cytokit.pipeline import adhoc_pipeline, load_gated_events, run
from cytokit.results import SCHEMA_VERSION, read_table
from test_pipeline_support import simulate_small_trial, write_pipeline


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=5000)


@pytest.fixture(scope="module")
def results(trial, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("run")
    path = write_pipeline(base / "cfg", trial, name="real_trial",
                          qc={"enabled": True, "min_events": 500},
                          outputs={"gatingml": True, "anndata": True, "anndata_max_events_per_sample": 300,
                                   "trial": True, "clustering": True, "flowjo_workspace": True},
                          clustering={"population": "T cells", "tube": "tmem", "plots": False},
                          executor={"jobs": 2, "task": "analyse"})
    summary = run(path, base / "out")
    assert summary.ok == 8, summary.failures
    assert summary.stage_errors == {} and summary.output_errors == {}, (summary.stage_errors, summary.output_errors)
    return base / "out"


def test_cohort_stages_read_the_store(results):
    assert (results / "trial" / "patient_visit_values.parquet").is_file()
    abundance = pd.read_parquet(results / "clustering" / "metacluster_abundance.parquet")
    assert set(abundance["sample_id"]) == {"P001_W0_tmem", "P001_W12_tmem", "P002_W0_tmem", "P002_W12_tmem"}


def test_absolute_counts_agree_with_simulated_truth(results, trial):
    pops = pd.read_parquet(results / "populations.parquet")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    m = pops.merge(truth, on=["file", "population"], suffixes=("", "_true"))
    for population in ("T cells", "CD4 T", "CD8 T", "NK cells", "B cells"):
        sub = m[m["population"] == population]
        assert len(sub) >= 4, population
        rel = (sub["abs_count_per_uL"] - sub["abs_count_per_uL_true"]).abs() / sub["abs_count_per_uL_true"]
        assert rel.median() < 0.1, (population, rel.tolist())
    # the method of each sample's lymphocyte row (the Lymphocytes gate above it has no absolute count)
    methods = pops[pops["population"] == "Singlets"].set_index("tube")["abs_method"]
    assert set(methods["tmem"]) == {"dual_platform"} and set(methods["nkb"]) == {"single_platform"}
    above = pops[pops["population"] == "Lymphocytes"]
    assert above["abs_count_per_uL"].isna().all() and (above["abs_method"] == "").all()
    medians = json.loads(pops.loc[pops["population"] == "CD4 T", "marker_medians"].iloc[0])
    assert set(medians) >= {"CD4"} and 0.0 < medians["CD4"] < 1.2  # logicle scale


def test_samples_table_and_consistency_checks(results):
    samples = pd.read_parquet(results / "samples.parquet").set_index("sample_id")
    assert (samples["status"] == "ok").all()
    assert (samples["n_events_qc"] <= samples["n_events"]).all()
    nkb, tmem = samples[samples["tube"] == "nkb"], samples[samples["tube"] == "tmem"]
    assert nkb["lymphosum_pct"].between(85, 115).all() and tmem["lymphosum_pct"].isna().all()
    assert tmem["cd4_cd8_vs_cd3_pct"].between(80, 110).all()
    # per file, the logicle W estimated for each marker (the QC table's record of the transform)
    assert all("CD4=" in str(t) and "CD8=" in str(t) for t in tmem["logicle_w"]), tmem["logicle_w"].tolist()
    assert all("CD56=" in str(t) for t in nkb["logicle_w"])


def test_gatingml_run_info_and_anndata(results):
    from cytokit.gatingml import read_gatingml

    for folder in sorted((results / "samples").iterdir()):
        doc = read_gatingml(folder / "gates.xml")
        assert len(doc.nodes) >= 5
    info = json.loads((results / "run_info.json").read_text())
    assert info["status"] == "complete" and info["n_ok"] == 8
    assert info["results_schema"] == SCHEMA_VERSION
    assert set(info["tubes"]) == {"tmem", "nkb"} and len(info["tubes"]["tmem"]["strategy_hash"]) == 64
    assert "logicle" in info["tubes"]["tmem"]["transforms"]
    assert info["tubes"]["nkb"]["reagents"]["CD56"] == "APC"
    anndata = pytest.importorskip("anndata")
    adata = anndata.read_h5ad(results / "events_tmem.h5ad")
    assert adata.n_obs == 4 * 300 and "CD4" in list(adata.var_names)
    assert set(adata.obs["sample_id"]) == {"P001_W0_tmem", "P001_W12_tmem", "P002_W0_tmem", "P002_W12_tmem"}
    assert "CD4 T" in set(adata.obs["population"]) or "Naive CD4" in set(adata.obs["population"])
    # the populations' review split travels with their events, the same as the populations table's
    table = read_table(results, "populations")
    table = table[table["tube"] == "tmem"].sort_values(["sample_id", "population"]).reset_index(drop=True)
    pops = adata.uns["populations"].sort_values(["sample_id", "population"]).reset_index(drop=True)
    assert len(pops) == len(table) > 0
    for col in ("flags", "review_flags", "notes", "qc_flags"):
        assert list(pops[col]) == list(table[col].fillna("")), col
    assert list(pops["review"].astype(bool)) == list(table["review"].astype(bool))
    np.testing.assert_allclose(pops["pct_parent"], table["pct_parent"])


def test_store_tables_read_the_same_from_csv_and_parquet(results, tmp_path):
    for name in ("populations", "samples"):
        shutil.copy(results / f"{name}.csv", tmp_path / f"{name}.csv")
        pd.testing.assert_frame_equal(read_table(tmp_path, name), read_table(results, name))


def test_flowjo_workspace_holds_every_sample(results):
    from cytokit.flowjo import read_workspace

    workspace = read_workspace(results / "workspace.wsp")
    assert len(workspace.samples) == 8
    # each population's FlowJo annotation is its row's review split; each sample keeps its qc_flags
    from lxml import etree

    from cytokit.pipeline.outputs import QC_KEYWORD, review_annotation

    table = read_table(results, "populations")
    samples = read_table(results, "samples").set_index("sample_id")
    root = etree.parse(str(results / "workspace.wsp")).getroot()
    seen = 0
    for node in root.iter("SampleNode"):
        s_el = node.getparent()
        sid = Path(s_el.find("DataSet").get("uri")).stem
        keywords = {k.get("name"): k.get("value") for k in s_el.find("Keywords")}
        assert keywords[QC_KEYWORD] == (samples.at[sid, "qc_flags"] or "")
        rows = table[table["sample_id"] == sid].set_index("population")
        for pop in node.iter("Population", "AndNode", "OrNode", "NotNode"):
            name = pop.get("name")
            if name in rows.index:
                assert pop.get("annotation") == review_annotation(rows.loc[name].to_dict()), (sid, name)
                seen += bool(pop.get("annotation"))
    assert seen > 0  # some populations carry notes: the annotation is exercised


def test_load_gated_events_matches_the_tables(results):
    pops = pd.read_parquet(results / "populations.parquet").set_index(["sample_id", "population"])
    for sid, population in (("P001_W0_tmem", "CD4 T"), ("P002_W12_nkb", "NK cells")):
        events, markers = load_gated_events(results, sid, population)
        assert events.dtype == np.float32 and events.shape == (pops.at[(sid, population), "count"], len(markers))
        assert "CD3" in markers
        cd3 = events[:, markers.index("CD3")]
        assert np.nanmax(cd3) < 1.5  # transformed (logicle) scale, not linear


def test_too_few_events_fails_only_that_sample(trial, tmp_path):
    folder = tmp_path / "fcs"
    folder.mkdir()
    for name in ("P001_W0_tmem.fcs", "P002_W0_tmem.fcs"):
        shutil.copy(trial / "fcs" / name, folder / name)
    config = adhoc_pipeline(folder, "il2_trial", "tmem", tube="tmem", qc={"min_events": 100_000})
    summary = run(config, tmp_path / "out", jobs=1)
    assert summary.failed == 2 and all("qc.min_events" in e for e in summary.failures.values())


def test_cli_adhoc_folder(trial, tmp_path, capsys):
    folder = tmp_path / "fcs"
    folder.mkdir()
    for name in ("P001_W0_tmem.fcs", "P002_W12_tmem.fcs"):
        shutil.copy(trial / "fcs" / name, folder / name)
    out = tmp_path / "out"
    code = cli_main(["run", "--input", str(folder), "--panel", "il2_trial", "--strategy", "tmem", "--tube", "tmem",
                     "--out", str(out), "-j", "1"])
    assert code == 0, capsys.readouterr().err
    pops = pd.read_csv(out / "populations.csv")
    assert set(pops["sample_id"]) == {"P001_W0_tmem", "P002_W12_tmem"}
    assert pops["abs_count_per_uL"].isna().all()  # no clinical table, no beads: no absolute counts
    assert sorted(p.name for p in folder.iterdir()) == ["P001_W0_tmem.fcs", "P002_W12_tmem.fcs"]  # input untouched
    assert cli_main(["run", "--input", str(folder), "--out", str(out)]) == 2  # --panel/--strategy missing
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    assert cli_main(["run", "--input", str(other), "--panel", "il2_trial", "--strategy", "tmem", "--tube", "tmem",
                     "--out", str(out)]) == 2  # another folder's results are not overwritten without --force
    assert "--force" in capsys.readouterr().err


def test_report_block_and_renamed_lymphocyte_column(trial, tmp_path):
    """A site table naming the lymphocyte count differently still feeds the cohort stages, and the
    pipeline's `report:` block reaches the reports stage (HTML only here)."""
    site = tmp_path / "site_trial"
    shutil.copytree(trial, site)
    clinical = pd.read_csv(site / "clinical.csv")
    clinical.rename(columns={"lymphocytes_per_uL": "LYMPH_ABS"}).to_csv(site / "clinical.csv", index=False)
    path = write_pipeline(tmp_path / "cfg", site, name="site_trial",
                          clinical={"lymphocytes_column": "LYMPH_ABS"},
                          outputs={"trial": True, "reports": True},
                          report={"pdf": False},
                          executor={"jobs": 1, "task": "analyse"})
    summary = run(path, tmp_path / "out")
    assert summary.ok == 8 and summary.stage_errors == {}, (summary.failures, summary.stage_errors)
    stored = pd.read_csv(tmp_path / "out" / "clinical.csv")
    assert "lymphocytes_per_uL" in stored.columns and "LYMPH_ABS" not in stored.columns
    np.testing.assert_allclose(stored["lymphocytes_per_uL"], clinical["lymphocytes_per_uL"])
    reports = sorted(p.suffix for p in (tmp_path / "out" / "reports").iterdir())
    assert reports and set(reports) == {".html"}
    html = (tmp_path / "out" / "reports" / f"{clinical['patient'].iloc[0]}.html").read_text()
    lymph = f"{clinical['lymphocytes_per_uL'].iloc[0]:,.0f}"
    assert lymph in html  # the lymphocyte count reached the report through the renamed column


def test_count_uncertain_in_count_flags_where_the_counts_estimated_error_exceeds_the_tolerance(results):
    # a run's populations table (parquet and csv) carries count_uncertain on exactly the counts whose estimated
    # relative error, from the row's and its ancestors' est_error_pp and count_sd_pp, is above 10 %; the rows'
    # review stays the gating's, and the trial's patient-visit values mark the count (count_review) from it
    from cytokit.gating.methods import needs_review
    from cytokit.pipeline.counts import COUNT_UNCERTAIN_FLAG, COUNT_UNCERTAIN_PCT, count_error_pct

    pops = read_table(results, "populations")
    csv = pd.read_csv(results / "populations.csv", keep_default_na=False)
    assert pops["count_flags"].fillna("").tolist() == csv["count_flags"].astype(str).tolist()
    flagged = pops["count_flags"].fillna("").str.split(";").map(lambda w: COUNT_UNCERTAIN_FLAG in w)
    for sid, rows in pops.groupby("sample_id"):
        expected = (count_error_pct(rows, "Singlets") > COUNT_UNCERTAIN_PCT) & rows["abs_count_per_uL"].notna()
        assert flagged[rows.index].tolist() == expected.tolist(), sid
    assert 0 < flagged.sum() < len(pops) / 2  # the small subsets of 5,000-event files, not every count
    # count_low: exactly the counted rows whose gating notes the cells their count's method misses (a bead count:
    # every cell left out, edge_loss; a dual-platform count: the loss beyond the lymphocytes' own)
    from cytokit.gating.edge_loss import EDGE_LOSS_NOTE, LINEAGE_LOSS_NOTE
    from cytokit.pipeline.counts import COUNT_LOW_FLAG
    low = pops["count_flags"].fillna("").str.split(";").map(lambda w: COUNT_LOW_FLAG in w)
    words = pops["flags"].fillna("").str.split(";")
    note = pops["abs_method"].map({"dual_platform": LINEAGE_LOSS_NOTE, "single_platform": EDGE_LOSS_NOTE})
    noted = pd.Series([isinstance(n, str) and n in w for n, w in zip(note, words)], index=pops.index)
    assert set(pops["abs_method"].dropna()) >= {"dual_platform", "single_platform"}
    assert low.tolist() == (noted & pops["abs_count_per_uL"].notna()).tolist()
    assert (pops["review"] == pops["flags"].fillna("").map(needs_review)).all()
    values = pd.read_parquet(results / "trial" / "patient_visit_values.parquet")
    marked = values["count_flags"].fillna("").str.contains(COUNT_UNCERTAIN_FLAG)
    assert marked.any() and values.loc[marked, "count_review"].all()
