"""Cohort stages run after the per-sample analysis: trial comparisons, clustering, reports.

Contract: :data:`STAGES` is the registry (name -> function ``(plan, out) -> None``) in run order; a stage
runs when its switch in ``outputs`` is on. :func:`run_cohort_stages` runs them and returns
``{stage: error}`` for those that failed (logged, never silently dropped); the per-sample results and
tables are already written at that point and stay valid.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..errors import CytokitError
from .preflight import RunPlan

log = logging.getLogger(__name__)


def _trial(plan: RunPlan, out: Path) -> None:
    from ..trial import run_trial

    run_trial(out, plan.config.trial, force=True)


def _clustering(plan: RunPlan, out: Path) -> None:
    from ..cluster.params import ClusterParams
    from ..cluster.stage import run_clustering

    options: dict[str, Any] = dict(plan.config.clustering or {})
    params = options.pop("params", None)
    run_clustering(out, params=ClusterParams(**params) if params else None, force=True, **options)


def _reports(plan: RunPlan, out: Path) -> None:
    from ..report import build_reports

    build_reports(out, options=plan.config.report)


STAGES: dict[str, tuple[str, Callable[[RunPlan, Path], None]]] = {
    "trial": ("trial", _trial),
    "clustering": ("clustering", _clustering),
    "reports": ("reports", _reports),
}


def run_cohort_stages(plan: RunPlan, out: Path) -> dict[str, str]:
    """Run the enabled cohort stages in order; returns ``{stage: error message}`` for failures."""
    errors: dict[str, str] = {}
    outputs = plan.config.outputs
    for name, (switch, fn) in STAGES.items():
        if not getattr(outputs, switch):
            continue
        log.info("cohort stage: %s", name)
        try:
            fn(plan, out)
        except Exception as exc:  # noqa: BLE001 - a stage's defect must not lose the run (recorded, exit 1)
            log.error("cohort stage %s failed: %s", name, exc)
            errors[name] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CytokitError) else str(exc)
    return errors
