"""Clustering cohort stage: results store in, OUT/clustering tables and figures out; CLI; DA tests."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main
from cytokit.cluster import (ClusterParams, agreement_table, analyse, differential_abundance, run_clustering)
from cytokit.cluster.toy import TCELL_MARKERS, TCELL_POPULATIONS, toy_samples
from cytokit.errors import ClusterError, FCSError, PipelineError

VISITS = {"W0": 0, "W12": 12}


def _store(tmp_path, n_samples=8):
    """A results store with samples + populations tables and an in-memory event loader."""
    samples, labels, truth = toy_samples(n_samples, 1500, seed=5)
    ids = list(samples)
    meta = pd.DataFrame({
        "sample_id": ids, "file": [f"{s}.fcs" for s in ids], "status": "ok",
        "patient": [f"P{i // 2}" for i in range(len(ids))],
        "visit": [list(VISITS)[i % 2] for i in range(len(ids))],
        "week": [list(VISITS.values())[i % 2] for i in range(len(ids))],
        "arm": ["IL-2" if (i // 2) % 2 == 0 else "control" for i in range(len(ids))], "tube": "tmem",
    })
    bad_id = "S99"
    meta = pd.concat([meta, pd.DataFrame([{"sample_id": bad_id, "file": "x.fcs", "status": "ok", "patient": "P9",
                                           "visit": "W0", "week": 0, "arm": "control", "tube": "tmem"}])])
    meta.to_csv(tmp_path / "samples.csv", index=False)
    rows = []
    for sid in ids:
        rows.append((sid, "T cells", len(labels[sid])))
        for pop, members in TCELL_POPULATIONS.items():
            rows.append((sid, pop, int(np.isin(labels[sid], members).sum())))
    pops = pd.DataFrame(rows, columns=["sample_id", "population", "count"])
    # gating disagrees with clustering on one sample x population (adds 10 pp of T cells)
    sel = (pops["sample_id"] == "S01") & (pops["population"] == "EM CD4")
    pops.loc[sel, "count"] += int(0.10 * len(labels["S01"]))
    pops.to_parquet(tmp_path / "populations.parquet", index=False)

    def loader(results_dir, sample_id, population):
        assert population == "T cells"
        if sample_id == bad_id:
            raise FCSError("file is truncated", path="x.fcs")
        X = samples[sample_id]
        scatter = np.zeros((X.shape[0], 1), np.float32)
        return np.hstack([scatter, X]), ["FSC-A", *TCELL_MARKERS]

    return samples, labels, truth, loader


PARAMS = ClusterParams(xdim=6, ydim=6, n_metaclusters=6, seed=1, margin_pp=5.0)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    samples, labels, truth, loader = _store(out)
    run = run_clustering(out, params=PARAMS, loader=loader)
    return out, run, samples, truth, loader


def test_stage_writes_every_table_and_figure(stage):
    out, run, samples, _, _ = stage
    d = out / "clustering"
    for name in ("metacluster_abundance", "population_abundance", "metaclusters", "nodes", "thresholds",
                 "agreement", "agreement_summary", "differential", "differential_populations"):
        assert (d / f"{name}.parquet").is_file() and (d / f"{name}.csv").is_file(), name
        back = pd.read_parquet(d / f"{name}.parquet")
        assert len(back) == len(run.tables[name]) > 0
    for png in ("heatmap.png", "map.png", "abundance.png"):
        data = (d / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    info = json.loads((d / "clustering.json").read_text())
    assert info["markers"] == list(TCELL_MARKERS)  # scatter excluded by default
    assert info["n_samples"] == len(samples) and "S99" in info["skipped"]
    assert "truncated" in info["skipped"]["S99"]
    assert info["params"]["xdim"] == 6


def test_stage_tables_carry_manifest_and_sum_to_100(stage):
    _, run, samples, _, _ = stage
    mc = run.tables["metacluster_abundance"]
    assert {"patient", "visit", "week", "arm", "tube", "name"} <= set(mc.columns)
    assert set(mc["sample_id"]) == set(samples)
    assert np.allclose(mc.groupby("sample_id")["pct"].sum(), 100.0)
    assert (mc["population"] == "T cells").all()


def test_population_abundance_within_2pp_of_truth(stage):
    _, run, _, truth, _ = stage
    ab = run.tables["population_abundance"].merge(truth, on=["sample_id", "population"])
    assert set(ab["population"]) == set(TCELL_POPULATIONS)
    assert (ab["pct"] - ab["truth_pct"]).abs().max() < 2.0


def test_differential_tables_cover_every_visit_and_cluster(stage):
    _, run, _, _, _ = stage
    da = run.tables["differential"]
    assert set(da["visit"]) == set(VISITS) and len(da) == 2 * len(run.tables["metaclusters"])
    assert (da["n_treatment"] + da["n_control"] == 4).all()
    dp = run.tables["differential_populations"]
    assert set(dp["cluster"]) == set(TCELL_POPULATIONS) and dp["p_adj"].notna().any()


def test_agreement_flags_only_the_disagreeing_sample(stage):
    _, run, _, _, _ = stage
    agr = run.tables["agreement"]
    flagged = agr[agr["flagged"]]
    assert list(zip(flagged["sample_id"], flagged["population"])) == [("S01", "EM CD4")]
    assert flagged["difference_pp"].iloc[0] == pytest.approx(-10.0, abs=2.0)
    summ = run.tables["agreement_summary"].set_index("population")
    assert summ.loc["EM CD4", "n_flagged"] == 1 and summ.loc["CD4 T", "n_flagged"] == 0


def test_existing_results_need_force(stage):
    out, _, _, _, loader = stage
    with pytest.raises(PipelineError, match="--force"):
        run_clustering(out, params=PARAMS, loader=loader, plots=False)
    again = run_clustering(out, params=PARAMS, loader=loader, plots=False, force=True)
    assert (out / "clustering" / "metaclusters.csv").is_file()
    assert len(again.tables["metaclusters"]) == 6


def test_stage_errors_name_the_problem(tmp_path, stage):
    _, _, _, _, loader = stage
    with pytest.raises(ClusterError, match="no samples.parquet or samples.csv"):
        run_clustering(tmp_path, loader=loader)
    _store(tmp_path)
    with pytest.raises(ClusterError, match="markers \\['CD99'\\]"):
        run_clustering(tmp_path, markers=["CD4", "CD99"], loader=loader, params=PARAMS)
    with pytest.raises(ClusterError, match="no successfully processed samples to cluster in tube 'nkb'"):
        run_clustering(tmp_path, tube="nkb", loader=loader, params=PARAMS)


def test_analyse_is_deterministic_and_uses_given_thresholds():
    samples, _, _ = toy_samples(3, 1500, seed=2)
    a = analyse(samples, list(TCELL_MARKERS), params=PARAMS, thresholds={"CD4": 0.45})
    b = analyse(samples, list(TCELL_MARKERS), params=PARAMS, thresholds={"CD4": 0.45})
    pd.testing.assert_frame_equal(a.tables["metacluster_abundance"], b.tables["metacluster_abundance"])
    thr = a.tables["thresholds"].set_index("marker")
    assert thr.loc["CD4", "positive_threshold"] == 0.45 and thr.loc["CD4", "source"] == "given"
    assert "differential" not in a.tables  # no arms without a samples table


# -- differential abundance ---------------------------------------------------------------------------
def _da_table(effect: float, n_per_arm: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for arm in ("IL-2", "control"):
        for i in range(n_per_arm):
            total = int(rng.integers(3000, 6000))
            p0 = np.clip(0.20 + (effect if arm == "IL-2" else 0.0) + rng.normal(0, 0.02), 0.01, 0.9)
            c0 = rng.binomial(total, p0)
            c1 = rng.binomial(total - c0, 0.3)
            for mc, c in ((0, c0), (1, c1), (2, total - c0 - c1)):
                rows.append((f"{arm}{i}", mc, f"mc{mc}", c, total, 100.0 * c / total, arm, "W12", 12))
    return pd.DataFrame(rows, columns=["sample_id", "metacluster", "name", "count", "total", "pct", "arm",
                                       "visit", "week"])


@pytest.mark.parametrize("test", ["quasibinomial", "rank_sum"])
def test_differential_abundance_finds_the_shifted_cluster(test):
    da = differential_abundance(_da_table(0.10), test=test)
    assert set(da.columns) >= {"p", "p_adj", "significant", "estimate"}
    row = da.set_index("cluster").loc[0]
    assert row["significant"] and row["p_adj"] < 0.01 and row["estimate"] > 0
    assert row["n_treatment"] == 8 and row["n_control"] == 8
    assert da.attrs["treatment"] == "IL-2" and da.attrs["control"] == "control"
    assert (da["p_adj"] >= da["p"] - 1e-12).all()


def test_differential_abundance_null_is_not_significant():
    da = differential_abundance(_da_table(0.0, seed=3))
    assert not da["significant"].any()


def test_differential_abundance_bad_input():
    t = _da_table(0.0)
    with pytest.raises(ClusterError, match="unknown differential-abundance test"):
        differential_abundance(t, test="t-test")
    three = t.copy()
    three.loc[three.index[:3], "arm"] = "other"
    with pytest.raises(ClusterError, match="exactly two groups"):
        differential_abundance(three)
    with pytest.raises(ClusterError, match="lacks columns"):
        differential_abundance(t.drop(columns=["visit"]))


def test_agreement_table_units():
    clus = pd.DataFrame({"sample_id": ["a", "a"], "population": ["CD4 T", "CD8 T"], "count": [60, 30],
                         "pct": [60.0, 30.0]})
    gate = pd.DataFrame({"sample_id": ["a"] * 3, "population": ["T cells", "CD4 T", "CD8 T"],
                         "count": [200, 130, 60]})
    agr = agreement_table(clus, gate, root="T cells", margin_pp=4.0).set_index("population")
    assert agr.loc["CD4 T", "gating_pct"] == 65.0 and agr.loc["CD4 T", "difference_pp"] == -5.0
    assert bool(agr.loc["CD4 T", "flagged"]) and not bool(agr.loc["CD8 T", "flagged"])
    with pytest.raises(ClusterError, match="lacks columns"):
        agreement_table(clus, gate.drop(columns=["count"]), root="T cells", margin_pp=1)


# -- CLI ----------------------------------------------------------------------------------------------
def test_cli_cluster_runs_and_reports(tmp_path, monkeypatch, capsys):
    _, _, _, loader = _store(tmp_path)
    monkeypatch.setattr("cytokit.cluster.stage.load_gated_events", loader)
    thr = tmp_path / "thr.yaml"
    thr.write_text("thresholds:\n  CD4: 0.45\n", encoding="utf-8")
    rc = main(["cluster", str(tmp_path), "--grid", "5x5", "-k", "5", "--markers", "CD4,CD8", "-m", "CD45RA",
               "--thresholds", str(thr), "--no-plots", "--margin", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "5 metaclusters on CD4, CD8, CD45RA" in out and "skipped 1 sample" in out
    info = json.loads((tmp_path / "clustering" / "clustering.json").read_text())
    assert info["params"]["xdim"] == 5 and info["params"]["margin_pp"] == 3.0
    assert not (tmp_path / "clustering" / "heatmap.png").exists()
    rc = main(["cluster", str(tmp_path), "--grid", "5x5"])
    assert rc == 2 and "--force" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--grid", "10by10"], "WxH"),
    (["--metaclusters", "0"], "n_metaclusters"),
    (["--level", "leaf"], "--level"),
    (["--da-test", "t"], "--da-test"),
])
def test_cli_bad_options_exit_2(tmp_path, capsys, args, message):
    rc = main(["cluster", str(tmp_path), *args])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_phenotypes_from_builtin_strategy_name_or_missing_file(tmp_path, stage):
    _, _, _, loader = _store(tmp_path)
    run = run_clustering(tmp_path, params=PARAMS, loader=loader, phenotypes="tmem", plots=False)
    texts = dict(zip(run.annotation.table.names, (e.text for e in run.annotation.table)))
    assert "CD4 T" in texts and "Lymphocytes" not in texts  # scatter-gate prose is not a phenotype
    with pytest.raises(ClusterError, match="phenotype file not found"):
        run_clustering(tmp_path, params=PARAMS, loader=loader, phenotypes=tmp_path / "nope.yaml", force=True)
    with pytest.raises(ClusterError, match="no phenotype file or built-in"):
        run_clustering(tmp_path, params=PARAMS, loader=loader, phenotypes="nonesuch", force=True)


def test_progress_callback_sees_every_sample(tmp_path):
    from cytokit.cluster import load_population_events

    _, _, _, loader = _store(tmp_path)
    calls = []
    samples, markers, meta, skipped = load_population_events(
        tmp_path, population="T cells", loader=loader, progress=lambda d, t, s: calls.append((d, t)))
    assert calls[-1] == (9, 9) and [d for d, _ in calls] == list(range(1, 10))
    assert len(samples) == 8 and list(skipped) == ["S99"] and markers == list(TCELL_MARKERS)


def test_csv_store_keeps_identifier_text(tmp_path):
    from cytokit.cluster.stage import load_population_events

    _, _, _, loader = _store(tmp_path)
    meta = pd.read_csv(tmp_path / "samples.csv", dtype=str)
    meta["patient"] = [f"{i:03d}" for i in range(len(meta))]
    meta.to_csv(tmp_path / "samples.csv", index=False)
    _, _, back, _ = load_population_events(tmp_path, population="T cells", loader=loader)
    assert back["patient"].tolist()[:3] == ["000", "001", "002"]
