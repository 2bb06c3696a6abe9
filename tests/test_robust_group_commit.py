"""Group commit of stored results: the ledger never names a sample whose files are not durable, and a run
killed between writing result files and recording them resumes to the same tables as an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cytokit.errors import PipelineError
from cytokit.pipeline import run
from cytokit.pipeline.ledger import open_ledger, read_ledger
from cytokit.pipeline.store import ResultsStore
from cytokit.pipeline.task import SampleJob, SampleOutput
from test_pipeline_support import TESTS_DIR, simulate_small_trial, write_pipeline

TABLES = ("populations.parquet", "populations.csv", "samples.parquet", "samples.csv")


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=1500)


def _job(sample_id: str) -> SampleJob:
    return SampleJob(sample_id=sample_id, path=f"/data/{sample_id}.fcs", sha256="0" * 64, tube="tmem",
                     panel="il2_trial", panel_tube="tmem", strategy="tmem", qc={}, gatingml=True,
                     thumbnails=False, bead_population=None, key=f"key-{sample_id}")


def _output(sample_id: str) -> SampleOutput:
    return SampleOutput(sample_id=sample_id, populations=[{"population": "Lymphocytes", "count": 10}],
                        summary={"n_events": 100}, gates={}, gatingml="<gating/>")


def test_saved_samples_are_recorded_only_by_a_group_commit(tmp_path):
    ledger = open_ledger(tmp_path)
    store = ResultsStore(tmp_path, ledger, batch_samples=3, batch_seconds=3600)
    try:
        store.save(_job("A"), _output("A"), run_id=1)                    # no commit yet: recorded at once
        assert store.pending == 0 and list(ledger.samples()) == ["A"]
        for sid in ("B", "C"):                                           # within the interval: queued
            store.save(_job(sid), _output(sid), run_id=1)
        assert (tmp_path / "samples" / "B" / "result.json").is_file()  # files written ...
        assert sorted(ledger.samples()) == ["A"] and store.pending == 2  # ... but not yet claimed
        store.save(_job("D"), _output("D"), run_id=1)                    # the third one completes the batch
        assert store.pending == 0 and sorted(ledger.samples()) == ["A", "B", "C", "D"]
        assert len(ledger.attempts()) == 4
        states = ledger.samples()
        assert all(store.trusted(s, f"key-{s}", states[s]) for s in states)
        store.save(_job("E"), SampleOutput.failed("E", "unreadable"), run_id=1)
        assert store.pending == 1 and store.commit() == 1 and ledger.samples()["E"]["status"] == "failed"
        assert store.commit() == 0
    finally:
        store.close()
        ledger.close()


def test_a_result_saved_after_the_interval_is_committed_at_once(tmp_path):
    ledger = open_ledger(tmp_path)
    store = ResultsStore(tmp_path, ledger, batch_samples=1000, batch_seconds=0.0)
    try:
        for sid in ("A", "B"):
            store.save(_job(sid), _output(sid), run_id=1)
            assert store.pending == 0 and sid in ledger.samples()
    finally:
        store.close()
        ledger.close()


def test_files_that_cannot_be_made_durable_are_never_recorded(tmp_path, monkeypatch):
    from cytokit import io_utils

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    ledger = open_ledger(tmp_path)
    store = ResultsStore(tmp_path, ledger, batch_samples=100, batch_seconds=3600)
    try:
        monkeypatch.setattr(io_utils.os, "fsync", failing_fsync)
        with pytest.raises(PipelineError, match="cannot make output durable"):
            store.save(_job("A"), _output("A"), run_id=1)  # the first result is committed at once
        assert ledger.samples() == {} and store.pending == 1  # kept: nothing of the batch was claimed
    finally:
        monkeypatch.undo()
        store.close()
        ledger.close()


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from cytokit.pipeline import ledger, run, store

    store.GROUP_COMMIT_SAMPLES = 3
    store.GROUP_COMMIT_SECONDS = 3600.0
    calls = []
    real = ledger.Ledger.record_samples

    def record_then_die(self, rows):
        rows = list(rows)
        calls.append(len(rows))
        if len(calls) == 2:  # the second commit (3 samples): files written and synced, no ledger transaction
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, rows)

    ledger.Ledger.record_samples = record_then_die
    run({pipeline!r}, {out!r}, jobs=2)
""")


def test_a_kill_between_writing_files_and_their_group_commit_resumes_correctly(trial, tmp_path):
    pipeline = write_pipeline(tmp_path / "cfg", trial, outputs={"gatingml": True},
                              executor={"jobs": 2, "task": "analyse"}, qc={"enabled": True, "min_events": 500})
    reference = run(pipeline, tmp_path / "reference", jobs=2)
    assert reference.ok == 8 and reference.failed == 0

    out = tmp_path / "out"
    script = KILLED_RUN.format(tests=str(TESTS_DIR), pipeline=str(pipeline), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(TESTS_DIR)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ledger = read_ledger(out)
    try:
        recorded = ledger.samples()
        assert ledger.last_run()["status"] == "running"  # killed: nothing could be recorded at the end
    finally:
        ledger.close()
    on_disk = {p.parent.name for p in (out / "samples").glob("*/result.json")}
    assert len(recorded) == 1 and all(r["status"] == "ok" for r in recorded.values())  # the first commit
    unrecorded = on_disk - set(recorded)
    assert len(unrecorded) >= 3, (sorted(on_disk), sorted(recorded))  # the killed batch: files, no rows

    resumed = run(pipeline, out, jobs=2)
    assert resumed.skipped == 1 and resumed.ok == 8 and resumed.failed == 0  # the others analysed again
    ledger = read_ledger(out)
    try:
        resumed_run = ledger.last_run()["run_id"]
        again = {a["sample_id"] for a in ledger.attempts() if a["run_id"] == resumed_run}
    finally:
        ledger.close()
    assert again == {s for s in reference_ids(tmp_path / "reference")} - set(recorded)
    for name in TABLES:
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


def reference_ids(out: Path) -> set[str]:
    ledger = read_ledger(out)
    try:
        return set(ledger.samples())
    finally:
        ledger.close()
