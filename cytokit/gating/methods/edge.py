"""How much of a threshold-gated population lies at its own dividers: error relative to the population.

``est_error_pp`` (:mod:`.confidence`) measures how far a threshold could move and what that costs in
percentage points **of the parent**. A divider in a clean valley of the parent as a whole has almost no
plausible movement and few parent events near it, so ``est_error_pp`` stays ~0 -- even when a *small*
population sits exactly there (NK cells dim for a CD3/CD19 dump channel cut in two by the parent's
CD3/CD19 valley: 0.07 pp of the parent, but the NK count changes by half when the divider moves by 0.05).
This module measures the same thing relative to the population itself, on the parent's events in the gate
coordinates (logicle 0..1 for fluorescence):

* ``edge_share`` -- the largest share (fraction 0..1) of the population's own events within
  :data:`EDGE_WIDTH` of one of its thresholds;
* ``est_error_rel`` -- the largest change of the population's count, in **% of that count**, when any
  one threshold moves by ±:data:`EDGE_WIDTH` or to one of its plausible alternatives
  (:class:`~.confidence.ThresholdUncertainty`).

Two levels, measured on the tuning draws of ``benchmarks/gating_accuracy.py`` (seeds 101/404/505/606,
10,888 estimates; docs/gating.md, "Error relative to the population"):

* ``est_error_rel`` > :data:`REVIEW_REL` % -> review flag ``cut_through`` (moving a divider by 0.03 more
  than doubles the population): fired on 16 estimates, none of them right (within 1 pp and within 10 % of
  the true value), all more than 25 % off relative to the population;
* ``est_error_rel`` > :data:`NOTE_REL` % -> the note ``edge_sensitive`` (not a review flag): fired on
  116 more, 48 of them right -- too often right to ask for review, but it says the count depends on
  exactly where the divider is (a small population at an intermediate level of the gating marker).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .confidence import ThresholdUncertainty

#: gate coordinates (logicle 0..1): "at a divider" for ``edge_share``, and the fixed move of each threshold
#: for ``est_error_rel`` (~1.3x in linear signal; a threshold placed by eye or by another rule is easily
#: that far from ours)
EDGE_WIDTH = 0.03
#: ``est_error_rel`` above this (% of the population's own count) gives the review flag ``cut_through``
REVIEW_REL = 100.0
#: ``est_error_rel`` above this (% of the population's own count) gives the note ``edge_sensitive``
NOTE_REL = 25.0
#: the count change is taken relative to at least this many events (a population of 0-19 events is not
#: "cut" by 3 events moving, but is when a move adds 50)
MIN_EVENTS = 20

Member = Callable[[np.ndarray, Sequence[float | None]], np.ndarray]


def edge_measures(X: np.ndarray, values: Sequence[float | None], member: Member, columns: Sequence[int],
                  uncertainties: Sequence[ThresholdUncertainty] = (), *,
                  width: float = EDGE_WIDTH) -> dict[str, float | None]:
    """``{"edge_share": fraction 0..1, "est_error_rel": % of the population's count}`` for a gate whose
    membership is ``member(X, values)`` on the parent's events ``X`` (gate coordinates); ``columns[i]``:
    the column of ``X`` threshold ``i`` is on; ``uncertainties[i]``: its plausible alternatives (optional).
    ``est_error_rel`` is relative to the count or :data:`MIN_EVENTS`, whichever is larger (so an empty or
    tiny population next to many events just beyond its divider is measured too); ``edge_share`` is None for
    an empty population; both are None when no threshold is set.
    """
    none: dict[str, float | None] = {"edge_share": None, "est_error_rel": None}
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or all(v is None for v in values):
        return none
    inside = member(X, values)
    n = int(inside.sum())
    share = 0.0
    worst = 0
    for i, (v, col) in enumerate(zip(values, columns)):
        if v is None or not np.isfinite(v):
            continue
        if n:
            share = max(share, float(np.mean(np.abs(X[inside, col] - v) < width)))
        alts = list(uncertainties[i].alternatives) if i < len(uncertainties) else []
        for pos in [v - width, v + width, *alts]:
            moved = list(values)
            moved[i] = pos
            worst = max(worst, abs(int(member(X, moved).sum()) - n))
    return {"edge_share": round(share, 4) if n else None, "est_error_rel": round(100.0 * worst / max(n, MIN_EVENTS), 2)}


def record_edge(X: np.ndarray, values: Sequence[float | None], member: Member, columns: Sequence[int],
                uncertainties: Sequence[ThresholdUncertainty], info: dict[str, Any], flags: list[str]) -> None:
    """Store :func:`edge_measures` in ``info``; append the review flag ``cut_through`` to ``flags`` when
    ``est_error_rel`` exceeds :data:`REVIEW_REL`, else the note ``edge_sensitive`` when it exceeds
    :data:`NOTE_REL`."""
    m = edge_measures(X, values, member, columns, uncertainties)
    info.update(m)
    rel = m["est_error_rel"]
    if rel is not None and rel > REVIEW_REL:
        flags.append("cut_through")
    elif rel is not None and rel > NOTE_REL:
        flags.append("edge_sensitive")
