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
import sys
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import CompensationError
from ..sample import Sample
from .matrix import SpilloverMatrix, matrix_from_metadata, read_matrix

log = logging.getLogger(__name__)

_NORM = re.compile(r"[^0-9a-z]+")


def _norm(name: str) -> str:
    return _NORM.sub("", str(name).casefold())


def acquisition_matrix(sample: Sample) -> SpilloverMatrix | None:
    """The spillover matrix stored in the sample's keywords (None when the file has none)."""
    pnn = sample.channel_table.texts("pnn")
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
    table = sample.channel_table
    fluor = [p for p, k in zip(table.texts("pnn"), table.texts("kind")) if k == "fluorescence"]
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
    pd = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
    if pd is not None and isinstance(matrix, pd.DataFrame):
        if list(matrix.index.astype(str)) != list(matrix.columns.astype(str)):
            matrix = matrix.loc[list(matrix.columns)] if set(matrix.index) == set(matrix.columns) else matrix
        return SpilloverMatrix(tuple(map(str, matrix.columns)), matrix.to_numpy(dtype=float), source="DataFrame")
    raise CompensationError(f"cannot use {type(matrix).__name__} as a spillover matrix",
                            path=sample.path or sample.name)


def matrix_indices(sample: Sample, matrix: SpilloverMatrix) -> list[int]:
    """Sample channel index of each matrix channel ($PnN exact, then normalised name)."""
    pnn = sample.channel_table.texts("pnn")
    norm: dict[str, list[int]] = {}
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


#: Rows per block of :func:`compensate_events`: 8,192 rows × 8 float64 columns is 0.5 MB per scratch
#: buffer, so the transient memory does not grow with the file and a block stays in cache; blocks of
#: 8k rows measured 20-30 % faster than 16k-128k (``benchmarks/compensation_speed.py``).
BLOCK_ROWS = 8192


def _columns(cols: np.ndarray) -> slice | np.ndarray:
    """A slice when ``cols`` are consecutive (basic indexing: no gather copy), else the index array."""
    if len(cols) and np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols))):
        return slice(int(cols[0]), int(cols[0]) + len(cols))
    return cols


