"""The results store: per-sample results written atomically, recorded in the ledger, read back for assembly.

Contract
--------
Each analysed sample gets ``OUT/samples/<sample_id>/`` holding ``result.json`` (populations, summary,
concrete gates, timings) and, when enabled, ``gates.xml`` (Gating-ML 2.0) and ``gates.png``. Files are
written with :mod:`cytokit.io_utils` (temporary file + rename); ``result.json`` is written last and its
sha256 is recorded in the ledger in one transaction. A result is *trusted* only when the ledger says
``ok`` for the same key and the file on disk still has the recorded sha256; anything else is recomputed.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

from ..io_utils import atomic_write_bytes, atomic_write_text, safe_name, sha256_bytes
from ..results import ResultsFolder
from ..results import schema as S
from ..results.schema import GATES_PNG, GATES_XML, RESULT_FILE, SAMPLES_DIR
from .ledger import Ledger, utc_now
from .task import SampleJob, SampleOutput

log = logging.getLogger(__name__)



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
    """One output folder: per-sample result folders plus the ledger (parent process only)."""

    def __init__(self, out: str | Path, ledger: Ledger) -> None:
        self.out = Path(out)
        self.ledger = ledger

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
        """Write a sample's files atomically, then record it in the ledger (raises PipelineError on I/O failure)."""
        result_sha = ""
        if output.status == "ok":
            folder = self.sample_dir(job.sample_id)
            if output.gatingml:
                atomic_write_text(folder / GATES_XML, output.gatingml)
            if output.thumbnails:
                atomic_write_bytes(folder / GATES_PNG, output.thumbnails)
            for name, data in sorted(output.files.items()):
                atomic_write_bytes(folder / safe_name(name), data)
            payload = {
                S.SAMPLE_ID: job.sample_id, S.FILE: job.path, S.SHA256: job.sha256, S.TUBE: job.tube,
                "key": job.key, "populations": output.populations, "summary": output.summary,
                "gates": output.gates, "timings": output.timings,
            }
            text = dumps(payload)
            atomic_write_text(folder / RESULT_FILE, text)
            result_sha = sha256_bytes(text.encode("utf-8"))
        self.ledger.record_sample({
            S.SAMPLE_ID: job.sample_id, S.FILE: job.path, S.SHA256: job.sha256, "key": job.key,
            S.STATUS: output.status, S.ERROR: output.error, "result_sha256": result_sha,
            "seconds": round(output.seconds, 4), "peak_rss_mb": round(output.peak_rss_mb, 1),
            "timings": json.dumps(output.timings, sort_keys=True), "run_id": run_id, "finished": utc_now(),
        })

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
