"""The per-sample task contract: a picklable :class:`SampleJob` in, a picklable :class:`SampleOutput` out.

Contract
--------
A task is a plain module-level function ``task(job: SampleJob) -> SampleOutput`` with no side effects
outside its return value (workers may be remote Dask processes without access to the output folder; the
parent process writes every result). :func:`execute` wraps a task so that any exception becomes a failed
:class:`SampleOutput` carrying the reason: one bad file never stops a batch. :data:`TASKS` is the registry
of built-in tasks; a pipeline may also name ``"package.module:function"``.
"""
from __future__ import annotations

import importlib
import logging
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigError, CytokitError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleJob:
    """Everything a worker needs to analyse one sample (paths absolute, definitions by name or path).

    ``panel_definition`` / ``strategy_definition`` optionally carry the already validated definitions
    (pydantic models) so workers do not parse the same YAML for every file.
    """

    sample_id: str
    path: str
    sha256: str
    tube: str
    panel: str
    panel_tube: str | None
    strategy: str
    qc: dict[str, Any] = field(default_factory=dict)
    gatingml: bool = True
    thumbnails: bool = False
    bead_population: str = "Beads"
    key: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    panel_definition: Any = None
    strategy_definition: Any = None


@dataclass
class SampleOutput:
    """What a task returns for one sample.

    ``populations``: one dict per population with the gating-result columns of docs/architecture.md
    (``population``, ``parent``, ``count``, ``parent_count``, ``pct_parent`` %, ``pct_lymphocytes`` %,
    ``method``, ``flags``, ``marker_medians`` JSON on the transformed scale). ``summary``: per-sample
    values (``n_events``, ``n_events_qc``, ``qc_flags``...). ``gates``: one dict (population, parent,
    gate, components) per fitted population in strategy order,
    to re-apply the concrete gates later. ``files``: further per-sample files (name -> bytes, e.g.
    ``events.npz`` for the AnnData export) stored next to the result. ``timings``: stage -> seconds; ``peak_rss_mb``: the worker's
    peak resident memory (MB) after the task.
    """

    sample_id: str
    status: str = "ok"
    error: str = ""
    populations: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    gatingml: str | None = None
    thumbnails: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    pid: int = 0
    seconds: float = 0.0

    @classmethod
    def failed(cls, sample_id: str, error: str) -> "SampleOutput":
        return cls(sample_id=sample_id, status="failed", error=error)


#: built-in tasks: name -> "module:function"
TASKS: dict[str, str] = {
    "analyse": "cytokit.pipeline.analyse:analyse_sample",
}


def resolve_task(spec: str | Callable[[SampleJob], SampleOutput]) -> Callable[[SampleJob], SampleOutput]:
    """A task function from a registry name, a ``module:function`` string, or a callable."""
    if callable(spec):
        return spec
    target = TASKS.get(spec, spec)
    module_name, _, func_name = target.partition(":")
    if not func_name:
        raise ConfigError(f"unknown task {spec!r}; built-in tasks: {sorted(TASKS)} (or give 'module:function')")
    try:
        return getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load task {spec!r}: {exc}") from exc


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own
    address space. ``ru_maxrss`` is not used there because Linux carries it across ``execve``: a worker
    started with ``spawn``/``forkserver`` would report at least its parent's resident size at start-up
    (a parent holding 500 MB made every worker report >= 500 MB). Elsewhere ``ru_maxrss`` (KiB on
    Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def execute(task: Callable[[SampleJob], SampleOutput], job: SampleJob) -> SampleOutput:
    """Run ``task`` on ``job``; any exception becomes a failed output naming the file and the reason."""
    t0 = time.perf_counter()
    try:
        out = task(job)
    except CytokitError as exc:
        out = SampleOutput.failed(job.sample_id, str(exc))
    except MemoryError:
        out = SampleOutput.failed(job.sample_id, f"{job.path}: out of memory while analysing this file")
    except Exception as exc:  # noqa: BLE001 - fault isolation: a bug in one sample must not stop the batch
        log.debug("task failed on %s\n%s", job.path, traceback.format_exc())
        out = SampleOutput.failed(job.sample_id, f"{job.path}: internal error {type(exc).__name__}: {exc}")
    out.seconds = time.perf_counter() - t0
    out.peak_rss_mb = peak_rss_mb()
    out.pid = os.getpid()
    return out
