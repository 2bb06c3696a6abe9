"""Per-channel logicle parameters from the data, as flowCore's ``estimateLogicle`` does.

``W = (M − log10(T / |r|)) / 2`` where ``r`` is the ``q`` quantile (default 5 %) of the channel's negative
values; with no negative values ``W = 0``. ``T`` defaults to the channel's range ($PnR, linear units) or,
without one, the data maximum. W is clipped into the valid interval [0, M/2] (flowCore stops with an
error when W < 0; here a warning is logged and W = 0 used). W < 0 means the negatives are *narrow*: their
``q`` quantile lies within ``T / 10**M`` of zero (8.3 linear units for T = 262144, M = 4.5), e.g. values
truncated near zero by an export or an unmixing, so the scale is not the one the rule would fit. :func:`estimate_logicle_details` also returns
the estimate before clipping and which parameters were clipped, so a caller can show it next to the numbers
gated on that channel (cytokit.gating.preprocess records it on the Sample, ``cytokit.qc.data_flags`` turns it
into the ``logicle_w_clipped:<marker>`` QC flag).
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TransformError
from .biex import Logicle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogicleEstimate:
    """An estimated logicle: the ``transform`` used, the W the data asked for before clipping
    (``W_estimated``, logicle decades; None when ``x`` has no negative values, W = 0 then) and the names of
    the parameters clipped into their valid range (``clipped``: ``"W"`` when the estimate was < 0 or
    > M/2, ``"A"`` when A was moved into [-W, M - 2W])."""

    transform: Logicle
    W_estimated: float | None
    clipped: tuple[str, ...]


def estimate_logicle(x: np.ndarray, *, T: float | None = None, M: float = 4.5, A: float = 0.0,
                     q: float = 0.05, label: str = "channel") -> Logicle:
    """A :class:`Logicle` whose W fits the spread of the negative values of ``x`` (linear scale).

    ``q`` is a fraction (0..1), not a percentage. :func:`estimate_logicle_details` says what was clipped.
    """
    return estimate_logicle_details(x, T=T, M=M, A=A, q=q, label=label).transform


def estimate_logicle_details(x: np.ndarray, *, T: float | None = None, M: float = 4.5, A: float = 0.0,
                             q: float = 0.05, label: str = "channel") -> LogicleEstimate:
    """:func:`estimate_logicle` with the W estimated before clipping and the clipped parameters."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not 0 < q < 1:
        raise TransformError(f"estimate_logicle: q is a fraction in (0, 1), got {q}")
    if T is None:
        if x.size == 0 or not np.max(x) > 0:
            raise TransformError(f"estimate_logicle: {label} has no positive values to set T from")
        T = float(np.max(x))
    neg = x[x < 0]
    raw: float | None = None
    clipped: list[str] = []
    if neg.size == 0:
        W = 0.0
    else:
        r = abs(float(np.quantile(neg, q))) + np.finfo(float).eps
        W = raw = (M - math.log10(T / r)) / 2.0
        if W < 0:
            log.warning("%s: estimated logicle W=%.3f < 0 (negatives within %.3g of zero, narrower than M "
                        "allows); using W=0", label, W, T / 10 ** M)
            W = 0.0
        W = min(W, M / 2.0)
        if W != raw:
            clipped.append("W")
        A0 = A
        if A < -W:
            A = -W
        A = min(A, M - 2 * W)
        if A != A0:
            clipped.append("A")
    return LogicleEstimate(Logicle(T=float(T), W=float(W), M=float(M), A=float(A)), raw, tuple(clipped))


#: the word of a clipped logicle estimate in ``qc_flags`` and in the notes of the rows gated on the channel,
#: after the marker (``CD3:logicle_w_clipped``)
CLIPPED_FLAG = "logicle_w_clipped"
#: start of the Sample warning that records a clipped estimate (:func:`clipped_warning`)
CLIPPED_WARNING_PREFIX = "logicle W clipped: "
_CLIPPED_WARNING = re.compile(r"^" + re.escape(CLIPPED_WARNING_PREFIX) + r"(?P<marker>.+?) \((?P<pnn>[^()]*)\):")


def clipped_warning(marker: str, pnn: str, estimate: LogicleEstimate) -> str | None:
    """The Sample warning for a logicle estimate whose parameters were clipped (None when none was):
    names the marker and detector, the W the negative events asked for and the W (and A) used."""
    if not estimate.clipped:
        return None
    t = estimate.transform
    asked = "none" if estimate.W_estimated is None else f"{estimate.W_estimated:.2f}"
    why = ("the negative events lie closer to zero than the scale allows (e.g. values truncated near zero)"
           if estimate.W_estimated is not None and estimate.W_estimated < 0 else "outside the valid range")
    return (f"{CLIPPED_WARNING_PREFIX}{marker} ({pnn}): logicle W estimated {asked} from the negative events, "
            f"W={t.W:.2f} A={t.A:.2f} used (T={t.T:g}, M={t.M:g}): {why}, so the axis is not the one the "
            f"estimate fits; check the gates on {marker}")


def clipped_markers(warnings: "tuple[str, ...] | list[str]") -> list[str]:
    """The markers whose logicle estimate was clipped, from a Sample's ``warnings`` (in order, once)."""
    out: list[str] = []
    for w in warnings:
        m = _CLIPPED_WARNING.match(str(w))
        if m and m.group("marker") not in out:
            out.append(m.group("marker"))
    return out


def clipped_flags(sample: Any) -> list[str]:
    """``<marker>:logicle_w_clipped`` per marker whose logicle estimate was clipped (a QC flag of the
    sample, see :func:`cytokit.qc.data_flags`)."""
    return [f"{m}:{CLIPPED_FLAG}" for m in clipped_markers(getattr(sample, "warnings", ()))]
