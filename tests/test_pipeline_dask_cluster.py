"""A real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, ``cytokit run
--scheduler tcp://...`` in its own process, one worker killed (SIGKILL) while it is analysing samples.

Every process is started by the test with bounded waits and always torn down (``finally``); the workers
also exit by themselves when the scheduler goes away (``--death-timeout``) and the scheduler when idle.
The waits only guard against a hang: on a loaded 2-core machine (load ~17) starting ``cytokit run`` and
storing its first sample took more than 180 s.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cytokit.pipeline import run
from test_pipeline_support import simulate_small_trial, write_pipeline

pytest.importorskip("distributed", reason="the Dask cluster test needs dask[distributed] (extra cytokit[test])")

TABLES = ("populations.parquet", "populations.csv", "samples.parquet", "samples.csv")
N_SAMPLES = 16


def _dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask", *args]


def _wait(predicate, timeout: float, what: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise AssertionError(f"{what}: process {dead[0].args} exited with {dead[0].returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


def _stored(out: Path) -> int:
    try:
        with sqlite3.connect(f"file:{out / 'ledger.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    """16 samples (4 patients x 2 visits x 2 tubes) and one pipeline YAML with the real analysis task."""
    base = tmp_path_factory.mktemp("dask_study")
    trial = simulate_small_trial(base / "trial", events=3000, patients_per_arm=2)
    path = write_pipeline(base / "cfg", trial, name="dask_cluster", qc={"enabled": True, "min_events": 500},
                          outputs={"gatingml": True, "flowjo_workspace": False},
                          executor={"jobs": 2, "task": "analyse"})
    return trial, path


def test_killed_worker_samples_are_retried_and_tables_equal_a_local_run(study, tmp_path):
    from distributed import Client

    _, pipeline = study
    reference = tmp_path / "local"
    summary = run(pipeline, reference, jobs=2)
    assert summary.ok == N_SAMPLES, summary.failures

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    scheduler_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker-a", "worker-b", "cytokit")}
    try:
        procs.append(subprocess.Popen(
            _dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                  str(scheduler_file), "--idle-timeout", "600"),
            stdout=logs["scheduler"], stderr=subprocess.STDOUT, env=env, cwd=tmp_path))
        _wait(scheduler_file.is_file, 300, "dask scheduler start", procs)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = {}
        for name in ("worker-a", "worker-b"):
            workers[name] = subprocess.Popen(
                _dask("worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                      "--death-timeout", "120", "--local-directory", str(tmp_path / name)),
                stdout=logs[name], stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
            procs.append(workers[name])
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=300)
            by_name = {w["name"]: addr for addr, w in client.scheduler_info()["workers"].items()}

            out = tmp_path / "dask"
            cli = subprocess.Popen([sys.executable, "-m", "cytokit", "run", str(pipeline), "--out", str(out),
                                    "--scheduler", address], stdout=logs["cytokit"], stderr=subprocess.STDOUT,
                                   env=env, cwd=tmp_path)
            procs.append(cli)
            # mid-run: at least one sample stored, and worker-a busy with one of ours
            _wait(lambda: _stored(out) >= 1, 600, "first sample stored", procs[:-1] + [cli])
            victim = by_name["worker-a"]
            _wait(lambda: any(str(k).startswith("cytokit-") for k in client.processing(workers=[victim]).get(victim, [])),
                  300, "worker-a analysing a sample", [cli])
            done_before_kill = _stored(out)
            os.kill(workers["worker-a"].pid, signal.SIGKILL)
            workers["worker-a"].wait(timeout=15)
            assert cli.wait(timeout=900) == 0, (tmp_path / "cytokit.log").read_text()
        assert done_before_kill < N_SAMPLES  # the kill really happened mid-run
    finally:
        _stop(procs)
        for fh in logs.values():
            fh.close()
    assert all(p.poll() is not None for p in procs)

    from cytokit.pipeline.ledger import read_ledger

    ledger = read_ledger(out)
    states = ledger.samples()
    assert len(states) == N_SAMPLES and {s["status"] for s in states.values()} == {"ok"}
    assert "dask (tcp://127.0.0.1:" in ledger.runs()[-1]["executor"]
    ledger.close()
    for name in TABLES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
