"""Compensation: spillover matrices (from the file, a matrix file or single-stain controls) and applying
them to Samples.

* :class:`SpilloverMatrix` — ``channels`` ($PnN) and ``values`` (n × n, row = fluorochrome source,
  column = detector; diagonal 1);
* :func:`acquisition_matrix`, :func:`matrix_from_metadata`, :func:`read_matrix` — where matrices come from;
* :func:`compensate` ``(sample, matrix=None) -> Sample`` — never compensates twice;
* :func:`check_compensation` — is the compensated sample plausibly compensated once (flags
  ``overcompensated``, e.g. already-compensated data that still carry $SPILLOVER)?
* :func:`estimate_spillover` ``(single_stains, unstained, ...)`` — a matrix from controls.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .apply import acquisition_matrix, already_compensated, compensate, compensate_events, matrix_indices
from .check import CompensationCheck, check_compensation, compensation_flags
from .matrix import (
    MATRIX_KEYWORDS, SpilloverMatrix, matrix_from_metadata, parse_matrix_text, parse_spillover_text, read_matrix,
)

if TYPE_CHECKING:  # pragma: no cover
    from .estimate import AutoScatterGate, SpilloverEstimate, detect_primary_channel, estimate_spillover, fit_spillover

#: names of the single-stain estimation, imported on first use (compensating a sample does not need them)
_ESTIMATE_NAMES = frozenset({"AutoScatterGate", "SpilloverEstimate", "detect_primary_channel", "estimate_spillover",
                             "fit_spillover"})

__all__ = [
    "SpilloverMatrix", "compensate", "compensate_events", "acquisition_matrix", "already_compensated", "matrix_indices",
    "matrix_from_metadata", "parse_spillover_text", "parse_matrix_text", "read_matrix", "estimate_spillover",
    "SpilloverEstimate", "CompensationCheck", "check_compensation", "compensation_flags", "fit_spillover", "detect_primary_channel", "AutoScatterGate", "MATRIX_KEYWORDS",
]


def __getattr__(name: str) -> Any:
    if name in _ESTIMATE_NAMES:
        return getattr(importlib.import_module(f"{__name__}.estimate"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
