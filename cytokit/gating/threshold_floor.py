"""One marker, two gates, one file: a gate's threshold floored by another gate's (``threshold_floor``).

A strategy can hold two thresholds on one marker under the same parent, e.g. ``CD25+ CD4`` (CD25 valley or
tail) and ``Treg`` (CD25hi x CD127lo, its own CD25 tail). A CD25hi cell is CD25+, so a Treg gate whose CD25
cut lies below the CD25+ cut of the same file contradicts it (more Treg than CD25+ CD4 cells, in the
extreme). ``threshold_floor: {CD25: CD25+ CD4}`` on the Treg population states the nesting: its CD25
threshold is never placed below that population's CD25 threshold in the same file (the engine passes it as
the threshold's ``at_least``; the fit is flagged ``raised_to_floor`` when it was raised).

Where the raise moves more than :data:`DISAGREE_PP` % of the parent's events (the events between the two cuts),
the two gates read the marker differently and the data alone cannot say which is right: the floor's population
gets the review flag :data:`DISAGREE_FLAG` (``info["floor_moved_pct"]`` on the floored gate). The floored gate
gets it too only where the raise took more than :data:`FLOORED_OFF_PP` % of the parent's events out of that gate
(the events between the cuts that its other dimensions hold: :func:`moved_out_pct`): the floor can move the
floored row by no more than that, so below it the row is its own reading give or take that share (a Treg gate
whose CD127lo cut leaves out the CD25-dim CD127+ cells between the two cuts). Where the raise moves more than
:data:`OWN_INSIDE_PCT` %, the floored gate's own cut lay inside the parent's main population (a CD25hi cut
inside the CD25- peak: e.g. a tail measured from a small bump below the CD25- mode), so it, not the floor, was
wrong: the raise is the fix and no review flag is given. Values on the gates' transformed scale; shares in % of
the parent's events.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from .methods import GATE_METHODS, FitResult
from .methods.threshold import PhenotypeParams, ThresholdGateParams

if TYPE_CHECKING:  # pragma: no cover
    from .model import PopulationSpec

#: review flag of two gates whose thresholds on one marker (same parent, same file) disagree by more than
#: :data:`DISAGREE_PP`
DISAGREE_FLAG = "thresholds_disagree"
#: the note of a population whose fit has no floor because the floor's population was not fitted
NO_FLOOR_FLAG = "no_threshold_floor"
#: a floor that moves more than this share (% of the parent's events) across the floored threshold marks both
#: gates for review (chosen on lab B seeds 11-13/7777 and simulator seeds 909-1111; docs/gating.md)
DISAGREE_PP = 3.0
#: ... unless it moves more than this share: then the floored gate's own cut lay inside the flank of the parent's
#: main (negative) population, not at another reading of the same boundary (simulator 909-1111: Treg CD25 tails
#: 15-69 % of CD4 T below a right CD25+ cut; lab B: the disagreements over wrong CD25+ cuts 4.4-6.2 %)
OWN_INSIDE_PCT = 10.0
#: the floored gate shares the :data:`DISAGREE_FLAG` only where the raise took more than this share (% of the
#: parent's events) out of it: less cannot move its row by more than that (the floor's row keeps the flag;
#: chosen on simulator 1515/1616 and lab B 12: Treg rows right at <= 0.81 %, lab B B06_V24 3.07 pp off at 0.75 %)
FLOORED_OFF_PP = 0.5
#: methods whose parameters hold one :class:`~.methods.density.ThresholdParams` per dimension (threshold,
#: quadrant, phenotype): the ones a ``threshold_floor`` can name and be given to
FLOORED_METHODS: frozenset[str] = frozenset(
    name for name, m in GATE_METHODS.items() if issubclass(m.params_model, (ThresholdGateParams, PhenotypeParams)))


def fitted_threshold(fit: FitResult, dim: str) -> float | None:
    """The threshold a fitted threshold-type gate placed on ``dim`` (transformed scale), or None."""
    thresholds = fit.info.get("thresholds")
    if isinstance(thresholds, dict):  # quadrant, phenotype
        value = thresholds.get(dim)
    else:  # threshold: one dimension
        value = fit.info.get("threshold") if tuple(fit.gate.dims[:1]) == (dim,) else None
    return None if value is None or not np.isfinite(value) else float(value)


def floors(spec: PopulationSpec, fits: dict[str, FitResult]) -> tuple[dict[str, float], tuple[str, ...]]:
    """``spec``'s floors in this file: {dim: the named population's fitted threshold on it}, and the note
    :data:`NO_FLOOR_FLAG` when a named population was not fitted (skipped) or placed no threshold on ``dim``."""
    out: dict[str, float] = {}
    missing = False
    for dim, name in spec.threshold_floor.items():
        fit = fits.get(name)
        value = None if fit is None else fitted_threshold(fit, dim)
        if value is None:
            missing = True
        else:
            out[dim] = value
    return out, ((NO_FLOOR_FLAG,) if missing else ())


def floored_params(spec: PopulationSpec, values: dict[str, float]) -> dict[str, Any]:
    """``spec.params`` with each floored dimension's threshold parameters given ``at_least`` = its floor."""
    params = copy.deepcopy(spec.params)
    if spec.method == "threshold":
        params["threshold"] = {**params.get("threshold", {}), "at_least": values[spec.dims[0]]}
        return params
    thresholds = list(params.get("thresholds", [{}]))
    if len(thresholds) == 1 and len(spec.dims) > 1:  # one entry for every dimension: one copy each
        thresholds = [copy.deepcopy(thresholds[0]) for _ in spec.dims]
    for i, dim in enumerate(spec.dims):
        if dim in values:
            thresholds[i] = {**thresholds[i], "at_least": values[dim]}
    params["thresholds"] = thresholds
    return params


