"""cytokit: flow-cytometry immunophenotyping for clinical trials.

``import cytokit as ck`` gives a small public API; names are imported lazily from the module that
implements them (see :data:`_PUBLIC`), so ``import cytokit`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (the one place the public API is listed)
_PUBLIC: dict[str, str] = {
    "Sample": "cytokit.sample",
    "read_fcs": "cytokit.fcs",
    "load_panel": "cytokit.panel",
    "compensate": "cytokit.compensation",
    "transform": "cytokit.transforms",
    "load_strategy": "cytokit.gating.loading",
    "run_qc": "cytokit.qc",
    "load_pipeline": "cytokit.pipeline.config",
    "run": "cytokit.pipeline.runner",
    "simulate_trial": "cytokit.simulate",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cytokit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
