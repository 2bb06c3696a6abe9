"""The results store: per-sample results written atomically, recorded in the ledger, read back for assembly.

Contract
--------
Each analysed sample gets ``OUT/samples/<sample_id>/`` holding ``result.json`` (populations, summary,
concrete gates, timings) and, when enabled, ``gates.xml`` (Gating-ML 2.0) and ``gates.png``. Files are
written with :mod:`cytokit.io_utils` (temporary file + rename); ``result.json`` is written last and its
sha256 is recorded in the ledger. A result is *trusted* only when the ledger says ``ok`` for the same key
and the file on disk still has the recorded sha256; anything else is recomputed.

Group commit: :meth:`ResultsStore.save` writes a sample's files (atomic rename, not yet fsync'ed), starts
their fsync in a background thread and queues its ledger row; :meth:`ResultsStore.commit` waits until
every queued file and folder is durable, fsyncs the folders holding them, and only then records all
queued rows in one ledger transaction. The store commits by itself as a result is saved when no commit
happened in the last :data:`GROUP_COMMIT_SECONDS` (so a slow run records every sample at once and a fast
one commits about once per interval) or when :data:`GROUP_COMMIT_SAMPLES` rows are queued; the runner
commits after the last result and when the run is interrupted or fails. The ledger therefore never names a sample whose files are not durable; a crash
between writing files and their commit loses only the ledger rows of the queued samples, which are
analysed again on resume (their files are overwritten).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from ..io_utils import atomic_write_bytes, atomic_write_text, safe_name, sha256_bytes, sync_paths
from ..results import ResultsFolder
from ..results import schema as S
from ..results.schema import GATES_PNG, GATES_XML, RESULT_FILE, SAMPLES_DIR
from .ledger import Ledger, utc_now
from .task import SampleJob, SampleOutput

log = logging.getLogger(__name__)

#: at most one automatic group commit per this many seconds (a result saved later than that after the
#: last commit is committed at once, with whatever is queued) ...
GROUP_COMMIT_SECONDS = 0.5
#: ... unless this many finished samples are queued
GROUP_COMMIT_SAMPLES = 64
#: threads that fsync saved files in the background (concurrent fsyncs share the file system's journal commits)
SYNC_THREADS = 8


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> str:
    """Canonical JSON (sorted keys, exact float round trip, NaN allowed) for stored results."""
    return json.dumps(data, sort_keys=True, indent=1, default=_json_default)


class ResultsStore:
    """One output folder: per-sample result folders plus the ledger (parent process only).

    ``batch_samples`` / ``batch_seconds``: group commit limits (default :data:`GROUP_COMMIT_SAMPLES`,
    :data:`GROUP_COMMIT_SECONDS`); ``batch_samples=1`` records every sample as soon as it is saved."""

    def __init__(self, out: str | Path, ledger: Ledger, *, batch_samples: int | None = None,
                 batch_seconds: float | None = None) -> None:
        self.out = Path(out)
        self.ledger = ledger
        self.batch_samples = max(1, GROUP_COMMIT_SAMPLES if batch_samples is None else batch_samples)
        self.batch_seconds = GROUP_COMMIT_SECONDS if batch_seconds is None else batch_seconds
        self._rows: list[dict[str, Any]] = []
        self._syncs: list[Future] = []  # fsync of each queued sample's files and folder, started at save
        self._parents: dict[Path, None] = {}  # ordered set: folders holding the queued sample folders
        self._last_commit: float | None = None  # time.monotonic() of the last commit
        self._pool: ThreadPoolExecutor | None = None

    def _syncer(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="cytokit-fsync")
        return self._pool

    def close(self) -> None:
        """Stop the fsync threads (queued samples stay queued: call :meth:`commit` first to record them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def sample_dir(self, sample_id: str) -> Path:
        return self.out / SAMPLES_DIR / safe_name(sample_id)

    def trusted(self, sample_id: str, key: str, state: dict[str, Any] | None) -> bool:
        """True when the stored result of ``sample_id`` was made from exactly this key and is intact."""
        if not state or state.get(S.STATUS) != "ok" or state.get("key") != key:
            return False
        path = self.sample_dir(sample_id) / RESULT_FILE
        try:
            return sha256_bytes(path.read_bytes()) == state.get("result_sha256")
        except OSError:
            return False

    def save(self, job: SampleJob, output: SampleOutput, run_id: int) -> None:
        """Write a sample's files atomically and queue its ledger row; commits the queue when it is due
        (see module contract). Raises PipelineError on I/O failure."""
        result_sha = ""
        if output.status == "ok":
            folder = self.sample_dir(job.sample_id)
            written = []
            if output.gatingml:
                written.append(atomic_write_text(folder / GATES_XML, output.gatingml, sync=False))
            if output.thumbnails:
                written.append(atomic_write_bytes(folder / GATES_PNG, output.thumbnails, sync=False))
            for name, data in sorted(output.files.items()):
                written.append(atomic_write_bytes(folder / safe_name(name), data, sync=False))
            payload = {
                S.SAMPLE_ID: job.sample_id, S.FILE: job.path, S.SHA256: job.sha256, S.TUBE: job.tube,
                "key": job.key, "populations": output.populations, "summary": output.summary,
                "gates": output.gates, "timings": output.timings,
            }
            text = dumps(payload)
            written.append(atomic_write_text(folder / RESULT_FILE, text, sync=False))
            result_sha = sha256_bytes(text.encode("utf-8"))
            # the files reach the disk while the workers go on; commit() waits for them
            self._syncs.append(self._syncer().submit(sync_paths, written, [folder], threads=1))
            self._parents[folder.parent] = None
        self._rows.append({
            S.SAMPLE_ID: job.sample_id, S.FILE: job.path, S.SHA256: job.sha256, "key": job.key,
            S.STATUS: output.status, S.ERROR: output.error, "result_sha256": result_sha,
            "seconds": round(output.seconds, 4), "peak_rss_mb": round(output.peak_rss_mb, 1),
            "timings": json.dumps(output.timings, sort_keys=True), "run_id": run_id, "finished": utc_now(),
        })
        if (len(self._rows) >= self.batch_samples or self._last_commit is None
                or time.monotonic() - self._last_commit >= self.batch_seconds):
            self.commit()

    @property
    def pending(self) -> int:
        """Samples saved but not yet recorded in the ledger."""
        return len(self._rows)

    def commit(self) -> int:
        """Group commit: wait until the queued samples' files and folders are fsync'ed, fsync the folders
        holding them, then record the queued rows in one ledger transaction; returns the number of
        samples recorded. On failure (PipelineError) nothing of the queue is recorded and it is kept."""
        if not self._rows:
            return 0
        for sync in self._syncs:
            sync.result()  # raises the PipelineError of a file that could not be synced
        if self._parents:
            sync_paths([], [*self._parents, self.out])
        rows = self._rows
        self.ledger.record_samples(rows)
        self._rows, self._syncs, self._parents = [], [], {}
        self._last_commit = time.monotonic()
        return len(rows)

    def verified(self, keys: dict[str, str], states: dict[str, dict[str, Any]]) -> "StoredResults":
        """The trusted stored results among ``keys`` (sample_id -> key), read lazily (see :class:`StoredResults`)."""
        ids = [sid for sid, key in keys.items() if self.trusted(sid, key, states.get(sid))]
        return StoredResults(self, ids)

    def load(self, sample_id: str) -> dict[str, Any]:
        """The stored ``result.json`` of a sample."""
        return ResultsFolder(self.out).sample_result(sample_id)


class StoredResults(Mapping):
    """Read-only mapping sample_id -> stored ``result.json`` that reads each file when asked for it.

    Table assembly walks the samples one at a time, so a run of 10,000 samples never holds 10,000 parsed
    results at once: memory grows with the tables, not with the stored results. It holds only the folder
    and the ids (picklable), so worker processes can read their share (:meth:`subset`).
    """

    def __init__(self, store: ResultsStore | Path, sample_ids: list[str]) -> None:
        self._out = Path(store.out if isinstance(store, ResultsStore) else store)
        self._ids = list(dict.fromkeys(sample_ids))
        self._known = set(self._ids)

    def __getitem__(self, sample_id: str) -> dict[str, Any]:
        if sample_id not in self._known:
            raise KeyError(sample_id)
        return ResultsFolder(self._out).sample_result(sample_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._known

    def subset(self, sample_ids: list[str]) -> "StoredResults":
        """The same lazy mapping narrowed to ``sample_ids``."""
        return StoredResults(self._out, [s for s in sample_ids if s in self._known])
