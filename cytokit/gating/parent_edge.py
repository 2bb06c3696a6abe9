"""How much a population's % of parent depends on where its parent's own thresholds lie (``parent_edge_pp``).

A population's ``est_error_pp`` measures the uncertainty of its *own* thresholds (:mod:`.methods.confidence`).
Its parent's thresholds are uncertain too (a tail, a valley inside a continuum), and when the events near
the parent's edge are unlike the parent's core, the population's share of the parent moves with that edge
although its own thresholds sit in clean valleys. Example (real data, A2004 in docs/gating.md): HLA-DR
has a dim plateau between the negative and the bright cells; the CD11c+ share of the HLA-DR+ cells (mDC %
of APC) is 29 % with the APC edge at the valley above the negatives, 25 % at the bright peak's tail, 16 %
where the expert drew it, while mDC's own CD11c valley is clean (``est_error_pp`` 0.4).

The rule: for a population whose parent is a fitted ``threshold`` or ``quadrant`` gate, each of the
parent's thresholds is moved, alone, to each of its plausible alternatives -- the same ones the parent's
own ``est_error_pp`` uses (:meth:`~.methods.confidence.ThresholdUncertainty.from_fit`) -- the parent is
re-evaluated on the grandparent's events, and the population's fitted gate (unchanged) on those events;
the largest change of its % of parent per parent threshold, root sum of squares over them, is
``info["parent_edge_pp"]`` (percentage points of % of parent). The population table adds it to
``est_error_pp`` (root sum of squares); where that takes the estimate above the ``uncertain`` limit the row
gets the note ``parent_edge`` and the review flag ``uncertain``. Only the direct parent is moved (a
grandparent's edge is the parent's own ``parent_edge_pp``); populations with Boolean gates are not measured.

A parent threshold placed by a tail (no valley; :func:`~.methods.density.fit_threshold` method ``tail``) on a
marker its child reads against a negative reference (``negative_reference: ...`` of the child, e.g. CD56
bright / dim NK against the T cells) has one more plausible place: the reference negatives' upper end
(``negative_max``), when that lies below the tail on the side the parent keeps (:func:`reference_alternatives`).
The tail's width is the outer half-SD of the grandparent's events on that marker; cells just above the
negatives widen it (lab B 16161 ``B04_V24_nk``: CD56 half-SD 0.017 on all live cells, 0.004 on the T cells; the
NK gate's CD56 tail at 0.328 left out 77 NK cells, all CD56dim, 51 of them above the T cells' 0.292: CD56bright
48.5 % of NK against 45.3 % true). A ``phenotype`` parent (an AND of markers, one quadrant gate) is moved to
these reference places only: its own plausible alternatives (smoothing refits of CD3 / CD20 / CD56 valleys)
moved NK's children by > 1 pp on 3 rows of lab B 15151, all within 1 pp of the truth, and on none that was wrong.
A phenotype with OR-ed markers (a Boolean gate) is not measured. docs/gating.md, "Lab B's silent CD56bright /
CD56dim NK pair".
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..gates import BooleanGate, Gate, QuadrantGate, RectangleGate
from .methods.base import FitResult, every_nth, gather
from .methods.confidence import ThresholdUncertainty

if TYPE_CHECKING:
    from ..sample import Sample
    from .fit_state import FitState
    from .model import StrategyDefinition

#: ``info`` key of a fit: the change (pp of % of parent) its parent's plausible edges imply
PARENT_EDGE_KEY = "parent_edge_pp"
#: the note on a row whose ``est_error_pp`` crossed the ``uncertain`` limit by its parent's edge
PARENT_EDGE_FLAG = "parent_edge"
#: rows of the grandparent used (a systematic sample beyond this)
MAX_EVENTS = 20000
#: gate methods whose fitted thresholds (``info[dim]``) are moved
MOVABLE = ("threshold", "quadrant", "phenotype")
#: ``info`` sections of a one-marker child's fit that may hold its ``negative_reference``
_REFERENCE_SECTIONS = ("lower", "upper")


def _moved(gate: Gate, i: int, value: float) -> Gate | None:
    """``gate`` with its threshold on dimension ``i`` at ``value`` (None when it has no single one there)."""
    if isinstance(gate, QuadrantGate):
        dividers = list(gate.dividers)
        dividers[i] = value
        return dataclasses.replace(gate, dividers=tuple(dividers))
    if isinstance(gate, RectangleGate) and len(gate.dims) == 1:
        lower, upper = gate.lower[0], gate.upper[0]
        if (lower is None) == (upper is None):  # an interval (two thresholds) or no threshold
            return None
        return dataclasses.replace(gate, lower=(value if lower is not None else None,),
                                   upper=(value if upper is not None else None,))
    return None


def _threshold(gate: Gate, i: int) -> float | None:
    if isinstance(gate, QuadrantGate):
        return float(gate.dividers[i])
    if isinstance(gate, RectangleGate) and len(gate.dims) == 1:
        v = gate.lower[0] if gate.lower[0] is not None else gate.upper[0]
        return None if v is None else float(v)
    return None


@dataclasses.dataclass(frozen=True)
class ParentMoves:
    """A parent's membership on its grandparent's (sampled) events, and with each of its thresholds moved
    alone to each plausible alternative: ``inside`` (the fitted parent) and ``moves[i]`` (one membership per
    alternative of the parent's threshold on dimension ``i``; empty when it has none). ``measured`` is True
    when at least one threshold had an alternative. Computed once per parent and shared by its children."""

    inside: np.ndarray
    moves: tuple[tuple[np.ndarray, ...], ...]
    measured: bool


def _keeps_above(gate: Gate, i: int) -> bool:
    """True when ``gate`` keeps the events above its threshold on dimension ``i``."""
    if isinstance(gate, QuadrantGate):
        return gate.signs[i] > 0
    return isinstance(gate, RectangleGate) and len(gate.dims) == 1 and gate.lower[0] is not None


def child_negative_max(child_dims: tuple[str, ...], child_info: dict) -> dict[str, float]:
    """The upper end of the negatives (``negative_reference["negative_max"]``, gate coordinates) of a one-marker
    child's negative reference, by marker: ``{dim: negative_max}`` (empty when it has none)."""
    if len(child_dims) != 1:
        return {}
    sections = [child_info.get(child_dims[0]), *(child_info.get(k) for k in _REFERENCE_SECTIONS)]
    for section in sections:
        ref = section.get("negative_reference") if isinstance(section, dict) else None
        if isinstance(ref, dict) and ref.get("negative_max") is not None and np.isfinite(ref["negative_max"]):
            return {child_dims[0]: float(ref["negative_max"])}
    return {}


def reference_alternatives(parent_gate: Gate, i: int, dim_info: dict | None,
                           negative_max: dict[str, float]) -> tuple[float, ...]:
    """The extra plausible place of the parent's threshold on dimension ``i`` (see the module docstring): the
    child's reference ``negative_max`` (gate coordinates) when the parent placed that threshold by a tail and
    keeps the events above it, and the reference's negatives end below it; else none."""
    dim = parent_gate.dims[i]
    value = _threshold(parent_gate, i)
    if value is None or dim not in negative_max or not dim_info or dim_info.get("method") != "tail":
        return ()
    if not _keeps_above(parent_gate, i) or not negative_max[dim] < value:
        return ()
    return (negative_max[dim],)


def parent_moves(parent_gate: Gate, parent_info: dict, Xp: np.ndarray,
                 negative_max: dict[str, float] | None = None, own: bool = True) -> ParentMoves:
    """:class:`ParentMoves` of ``parent_gate`` on ``Xp`` (the grandparent's events in the parent's dims);
    ``negative_max``: the child's reference negatives' upper end by marker (:func:`child_negative_max`);
    ``own``: False moves the thresholds to :func:`reference_alternatives` only, not to their own plausible
    alternatives (a ``phenotype`` parent, see the module docstring)."""
    inside = parent_gate.contains(Xp)
    moves: list[tuple[np.ndarray, ...]] = []
    measured = False
    for i, dim in enumerate(parent_gate.dims):
        value = _threshold(parent_gate, i)
        alts = ThresholdUncertainty.from_fit(value, parent_info.get(dim)).alternatives \
            if value is not None and own else ()
        alts = (*alts, *reference_alternatives(parent_gate, i, parent_info.get(dim), negative_max or {}))
        rows: list[np.ndarray] = []
        for alt in alts:
            moved = _moved(parent_gate, i, alt)
            if moved is None:
                continue
            measured = True
            rows.append(moved.contains(Xp))
        moves.append(tuple(rows))
    return ParentMoves(inside, tuple(moves), measured)


def child_edge_pp(parent: ParentMoves, child_gate: Gate, Xc: np.ndarray) -> float | None:
    """``parent_edge_pp`` of one population from its parent's :class:`ParentMoves`; ``Xc`` are the same
    grandparent events (same rows) in the population's dims. None when the parent has no event or no
    threshold with alternatives."""
    n_inside = int(np.count_nonzero(parent.inside))
    if not n_inside:
        return None
    child = child_gate.contains(Xc)  # an event's membership does not depend on which parent holds it
    base = int(np.count_nonzero(child & parent.inside)) / n_inside
    total = 0.0
    for alternatives in parent.moves:
        worst = 0.0
        for rows in alternatives:
            n_rows = int(np.count_nonzero(rows))
            if n_rows:
                worst = max(worst, abs(int(np.count_nonzero(child & rows)) / n_rows - base))
        total += worst * worst
    return 100.0 * float(np.sqrt(total)) if parent.measured else None


def parent_edge_pp(parent_gate: Gate, parent_info: dict, child_gate: Gate, grand: np.ndarray,
                   child_cols: np.ndarray, negative_max: dict[str, float] | None = None,
                   own: bool = True) -> float | None:
    """``parent_edge_pp`` of one population: ``grand`` are the grandparent's events in the parent's dims
    followed by the population's dims (``child_cols`` index the latter within ``grand``); ``negative_max``:
    its negative reference's upper end by marker (:func:`child_negative_max`); ``own`` as
    :func:`parent_moves` (False for a ``phenotype`` parent, as :func:`record_parent_edges` measures it); None
    when the parent has no threshold with alternatives."""
    moves = parent_moves(parent_gate, parent_info, grand[:, :len(parent_gate.dims)], negative_max, own)
    return child_edge_pp(moves, child_gate, grand[:, child_cols])


def record_parent_edges(definition: "StrategyDefinition", sample: "Sample", state: "FitState") -> None:
    """Record :data:`PARENT_EDGE_KEY` in the ``info`` of every fitted population whose parent is a fitted
    ``threshold`` or ``quadrant`` gate (see the module docstring); recomputed on every fit (a re-fit of a
    parent changes its children's values)."""
    methods = {spec.name: spec.method for spec in definition.populations}
    # per parent, within this call only: the grandparent's sampled rows and the parent's memberships on them
    cache: dict[tuple[str, tuple[tuple[str, float], ...]], tuple[np.ndarray, ParentMoves]] = {}
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        if fit is None:
            continue
        info = {k: v for k, v in fit.info.items() if k != PARENT_EDGE_KEY}
        parent = state.fits.get(spec.parent) if spec.parent is not None else None
        if spec.parent is not None and parent is not None and methods.get(spec.parent) in MOVABLE \
                and not fit.components and not isinstance(fit.gate, BooleanGate) \
                and not isinstance(parent.gate, BooleanGate):  # a phenotype with OR-ed markers: no one threshold
            negative_max = child_negative_max(tuple(spec.dims), info)
            key = (spec.parent, tuple(sorted(negative_max.items())))
            if key not in cache:
                pspec = definition.population(spec.parent)
                grand = state.masks[pspec.parent] if pspec.parent else np.ones(sample.n_events, dtype=bool)
                rows = every_nth(np.flatnonzero(grand), MAX_EVENTS)
                cols = np.array([sample.channel_index(d) for d in pspec.dims], dtype=np.intp)
                cache[key] = rows, parent_moves(parent.gate, parent.info, gather(sample.events, rows, cols),
                                                negative_max, methods.get(spec.parent) != "phenotype")
            rows, moves = cache[key]
            cols = np.array([sample.channel_index(d) for d in spec.dims], dtype=np.intp)
            value = child_edge_pp(moves, fit.gate, gather(sample.events, rows, cols))
            if value is not None:
                info[PARENT_EDGE_KEY] = round(value, 3)
        if info.get(PARENT_EDGE_KEY) != fit.info.get(PARENT_EDGE_KEY):  # a new FitResult: a re-fit's state
            # shares the others with the earlier result
            state.fits[spec.name] = FitResult(fit.gate, fit.flags, info, fit.components)
