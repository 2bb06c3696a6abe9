"""Is a compensated sample plausibly compensated once, with the right matrix? A per-file check.

Contract
--------
:func:`check_compensation` ``(observed, compensated, matrix, indices) -> CompensationCheck`` compares
the linear-scale events before and after compensation (float arrays, same shape) on the detector pairs
of ``matrix`` (a :class:`~cytokit.compensation.SpilloverMatrix`, columns ``indices`` of the events).

What is measured. For a source detector ``i`` and a detector ``j`` that receives spillover
``s = values[i, j]``, take the events dim in ``i`` (below its median) and the events bright enough in
``i`` that the spillover they send to ``j``, ``s × (i − median(i | dim))``, is at least ``min_power``
robust SDs of ``j`` among dim events (the pair's *informative events*: each one alone would be moved
that far by an error of the whole spillover). Correct compensation leaves the lower part of ``j`` (its
``low_quantile``, i.e. the ``j``-negative cells) where it is for dim events, whatever the brightness in
``i``; spillover removed twice — data that were already compensated but still carry ``$SPILLOVER`` —
pushes the ``j``-negative cells of bright ``i`` events down by about ``s × Δi``, the "diagonal"
artefact below zero. The per-pair residual is

    d = (q_low(j | i informative) − q_low(j | i dim)) / (s × (median(i | informative) − median(i | dim)))

≈ 0 when compensation is right, ≈ −1 when the spillover was removed twice, ≈ +1 when it was not
removed. Spreading error makes ``d`` slightly negative; co-expression (bright ``i`` cells positive in
``j``) makes it positive, so biology can hide an error but not fake one. A pair counts ("informative
pair", ``power`` = its expected shift over the robust SD, ≥ ``min_power``) when it has at least
``min_bright`` informative events (the low quantile then rests on ≥ 10 events below it).

Why informative events and not a share of the brightest: the pair's strength then does not depend on
what else the file holds. An earlier rule took the top 5 % of ``i`` and required the median shift of
that share to reach ``min_power``: on a file whose bright population is a few % of the events the share
reached into the negatives, and its strength turned on the events at the top of the scale —
9399_1_3_NKR.fcs compensated twice read power 5.03 (PE-A -> PerCP-Cy5-5-A, d −1.28) on the whole file
and 3.70 (no informative pair, check passed) on QC's 97.8 % of the events, QC's margin rule having taken
2,688 events (2,655 at the SSC-A ceiling, 43 % of the old bright share). With informative events the
same file has 3 pairs before and after QC (median d −1.01 / −1.16); once compensated +0.22 / +0.17.

Verdict: ``overcompensated`` when the median ``d`` of the informative pairs is ≤ ``over_threshold``
(default −0.6); its detail says whether it looks like compensation applied twice (median ``d`` between
−1.6 and −0.6). ``undercompensated`` is reported only in ``pairs`` (co-expression fakes it). With no
informative pair the check cannot decide: the note ``compensation_unchecked`` (in ``notes``, not a
failure) says so, so a table shows the sample's compensation was not checked instead of passing it.
Calibrated on real files (``tests/test_comp_check.py``): compensated once, the median ``d`` was
−0.03 (flowsom_68983, 17 pairs), −0.02 (flowkit/100715, 26), +0.22 (gatingml2 9399_1_3_NKR, 3), −0.06
(flowjo9_diva 124500, 4); compensated twice −1.44, −2.48, −1.01 and −2.30 (the share rule: once −0.06,
−0.45, +0.25, −0.14; twice −1.24, −3.2, −1.28, −2.11). flowjo9_diva's a2004 file carries an identity
matrix: compensation moves nothing, there is nothing to check and no note.
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
#: sample-level note: the check found no informative detector pair, so the compensation was not checked
NOTE_UNCHECKED = "compensation_unchecked"
#: how a failed check's warning names the channels compensation moved (read back by :func:`moved_channels`)
MOVED_PREFIX = "compensation moved "
_MOVED = re.compile(r"\(" + MOVED_PREFIX + r"(?P<channels>[^()]*)\)$")


@dataclass(frozen=True)
class CompensationCheck:
    """Outcome of :func:`check_compensation`: ``flags`` (empty = passed), the median residual ``d``
    over informative pairs (NaN when there is none), one row per informative pair
    ``(source, detector, spillover, power, d)``, and ``notes`` (``compensation_unchecked`` when the check
    could not decide: not a failure)."""

    flags: tuple[str, ...]
    median_residual: float
    pairs: list[tuple[str, str, float, float, float]] = field(default_factory=list)
    detail: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.flags


def _subsample(x: np.ndarray, max_events: int) -> np.ndarray:
    step = max(1, x.shape[0] // max_events)
    return x[::step]


def pair_residuals(events: np.ndarray, matrix, indices: list[int], *, min_spillover: float = 0.02,
                   low_quantile: float = 0.1, min_power: float = 4.0,
                   min_bright: int = 100) -> list[tuple[str, str, float, float, float]]:
    """Per informative detector pair, ``(source, detector, spillover, power, d)`` on ``events`` (linear
    scale; see the module contract). ``power`` = the pair's expected shift ``s × (median(i | informative)
    − median(i | dim))`` over the robust SD of the detector among dim events (≥ ``min_power``, as each
    informative event's own shift is); a pair with fewer than ``min_bright`` informative events is left out."""
    out = []
    vals = np.asarray(matrix.values, dtype=float)
    cols = {a: np.asarray(events[:, i], dtype=np.float64) for a, i in enumerate(indices)}
    for a in range(len(indices)):
        xi = cols[a]
        dim = xi <= np.quantile(xi, 0.5)
        if dim.sum() < min_bright:
            continue
        xi_dim = float(np.median(xi[dim]))
        for b in range(len(indices)):
            s = float(vals[a, b])
            if a == b or s < min_spillover:
                continue
            xj = cols[b]
            jd = xj[dim]
            sd = 1.4826 * float(np.median(np.abs(jd - np.median(jd))))
            if not sd > 0:  # a detector without spread among dim events (empty or clipped): nothing to measure
                continue
            bright = s * (xi - xi_dim) >= min_power * sd  # informative events: each shifted >= min_power SDs
            if bright.sum() < min_bright:
                continue
            expect = s * (float(np.median(xi[bright])) - xi_dim)
            d = (float(np.quantile(xj[bright], low_quantile)) - float(np.quantile(jd, low_quantile))) / expect
            out.append((str(matrix.channels[a]), str(matrix.channels[b]), round(s, 4),
                        round(float(min(expect / sd, 1e6)), 2), round(d, 3)))
    return out


def check_compensation(observed: np.ndarray, compensated: np.ndarray, matrix, indices: list[int], *,
                       over_threshold: float = -0.6, max_events: int = 50000) -> CompensationCheck:
    """Check one compensation (see the module contract). ``observed`` is accepted for symmetry and
    future checks; the verdict uses the compensated events (linear scale, subsampled to ``max_events``).
    No informative pair: passed (no flag) with the note ``compensation_unchecked`` when the matrix moves
    a channel (:func:`receiving_channels`), without it when the matrix is the identity."""
    del observed  # the residual on compensated data already measures what was removed
    pairs = pair_residuals(_subsample(compensated, max_events), matrix, indices)
    if not pairs:
        if not receiving_channels(matrix):
            return CompensationCheck((), float("nan"), [], "the matrix moves no channel: nothing to check")
        return CompensationCheck((), float("nan"), [], "no informative detector pair (too little spillover or too "
                                 "few events bright enough to show it): the compensation could not be checked",
                                 notes=(NOTE_UNCHECKED,))
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
    """The words of the compensation check recorded on a Sample by :func:`cytokit.compensation.compensate`:
    ``overcompensated`` when it failed, ``compensation_unchecked`` when it could not decide (no informative
    detector pair; a note, not a failure), ``[]`` when it passed or did not run."""
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
