"""Every entry point runs the same per-sample chain (read → QC → compensate → transform → gate) and gives
identical counts (and review columns: ``review``, ``review_flags``, ``notes``) on the bundled sample trial: the
pipeline's populations table, ``Strategy.apply``, ``cytokit gate`` and the cohort stages' event loader
(``load_gated_events``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cytokit.cli.main import main as cli_main
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.pipeline import load_gated_events, run
from test_pipeline_support import write_pipeline
from test_review_column import assert_review_columns_follow_flags

OUTPUTS_OFF = {"gatingml": False, "thumbnails": False, "flowjo_workspace": False, "anndata": False,
               "trial": False, "reports": False, "clustering": False}


@pytest.fixture(scope="module")
def sample_trial(repo_root) -> Path:
    folder = repo_root / "sample_data"
    if not (folder / "manifest.csv").is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    return folder


@pytest.fixture(scope="module")
def store(sample_trial, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("entry")
    # the pipeline's own default qc: block (enabled, default QC parameters)
    path = write_pipeline(base / "cfg", sample_trial, name="entry_points", qc={"enabled": True, "min_events": 1000},
                          outputs=OUTPUTS_OFF, executor={"jobs": 2, "task": "analyse"})
    summary = run(path, base / "out", stages=False)
    assert summary.failed == 0, summary.failures
    pops = pd.read_parquet(base / "out" / "populations.parquet")
    return base / "out", pops


def _counts(df: pd.DataFrame) -> dict[str, int]:
    return {str(p): int(c) for p, c in zip(df["population"], df["count"])}


def _review(df: pd.DataFrame) -> dict[str, tuple[bool, str, str]]:
    return {str(p): (bool(r), str(w), str(n))
            for p, r, w, n in zip(df["population"], df["review"], df["review_flags"], df["notes"])}


def test_strategy_apply_counts_equal_the_pipeline_on_every_bundled_file(sample_trial, store):
    _, pops = store
    assert_review_columns_follow_flags(pops)
    assert pops["review"].any() and (~pops["review"] & pops["notes"].ne("")).any()
    manifest = pd.read_csv(sample_trial / "manifest.csv")
    strategies = {t: load_strategy(t) for t in manifest["tube"].unique()}
    assert len(manifest) == len(list((sample_trial / "fcs").glob("*.fcs")))
    for row in manifest.itertuples():
        result = strategies[row.tube].apply(read_fcs(sample_trial / row.file), panel="il2_trial", tube=row.tube)
        stored = pops[pops["file"] == row.file]
        assert len(stored) == len(result.populations), row.file
        assert _counts(result.populations) == _counts(stored), row.file
        assert _review(result.populations) == _review(stored), row.file  # one meaning of "flagged"
        assert result.qc is not None and result.qc.n_kept == result.sample.n_events < result.qc.n_events + 1


def test_cli_gate_counts_equal_the_pipeline(sample_trial, store, tmp_path, capsys):
    _, pops = store
    for name in ("P001_W0_tmem.fcs", "P002_W24_nkb.fcs"):
        table = tmp_path / f"{Path(name).stem}.csv"
        tube = name.rsplit("_", 1)[1].removesuffix(".fcs")
        assert cli_main(["gate", str(sample_trial / "fcs" / name), "--strategy", tube, "--table", str(table)]) == 0
        assert "QC kept" in capsys.readouterr().out
        assert _counts(pd.read_csv(table)) == _counts(pops[pops["file"] == f"fcs/{name}"]), name
        assert _review(pd.read_csv(table, keep_default_na=False)) == _review(pops[pops["file"] == f"fcs/{name}"])
    # the example: 1,285 CD4 T cells without QC, the table's count with it
    no_qc = tmp_path / "no_qc.csv"
    assert cli_main(["gate", str(sample_trial / "fcs" / "P001_W0_tmem.fcs"), "--strategy", "tmem", "--no-qc",
                     "--table", str(no_qc)]) == 0
    with_qc = pops[(pops["file"] == "fcs/P001_W0_tmem.fcs") & (pops["population"] == "CD4 T")]["count"].item()
    without = pd.read_csv(no_qc).set_index("population").loc["CD4 T", "count"]
    assert without != with_qc


def test_cohort_event_loader_counts_equal_the_pipeline(store):
    out, pops = store
    by = pops.set_index(["sample_id", "population"])["count"]
    for sid, population in (("P001_W0_tmem", "CD4 T"), ("P003_W74_tmem", "Treg"), ("P002_W24_nkb", "NK cells"),
                            ("P004_W0_nkb", "B cells")):
        events, _ = load_gated_events(out, sid, population)
        assert events.shape[0] == by[(sid, population)], (sid, population)


def test_qc_is_optional_and_documented_on_the_result(sample_trial):
    sample = read_fcs(sample_trial / "fcs" / "P001_W0_tmem.fcs")
    strategy = load_strategy("tmem")
    with_qc, without = strategy.apply(sample), strategy.apply(sample, qc=False)
    assert without.qc.result is None and without.sample.n_events == sample.n_events
    assert with_qc.sample.n_events == int(with_qc.qc.keep.sum()) < sample.n_events
    assert with_qc.counts() != without.counts()
    custom = strategy.apply(sample, qc={"enabled": True, "time_checks": False})
    assert custom.qc.params["time_checks"] is False
    # exported with QC's gates in front: evaluated on the raw file, the Gating-ML counts what the result counts
    from cytokit.gating.export import xml_id
    from cytokit.gatingml import evaluate_document, read_gatingml
    from cytokit.panel import load_panel

    doc = read_gatingml(with_qc.to_gatingml().encode())
    assert doc.nodes[0].name.startswith("QC")
    masks = evaluate_document(doc, load_panel("il2_trial").resolve(sample, tube="tmem"))
    for name, mask in with_qc.masks.items():
        assert int(masks[xml_id(name)].sum()) == int(mask.sum()), name


def test_imported_strategy_gives_the_same_counts_in_the_pipeline(sample_trial, tmp_path_factory):
    # the pipeline rebuilt imported (Gating-ML) strategies from their definition alone and evaluated the
    # gates on raw linear values, ignoring the document's compensation and logicle transforms
    tmp_path, out = tmp_path_factory.mktemp("imported_in"), tmp_path_factory.mktemp("imported_out") / "out"
    files = ["fcs/P001_W0_tmem.fcs", "fcs/P001_W24_tmem.fcs"]  # one instrument: the gates name its channels
    fitted = load_strategy("tmem").apply(read_fcs(sample_trial / files[0]), qc=False)
    gml = tmp_path / "tmem_fixed.xml"
    fitted.to_gatingml(gml)
    manifest = pd.read_csv(sample_trial / "manifest.csv")
    subset = manifest[manifest["file"].isin(files)].copy()
    subset["file"] = [str((sample_trial / f).resolve()) for f in subset["file"]]
    subset.to_csv(tmp_path / "manifest.csv", index=False)
    path = write_pipeline(tmp_path / "cfg", sample_trial, name="imported",
                          manifest={"path": str(tmp_path / "manifest.csv"), "sample_id": "{stem}"},
                          tubes={"tmem": {"panel": "il2_trial", "strategy": str(gml)}},
                          qc={"enabled": True, "min_events": 100}, outputs=OUTPUTS_OFF,
                          executor={"jobs": 1, "task": "analyse"})
    summary = run(path, out, stages=False)
    assert summary.failed == 0, summary.failures
    pops = pd.read_parquet(out / "populations.parquet")
    imported = load_strategy(gml)
    for f in files:
        result = imported.apply(read_fcs(sample_trial / f))
        stored = pops[pops["file"] == str((sample_trial / f).resolve())]
        assert _counts(result.populations) == _counts(stored), f
        assert _counts(result.populations)["CD4 T"] > 500


def test_cohort_gating_stage_flags_and_refits_from_the_stored_gates(store):
    from cytokit.pipeline.cohort import run_cohort_gating

    out, pops = store
    tables = run_cohort_gating(out)  # default rule on the bundled trial
    positions = tables["positions"]
    assert {"tube", "instrument", "median", "range_low", "range_high", "outlier"} <= set(positions.columns)
    assert positions.groupby(["tube", "instrument"]).size().size == 4  # 2 tubes x 2 instruments
    assert (positions["n_cohort"] >= 10).all()
    # a strict rule makes outliers: each is re-fitted within its cohort's range, both fits recorded
    strict = run_cohort_gating(out, k=1.0, min_shift=0.01, accept_flags=None)  # every re-fit accepted
    refits = strict["refits"]
    assert strict["positions"]["outlier"].sum() > 0 and len(refits) > 0
    assert refits["method"].str.endswith("+cohort").all() and refits["flags"].str.contains("cohort_outlier").all()
    stored = pops.set_index(["sample_id", "population"])["count"]
    for row in refits.itertuples():
        assert row.count == stored[(row.sample_id, row.population)]  # the original fit is the stored one
        assert row.gate and row.refit_gate
    assert (out / "gating_cohort" / "refits.parquet").is_file() and (out / "gating_cohort" / "refits.csv").is_file()
    again = run_cohort_gating(out, k=1.0, min_shift=0.01, accept_flags=None, thumbnails=True)  # deterministic: stored results only
    pd.testing.assert_frame_equal(again["refits"], refits)
    # thumbnails of the re-fitted gates for the samples whose numbers the re-fit changed (reports show them)
    changed = set(refits.loc[refits["changed"], "sample_id"])
    assert changed and changed <= set(again.populations)  # also the samples whose outliers only carry the note
    assert all("+cohort" not in str(r["method"]) for s_, rows in again.populations.items() if s_ not in changed
               for r in rows)
    pngs = {p.parent.name for p in (out / "samples").glob("*/gates_cohort.png")}
    assert pngs == changed
    assert all((out / "samples" / s / "gates_cohort.png").read_bytes()[:4] == b"\x89PNG" for s in changed)
    run_cohort_gating(out, thumbnails=True)  # default rule: no re-fit changes a number -> stale thumbnails go
    assert not list((out / "samples").glob("*/gates_cohort.png"))


def test_pipeline_tables_report_cohort_refits_and_keep_the_original_fits(sample_trial, store):
    # runs last in this module: the same pipeline again (stored results reused) with cohort gating on
    from cytokit.results import ResultsFolder

    out, pops = store
    path = write_pipeline(out.parent / "cfg", sample_trial, name="entry_points",
                          qc={"enabled": True, "min_events": 1000}, outputs={**OUTPUTS_OFF, "cohort_gating": True},
                          cohort_gating={"k": 1.0, "min_shift": 0.01, "accept_flags": None},
                          executor={"jobs": 2, "task": "analyse"})
    summary = run(path, out, stages=False)
    assert summary.failed == 0 and summary.skipped == len(pops["sample_id"].unique())  # nothing re-analysed
    assert summary.stage_errors == {}
    new = pd.read_parquet(out / "populations.parquet").set_index(["sample_id", "population"])
    old = pops.set_index(["sample_id", "population"])
    refits = pd.read_parquet(out / "gating_cohort" / "refits.parquet")
    changed = refits[refits["changed"]]
    assert len(changed) > 0
    keys = set(zip(changed["sample_id"], changed["population"]))
    for row in changed.itertuples():
        key = (row.sample_id, row.population)
        assert new.loc[key, "count"] == row.refit_count and old.loc[key, "count"] == row.count
        assert new.loc[key, "method"].endswith("+cohort") and "cohort_outlier" in new.loc[key, "flags"]
        assert "cohort_outlier" in new.loc[key, "notes"].split(";")  # a note: the re-fit is not a review flag
        stored = {p["population"]: p["count"] for p in ResultsFolder(out).sample_result(row.sample_id)["populations"]}
        assert stored[row.population] == row.count  # the stored per-sample result keeps the original fit
    assert_review_columns_follow_flags(new.reset_index())
    others = [k for k in old.index if k not in keys]
    assert (new.loc[others, "count"] == old.loc[others, "count"]).all()
    assert not new.loc[others, "method"].str.endswith("+cohort").any()


def test_cli_gate_table_carries_the_data_flags_of_the_pipeline_table(shared_data, tmp_path, capsys):
    """A FACSCalibur file without $PnS: its markers come from detector names. `cytokit gate --table` writes
    the same qc_flags on every row as the pipeline's populations.csv (QC flags, markers_from_detector_names)."""
    src = shared_data / "compensation" / "flowcore_calibur" / "data" / "060909.001"
    folder = tmp_path / "in"
    folder.mkdir()
    fcs = folder / "cal.fcs"
    fcs.write_bytes(src.read_bytes())
    table = tmp_path / "gate.csv"
    argv = ["gate", str(fcs), "--strategy", "il2_trial_4colour_naive", "--tube", "naive", "--table", str(table)]
    assert cli_main(argv) == 0
    capsys.readouterr()
    gated = pd.read_csv(table, keep_default_na=False)
    assert set(gated["qc_flags"]) == {"no_time_channel;markers_from_detector_names"}
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "calibur", "manifest": {"input": str(folder), "defaults": {
            "tube": "naive", "patient": "P1", "visit": "W0", "arm": "A"}},
        "tubes": {"naive": {"panel": "il2_trial_4colour", "strategy": "il2_trial_4colour_naive"}},
        "outputs": OUTPUTS_OFF, "executor": {"kind": "serial"}}))
    assert run(cfg, tmp_path / "out").complete
    pops = pd.read_csv(tmp_path / "out" / "populations.csv", keep_default_na=False)
    assert list(pops["qc_flags"]) == list(gated["qc_flags"])
    assert _counts(pops) == _counts(gated)
