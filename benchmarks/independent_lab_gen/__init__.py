"""A second, independent generator of flow-cytometry trials: another lab's panel, instruments and biology.

Written apart from ``cytokit.simulate`` (no code or shapes shared) so that the shipped gating strategies can
be checked on data they were not tuned on. See README.md for what it varies and why.
"""
from .cells import HIERARCHY, LYMPHOCYTES
from .trial import clog_mask, event_kinds, generate_trial, truth_masks

__all__ = ["HIERARCHY", "LYMPHOCYTES", "clog_mask", "event_kinds", "generate_trial", "truth_masks"]
