"""Per-channel logicle parameters from the data, as flowCore's ``estimateLogicle`` does.

``W = (M − log10(T / |r|)) / 2`` where ``r`` is the ``q`` quantile (default 5 %) of the channel's negative
values; with no negative values ``W = 0``. ``T`` defaults to the channel's range ($PnR, linear units) or,
without one, the data maximum. W is clipped into the valid interval [0, M/2] (flowCore stops with an
error when W < 0; here a warning is logged and W = 0 used).
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..errors import TransformError
from .biex import Logicle

log = logging.getLogger(__name__)


def estimate_logicle(x: np.ndarray, *, T: float | None = None, M: float = 4.5, A: float = 0.0,
                     q: float = 0.05, label: str = "channel") -> Logicle:
    """A :class:`Logicle` whose W fits the spread of the negative values of ``x`` (linear scale).

    ``q`` is a fraction (0..1), not a percentage.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not 0 < q < 1:
        raise TransformError(f"estimate_logicle: q is a fraction in (0, 1), got {q}")
    if T is None:
        if x.size == 0 or not np.max(x) > 0:
            raise TransformError(f"estimate_logicle: {label} has no positive values to set T from")
        T = float(np.max(x))
    neg = x[x < 0]
    if neg.size == 0:
        W = 0.0
    else:
        r = abs(float(np.quantile(neg, q))) + np.finfo(float).eps
        W = (M - math.log10(T / r)) / 2.0
        if W < 0:
            log.warning("%s: estimated logicle W=%.3f < 0 (negatives wider than M allows); using W=0",
                        label, W)
            W = 0.0
        W = min(W, M / 2.0)
        if A < -W:
            A = -W
        A = min(A, M - 2 * W)
    return Logicle(T=float(T), W=float(W), M=float(M), A=float(A))
