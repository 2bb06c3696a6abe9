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

A second residual per pair, ``d_mode``, reads the *centre* of the ``j``-negative cells instead of their low
quantile: the lowest mode of ``j`` (Gaussian-smoothed histogram, bandwidth 0.6 robust SDs of ``j`` among dim
events, the lowest local maximum holding at least 20 % of the highest) among informative events minus the same
among dim events, over the same expected shift. Spreading error widens the negatives of bright events around
their centre, so it moves ``d`` (a low quantile) down but not ``d_mode``; a matrix over-scaled by ``k`` moves
both by ``-(k - 1)/k`` to first order (-0.09 / -0.20 / -0.33 for 10 / 25 / 50 %). Compensated once, the median
``d_mode`` was -0.06 or above on every file of ``benchmarks/compensation_check.py`` (median ``d`` as low as
-0.30).

Verdict: ``overcompensated`` when the median ``d`` of the informative pairs is ≤ ``over_threshold``
(default −0.6); its detail says whether it looks like compensation applied twice (median ``d`` between
−1.6 and −0.6). ``undercompensated`` is reported only in ``pairs`` (co-expression fakes it). Not
``overcompensated`` but the median ``d_mode`` ≤ ``suspect_threshold`` (default -0.25, halfway between
the first-order values of a 25 % and a 50 % over-scaled matrix): the note ``compensation_suspect`` — the
negatives of bright events sit below their dim neighbours, as with a matrix whose spillover values are too
large by about ``-d_mode / (1 + d_mode)`` (a third or more). Not a failed check (``ok`` stays True), but
like ``overcompensated`` it reaches the rows gated on a channel compensation moved, as a review flag:
flowsom_68983 compensated with its matrix 50 % too strong reads CD4 T 1.1 % of T cells instead of 69.3 %.
With no informative pair the check cannot decide: the note ``compensation_unchecked`` (in ``notes``, not a
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
#: not removed twice, but the negatives of bright events lean below zero (matrix too strong?): a note of the
#: check, recorded with the channels compensation moved, so the rows gated on them carry it as a review flag
NOTE_SUSPECT = "compensation_suspect"
#: the words whose warning names the channels compensation moved: the rows gated on them carry the word
ROW_WORDS = (FLAG_OVER, NOTE_SUSPECT)
#: how a failed check's warning names the channels compensation moved (read back by :func:`moved_channels`)
MOVED_PREFIX = "compensation moved "
_MOVED = re.compile(r"\(" + MOVED_PREFIX + r"(?P<channels>[^()]*)\)$")


@dataclass(frozen=True)
class CompensationCheck:
    """Outcome of :func:`check_compensation`: ``flags`` (empty = passed), the median residual ``d``
    over informative pairs (NaN when there is none), one row per informative pair
    ``(source, detector, spillover, power, d, d_mode)``, ``notes`` (``compensation_unchecked`` when the
    check could not decide, ``compensation_suspect`` when the negatives lean: not failures) and the median
    ``d_mode`` (``median_mode_residual``; NaN without a pair)."""

    flags: tuple[str, ...]
    median_residual: float
    pairs: list[tuple[str, str, float, float, float, float]] = field(default_factory=list)
    detail: str = ""
    notes: tuple[str, ...] = ()
    median_mode_residual: float = float("nan")

    @property
    def ok(self) -> bool:
        return not self.flags


def _subsample(x: np.ndarray, max_events: int) -> np.ndarray:
    step = max(1, x.shape[0] // max_events)
    return x[::step]


def lowest_mode(x: np.ndarray, bandwidth: float, lo: float, hi: float, *, bins: int = 400,
                min_height: float = 0.2) -> float:
    """The lowest mode of ``x`` (linear scale, same units as ``bandwidth``, ``lo``, ``hi``): the lowest local
    maximum of its Gaussian-smoothed histogram on ``[lo, hi]`` that reaches ``min_height`` of the highest
    (refined by a parabola through its bin and the two beside it); NaN when ``hi <= lo`` or nothing falls in."""
    if not hi > lo:
        return float("nan")
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    if not counts.any():
        return float("nan")
    width = float(edges[1] - edges[0])
    half = min(max(1, int(round(3 * bandwidth / width))), bins // 2 - 1)  # a kernel no longer than the histogram
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * width / bandwidth) ** 2)
    dens = np.convolve(counts.astype(np.float64), kernel, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    top = float(dens.max())
    peaks = np.flatnonzero((dens[1:-1] >= dens[:-2]) & (dens[1:-1] > dens[2:]) & (dens[1:-1] >= min_height * top)) + 1
    if not len(peaks):
        return float(centres[int(np.argmax(dens))])
    k = int(peaks[0])
    curve = dens[k - 1] - 2 * dens[k] + dens[k + 1]
    return float(centres[k] + (0.5 * (dens[k - 1] - dens[k + 1]) / curve * width if curve != 0 else 0.0))


def pair_residuals(events: np.ndarray, matrix, indices: list[int], *, min_spillover: float = 0.02,
                   low_quantile: float = 0.1, min_power: float = 4.0, min_bright: int = 100,
                   mode_bandwidth: float = 0.6) -> list[tuple[str, str, float, float, float, float]]:
    """Per informative detector pair, ``(source, detector, spillover, power, d, d_mode)`` on ``events``
    (linear scale; see the module contract; ``d_mode`` from the lowest modes of the detector, bandwidth
    ``mode_bandwidth`` robust SDs of the detector among dim events). ``power`` = the pair's expected shift
    ``s × (median(i | informative) − median(i | dim))`` over the robust SD of the detector among dim events (≥ ``min_power``, as each
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
            jb = xj[bright]
            # one sort per array: the residual's low quantile and the range the modes are read on
            (qd, lo_d, hi_d), (qb, lo_b, hi_b) = (np.quantile(v, (low_quantile, 0.001, 0.9)) for v in (jd, jb))
            d = (float(qb) - float(qd)) / expect
            lo, hi = min(float(lo_d), float(lo_b)), max(float(hi_d), float(hi_b))
            h = mode_bandwidth * sd
            d_mode = (lowest_mode(jb, h, lo, hi) - lowest_mode(jd, h, lo, hi)) / expect
            out.append((str(matrix.channels[a]), str(matrix.channels[b]), round(s, 4),
                        round(float(min(expect / sd, 1e6)), 2), round(d, 3), round(d_mode, 3)))
    return out


def check_compensation(observed: np.ndarray, compensated: np.ndarray, matrix, indices: list[int], *,
                       over_threshold: float = -0.6, suspect_threshold: float = -0.25,
                       max_events: int = 50000) -> CompensationCheck:
    """Check one compensation (see the module contract). ``observed`` is accepted for symmetry and
    future checks; the verdict uses the compensated events (linear scale, subsampled to ``max_events``).
    ``overcompensated`` when the median ``d`` ≤ ``over_threshold``; otherwise the note
    ``compensation_suspect`` when the median ``d_mode`` ≤ ``suspect_threshold`` (fractions of the spillover
    the matrix removes).
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
    modes = [p[5] for p in pairs if np.isfinite(p[5])]
    med_mode = float(np.median(modes)) if modes else float("nan")
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    detail = f"median residual spillover {med:+.2f} over {len(pairs)} detector pairs (0 = right)"
    if med <= over_threshold:
        flags = (FLAG_OVER,)
        worst = sorted(pairs, key=lambda p: p[4])[:3]
        detail += ("; spillover looks removed twice (were the data already compensated?)"
                   if med > -1.6 else "; spillover over-subtracted (matrix too strong?)")
        detail += "; e.g. " + ", ".join(f"{p[0]}->{p[1]} {p[4]:+.2f}" for p in worst)
    elif med_mode <= suspect_threshold:
        notes = (NOTE_SUSPECT,)
        worst = sorted((p for p in pairs if np.isfinite(p[5])), key=lambda p: p[5])[:3]
        detail += (f"; the negatives of bright events sit {-med_mode:.2f} of the removed spillover below their dim "
                   f"neighbours (median over pairs): spillover values too large by about "
                   f"{100 * -med_mode / (1 + med_mode):.0f} %? e.g. "
                   + ", ".join(f"{p[0]}->{p[1]} {p[5]:+.2f}" for p in worst))
    return CompensationCheck(flags, med, pairs, detail, notes, med_mode)


def compensation_flags(sample) -> list[str]:
    """The words of the compensation check recorded on a Sample by :func:`cytokit.compensation.compensate`:
    ``overcompensated`` when it failed, ``compensation_unchecked`` when it could not decide (no informative
    detector pair; a note, not a failure), ``compensation_suspect`` when the negatives of bright events lean
    below their dim neighbours (a note), ``[]`` when it passed or did not run."""
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


def moved_channel_words(sample) -> dict[str, list[str]]:
    """Word of :data:`ROW_WORDS` (``overcompensated``, ``compensation_suspect``) -> the channels ($PnN)
    compensation moved in a Sample whose check recorded it (from the warning
    :func:`cytokit.compensation.compensate` wrote, :func:`moved_text`); ``{}`` when the check passed
    without such a word or did not run."""
    out: dict[str, list[str]] = {}
    for w in getattr(sample, "warnings", ()):
        text = str(w)
        m = _MOVED.search(text) if text.startswith(WARNING_PREFIX) else None
        if m:
            word = text[len(WARNING_PREFIX):].strip().split(" ", 1)[0].rstrip(":")
            chans = out.setdefault(word, [])
            chans += [c for c in (s.strip() for s in m.group("channels").split(", ")) if c and c not in chans]
    return out


def moved_channels(sample) -> list[str]:
    """The channels ($PnN) compensation moved in a Sample whose compensation check failed or found the
    negatives leaning (:func:`moved_channel_words`, every word); ``[]`` when the check passed or did not run."""
    out: list[str] = []
    for chans in moved_channel_words(sample).values():
        out += [c for c in chans if c not in out]
    return out