def _kernel_plan(matrix: SpilloverMatrix, indices: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(inputs, outputs, coefficients)``: event columns read, event columns changed, float64 block.

    compensated[:, outputs] = events[:, inputs] @ coefficients. A detector whose spillover column is
    the unit vector (nothing spills into it) keeps its values, so it is not an output; a detector whose
    row is the unit vector (it spills nowhere) is read only when it is itself an output. The
    coefficients are the matching block of ``inv(values)`` (computed, and checked for singularity, in
    float64 on the whole matrix).
    """
    idx = np.asarray(indices, dtype=np.intp)
    if idx.shape != (matrix.n,):
        raise CompensationError(f"{len(idx)} column indices for a {matrix.n}-channel spillover matrix")
    if len(np.unique(idx)) != len(idx):
        raise CompensationError(
            f"spillover matrix ({matrix.source or 'given'}) maps two channels to one event column")
    comp = matrix.compensation_matrix()
    off_unit = matrix.values != np.eye(matrix.n)
    out_sel = np.flatnonzero(off_unit.any(axis=0))
    in_mask = off_unit.any(axis=1)
    in_mask[out_sel] = True
    in_sel = np.flatnonzero(in_mask)
    return idx[in_sel], idx[out_sel], np.ascontiguousarray(comp[np.ix_(in_sel, out_sel)])


def compensate_events(events: np.ndarray, matrix: SpilloverMatrix, indices: list[int], *,
                      dtype: Any = np.float64, out: np.ndarray | None = None,
                      block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Kernel: ``events`` with columns ``indices`` (in matrix order) compensated, as a new ``dtype`` array.

    ``events`` are linear-scale values; compensated = observed @ inv(spillover) on those columns, other
    columns are copied unchanged. Rows are processed in blocks of ``block_rows``: each block's inputs
    are converted to float64, multiplied by the float64 inverse and written into the output, so the
    result is the float64 product rounded once to ``dtype`` and the only temporaries are two
    ``block_rows``-row buffers. ``out`` (same shape; may be ``events`` itself for in-place
    compensation) replaces the new array, and ``dtype`` is then ignored.
    """
    events = np.asarray(events)
    if events.ndim != 2:
        raise CompensationError(f"events must be a 2-d array (events × channels), got shape {events.shape}")
    if block_rows < 1:
        raise CompensationError(f"block_rows must be positive, got {block_rows}")
    inputs, outputs, coef = _kernel_plan(matrix, indices)
    if out is None:
        out = np.empty(events.shape, dtype=dtype)
    elif out.shape != events.shape:
        raise CompensationError(f"out has shape {out.shape}, events {events.shape}")
    in_place = out is events or (out.__array_interface__["data"][0] == events.__array_interface__["data"][0]
                                 and out.strides == events.strides)
    if not in_place and np.may_share_memory(out, events):
        raise CompensationError("out overlaps events without being the same array")
    n = events.shape[0]
    rows = min(block_rows, n)
    src, dst = _columns(inputs), _columns(outputs)
    buf_in = np.empty((rows, len(inputs)), dtype=np.float64)
    buf_out = np.empty((rows, len(outputs)), dtype=np.float64)
    # one BLAS thread: a multi-threaded BLAS pays a thread hand-off per small block product that costs
    # far more than the product itself (~15 ms per block with 2 OpenBLAS threads on 2 cores)
    with threadpool_limits(1, user_api="blas"):
        for r0 in range(0, n, rows or 1):
            r1 = min(n, r0 + rows)
            block = events[r0:r1]
            if not in_place:
                out[r0:r1] = block
            if len(outputs):
                b_in, b_out = buf_in[: r1 - r0], buf_out[: r1 - r0]
                b_in[...] = block[:, src]
                np.matmul(b_in, coef, out=b_out)
                out[r0:r1, dst] = b_out
    return out


def compensate(sample: Sample, matrix: Any = None, *, check: bool = True, in_place: bool = False) -> Sample:
    """A new, compensated Sample (see the module docstring). Input events are not modified, unless
    ``in_place``: then ``sample.events`` themselves are compensated (for a caller that owns them, e.g.
    :func:`cytokit.gating.preprocess.prepare` after QC made a new array) and the new Sample holds them.

    ``check`` runs :func:`cytokit.compensation.check.check_compensation` on the result: when the
    spillover looks removed twice or over-subtracted, a warning starting with ``"compensation check:"``
    is logged and added to ``Sample.warnings`` (read back by ``compensation_flags``), ending with the
    channels compensation moved (``moved_channels``), so tables can flag the sample, and the populations
    gated on those channels, instead of reporting silently wrong numbers. When the check cannot decide (no
    informative detector pair) the warning names the note ``compensation_unchecked`` instead, and when the
    negatives of bright events lean below their dim neighbours without the spillover looking removed twice
    (a matrix too strong by a third or more) the note ``compensation_suspect``: data notes, not failures;
    ``compensation_suspect`` is recorded with the moved channels, like a failure, so the rows gated on
    them carry it as a review flag."""
    reason = already_compensated(sample)
    if reason:
        msg = f"{sample.name}: not compensating again ({reason})"
        log.warning(msg)
        return sample
    m = _as_matrix(matrix, sample)
    idx = matrix_indices(sample, m)
    events = compensate_events(sample.events, m, idx, dtype=sample.events.dtype,
                               out=sample.events if in_place else None)
    note = f"compensated with {m.source or 'a given spillover matrix'} ({m.n} channels)"
    warnings = sample.warnings
    if check:
        from .check import ROW_WORDS, WARNING_PREFIX, check_compensation, moved_text, receiving_channels

        result = check_compensation(events, events, m, idx)  # the check reads the compensated events only
        pnn = sample.channel_table.texts("pnn")
        moved = set(receiving_channels(m))
        names = [str(pnn[i]) for c, i in zip(m.channels, idx) if c in moved]
        if result.flags:
            msg = f"{WARNING_PREFIX} {';'.join(result.flags)}: {result.detail} {moved_text(names)}"
            log.warning("%s: %s", sample.name, msg)
            warnings = warnings + (msg,)
        for word in result.notes:  # not a failure: said in the tables (and on the moved rows for a row word)
            msg = f"{WARNING_PREFIX} {word}: {result.detail}"
            if word in ROW_WORDS:
                msg += f" {moved_text(names)}"
                log.warning("%s: %s", sample.name, msg)
            else:
                log.info("%s: %s", sample.name, msg)
            warnings = warnings + (msg,)
    return sample.replace(events=events, compensated=True, provenance=sample.provenance + (note,),
                          warnings=warnings)
