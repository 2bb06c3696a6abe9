"""Where a population's negatives end: the point above which the positives outnumber the negatives.

A small negative population under a large, dim positive mode (the CD56− NK cells under a dim CD56 reagent
lot's CD56dim mode) often leaves no valley: the negatives are a shoulder on the positive mode's lower side.
The tail of the lowest mode then has no negative mode to start from, and a valley between a few negatives
and many positives lies where the density is lowest, i.e. inside the negatives' upper tail (the small
population's side), not where the two populations meet.

With a **negative reference** (events of the same file and channel that are negative for the marker, e.g.
the T cells for CD56) the negatives' shape is known. The negative component of ``x`` is the reference's
density scaled to the negatives' count, and the count is read where positives are absent: the share of
``x`` below the reference's median, doubled (:data:`COUNT_LEVEL`). The boundary is the highest point below
the data's main mode (above the reference's mode) at which the data's density is less than twice the
negative component, i.e. the last point where the negatives are at least as dense as everything else
(the equal-density, minimum-misclassification boundary between the two populations).

Units: ``x``, ``reference`` and every position are on the gate's **transformed** scale (e.g. logicle
0..1); ``negative_pct`` is % (0..100) of the events of ``x``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kde import kde_1d

#: the negatives' count is the share of ``x`` below this quantile level of the reference, divided by it
#: (0.5: the reference's median; positives of ``x`` start above most negatives, so they are absent there)
COUNT_LEVEL = 0.5
#: fewer finite events in ``x`` or in the reference than this: no boundary
MIN_EVENTS = 50


@dataclass(frozen=True)
class NegativeCrossing:
    """The boundary (``value``) and what it rests on: ``negative_pct`` (% of ``x`` counted as negatives),
    ``reference_mode`` and ``main_mode`` (the reference's mode and the data's highest mode above it), and
    ``alternatives``: the boundary with the negatives' count moved by -/+ its counting SD (same scale)."""

    value: float
    negative_pct: float
    reference_mode: float
    main_mode: float
    alternatives: tuple[float, ...]

    def as_info(self) -> dict[str, object]:
        return {"value": round(self.value, 5), "negative_pct": round(self.negative_pct, 3),
                "reference_mode": round(self.reference_mode, 5), "main_mode": round(self.main_mode, 5),
                "alternatives": [round(a, 5) for a in self.alternatives]}


def _boundary(grid: np.ndarray, fx: np.ndarray, fneg: np.ndarray, start: int, top: int) -> float:
    """Highest grid point in [start, top) where ``fx`` < 2 ``fneg``, plus one step (``grid[start]`` if none)."""
    dominated = np.flatnonzero(fx[start:top] < 2.0 * fneg[start:top])
    return float(grid[start + dominated[-1] + 1] if dominated.size else grid[start])


def negative_crossing(x: np.ndarray, reference: np.ndarray, *, adjust: float = 1.0) -> NegativeCrossing | None:
    """The boundary above which the positives of ``x`` outnumber its negatives, the negatives modelled by
    ``reference`` (see the module docstring). ``adjust`` multiplies the KDE bandwidth of ``x``. None when
    either has fewer than :data:`MIN_EVENTS` finite values or ``x`` has no mode above the reference's mode."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    r = np.asarray(reference, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if x.size < MIN_EVENTS or r.size < MIN_EVENTS:
        return None
    d = kde_1d(x, adjust=adjust)
    dr = kde_1d(r)
    ref_mode = float(dr.grid[int(np.argmax(dr.density))])
    above = np.flatnonzero(d.grid > ref_mode)
    if above.size < 2:
        return None
    top = int(above[np.argmax(d.density[above])])
    if top == above[0]:
        return None
    f_ref = np.interp(d.grid, dr.grid, dr.density, left=0.0, right=0.0)
    share = float(np.mean(x < np.quantile(r, COUNT_LEVEL))) / COUNT_LEVEL
    share = min(share, 1.0)
    sd = float(np.sqrt(max(share * COUNT_LEVEL * (1.0 - share * COUNT_LEVEL), 0.0) / x.size)) / COUNT_LEVEL
    value = _boundary(d.grid, d.density, share * f_ref, int(above[0]), top)
    alts = tuple(_boundary(d.grid, d.density, max(share + k * sd, 0.0) * f_ref, int(above[0]), top)
                 for k in (-1.0, 1.0))
    return NegativeCrossing(value=value, negative_pct=100.0 * share, reference_mode=ref_mode,
                            main_mode=float(d.grid[top]), alternatives=alts)
