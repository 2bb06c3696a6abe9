"""The batch pipeline: validated pipeline definitions, executors, the results store and ``run``.

Public API: :func:`load_pipeline` (YAML -> :class:`PipelineConfig`), :func:`adhoc_pipeline`,
:func:`run` (-> :class:`RunSummary`), :func:`load_gated_events`, the executor registry
:data:`EXECUTORS` and the task registry :data:`TASKS`. See docs/pipeline.md.
"""
from __future__ import annotations

from .config import PipelineConfig, adhoc_pipeline, load_pipeline
from .events import load_gated_events
from .executors import EXECUTORS, Executor, make_executor
from .runner import RunSummary, run
from .task import TASKS, SampleJob, SampleOutput

__all__ = ["PipelineConfig", "load_pipeline", "adhoc_pipeline", "run", "RunSummary", "load_gated_events",
           "EXECUTORS", "Executor", "make_executor", "TASKS", "SampleJob", "SampleOutput"]
