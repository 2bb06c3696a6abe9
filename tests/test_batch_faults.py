"""Fault isolation and crash safety of batch runs (toy per-sample task on real simulated FCS files)."""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cytokit.cli.main import main as cli_main
from cytokit.errors import PipelineError
from cytokit.pipeline import run
from cytokit.pipeline.ledger import read_ledger
from test_pipeline_support import TESTS_DIR, simulate_small_trial, write_pipeline

TABLES = ("populations.parquet", "populations.csv", "samples.parquet", "samples.csv")


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=2000)


@pytest.fixture()
def pipeline(trial, tmp_path) -> Path:
    return write_pipeline(tmp_path / "cfg", trial)


def _ledger_rows(out: Path, table: str) -> list[dict]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {table}")]


def test_worker_death_fails_only_its_sample(pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOKIT_TOY_CRASH", "P001_W12_tmem")
    summary = run(pipeline, tmp_path / "out", jobs=2)
    assert summary.total == 8 and summary.ok == 7 and summary.failed == 1
    assert "worker process died" in summary.failures["P001_W12_tmem"]
    samples = pd.read_parquet(tmp_path / "out" / "samples.parquet").set_index("sample_id")
    assert samples.at["P001_W12_tmem", "status"] == "failed"
    assert (samples.drop(index="P001_W12_tmem")["status"] == "ok").all()
    pops = pd.read_parquet(tmp_path / "out" / "populations.parquet")
    assert "P001_W12_tmem" not in set(pops["sample_id"]) and pops["sample_id"].nunique() == 7


def test_bad_files_are_recorded_and_the_batch_goes_on(trial, tmp_path, monkeypatch):
    own = Path(shutil.copytree(trial, tmp_path / "trial"))
    victim = own / "fcs" / "P002_W0_nkb.fcs"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # header fine, DATA truncated
    monkeypatch.setenv("CYTOKIT_TOY_FAIL", "P001_W0_nkb")
    out = tmp_path / "out"
    summary = run(write_pipeline(tmp_path / "cfg", own), out, jobs=2)
    assert summary.ok == 6 and set(summary.failures) == {"P002_W0_nkb", "P001_W0_nkb"}
    assert "P002_W0_nkb.fcs" in summary.failures["P002_W0_nkb"]
    assert "injected failure" in summary.failures["P001_W0_nkb"]
    states = {r["sample_id"]: r for r in _ledger_rows(out, "samples")}
    assert states["P002_W0_nkb"]["status"] == "failed" and states["P002_W0_nkb"]["error"]
    assert not (out / "samples" / "P002_W0_nkb" / "result.json").exists()


def test_cli_exit_code_reflects_failures(pipeline, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CYTOKIT_TOY_FAIL", "P002_W12_tmem")
    assert cli_main(["run", str(pipeline), "--out", str(tmp_path / "a"), "-j", "2"]) == 1
    assert "FAILED P002_W12_tmem" in capsys.readouterr().err
    assert cli_main(["run", str(pipeline), "--out", str(tmp_path / "a"), "-j", "2", "--allow-failures"]) == 0
    monkeypatch.delenv("CYTOKIT_TOY_FAIL")
    assert cli_main(["run", str(pipeline), "--out", str(tmp_path / "a"), "-j", "2"]) == 0


def test_unwritable_output_folder_gives_a_clear_error(pipeline, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(PipelineError, match="cannot write output"):
        run(pipeline, blocker / "out")
    assert cli_main(["run", str(pipeline), "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("writes_before_full", [4, 9])  # 3 samples stored / all 8 stored, tables not yet
def test_full_disk_stops_cleanly_and_keeps_earlier_results(pipeline, tmp_path, monkeypatch, writes_before_full):
    import stat

    from cytokit.pipeline import store

    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []
    # every sample is recorded as soon as its files are durable (group commit of one), so the n-th regular
    # file synced is: run_info.json, then one result.json per sample, then tables; folder fsyncs not counted
    monkeypatch.setattr(store, "GROUP_COMMIT_SAMPLES", 1)

    def failing_fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return real_fsync(fd)
        calls.append(fd)
        if len(calls) > writes_before_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(PipelineError) as err:
        run(pipeline, out, jobs=1)
    assert "No space left on device" in str(err.value) and str(out) in str(err.value)
    monkeypatch.setattr(os, "fsync", real_fsync)
    ok_before = {r["sample_id"] for r in _ledger_rows(out, "samples") if r["status"] == "ok"}
    assert len(ok_before) == writes_before_full - 1
    assert not list(out.rglob("*.tmp"))  # no temporary files left behind
    assert not (out / "populations.csv").exists()
    summary = run(pipeline, out, jobs=2)
    assert summary.skipped == writes_before_full - 1 and summary.ok == 8
    runs = read_ledger(out).runs()
    assert [r["status"] for r in runs] == ["failed", "complete"]


def test_tampered_stored_result_is_not_trusted(pipeline, tmp_path):
    out = tmp_path / "out"
    run(pipeline, out, jobs=2)
    reference = (out / "populations.csv").read_bytes()
    result = out / "samples" / "P001_W0_tmem" / "result.json"
    result.write_text(result.read_text()[:100])  # e.g. a partial file from an unsafe copy
    summary = run(pipeline, out, jobs=2)
    assert summary.skipped == 7 and summary.ok == 8
    assert (out / "populations.csv").read_bytes() == reference


def test_concurrent_runs_into_one_folder_are_refused(pipeline, tmp_path):
    from cytokit.pipeline.runner import lock_output_folder

    out = tmp_path / "out"
    held = lock_output_folder(out)  # as if another run were writing there
    try:
        with pytest.raises(PipelineError, match="another cytokit run is writing"):
            run(pipeline, out)
    finally:
        os.close(held)
    assert run(pipeline, out).ok == 8


def _cli(pipeline: Path, out: Path, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cytokit", "run", str(pipeline), "--out", str(out), "-j", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kw)


def test_kill_9_mid_run_then_resume(pipeline, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "killed"
    # samples slow enough that the run is still going when 3 are recorded (group commits come every 2 s)
    proc = _cli(pipeline, out, {**env, "CYTOKIT_TOY_SLEEP": "1.5"})
    deadline = time.monotonic() + 60
    done: set[str] = set()
    while time.monotonic() < deadline and len(done) < 3:
        time.sleep(0.1)
        if (out / "ledger.sqlite").exists():
            try:
                done = {r["sample_id"] for r in _ledger_rows(out, "samples") if r["status"] == "ok"}
            except sqlite3.OperationalError:
                continue
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert 3 <= len(done) < 8
    assert not (out / "populations.parquet").exists()  # tables are only assembled at the end
    assert json.loads((out / "run_info.json").read_text())["status"] == "running"
    finished_before = {r["sample_id"] for r in _ledger_rows(out, "samples") if r["status"] == "ok"}

    again = _cli(pipeline, out, env)
    assert again.wait(timeout=120) == 0, again.stderr.read().decode()
    attempts = pd.DataFrame(_ledger_rows(out, "attempts"))
    per_sample = attempts.groupby("sample_id").size()
    assert (per_sample[sorted(finished_before)] == 1).all()  # completed samples were not recomputed
    assert len(per_sample) == 8 and (attempts.groupby("sample_id")["status"].last() == "ok").all()

    clean = tmp_path / "clean"
    assert _cli(pipeline, clean, env).wait(timeout=120) == 0
    for name in TABLES:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_progress_reporting(pipeline, tmp_path, monkeypatch, caplog):
    from rich.console import Console

    from cytokit.pipeline.progress import RichProgress

    monkeypatch.setenv("CYTOKIT_TOY_FAIL", "P001_W0_nkb")
    with caplog.at_level(logging.INFO, logger="cytokit.pipeline"):
        run(pipeline, tmp_path / "plain", jobs=2)  # library default: plain log lines
    lines = [r.getMessage() for r in caplog.records if r.name == "cytokit.pipeline.progress"]
    assert any(line.startswith("[8/8]") for line in lines)
    assert any("P001_W0_nkb FAILED" in line and "injected failure" in line for line in lines)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    run(pipeline, tmp_path / "rich", jobs=2, progress=RichProgress(console=console))
    text = buf.getvalue()
    assert "8/8" in text and "1 failed" in text and "FAILED P001_W0_nkb" in text
