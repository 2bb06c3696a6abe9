"""Chaos: ``cytokit run`` killed with SIGTERM or SIGKILL at random moments, again and again, then resumed.

After every kill: no process of the run is left, the output lock is free. After the final resume the
tables and reports equal those of an uninterrupted run byte for byte. A 6-file simulated study (~3k
events per file) and the toy per-sample task keep it quick; the cohort stage is the real report stage.
"""
from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_pipeline_support import TESTS_DIR, simulate_small_trial, write_pipeline

KILLS = 20
#: outputs that legitimately differ between runs (run ledger, run-level timestamps, per-sample timings)
VOLATILE = {"ledger.sqlite", "run_info.json", ".cytokit.lock"}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("chaos")
    trial = simulate_small_trial(base / "trial", events=3000, visits=("W0", "W12", "W24"))
    manifest = pd.read_csv(trial / "manifest.csv", dtype=str, keep_default_na=False)
    manifest[manifest["tube"] == "tmem"].to_csv(trial / "manifest6.csv", index=False, lineterminator="\n")
    return write_pipeline(base / "cfg", trial, name="chaos", manifest={"path": "../trial/manifest6.csv"},
                          outputs={"reports": True}, report={"pdf": False})


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
            "CYTOKIT_TOY_SLEEP": "0.15"}


def _start(pipeline: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cytokit", "-q", "run", str(pipeline), "--out", str(out), *extra],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def session_processes(sid: int) -> list[int]:
    """Pids of live (non-zombie) processes in session ``sid`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _wait_for_no_processes(sid: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _lock_is_free(out: Path) -> bool:
    lock = out / ".cytokit.lock"
    if not lock.exists():
        return True
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in VOLATILE and p.name != "result.json"}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find left-over processes")
def test_kill_at_random_moments_then_resume(study, tmp_path):
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    ref = _start(study, reference)
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()
    duration = time.monotonic() - t0
    expected = _outputs(reference)
    assert {"populations.csv", "populations.parquet", "samples.csv", "reports/P001.html"} <= set(expected)

    rng = random.Random(14)
    out = tmp_path / "chaos"
    outcomes = []
    for i in range(KILLS):
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGKILL
        # a complete study re-runs in seconds (stored samples and unchanged cohort stages are reused), so
        # every SIGKILL run redoes everything (--recompute) to stay long enough to be interrupted
        proc = _start(study, out, *(("--recompute",) if sig == signal.SIGKILL else ()))
        time.sleep(rng.uniform(0.5, max(1.0, duration)))
        if proc.poll() is None:
            os.kill(proc.pid, sig)  # the run's main process only, as a user or a scheduler would
        rc = proc.wait(timeout=60)
        err = proc.stderr.read().decode()
        outcomes.append(rc)
        assert rc in (0, -signal.SIGKILL, 143, -signal.SIGTERM), (i, rc, err)
        assert "Traceback" not in err, err
        left = _wait_for_no_processes(proc.pid)
        assert not left, f"kill {i} ({sig.name}): processes left behind: {left}"
        assert _lock_is_free(out), f"kill {i} ({sig.name}): the output lock is still held"
    assert sum(rc != 0 for rc in outcomes) >= KILLS // 2, outcomes  # most runs really were interrupted

    final = _start(study, out)
    assert final.wait(timeout=300) == 0, final.stderr.read().decode()
    assert _wait_for_no_processes(final.pid) == []
    got = _outputs(out)
    assert sorted(got) == sorted(expected)  # no partial or temporary file left over
    for name, data in expected.items():
        assert got[name] == data, name


def _wait_for_samples(out: Path, n: int, timeout: float = 120.0) -> None:
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(out / "ledger.sqlite") as db:
                if db.execute("SELECT COUNT(*) FROM samples WHERE status='ok'").fetchone()[0] >= n:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} samples finished within {timeout}s")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find left-over processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_die_with_the_run_and_the_folder_is_free_again(study, tmp_path, sig):
    import json
    import sqlite3

    out = tmp_path / "out"
    env = {**_env(), "CYTOKIT_TOY_SLEEP": "1.5"}
    proc = subprocess.Popen([sys.executable, "-m", "cytokit", "-q", "run", str(study), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for_samples(out, 1)
    assert len(session_processes(proc.pid)) >= 3  # the run and its two workers, busy with a sample
    os.kill(proc.pid, sig)
    rc = proc.wait(timeout=60)
    assert rc == (143 if sig == signal.SIGTERM else -signal.SIGKILL), proc.stderr.read().decode()
    assert _wait_for_no_processes(proc.pid, timeout=5.0) == []
    assert _lock_is_free(out)
    status = json.loads((out / "run_info.json").read_text())["status"]
    with sqlite3.connect(out / "ledger.sqlite") as db:
        ledger_status = db.execute("SELECT status FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    if sig == signal.SIGTERM:  # unwound: the interruption is recorded
        assert status == "interrupted" and ledger_status == "interrupted"
    else:
        assert status == "running"  # kill -9: nothing could be recorded; `cytokit report` refuses it
    again = _start(study, out)
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()


def test_a_stale_lock_is_recognised(tmp_path, monkeypatch):
    """The lock's owner is dead but something it left still holds the lock: wait briefly, then say so."""
    from cytokit.errors import PipelineError
    from cytokit.pipeline import runner

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(out / '.cytokit.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'999999999\\n')\n"  # a pid that does not exist: the owner died
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[1]))\n"), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(runner, "STALE_LOCK_WAIT_SECONDS", 0.5)
        with pytest.raises(PipelineError, match=r"\(pid 999999999\) is no longer running"):
            runner.lock_output_folder(out)
        monkeypatch.setattr(runner, "STALE_LOCK_WAIT_SECONDS", 30.0)
        fd = runner.lock_output_folder(out)  # the left-over holder exits: the lock is taken over
        os.close(fd)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_bound_to_the_run_work_with_every_start_method(study, tmp_path, start_method):
    """With ``forkserver`` a worker's direct parent is the fork server, not the run: it must still work."""
    from cytokit.pipeline import run

    summary = run(study, tmp_path / "out", jobs=2, start_method=start_method)
    assert summary.ok == 6 and summary.failed == 0, summary.failures
