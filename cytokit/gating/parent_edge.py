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
MOVABLE = ("threshold", "quadrant")


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


def parent_moves(parent_gate: Gate, parent_info: dict, Xp: np.ndarray) -> ParentMoves:
    """:class:`ParentMoves` of ``parent_gate`` on ``Xp`` (the grandparent's events in the parent's dims)."""
    inside = parent_gate.contains(Xp)
    moves: list[tuple[np.ndarray, ...]] = []
    measured = False
    for i, dim in enumerate(parent_gate.dims):
        value = _threshold(parent_gate, i)
        alts = ThresholdUncertainty.from_fit(value, parent_info.get(dim)).alternatives if value is not None else ()
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
                   child_cols: np.ndarray) -> float | None:
    """``parent_edge_pp`` of one population: ``grand`` are the grandparent's events in the parent's dims
    followed by the population's dims (``child_cols`` index the latter within ``grand``); None when the
    parent has no threshold with alternatives."""
    moves = parent_moves(parent_gate, parent_info, grand[:, :len(parent_gate.dims)])
    return child_edge_pp(moves, child_gate, grand[:, child_cols])


def record_parent_edges(definition: "StrategyDefinition", sample: "Sample", state: "FitState") -> None:
    """Record :data:`PARENT_EDGE_KEY` in the ``info`` of every fitted population whose parent is a fitted
    ``threshold`` or ``quadrant`` gate (see the module docstring); recomputed on every fit (a re-fit of a
    parent changes its children's values)."""
    methods = {spec.name: spec.method for spec in definition.populations}
    # per parent, within this call only: the grandparent's sampled rows and the parent's memberships on them
    cache: dict[str, tuple[np.ndarray, ParentMoves]] = {}
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        if fit is None:
            continue
        info = {k: v for k, v in fit.info.items() if k != PARENT_EDGE_KEY}
        parent = state.fits.get(spec.parent) if spec.parent is not None else None
        if spec.parent is not None and parent is not None and methods.get(spec.parent) in MOVABLE \
                and not fit.components and not isinstance(fit.gate, BooleanGate):
            if spec.parent not in cache:
                pspec = definition.population(spec.parent)
                grand = state.masks[pspec.parent] if pspec.parent else np.ones(sample.n_events, dtype=bool)
                rows = every_nth(np.flatnonzero(grand), MAX_EVENTS)
                cols = np.array([sample.channel_index(d) for d in pspec.dims], dtype=np.intp)
                cache[spec.parent] = rows, parent_moves(parent.gate, parent.info, gather(sample.events, rows, cols))
            rows, moves = cache[spec.parent]
            cols = np.array([sample.channel_index(d) for d in spec.dims], dtype=np.intp)
            value = child_edge_pp(moves, fit.gate, gather(sample.events, rows, cols))
            if value is not None:
                info[PARENT_EDGE_KEY] = round(value, 3)
        if info.get(PARENT_EDGE_KEY) != fit.info.get(PARENT_EDGE_KEY):  # a new FitResult: a re-fit's state
            # shares the others with the earlier result
            state.fits[spec.name] = FitResult(fit.gate, fit.flags, info, fit.components)
