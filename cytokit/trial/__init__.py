"""Trial analysis: per-visit values, change from baseline, responders and between-arm comparisons.

Reads the results store (``populations``, ``clinical.csv``) described in docs/architecture.md and writes
``RESULTS_DIR/trial/``. Configuration: :class:`~cytokit.trial.config.TrialConfig` (the ``trial:`` block
of a pipeline YAML).
"""
from __future__ import annotations

from .config import TrialConfig, load_trial_config

__all__ = ["TrialConfig", "load_trial_config"]
