"""How far off a threshold gate's population may be: the estimated error (pp) and threshold sensitivity.

Contract
--------
A fitted threshold can be off for reasons no density rule sees (a shoulder read as a mode, a valley
inside a continuum, a negative population whose tail is not where the tail rule assumes). What that
costs depends on how many events lie where the threshold could plausibly be, so both are measured on
the parent's events (gate coordinates: logicle 0..1 for fluorescence):

* :func:`estimated_error` -> ``est_error_pp``: the error of the population's **% of parent** (percentage
  points) that the uncertainty of its own thresholds implies. Each threshold's plausible alternatives
  are (a) the same rule re-run on the density smoothed less and more (the refits
  ``info["stability_thresholds"]`` of :func:`~.density.fit_threshold`: where a valley is depends on how the
  density is read), as far as they stay in the middle of the gap between the two modes around the
  threshold (a refit beyond a mode chose another valley altogether, and one within
  :data:`MODE_EDGE_FRACTION` of the gap next to a mode found a dip inside that mode's body -- the less
  smoothed density splits a broad mode in two: neither is an uncertainty of this threshold's position, they
  are the note ``unstable``) and (b) for a tail-placed threshold, the tail moved by ±:data:`TAIL_SD_UNCERTAINTY`
  half-SDs of its reference peak (how many SDs "above the negatives" is a convention, not a measurement).
  Each alternative moves the population by some pp; a threshold's term is the largest such move and
  ``est_error_pp`` is the root sum of squares of the terms of all thresholds. It grows with the density
  of events at the threshold (times how far the threshold could move): ~0 for a threshold in an empty
  valley, large for one cutting through a continuum or a dense peak.
* :func:`threshold_sensitivity` -> ``sensitivity_pp``: the largest change in % of parent when any one
  threshold moves by a fixed ±:data:`SHIFT` (recorded for reference; not a flag).

A population whose ``est_error_pp`` exceeds :data:`UNCERTAIN_PP` is flagged ``uncertain`` (a review flag).
The limit and :data:`TAIL_SD_UNCERTAINTY` were chosen on the tuning scenario families of
``benchmarks/gating_accuracy.py``, which prints, per split, the observed error per band of
``est_error_pp`` and the flag's recall and precision on held-out families.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .base import subsample

#: threshold shift (gate coordinates) used by :func:`threshold_sensitivity`: ~1.2x in linear signal
SHIFT = 0.02
#: a tail-placed threshold may plausibly lie this many half-SDs of its reference peak higher or lower
TAIL_SD_UNCERTAINTY = 0.25
#: a population whose ``est_error_pp`` exceeds this (percentage points) is flagged ``uncertain``; chosen on the
#: tuning draws 101, 404 and 505 (1.5, chosen on 101 and 404 alone, caught 24 of 32 estimates > 2 pp off in
#: the 505 draws; 1.0 catches 30 of them there and all 19 of 101/404)
UNCERTAIN_PP = 1.0
#: a smoothing refit within this fraction of the gap between the two modes around a valley threshold, next
#: to one of them, split that mode rather than moved the valley: not an alternative position. Chosen on the
#: tuning draws (101, 404, 505, 606): 0.15-0.25 keep every estimate > 2 pp off that 0 keeps flagged and
#: drop most false alarms (CD56dim/bright refits inside the bright mode); 0.33 loses a fifth of the recall
MODE_EDGE_FRACTION = 0.2
#: rows used for the probes (a random subsample beyond this)
MAX_EVENTS = 20000

Member = Callable[[np.ndarray, Sequence[float | None]], np.ndarray]


@dataclass(frozen=True)
class ThresholdUncertainty:
    """Where one fitted threshold could plausibly lie instead: ``alternatives`` (gate coordinates)."""

    value: float | None
    alternatives: tuple[float, ...] = ()

    @classmethod
    def from_fit(cls, value: float | None, info: Mapping[str, Any] | None) -> "ThresholdUncertainty":
        """Alternatives of a threshold fitted by :func:`~.density.fit_threshold` (``info`` = its info):
        the smoothing refits that lie between the fit's modes on either side of ``value`` (``info["peaks"]``),
        outside the outer :data:`MODE_EDGE_FRACTION` of the gap next to each mode when there are modes on
        both sides (unless ``value`` itself lies there); for a threshold placed by the negative model's count
        (method ``excess``) its recorded alternatives (the count -/+ its SD) as they are; and for a
        tail-placed threshold the tail moved by ±TAIL_SD_UNCERTAINTY SDs."""
        if value is None or not info:
            return cls(value)
        peaks = [float(p) for p in info.get("peaks", ())]
        lo = max((p for p in peaks if p < value), default=-np.inf)
        hi = min((p for p in peaks if p > value), default=np.inf)
        if info.get("method") == "excess":  # the count's own uncertainty, not refits of a valley
            lo, hi = -np.inf, np.inf
        elif np.isfinite(lo) and np.isfinite(hi):  # (never narrower than where the fit itself lies)
            edge = MODE_EDGE_FRACTION * (hi - lo)
            lo, hi = min(lo + edge, value), max(hi - edge, value)
        alts = [float(a) for a in info.get("stability_thresholds", ())
                if a is not None and np.isfinite(a) and lo < a < hi]
        if info.get("method") == "tail" and info.get("half_sd"):
            d = TAIL_SD_UNCERTAINTY * float(info["half_sd"])
            alts += [value - d, value + d]
        return cls(value, tuple(a for a in alts if a != value))


def estimated_error(X: np.ndarray, thresholds: Sequence[ThresholdUncertainty], member: Member, *,
                    seed: int = 0) -> float:
    """Estimated error (percentage points of % of parent) implied by the thresholds' plausible positions.

    ``member(X, values)`` returns the boolean membership of the rows of ``X`` (the parent's events in the
    gate's dimensions) for threshold values ``values`` (one per entry of ``thresholds``; ``None`` = an
    open side). For each threshold: the largest |change in % of parent| when it alone is moved to one of
    its ``alternatives``; the result is the root sum of squares over thresholds. NaN when no threshold has
    alternatives (fixed or quantile thresholds: nothing measured), 0.0 for an empty parent.
    """
    if not any(t.alternatives for t in thresholds):
        return float("nan")
    if X.shape[0] == 0:
        return 0.0
    X = subsample(X, MAX_EVENTS, seed)
    values = [t.value for t in thresholds]
    base = float(member(X, values).mean())
    total = 0.0
    for i, t in enumerate(thresholds):
        worst = 0.0
        for alt in t.alternatives:
            moved = list(values)
            moved[i] = alt
            worst = max(worst, abs(float(member(X, moved).mean()) - base))
        total += worst * worst
    return 100.0 * float(np.sqrt(total))


def threshold_sensitivity(X: np.ndarray, values: Sequence[float | None], member: Member, *,
                          shift: float = SHIFT, seed: int = 0) -> float:
    """Largest |change in % of parent| (pp) when any one of ``values`` moves by ``±shift``.

    ``member(X, values)`` returns the boolean membership of the rows of ``X`` for thresholds ``values``
    (``None`` entries are open sides and are not moved).
    """
    if X.shape[0] == 0:
        return 0.0
    X = subsample(X, MAX_EVENTS, seed)
    base = float(member(X, values).mean())
    worst = 0.0
    for i, v in enumerate(values):
        if v is None:
            continue
        for d in (-shift, shift):
            moved = list(values)
            moved[i] = v + d
            worst = max(worst, abs(float(member(X, moved).mean()) - base))
    return 100.0 * worst
