"""Is a compensated sample plausibly compensated once, with the right matrix? A per-file check.

Contract
--------
:func:`check_compensation` ``(observed, compensated, matrix, indices) -> CompensationCheck`` compares
the linear-scale events before and after compensation (float arrays, same shape) on the detector pairs
of ``matrix`` (a :class:`~cytokit.compensation.SpilloverMatrix`, columns ``indices`` of the events).

What is measured. For a source detector ``i`` and a detector ``j`` that receives spillover
``s = values[i, j]``, take the events bright in ``i`` (top ``bright_quantile`` of ``i``) and the events
dim in ``i`` (below its median). Correct compensation leaves the lower part of ``j`` (its
``low_quantile``, i.e. the ``j``-negative cells) where it is for dim events, whatever the brightness in
``i``; spillover removed twice — data that were already compensated but still carry ``$SPILLOVER`` —
pushes the ``j``-negative cells of bright ``i`` events down by about ``s × Δi``, the "diagonal"
artefact below zero. The per-pair residual is

    d = (q_low(j | i bright) − q_low(j | i dim)) / (s × (median(i | bright) − median(i | dim)))

≈ 0 when compensation is right, ≈ −1 when the spillover was removed twice, ≈ +1 when it was not
removed. Spreading error makes ``d`` slightly negative; co-expression (bright ``i`` cells positive in
``j``) makes it positive, so biology can hide an error but not fake one. Only pairs whose expected shift
``s × Δi`` is at least ``min_power`` robust SDs of ``j`` among dim events count ("informative pairs").

Verdict: ``overcompensated`` when the median ``d`` of the informative pairs is ≤ ``over_threshold``
(default −0.6); its detail says whether it looks like compensation applied twice (median ``d`` between
−1.6 and −0.6). ``undercompensated`` is reported only in ``pairs`` (co-expression fakes it).
Calibrated on real files (``tests/test_comp_check.py``): compensated once, the median ``d`` was
−0.06 (flowsom_68983), −0.45 (flowkit/100715), 0.25 (gatingml2 9399_1_3_NKR); compensated twice
−1.24, −3.2 and −1.25.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

#: prefix of the Sample warning that carries a failed check (see :func:`compensation_flags`)
WARNING_PREFIX = "compensation check:"
FLAG_OVER = "overcompensated"
#: how a failed check's warning names the channels compensation moved (read back by :func:`moved_channels`)
MOVED_PREFIX = "compensation moved "
_MOVED = re.compile(r"\(" + MOVED_PREFIX + r"(?P<channels>[^()]*)\)$")


@dataclass(frozen=True)
class CompensationCheck:
    """Outcome of :func:`check_compensation`: ``flags`` (empty = passed), the median residual ``d``
    over informative pairs (NaN when there is none), and one row per informative pair
    ``(source, detector, spillover, power, d)``."""

    flags: tuple[str, ...]
    median_residual: float
    pairs: list[tuple[str, str, float, float, float]] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.flags


def _subsample(x: np.ndarray, max_events: int) -> np.ndarray:
    step = max(1, x.shape[0] // max_events)
    return x[::step]


def pair_residuals(events: np.ndarray, matrix, indices: list[int], *, min_spillover: float = 0.02,
                   bright_quantile: float = 0.95, low_quantile: float = 0.1, min_power: float = 4.0,
                   min_bright: int = 100) -> list[tuple[str, str, float, float, float]]:
    """Per informative detector pair, ``(source, detector, spillover, power, d)`` on ``events`` (see the
    module contract; ``power`` = expected shift / robust SD of the detector among dim events)."""
    out = []
    vals = np.asarray(matrix.values, dtype=float)
    cols = {a: np.asarray(events[:, i], dtype=np.float64) for a, i in enumerate(indices)}
    for a in range(len(indices)):
        xi = cols[a]
        mid, top = np.quantile(xi, [0.5, bright_quantile])
        bright, dim = xi >= top, xi <= mid
        if bright.sum() < min_bright or dim.sum() < min_bright:
            continue
        delta = float(np.median(xi[bright]) - np.median(xi[dim]))
        for b in range(len(indices)):
            s = float(vals[a, b])
            if a == b or s < min_spillover or delta <= 0:
                continue
            xj = cols[b]
            jd = xj[dim]
            sd = 1.4826 * float(np.median(np.abs(jd - np.median(jd))))
            expect = s * delta
            power = expect / sd if sd > 0 else np.inf
            if power < min_power:
                continue
            d = (float(np.quantile(xj[bright], low_quantile)) - float(np.quantile(jd, low_quantile))) / expect
            out.append((str(matrix.channels[a]), str(matrix.channels[b]), round(s, 4),
                        round(float(min(power, 1e6)), 2), round(d, 3)))
    return out


def check_compensation(observed: np.ndarray, compensated: np.ndarray, matrix, indices: list[int], *,
                       over_threshold: float = -0.6, max_events: int = 50000) -> CompensationCheck:
    """Check one compensation (see the module contract). ``observed`` is accepted for symmetry and
    future checks; the verdict uses the compensated events (subsampled to ``max_events``)."""
    del observed  # the residual on compensated data already measures what was removed
    pairs = pair_residuals(_subsample(compensated, max_events), matrix, indices)
    if not pairs:
        return CompensationCheck((), float("nan"), [], "no informative detector pair (too little spillover "
                                                        "or too few bright events)")
    med = float(np.median([p[4] for p in pairs]))
    flags: tuple[str, ...] = ()
    detail = f"median residual spillover {med:+.2f} over {len(pairs)} detector pairs (0 = right)"
    if med <= over_threshold:
        flags = (FLAG_OVER,)
        worst = sorted(pairs, key=lambda p: p[4])[:3]
        detail += ("; spillover looks removed twice (were the data already compensated?)"
                   if med > -1.6 else "; spillover over-subtracted (matrix too strong?)")
        detail += "; e.g. " + ", ".join(f"{p[0]}->{p[1]} {p[4]:+.2f}" for p in worst)
    return CompensationCheck(flags, med, pairs, detail)


def compensation_flags(sample) -> list[str]:
    """Flags of a failed compensation check recorded on a Sample by
    :func:`cytokit.compensation.compensate` (``[]`` when it passed or did not run)."""
    out: list[str] = []
    for w in getattr(sample, "warnings", ()):
        text = str(w)
        if text.startswith(WARNING_PREFIX):
            flag = text[len(WARNING_PREFIX):].strip().split(" ", 1)[0].rstrip(":")
            if flag and flag not in out:
                out.append(flag)
    return out


def receiving_channels(matrix) -> list[str]:
    """The channels ($PnN, matrix order) of ``matrix`` (a :class:`~cytokit.compensation.SpilloverMatrix`) that
    receive spillover from another (a non-zero off-diagonal value in their column): the channels
    compensation changes. A channel receiving none keeps its values, whatever the matrix."""
    vals = np.asarray(matrix.values, dtype=float)
    off = vals - np.diag(np.diag(vals))
    return [str(c) for c, moved in zip(matrix.channels, (off != 0).any(axis=0)) if moved]


def moved_text(channels: list[str]) -> str:
    """The end of a failed check's warning naming the channels compensation moved ($PnN), read back by
    :func:`moved_channels`."""
    return f"({MOVED_PREFIX}{', '.join(channels)})"


def moved_channels(sample) -> list[str]:
    """The channels ($PnN) compensation moved in a Sample whose compensation check failed (from the
    warning :func:`cytokit.compensation.compensate` recorded, :func:`moved_text`); ``[]`` when the check
    passed or did not run."""
    out: list[str] = []
    for w in getattr(sample, "warnings", ()):
        text = str(w)
        m = _MOVED.search(text) if text.startswith(WARNING_PREFIX) else None
        if m:
            out += [c for c in (s.strip() for s in m.group("channels").split(", ")) if c and c not in out]
    return out
