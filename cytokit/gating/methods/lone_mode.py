"""A lone mode of a ``+`` marker read against the same file's negative reference: is it negative or
positive, which mode holds the negatives, and where a gate holds the counted positives (used by the
threshold method's tail rule, :mod:`.density`). Values on the gate's transformed scale; shares are
fractions 0..1; the reference is the dict of :func:`.density.reference_negative` (mode, lower-half SD,
``negative_max``, share of its events at or below its mode)."""
from __future__ import annotations

from typing import Literal

import numpy as np

from .kde import Density1D

#: a lone mode read against a negative reference: the share of the parent's events that lie where the
#: reference's negatives are (at or below the reference's mode, divided by the reference's own share there;
#: :func:`negative_share`) estimates the parent's negative fraction. At or above this share the parent is
#: mostly negative: a lone mode above ``negative_max`` with so many events at the negatives' position (or one at
#: or below it with fewer) is read by position and count differently (flag ``ambiguous_mode``)
LONE_NEGATIVE_SHARE = 0.5
#: a lone mode above ``negative_max`` whose parent holds at most this share of negatives is all positive (the
#: threshold goes below its mode); with more, its lower side holds the negatives too (a dim positive mode
#: merged with the negatives, or a positive continuum with a negative shoulder) and the threshold is placed
#: where it holds the counted positives (``info["lone_mode"]["method"]`` "counted")
ALL_POSITIVE_SHARE = 0.05
#: with a negative reference, a lone mode within this many of the reference's SDs (lower half) of
#: ``negative_max`` is too close to it for its position to say negative or positive (``ambiguous_mode``,
#: whatever the count says): the margin in SDs moves with gain and fluorochrome, :data:`.density.MODE_MARGIN` does not
MODE_MARGIN_SD = 1.0
#: the mode's own asymmetry (:func:`side_excess`) is read this many of the reference's SDs (lower half) from the mode
ASYMMETRY_SD = 2.0
#: ... and decides an ambiguous mode only beyond this many of its counting SDs (else the position decides)
ASYMMETRY_SDS = 2.0


def side_excess(x: np.ndarray, mode: float, d: float) -> tuple[float, float]:
    """The parent's events beyond ``mode + d`` minus those beyond ``mode - d`` on the other side (fraction of
    ``x``; > 0: a heavier upper side) and its counting SD. The negatives of a ``+`` marker are one peak and its
    positives lie above them: a negative mode has the positives as an upper excess, a positive mode the
    negatives as a lower one, whatever the reference's position says."""
    n = max(x.size, 1)
    up, down = float(np.mean(x > mode + d)), float(np.mean(x < mode - d))
    return up - down, float(np.sqrt(max(up + down - (up - down) ** 2, 0.0) / n))


def negative_share(x: np.ndarray, neg: dict) -> float:
    """The share (fraction 0..1) of ``x``'s events that are negatives shaped like the reference ``neg``
    (:func:`.density.reference_negative`), counted where no positive of a ``+`` marker lies: the share of ``x`` at or
    below the reference's mode divided by the reference's own share there (about a half), at most 1. A
    reference that holds some positives above its mode does not bias it; negatives of ``x`` that sit higher
    than the reference's (spillover) lower it."""
    below = float(neg.get("share_below_mode") or 0.5)
    return min(1.0, float(np.mean(x <= float(neg["mode"]))) / max(below, 1e-9))


def negative_mode(d: Density1D, peaks: np.ndarray, neg: dict) -> int:
    """The grid index of the mode that holds the negatives, read against the same file's negative reference
    ``neg`` (:func:`.density.reference_negative`): of the modes at or below its ``negative_max``, the one nearest its
    mode; the lowest mode when none is. A small mode below the negatives (events dimmer than the negative
    population, e.g. a low-autofluorescence subset) is then not taken for them: a tail measured from it
    lies inside the negatives."""
    pos = d.grid[peaks]
    cand = [int(i) for i, g in zip(peaks, pos) if g <= float(neg["negative_max"])]
    if not cand:
        return int(peaks[0])
    return min(cand, key=lambda i: abs(float(d.grid[i]) - float(neg["mode"])))


def lone_mode_side(x: np.ndarray, mode: float, neg: dict
                    ) -> tuple[Literal["upper", "lower"], float | None, list[str], dict[str, object]]:
    """Whether the lone (lowest) mode ``mode`` of ``x`` is negative or positive for a ``+`` marker, read
    against the same file's negative reference ``neg`` (:func:`.density.reference_negative`) in two ways that move
    with gain and fluorochrome: its **position** (above ``negative_max`` = the reference's mode + REFERENCE_SD
    SDs of its lower half: positive) and the **count** of events where the reference's negatives lie
    (:func:`negative_share`, the parent's estimated negative fraction: below :data:`LONE_NEGATIVE_SHARE`
    mostly positive). Returns (side of the threshold, the position holding the counted positives or None,
    flags, info):

    * both say negative: the tail above the mode (no flag); both say positive: the threshold below the mode
      (``all_positive``), or, when the count finds more than :data:`ALL_POSITIVE_SHARE` negatives (a dim
      positive mode merged with the negatives, a positive continuum with a negative shoulder), where the
      gate holds the counted positives (a quantile of ``x``; ``all_positive`` too);
    * they disagree, or the mode lies within :data:`MODE_MARGIN_SD` SDs of ``negative_max``:
      ``ambiguous_mode``; a mode whose position says positive is read negative when its upper side holds a clear
      excess of events (:func:`side_excess` beyond :data:`ASYMMETRY_SDS` of its counting SDs, read
      :data:`ASYMMETRY_SD` reference SDs from the mode: the positives above a negative mode;
      ``info["decided_by"] = "side_excess"``); otherwise the position decides as it does without a count (a
      negative population whose negatives sit higher than the reference's, e.g. spread by spillover, has fewer
      events at the reference's mode than its negative fraction). A positive reading is placed where the gate
      holds the count.
    """
    share = negative_share(x, neg)
    above = mode > float(neg["negative_max"])
    info: dict[str, object] = {"mode": round(mode, 5), "negative_share": round(share, 4),
                               "above_negative_max": bool(above)}
    flags: list[str] = []
    near = abs(mode - float(neg["negative_max"])) < MODE_MARGIN_SD * float(neg["half_sd"])
    if near or above == (share >= LONE_NEGATIVE_SHARE):
        flags.append("ambiguous_mode")
        # the two readings cannot decide: a clear excess of events above the mode (the positives above a
        # negative mode) does; else the position. Only that way: an excess below is no sign of a positive mode,
        # as negatives on a logicle scale spread further below their mode than above it (lab B's CD4 T cells'
        # CD25 with 6 % positives: 5 % more events below than above)
        excess, sd = side_excess(x, mode, ASYMMETRY_SD * float(neg["half_sd"]))
        info["side_excess"] = round(excess, 4)
        if above and excess > ASYMMETRY_SDS * sd:
            above = False
            info["decided_by"] = "side_excess"
    if not above:
        info["method"] = "tail"
        return "upper", None, flags, info
    flags.append("all_positive")
    if share <= ALL_POSITIVE_SHARE:
        info["method"] = "below_mode"
        return "lower", None, flags, info
    info["method"] = "counted"
    return "lower", float(np.quantile(x, share)), flags, info
