"""The run ledger: an SQLite file recording what each run read, how, and what became of every sample.

Contract
--------
``OUT/ledger.sqlite`` has five tables:

* ``runs``: one row per invocation (``run_id``, ``pipeline``, ``pipeline_name``, ``config_hash``,
  ``cytokit_version``, ``package_versions`` JSON, ``executor``, ``started``/``finished`` ISO UTC,
  ``status`` running|complete|failed, ``n_ok``, ``n_failed``, ``n_skipped``, ``message``);
* ``inputs``: every input of a run (``run_id``, ``kind`` fcs|manifest|clinical|panel|strategy|...,
  ``name``, ``path``, ``sha256``);
* ``samples``: the current state of each sample (``sample_id`` primary key, ``file``, ``sha256``, ``key``
  = hash of file + definitions, ``status`` ok|failed, ``error``, ``result_sha256`` of its stored
  ``result.json``, ``seconds``, ``peak_rss_mb``, ``timings`` JSON, ``run_id``, ``finished``);
* ``attempts``: the history of every sample attempt (same columns, append-only);
* ``stages``: the last successful run of each cohort stage (``stage`` primary key, ``fingerprint`` of
  its inputs, ``outputs_sha256`` of its output folder, ``inputs`` JSON, ``finished``), see
  :mod:`cytokit.pipeline.stages`.

A sample row is written only after its result files are complete and durable on disk (atomic rename,
fsync'ed), inside one SQLite transaction (``synchronous=FULL``) that may record several samples at once
(group commit, see :mod:`cytokit.pipeline.store`), so a crash can never leave a row that points at a
partial or lost result.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ..errors import PipelineError
from ..results import schema as S

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT, pipeline_name TEXT, config_hash TEXT,
    cytokit_version TEXT, package_versions TEXT, executor TEXT, started TEXT, finished TEXT,
    status TEXT, n_ok INTEGER, n_failed INTEGER, n_skipped INTEGER, message TEXT);
CREATE TABLE IF NOT EXISTS inputs (
    run_id INTEGER, kind TEXT, name TEXT, path TEXT, sha256 TEXT);
CREATE TABLE IF NOT EXISTS samples (
    sample_id TEXT PRIMARY KEY, file TEXT, sha256 TEXT, key TEXT, status TEXT, error TEXT,
    result_sha256 TEXT, seconds REAL, peak_rss_mb REAL, timings TEXT, run_id INTEGER, finished TEXT);
CREATE TABLE IF NOT EXISTS attempts (
    sample_id TEXT, file TEXT, sha256 TEXT, key TEXT, status TEXT, error TEXT,
    result_sha256 TEXT, seconds REAL, peak_rss_mb REAL, timings TEXT, run_id INTEGER, finished TEXT);
CREATE TABLE IF NOT EXISTS stages (
    stage TEXT PRIMARY KEY, fingerprint TEXT, outputs_sha256 TEXT, inputs TEXT, finished TEXT);
"""

