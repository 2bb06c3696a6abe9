"""Per-patient immunophenotype reports (self-contained HTML and PDF) from a results folder.

Names are imported lazily so that ``cytokit.report.config`` (used by the pipeline configuration) does
not pull in matplotlib, jinja2 or WeasyPrint.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC: dict[str, str] = {
    "build_reports": "cytokit.report.build",
    "ReportOptions": "cytokit.report.config",
    "TrendPanel": "cytokit.report.config",
    "ReferenceInterval": "cytokit.report.reference",
    "ReferenceIntervals": "cytokit.report.reference",
    "flag": "cytokit.report.reference",
    "load_reference_intervals": "cytokit.report.reference",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cytokit.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
