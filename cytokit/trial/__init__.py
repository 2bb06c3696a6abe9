"""Trial analysis: per-visit values, change from baseline, responders and between-arm comparisons.

Reads the results store (``populations``, ``clinical.csv``, ``il2_cycles.csv``) described in
docs/architecture.md and writes ``RESULTS_DIR/trial/`` (see docs/trial.md). Configuration:
:class:`TrialConfig` (the ``trial:`` block of a pipeline YAML).

Public API: :func:`run_comparisons` (alias :func:`run_trial`, the pipeline's last stage) reads a results
folder and writes the outputs; :func:`analyse` does the same in memory on a :class:`TrialInputs`;
:func:`inputs_from_simulation` builds inputs from a simulated trial's ground truth.
"""
from __future__ import annotations

from .config import TrialConfig, load_trial_config
from .inputs import TrialInputs, load_inputs
from .run import TrialResult, analyse, run_comparisons, write_results
from .truth import designed_cd4, inputs_from_simulation

#: the name the pipeline's cohort stage calls (``run_trial(results_dir, config, force=...)``)
run_trial = run_comparisons

__all__ = ["TrialConfig", "load_trial_config", "TrialInputs", "load_inputs", "TrialResult", "analyse",
           "run_comparisons", "run_trial", "write_results", "inputs_from_simulation", "designed_cd4"]