SAMPLE_COLUMNS = (S.SAMPLE_ID, S.FILE, S.SHA256, "key", S.STATUS, S.ERROR, "result_sha256", "seconds",
                  "peak_rss_mb", "timings", "run_id", "finished")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """The SQLite run ledger of one output folder (opened by the parent process only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise PipelineError(f"cannot open the run ledger: {exc}", path=self.path) from exc

    # -- low level --------------------------------------------------------------------------------
    def _write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        try:
            with self._db:  # one transaction
                self._db.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise PipelineError(f"cannot write the run ledger: {exc}", path=self.path) from exc

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            self._db.row_factory = sqlite3.Row
            return list(self._db.execute(sql, params))
        except sqlite3.Error as exc:
            raise PipelineError(f"cannot read the run ledger: {exc}", path=self.path) from exc

    def close(self) -> None:
        self._db.close()

    # -- runs -------------------------------------------------------------------------------------
    def start_run(self, *, pipeline: str, pipeline_name: str, config_hash: str, cytokit_version: str,
                  package_versions: dict[str, str], executor: str,
                  inputs: Iterable[tuple[str, str, str, str]]) -> int:
        """Record a new run and its inputs ``(kind, name, path, sha256)``; returns its run id."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT INTO runs (pipeline, pipeline_name, config_hash, cytokit_version, package_versions,"
                    " executor, started, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                    (pipeline, pipeline_name, config_hash, cytokit_version,
                     json.dumps(package_versions, sort_keys=True), executor, utc_now()))
                assert cur.lastrowid is not None  # set by a successful INSERT
                run_id = int(cur.lastrowid)
                self._db.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?, ?)",
                                     [(run_id, *row) for row in inputs])
        except sqlite3.Error as exc:
            raise PipelineError(f"cannot write the run ledger: {exc}", path=self.path) from exc
        return run_id

    def finish_run(self, run_id: int, *, status: str, n_ok: int, n_failed: int, n_skipped: int,
                   message: str = "") -> None:
        self._write([("UPDATE runs SET finished=?, status=?, n_ok=?, n_failed=?, n_skipped=?, message=?"
                      " WHERE run_id=?", (utc_now(), status, n_ok, n_failed, n_skipped, message, run_id))])

    def last_run(self) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1")
        return dict(rows[0]) if rows else None

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM runs ORDER BY run_id")]

    def inputs(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM inputs WHERE run_id=? ORDER BY kind, name", (run_id,))]

    # -- samples ----------------------------------------------------------------------------------
    def record_sample(self, row: dict[str, Any]) -> None:
        """Upsert the sample's current state and append it to the attempt history (one transaction)."""
        self.record_samples([row])

    def record_samples(self, rows: Iterable[dict[str, Any]]) -> None:
        """:meth:`record_sample` for several samples in one transaction (all recorded, or none)."""
        marks = ", ".join("?" * len(SAMPLE_COLUMNS))
        statements = []
        for row in rows:
            values = tuple(row.get(c) for c in SAMPLE_COLUMNS)
            statements += [(f"INSERT OR REPLACE INTO samples VALUES ({marks})", values),
                           (f"INSERT INTO attempts VALUES ({marks})", values)]
        if statements:
            self._write(statements)

    def samples(self) -> dict[str, dict[str, Any]]:
        return {r[S.SAMPLE_ID]: dict(r) for r in self._query("SELECT * FROM samples")}

    def attempts(self, sample_id: str | None = None) -> list[dict[str, Any]]:
        if sample_id is None:
            return [dict(r) for r in self._query("SELECT * FROM attempts")]
        return [dict(r) for r in self._query("SELECT * FROM attempts WHERE sample_id=?", (sample_id,))]

    def forget_samples(self, keep: Iterable[str]) -> list[str]:
        """Drop current-state rows of samples not in ``keep`` (no longer in the manifest); returns them."""
        keep = set(keep)
        stale = [s for s in self.samples() if s not in keep]
        self._write([("DELETE FROM samples WHERE sample_id=?", (s,)) for s in stale])
        return stale

    # -- cohort stages ----------------------------------------------------------------------------
    def stages(self) -> dict[str, dict[str, Any]]:
        """stage -> its last successful record (fingerprint, outputs_sha256, inputs, finished)."""
        return {r["stage"]: dict(r) for r in self._query("SELECT * FROM stages")}

    def record_stage(self, stage: str, fingerprint: str, outputs_sha256: str, inputs: str) -> None:
        self._write([("INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?)",
                      (stage, fingerprint, outputs_sha256, inputs, utc_now()))])

    def forget_stage(self, stage: str) -> None:
        self._write([("DELETE FROM stages WHERE stage=?", (stage,))])


def open_ledger(out: str | Path) -> Ledger:
    return Ledger(Path(out) / "ledger.sqlite")


def read_ledger(out: str | Path) -> Ledger:
    """Open an existing ledger (read use); a folder without one raises PipelineError."""
    path = Path(out) / "ledger.sqlite"
    if not path.is_file():
        raise PipelineError("no run ledger here: not a cytokit results folder", path=Path(out))
    return Ledger(path)

