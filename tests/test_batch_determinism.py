"""Byte-identical tables across runs, worker counts and executors; resume recomputes only what changed."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cytokit.pipeline import run
from cytokit.pipeline.ledger import read_ledger
from test_pipeline_support import simulate_small_trial, write_pipeline

TABLES = ("populations.parquet", "populations.csv", "samples.parquet", "samples.csv")


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=2000)


@pytest.fixture(scope="module")
def reference(trial, tmp_path_factory) -> Path:
    """One uninterrupted run with 2 local workers."""
    base = tmp_path_factory.mktemp("ref")
    out = base / "out"
    run(write_pipeline(base / "cfg", trial), out, jobs=2)
    return out


def _same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_tables_follow_the_schema_and_sort_order(reference):
    pops = pd.read_parquet(reference / "populations.parquet")
    for col in ("sample_id", "file", "sha256", "patient", "visit", "week", "arm", "tube", "population", "parent",
                "count", "parent_count", "pct_parent", "pct_lymphocytes", "abs_count_per_uL", "abs_method",
                "marker_medians", "method", "flags", "qc_flags"):
        assert col in pops.columns, col
    assert list(pops["sample_id"]) == sorted(pops["sample_id"])
    assert pops["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    samples = pd.read_parquet(reference / "samples.parquet")
    assert list(samples["sample_id"]) == sorted(samples["sample_id"]) and len(samples) == 8
    assert (pd.read_csv(reference / "clinical.csv")["patient"].nunique()) == 2
    inputs = pd.read_csv(reference / "inputs.csv")
    assert {"fcs", "manifest", "clinical", "panel", "strategy", "pipeline"} <= set(inputs["kind"])
    import json

    import pyarrow.parquet as pq

    recorded = json.loads(pq.read_schema(reference / "populations.parquet").metadata[b"cytokit.inputs"])
    assert recorded == {f"{k}:{n}": h for k, n, h in zip(inputs["kind"], inputs["name"], inputs["sha256"])}
    assert set(pops["sha256"]) == set(inputs.loc[inputs["kind"] == "fcs", "sha256"])


def test_identical_across_runs_and_worker_counts(trial, reference, tmp_path):
    path = write_pipeline(tmp_path / "cfg", trial)
    run(path, tmp_path / "one", jobs=1)
    _same_tables(reference, tmp_path / "one")
    run(path, tmp_path / "serial", executor=__import__("cytokit.pipeline.executors", fromlist=["x"]).SerialExecutor())
    _same_tables(reference, tmp_path / "serial")


def test_dask_local_cluster_matches_local_executor(trial, reference, tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask executor needs cytokit[distributed]")
    import dask

    own = Path(shutil.copytree(trial, tmp_path / "trial"))
    # a crashed worker's nanny restarts it; LocalCluster closes a worker that has not come back within
    # lost-worker-timeout (15 s), which a loaded machine can exceed, and with it the samples re-run there
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.deploy.lost-worker-timeout": "600s"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster:
        summary = run(write_pipeline(tmp_path / "cfg", trial), tmp_path / "dask", scheduler=cluster.scheduler_address)
        assert summary.ok == 8
        _same_tables(reference, tmp_path / "dask")
        assert "dask" in read_ledger(tmp_path / "dask").runs()[-1]["executor"]
        (own / "fcs" / "P002_W0_nkb.fcs.crash").touch()  # that sample's worker process dies
        crashed = run(write_pipeline(tmp_path / "cfg2", own), tmp_path / "dask2", scheduler=cluster.scheduler_address)
    assert crashed.ok == 7 and list(crashed.failures) == ["P002_W0_nkb"]
    assert "worker process died" in crashed.failures["P002_W0_nkb"]


def test_resume_skips_unchanged_and_recomputes_changed(trial, tmp_path):
    own = Path(shutil.copytree(trial, tmp_path / "trial"))
    path = write_pipeline(tmp_path / "cfg", own)
    out = tmp_path / "out"
    assert run(path, out).skipped == 0
    assert run(path, out).skipped == 8                       # nothing changed: nothing recomputed
    fcs = own / "fcs"
    shutil.copyfile(fcs / "P001_W12_tmem.fcs", fcs / "P001_W0_tmem.fcs")  # an input file changed
    again = run(path, out)
    assert again.skipped == 7
    last = read_ledger(out).attempts("P001_W0_tmem")[-1]
    assert last["run_id"] == read_ledger(out).runs()[-1]["run_id"]
    changed = write_pipeline(tmp_path / "cfg", own, qc={"enabled": False, "min_events": 50})  # a definition changed
    assert run(changed, out).skipped == 0


def test_other_pipeline_needs_force(trial, reference, tmp_path):
    out = tmp_path / "out"
    run(write_pipeline(tmp_path / "cfg", trial), out)
    other = write_pipeline(tmp_path / "cfg2", trial, name="another_study")
    from cytokit.errors import PipelineError

    with pytest.raises(PipelineError, match="--force"):
        run(other, out)
    summary = run(other, out, force=True)
    assert summary.ok == 8
    assert read_ledger(out).runs()[-1]["pipeline_name"] == "another_study"


def test_folder_of_a_run_stopped_before_recording_itself_is_continued(trial, tmp_path):
    """A run killed between creating its ledger and recording its run row leaves a ledger without runs:
    nothing there is trusted, so the next run continues in the folder without --force (seen in the chaos test)."""
    from cytokit.pipeline.ledger import open_ledger

    out = tmp_path / "out"
    out.mkdir()
    open_ledger(out).close()  # the ledger exists, no run recorded
    (out / "run_info.json").write_text("{}")
    summary = run(write_pipeline(tmp_path / "cfg", trial), out)
    assert summary.ok == 8 and [r["status"] for r in read_ledger(out).runs()] == ["complete"]
