"""The batch pipeline: validated pipeline definitions, executors, the results store and ``run``.

Public API: :func:`load_pipeline` (YAML -> :class:`PipelineConfig`), :func:`adhoc_pipeline`,
:func:`run` (-> :class:`RunSummary`), :func:`load_gated_events`, the executor registry
:data:`EXECUTORS` and the task registry :data:`TASKS`. See docs/pipeline.md.

Names are imported lazily from the module that defines them, so a worker process that only needs the
per-sample task does not import the run-level machinery (trial statistics, Parquet writing...).
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "PipelineConfig": "config", "load_pipeline": "config", "adhoc_pipeline": "config",
    "run": "runner", "RunSummary": "runner",
    "load_gated_events": "events",
    "EXECUTORS": "executors", "Executor": "executors", "make_executor": "executors",
    "TASKS": "task", "SampleJob": "task", "SampleOutput": "task",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cytokit.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