def raised_thresholds(spec: PopulationSpec, fit: FitResult) -> list[tuple[int, float, float]]:
    """``(index in spec.dims, the fit's own value, the raised value)`` of every threshold of ``fit`` that a floor
    raised (its own value recorded as ``info[dim]["below_floor"]``; same scale as the gate)."""
    out = []
    for i, dim in enumerate(spec.dims):
        if dim not in spec.threshold_floor:
            continue
        below = (fit.info.get(dim) or {}).get("below_floor")
        value = fitted_threshold(fit, dim)
        if below is not None and value is not None:
            out.append((i, float(below), float(value)))
    return out


def moved_pct(spec: PopulationSpec, fit: FitResult, X: np.ndarray) -> float:
    """The largest share (% of the parent's events ``X``, in ``spec.dims``) lying between a floored
    threshold and the fit's own value below it; 0 when no floor raised one."""
    moved = 0.0
    for i, below, value in raised_thresholds(spec, fit) if X.shape[0] else ():
        x = X[:, i]
        x = x[np.isfinite(x)]
        if x.size:
            moved = max(moved, 100.0 * float(np.mean((x >= below) & (x < value))))
    return moved


def moved_out_pct(spec: PopulationSpec, fit: FitResult, X: np.ndarray) -> float:
    """The share (% of the parent's events ``X``, in ``spec.dims``) the floors took out of the fitted gate: the
    events between a floored threshold and the fit's own value below it that the gate would hold had that
    threshold stayed at its own value (inside the gate's other dimensions); 0 when no floor raised one."""
    if X.shape[0] == 0:
        return 0.0
    moved = np.zeros(X.shape[0], dtype=bool)
    lifted = np.array(X, dtype=np.float64, copy=True)
    for i, below, value in raised_thresholds(spec, fit):
        between = (X[:, i] >= below) & (X[:, i] < value)
        lifted[between, i] = value + max(1e-6, 1e-6 * abs(value))  # just above the raised cut
        moved |= between
    if not moved.any():
        return 0.0
    order = [spec.dims.index(d) for d in fit.gate.dims]
    inside = fit.gate.contains(lifted[moved][:, order])
    return 100.0 * float(np.count_nonzero(inside)) / X.shape[0]
