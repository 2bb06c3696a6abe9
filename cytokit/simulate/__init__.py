"""Synthetic IL-2 trial generator: realistic FCS files plus ground truth, clinical tables and manifest.

Public API: :func:`simulate_trial` (a whole trial folder), :func:`simulate_file` (one large file for
benchmarks), :func:`truth_masks` / :func:`truth_flags` (per-event truth of a simulated file),
:class:`SimulationConfig` / :func:`load_config` (settings, loadable from YAML). See docs/simulate.md.
"""
from .config import SimulationConfig, load_config
from .events import FLAG_BITS
from .trial import TrialResult, simulate_file, simulate_trial
from .truth import truth_flags, truth_masks

__all__ = ["simulate_trial", "simulate_file", "truth_masks", "truth_flags", "SimulationConfig", "load_config",
           "TrialResult", "FLAG_BITS"]
