"""Compensation as Gating-ML dimensions need it: the file's $SPILLOVER ("FCS") or a spectrum matrix.

All values are on the linear scale. Compensated detector values are ``X_detectors @ inv(S)`` for a
spillover matrix ``S`` (row = fluorochrome source, column = detector).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import CompensationError

SPILLOVER_KEYWORDS = ("spillover", "spill", "comp")


def spillover_from_metadata(metadata: Mapping[str, str], *, path: str | Path | None = None
                            ) -> tuple[tuple[str, ...], np.ndarray] | None:
    """The acquisition spillover matrix of an FCS file ($SPILLOVER / $SPILL / $COMP keyword).

    Returns ``(channel names, n x n matrix)`` or ``None`` when the file has none. Malformed text raises
    :class:`CompensationError` naming the file.
    """
    text = None
    for key in SPILLOVER_KEYWORDS:
        for k in (key, "$" + key, key.upper(), "$" + key.upper()):
            if metadata.get(k):
                text = str(metadata[k])
                break
        if text:
            break
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        n = int(float(parts[0]))
    except (ValueError, IndexError, OverflowError):  # OverflowError: "inf"
        raise CompensationError(f"spillover keyword does not start with a channel count: {text[:40]!r}",
                                path=path) from None
    if n <= 0 or len(parts) != 1 + n + n * n:
        raise CompensationError(
            f"spillover keyword declares {n} channels but holds {len(parts) - 1} fields "
            f"(expected {n + n * n})", path=path)
    names = tuple(parts[1:1 + n])
    try:
        values = np.asarray([float(v) for v in parts[1 + n:]], dtype=np.float64).reshape(n, n)
    except ValueError as exc:
        raise CompensationError(f"spillover keyword holds a non-numeric value: {exc}", path=path) from None
    return names, values


def compensation_matrix(matrix: np.ndarray, *, inverted: bool = False, n_detectors: int | None = None,
                        path: str | Path | None = None) -> np.ndarray:
    """The matrix ``C`` (n_detectors x n_fluorochromes) with compensated = detectors @ C.

    ``matrix`` is a spillover/spectrum matrix (n_fluorochromes x n_detectors; inverted here, or
    pseudo-inverted when not square) or, with ``inverted=True``, already ``C``.
    """
    m: np.ndarray = np.asarray(matrix, dtype=np.float64)
    if not inverted:
        try:
            m = np.linalg.inv(m) if m.shape[0] == m.shape[1] else np.linalg.pinv(m)
        except np.linalg.LinAlgError:
            raise CompensationError("spillover matrix is singular and cannot be inverted", path=path) from None
    if n_detectors is not None and m.shape[0] != n_detectors:
        raise CompensationError(
            f"compensation matrix has {m.shape[0]} detector rows but {n_detectors} detector columns were given",
            path=path)
    return m

