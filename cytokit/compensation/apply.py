"""Compensating a Sample: ``compensate(sample, matrix=None) -> Sample``.

``matrix=None`` uses the file's acquisition matrix; a :class:`SpilloverMatrix`, a path to a matrix file
or a DataFrame (rows = fluorochromes, columns = detectors) may be given instead. Matrix channels are
matched to the sample's $PnN (then, for matrices whose names differ only in case/punctuation, by
normalised name). Compensated values stay on the linear scale. A sample that is already compensated
(``Sample.compensated``, or a provenance note, or FlowJo-exported ``Comp-`` channels) is returned
unchanged with a warning, so data are never compensated twice.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CompensationError
from ..sample import Sample
from .matrix import SpilloverMatrix, matrix_from_metadata, read_matrix

log = logging.getLogger(__name__)

_NORM = re.compile(r"[^0-9a-z]+")


def _norm(name: str) -> str:
    return _NORM.sub("", str(name).casefold())


def acquisition_matrix(sample: Sample) -> SpilloverMatrix | None:
    """The spillover matrix stored in the sample's keywords (None when the file has none)."""
    pnn = list(sample.channels["pnn"].astype(str))
    return matrix_from_metadata(sample.metadata, pnn, path=sample.path or sample.name)


def already_compensated(sample: Sample) -> str | None:
    """Why the sample's events are already compensated, or None when they are not."""
    if sample.compensated:
        return "Sample.compensated is set"
    if str(sample.metadata.get("cytokit_compensated", "")).strip():
        return f"the file was written compensated by cytokit ({sample.metadata['cytokit_compensated']})"
    for note in sample.provenance:
        if str(note).lower().startswith("compensated"):
            return f"provenance says {note!r}"
    fluor = sample.channels.loc[sample.channels["kind"].astype(str) == "fluorescence", "pnn"].astype(str)
    if len(fluor) and all(p.lower().startswith("comp-") for p in fluor):
        return "its fluorescence channels are exported compensated ('Comp-' names)"
    return None


def _as_matrix(matrix: Any, sample: Sample) -> SpilloverMatrix:
    if matrix is None:
        m = acquisition_matrix(sample)
        if m is None:
            raise CompensationError(
                "the file has no spillover matrix ($SPILLOVER/SPILL/$COMP/$DFCiTOj); pass one explicitly",
                path=sample.path or sample.name,
            )
        return m
    if isinstance(matrix, SpilloverMatrix):
        return matrix
    if isinstance(matrix, (str, Path)):
        return read_matrix(matrix)
    if isinstance(matrix, pd.DataFrame):
        if list(matrix.index.astype(str)) != list(matrix.columns.astype(str)):
            matrix = matrix.loc[list(matrix.columns)] if set(matrix.index) == set(matrix.columns) else matrix
        return SpilloverMatrix(tuple(map(str, matrix.columns)), matrix.to_numpy(dtype=float), source="DataFrame")
    raise CompensationError(f"cannot use {type(matrix).__name__} as a spillover matrix",
                            path=sample.path or sample.name)


def matrix_indices(sample: Sample, matrix: SpilloverMatrix) -> list[int]:
    """Sample channel index of each matrix channel ($PnN exact, then normalised name)."""
    pnn = list(sample.channels["pnn"].astype(str))
    norm = {}
    for i, p in enumerate(pnn):
        norm.setdefault(_norm(p), []).append(i)
    idx, missing = [], []
    for c in matrix.channels:
        if c in pnn:
            idx.append(pnn.index(c))
        elif len(norm.get(_norm(c), [])) == 1:
            idx.append(norm[_norm(c)][0])
        else:
            missing.append(c)
    if missing:
        raise CompensationError(
            f"spillover matrix ({matrix.source or 'given'}) names channel(s) {', '.join(missing)} that the "
            f"sample does not have; its channels are {', '.join(pnn)}",
            path=sample.path or sample.name,
        )
    return idx


def compensate_events(events: np.ndarray, matrix: SpilloverMatrix, indices: list[int]) -> np.ndarray:
    """Kernel: float64 copy of ``events`` whose columns ``indices`` (in matrix order) are compensated.

    ``events`` are linear-scale values; compensated = observed @ inv(spillover) on those columns.
    """
    out = np.array(events, dtype=np.float64)
    out[:, indices] = out[:, indices] @ matrix.compensation_matrix()
    return out


def compensate(sample: Sample, matrix: Any = None) -> Sample:
    """A new, compensated Sample (see the module docstring). Input events are not modified."""
    reason = already_compensated(sample)
    if reason:
        msg = f"{sample.name}: not compensating again ({reason})"
        log.warning(msg)
        return sample
    m = _as_matrix(matrix, sample)
    idx = matrix_indices(sample, m)
    comp = m.compensation_matrix()
    events = sample.events.copy()
    events[:, idx] = (sample.events[:, idx].astype(np.float64) @ comp).astype(np.float32)
    note = f"compensated with {m.source or 'a given spillover matrix'} ({m.n} channels)"
    return sample.replace(events=events, compensated=True, provenance=sample.provenance + (note,))
