"""Fit a strategy's populations top-down on a prepared Sample and evaluate them on all events.

Fits see the parent's events (methods subsample internally); membership is evaluated on every event with
the array kernels of :mod:`cytokit.gates`. Masks are boolean arrays over all the sample's events.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import GatingError, PanelError
from ..gates import BooleanGate, EllipsoidGate, Gate, gate_from_dict
from ..results import schema as S
from ..sample import Sample
from .methods import FitResult, fit_gate, get_method, review_columns
from .methods.base import every_nth, gather
from .count_error import FEW_EVENTS_FLAG, count_sd_pp, few_events
from .methods.confidence import UNCERTAIN_PP, with_error
from .methods.scatter_overlap import (BACKGATE_KEY, BACKGATE_MAX_EVENTS, FAILED_FLAG, FAILED_PP, MISSED_RATIO,
                                      OTHER_SHARE_KEY, OUTSIDE_KEY, OVERLAP_FLAG,
                                      DENOMINATOR_FLAG_PCT, DENOMINATOR_OTHER_KEY, MIRROR_MIN_PCT,
                                      backgate_error_pp, dilution_error_pp, fit_backgate, mirror_excess_share)
from .methods.scatter import shared_mixtures
from .methods.scatter_cut import CUT_FLAG, CUT_KEY, cut_error_pp, cut_share, ring_rows
from .methods.shared_fits import shared_threshold_fits
from .model import PopulationSpec, StrategyDefinition, reference_operands
from .lymphocyte_doublets import DOUBLET_KEY, DOUBLET_NOTE, record_lymphocyte_doublets
from .parent_edge import PARENT_EDGE_FLAG, PARENT_EDGE_KEY, record_parent_edges
from .threshold_floor import DISAGREE_FLAG, DISAGREE_PP, OWN_INSIDE_PCT, floored_params, floors, moved_pct

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

#: At most this many parent events are handed to a fit (methods subsample further with their own
#: ``max_events``); membership is always evaluated on every event.
FIT_EVENTS = 100_000
#: Parents holding more than this fraction of all events are evaluated on every event (then AND-ed) when
#: the gate's kernel is cheaper than gathering the parent's rows (:attr:`~cytokit.gates.Gate.cheap_kernel`).
DENSE_PARENT = 0.3
#: a population holding fewer than NEAR_EMPTY_SHARE (fraction) of a parent of at least NEAR_EMPTY_PARENT events is
#: flagged ``near_empty`` (review): a gate placed beyond its population (lab B: NK cells 1 of 16,047 events for
#: 6.8 % true, flagged only by placement notes); no simulated or lab-A estimate is that small
NEAR_EMPTY_SHARE, NEAR_EMPTY_PARENT = 0.001, 1000

TABLE_COLUMNS = (S.POPULATION, S.PARENT, S.COUNT, S.PARENT_COUNT, S.PCT_PARENT, S.PCT_LYMPHOCYTES, S.METHOD,
                 S.FLAGS, *S.REVIEW_COLUMNS, "dims", S.PHENOTYPE, S.EST_ERROR_PP, S.COUNT_SD_PP)


@dataclass
class FitState:
    """Masks and fits of the populations fitted so far (one sample)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    fits: dict[str, FitResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: scatter gates to be redrawn around a lymphocytes-only population's events (:func:`scatter_redraws`)
    templates: dict[str, np.ndarray] = field(default_factory=dict)


def _columns(sample: Sample, dims: tuple[str, ...]) -> np.ndarray:
    """Channel indices (intp array, usable with ``np.ix_``) of the named dims."""
    return np.array([sample.channel_index(d) for d in dims], dtype=np.intp)


def evaluate_gate(gate: Gate, sample: Sample, rows: np.ndarray, components: tuple[Gate, ...] = (),
                  masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Membership (over ``rows``, the parent's event indices) of a fitted gate."""
    if isinstance(gate, BooleanGate):
        local: dict[str, np.ndarray] = {}
        for comp in components:
            X = gather(sample.events, rows, _columns(sample, comp.dims))
            local[comp.id] = comp.contains(X)
        if masks:
            for name, m in masks.items():
                local.setdefault(name, m[rows])
        return gate.evaluate(local)
    X = gather(sample.events, rows, _columns(sample, gate.dims))
    return gate.contains(X)


def evaluate_stored(records: list[dict], sample: Sample, until: str | None = None) -> dict[str, np.ndarray]:
    """Masks (over ``sample``'s events) of stored concrete gates, nothing re-fitted.

    ``records`` are the pipeline's stored gate records in strategy order (parents first): ``population``,
    ``parent`` ("" for a root), ``gate`` (:meth:`~cytokit.gates.Gate.to_dict`) and ``components``.
    Stops after population ``until`` when given. A missing parent raises GatingError."""
    masks: dict[str, np.ndarray] = {}
    for entry in records:
        name = entry[S.POPULATION]
        parent = masks.get(entry[S.PARENT]) if entry[S.PARENT] else np.ones(sample.n_events, dtype=bool)
        if parent is None:
            raise GatingError(f"stored gates: parent {entry['parent']!r} of {name!r} missing", path=sample.path)
        rows = np.flatnonzero(parent)
        gate = gate_from_dict(entry["gate"])
        components = tuple(gate_from_dict(c) for c in entry.get("components", []))
        inside = evaluate_gate(gate, sample, rows, components, masks)
        mask = np.zeros(sample.n_events, dtype=bool)
        mask[rows[inside]] = True
        masks[name] = mask
        if name == until:
            break
    return masks


def _reference_events(spec: PopulationSpec, sample: Sample, state: FitState, cols: np.ndarray
                      ) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The negative-reference population's events in ``spec``'s dims (at most :data:`FIT_EVENTS`, a
    systematic sample), or None and the flag ``no_negative_reference`` when that population was skipped."""
    if spec.negative_reference is None:
        return None, ()
    ref = reference_mask(spec.negative_reference, state.masks)
    if ref is None:
        log.warning("%s: %s: negative reference %r was not fitted; lone modes are placed by negative_max",
                    sample.name, spec.name, spec.negative_reference)
        return None, ("no_negative_reference",)
    rows = np.flatnonzero(ref)
    rows = every_nth(rows, FIT_EVENTS)
    return gather(sample.events, rows, cols), ()


def reference_mask(expression: str, masks: dict[str, np.ndarray]) -> np.ndarray | None:
    """The events of a ``negative_reference`` expression (one population, or the intersection of populations
    and complements, :func:`~.model.reference_operands`), or None when one of them was not fitted."""
    out: np.ndarray | None = None
    for name, negated in reference_operands(expression):
        m = masks.get(name)
        if m is None:
            return None
        m = ~m if negated else m
        out = m if out is None else out & m
    return out


def fit_population(spec: PopulationSpec, sample: Sample, state: FitState) -> None:
    """Fit one population from its parent's events and store its mask (or why it was skipped)."""
    if spec.parent is not None and spec.parent not in state.masks:
        state.skipped[spec.name] = f"parent {spec.parent!r} was skipped"
        return
    parent = state.masks[spec.parent] if spec.parent is not None else np.ones(sample.n_events, dtype=bool)
    rows = np.flatnonzero(parent)
    method = get_method(spec.method)
    try:
        cols = _columns(sample, spec.dims)
    except PanelError as exc:
        if spec.optional:
            state.skipped[spec.name] = str(exc)
            log.info("%s: optional population %r skipped: %s", sample.name, spec.name, exc)
            return
        raise GatingError(f"population {spec.name!r}: {exc}", path=sample.path) from None
    fit_rows = every_nth(rows, FIT_EVENTS)  # systematic sample over acquisition time
    fit_X = gather(sample.events, fit_rows, cols) if cols.size else np.empty((fit_rows.size, 0), dtype=np.float32)
    reference, ref_flags = _reference_events(spec, sample, state, cols)
    params = spec.params
    if spec.threshold_floor:  # another gate's threshold on the same marker, same file (.threshold_floor)
        floor_values, floor_flags = floors(spec, state.fits)
        params = floored_params(spec, floor_values) if floor_values else params
        ref_flags = ref_flags + floor_flags
    try:
        fit = fit_gate(spec.method, fit_X, params, dims=spec.dims, gate_id=spec.name, reference=reference,
                       template=state.templates.get(spec.name))
    except GatingError as exc:  # name the file too
        raise GatingError(f"{exc} ({rows.size} parent events)", path=sample.path) from None
    if method.needs_masks or isinstance(fit.gate, BooleanGate):
        inside = evaluate_gate(fit.gate, sample, rows, fit.components, state.masks if method.needs_masks else None)
        mask = np.zeros(sample.n_events, dtype=bool)
        mask[rows[inside]] = True
    elif rows.size == sample.n_events:  # every event is in the parent: no rows to gather
        mask = fit.gate.contains(sample.events[:, cols])
    elif fit.gate.cheap_kernel and rows.size > DENSE_PARENT * sample.n_events:  # cheaper than gathering rows
        mask = fit.gate.contains(sample.events[:, cols]) & parent
    else:
        mask = np.zeros(sample.n_events, dtype=bool)
        mask[rows[fit.gate.contains(gather(sample.events, rows, cols))]] = True
    inside_any = bool(mask.any())
    flags = fit.flags + ref_flags
    if rows.size and not inside_any:
        flags = flags + ("empty",)
    elif rows.size >= NEAR_EMPTY_PARENT and np.count_nonzero(mask) < NEAR_EMPTY_SHARE * rows.size:
        flags = flags + ("near_empty",)
    if spec.threshold_floor:
        flags = flags + _floor_disagreement(spec, fit, fit_X, state)
    state.masks[spec.name] = mask
    state.fits[spec.name] = FitResult(fit.gate, flags, fit.info, fit.components)


def _floor_disagreement(spec: PopulationSpec, fit: FitResult, fit_X: np.ndarray, state: FitState) -> tuple[str, ...]:
    """Where ``spec``'s floor (:mod:`.threshold_floor`) moved more than ``DISAGREE_PP`` % of the parent's events
    (and not more than ``OWN_INSIDE_PCT`` %: then the floored gate's own cut was the wrong one), the review flag
    for it and for the floor's populations (their fits get it too; a refit that no longer disagrees takes it off
    them again). ``info["floor_moved_pct"]`` records the share."""
    moved = moved_pct(spec, fit, fit_X)
    fit.info["floor_moved_pct"] = round(moved, 3)
    disagree = DISAGREE_PP < moved <= OWN_INSIDE_PCT
    for name in set(spec.threshold_floor.values()):
        other = state.fits.get(name)
        if other is None or (DISAGREE_FLAG in other.flags) == disagree:
            continue
        words = other.flags + (DISAGREE_FLAG,) if disagree else tuple(f for f in other.flags if f != DISAGREE_FLAG)
        state.fits[name] = FitResult(other.gate, words, other.info, other.components)
    return (DISAGREE_FLAG,) if disagree else ()


def fit_all(definition: StrategyDefinition, sample: Sample, state: FitState | None = None,
            only: set[str] | None = None) -> FitState:
    """Fit every population (or those in ``only``) in definition order; sibling gates share equal threshold
    fits (:mod:`.methods.shared_fits`). Then back-gating (:func:`backgate_scatter`) and, once, the scatter
    gates to redraw (:func:`scatter_redraws`) with every population below them."""
    state = state or FitState()
    with shared_mixtures():  # a redrawn scatter gate re-uses its first fit's mixture
        with shared_threshold_fits():
            for spec in definition.populations:
                if only is None or spec.name in only:
                    state.masks.pop(spec.name, None)
                    state.fits.pop(spec.name, None)
                    state.skipped.pop(spec.name, None)
                    fit_population(spec, sample, state)
        backgate_scatter(definition, sample, state)
        redo = scatter_redraws(definition, sample, state)
        if redo:  # the redrawn gates and every population below them, once
            fit_all(definition, sample, state, only=redo)
            state.templates.clear()
        record_parent_edges(definition, sample, state)
        record_lymphocyte_doublets(definition, sample, state)
    return state


def scatter_redraws(definition: StrategyDefinition, sample: Sample, state: FitState) -> set[str]:
    """Scatter gates to redraw, as a cytometrist does after back-gating: a ``gmm_ellipse`` gate with
    ``redraw`` and a fitted ``backgate_reference`` whose estimated share of other events (its own
    ``other_share_pct`` or the back-gated ``scatter_other_pct``) exceeds its ``max_other_pct`` gets a
    template (``state.templates``; the gate then holds ``redraw_coverage`` of it): the gate's events inside
    the reference's own gate (CD3+ for T cells: single T cells and the T-cell doublets the scatter gate keeps,
    live and dead), in the gate's dims. The template does not pass through the gates between the scatter gate
    and the reference, so a viability gate there (``Live``) does not take the dead lymphocytes, which have
    their own scatter, out of it: the gate holds live and dead single lymphocytes, and ``Live`` removes the
    dead. A gate that missed the lymphocytes (many times more of the reference's events outside it than inside,
    :func:`missed`) is not redrawn: its CD3+ events are no template. Returns the redrawn gates and every population below them
    (to re-fit); a gate already redrawn is not redrawn again."""
    redo: set[str] = set()
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        ref = spec.params.get("backgate_reference") if spec.method == "gmm_ellipse" else None
        if fit is None or ref is None or ref not in state.masks or fit.info.get("redrawn") is not None:
            continue
        params = fit.info.get("params") or {}
        share = max(float(fit.info.get(OTHER_SHARE_KEY, 0.0)), float(fit.info.get(BACKGATE_KEY, 0.0)))
        if not params.get("redraw") or share <= float(params.get("max_other_pct", math.inf)):
            continue
        if spec.name not in ancestors(definition, ref):
            continue
        if missed(fit):
            log.warning("%s: %s not redrawn: most %s events lie outside it (the gate missed the lymphocytes)",
                        sample.name, spec.name, ref)
            continue
        # the reference's own gate on the scatter gate's events, whatever gates lie between (a viability gate:
        # dead T cells are CD3+ and in the template, as dead lymphocytes belong in the scatter gate), and its
        # doublets too (lymphocyte-debris doublets belong in the scatter gate and have more side scatter)
        rows = np.flatnonzero(state.masks[spec.name])
        ref_fit = state.fits[ref]
        rows = every_nth(rows[evaluate_gate(ref_fit.gate, sample, rows, ref_fit.components, state.masks)], FIT_EVENTS)
        state.templates[spec.name] = gather(sample.events, rows, _columns(sample, spec.dims))
        log.info("%s: %s redrawn around %s (estimated %.1f %% other events)", sample.name, spec.name, ref, share)
        redo |= set(dependents(definition, spec.name))
    return redo


def linear_dims(sample: Sample, cols: np.ndarray) -> tuple[bool, ...]:
    """Per column index of ``cols``: True when the channel is on its linear scale (no transform recorded on the
    sample: scatter), False when transformed (logicle fluorescence such as the CD45 of a CD45 x SSC gate)."""
    pnn = sample.channel_table.column("pnn")
    return tuple(str(pnn[int(i)]) not in sample.transforms for i in cols)


def backgate_scatter(definition: StrategyDefinition, sample: Sample, state: FitState) -> None:
    """Back-gate every population below a ``gmm_ellipse`` gate with a ``backgate_reference`` onto that
    gate's scatter (:mod:`.methods.scatter_overlap`): each fitted population's ``info`` gets
    :data:`BACKGATE_KEY`, its estimated % of events that are not lymphocytes (0 for the reference and the
    populations below it: they hold lymphocytes only, whatever their own scatter). Recomputed on every
    :func:`fit_all` (a re-fit of some populations changes the others' shares)."""
    for spec in definition.populations:
        ref = spec.params.get("backgate_reference") if spec.method == "gmm_ellipse" else None
        if ref is None or spec.name not in state.masks:
            continue
        below = [p.name for p in definition.populations if p.name in state.fits
                 and (p.name == spec.name or spec.name in ancestors(definition, p.name))]
        for name in below:  # new FitResults: a re-fit's state shares the others with the earlier result
            fit = state.fits[name]
            state.fits[name] = FitResult(fit.gate, fit.flags, {k: v for k, v in fit.info.items()
                                                               if k not in (BACKGATE_KEY, CUT_KEY)}, fit.components)
        if ref not in state.masks:
            log.warning("%s: %s: back-gating reference %r was not fitted; no back-gating", sample.name,
                        spec.name, ref)
            continue
        cols = _columns(sample, spec.dims)
        log_dims = linear_dims(sample, cols)
        foreign = foreign_events(definition, state, sample.n_events)  # beads are no lymphocyte reference
        ref_rows = every_nth(np.flatnonzero(state.masks[ref] & ~foreign), BACKGATE_MAX_EVENTS)
        region = fit_backgate(gather(sample.events, ref_rows, cols), log_dims)
        if region is None:
            continue
        # the gate and the singlet gates below it are read against single T cells live and dead when a viability
        # gate lies between them and the reference; the populations below that gate against the reference itself
        upper, whole_mask = whole_reference(definition, sample, state, spec.name, ref)
        whole = (fit_backgate(gather(sample.events, every_nth(np.flatnonzero(whole_mask), BACKGATE_MAX_EVENTS), cols),
                              log_dims)
                 if whole_mask is not None else None)
        for name in below:
            if name == ref or ref in ancestors(definition, name):  # lymphocytes only, as the reference is: a
                share = 0.0  # subset's own scatter differs from the whole reference's (e.g. larger blasts)
            else:  # a population holding the reference: its other events are among the non-reference ones
                mask = state.masks[name]
                holds_ref = name in ancestors(definition, ref)
                against, ref_mask = region, state.masks[ref]
                if whole is not None and whole_mask is not None and name in upper:
                    against, ref_mask = whole, whole_mask
                rest = mask & ~ref_mask if holds_ref else mask
                rows = every_nth(np.flatnonzero(rest), BACKGATE_MAX_EVENTS)
                share = against.share(gather(sample.events, rows, cols)) if rows.size else 0.0
                if holds_ref:
                    share *= int(np.count_nonzero(rest)) / max(int(np.count_nonzero(mask)), 1)
            state.fits[name].info[BACKGATE_KEY] = round(100.0 * share, 3)
        if all(log_dims):  # a scatter-only gate; the missed-gate rule was measured on those only (docs/gating.md)
            state.fits[spec.name].info[OUTSIDE_KEY] = round(reference_outside(definition, sample, state, spec.name,
                                                                              ref), 3)
        record_denominator_other(definition, sample, state, spec.name, cols, log_dims)
        record_scatter_cuts(definition, sample, state, spec.name, ref, below)


def foreign_events(definition: StrategyDefinition, state: FitState, n_events: int) -> np.ndarray:
    """Events (bool mask) of the parentless, non-boolean populations outside the lymphocyte denominator's
    lineage (neither its ancestor nor one it depends on): counting beads, which are bright in every channel
    (CD3+ among the T cells) and are not lymphocytes wherever they fall."""
    lymph = definition.lymphocytes
    lineage = {lymph, *ancestors(definition, lymph)}
    out = np.zeros(n_events, dtype=bool)
    for spec in definition.populations:
        if (spec.parent is None and spec.method != "boolean" and spec.name not in lineage
                and spec.name in state.masks and lymph not in dependents(definition, spec.name)):
            out |= state.masks[spec.name]
    return out


def record_denominator_other(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str,
                             cols: np.ndarray, log_dims: tuple[bool, ...]) -> None:
    """Record on the scatter gate ``gate`` (info :data:`DENOMINATOR_OTHER_KEY`, percent) the estimated share of
    the lymphocyte denominator's events (at or below the gate) that are not lymphocytes, without the gate's
    mixture: the events a parentless population outside the denominator's lineage also holds (counting beads)
    plus the side-scatter excess of the rest (:func:`mirror_excess_share`, last dim of the gate)."""
    lymph = definition.lymphocytes
    if lymph not in state.masks or not (lymph == gate or gate in ancestors(definition, lymph)):
        return
    mask = state.masks[lymph]
    n = int(np.count_nonzero(mask))
    if n == 0:
        return
    foreign = foreign_events(definition, state, mask.size)
    rest = mask & ~foreign
    v = sample.events[rest, int(cols[-1])].astype(np.float64)
    if log_dims[-1]:
        v = np.log(np.maximum(v, 1.0))
    share = (int(np.count_nonzero(mask & foreign)) + mirror_excess_share(v) * int(np.count_nonzero(rest))) / n
    state.fits[gate].info[DENOMINATOR_OTHER_KEY] = round(100.0 * share, 3)


def reference_outside(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, ref: str) -> float:
    """Events of the scatter gate's parent inside ``ref``'s own gate (CD3+ for T cells) that lie outside the gate,
    per such event inside it: about 0.1 where the gate holds the lymphocytes (T-cell doublets with larger
    cells lie outside), several where it missed them and holds other events."""
    parent = definition.population(gate).parent
    rows = np.flatnonzero(state.masks[parent]) if parent else np.arange(sample.n_events)
    ref_fit = state.fits[ref]
    hit = rows[evaluate_gate(ref_fit.gate, sample, rows, ref_fit.components, state.masks)]
    inside = int(np.count_nonzero(state.masks[gate][hit]))
    return (hit.size - inside) / max(inside, 1)


def whole_reference(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, ref: str
                    ) -> tuple[list[str], np.ndarray | None]:
    """The back-gating reference of a scatter gate and the singlet gates right below it when other gates (a
    viability gate) lie between them and ``ref``: (those populations, the events of the lowest of them inside
    ``ref``'s own gate: single T cells live and dead); ``([], None)`` when singlet gates alone lie between
    (``ref`` itself is that reference) or ``ref`` is not below ``gate``."""
    above_ref = ancestors(definition, ref)
    if gate not in above_ref:
        return [], None
    upper = [gate]
    for name in reversed(above_ref[:above_ref.index(gate)]):  # from just below the gate down to ref's parent
        if definition.population(name).method != "singlets":
            break
        upper.append(name)
    else:
        return [], None
    ref_fit = state.fits.get(ref)
    if ref_fit is None or any(n not in state.masks for n in upper):
        return [], None
    rows = np.flatnonzero(state.masks[upper[-1]])
    mask = np.zeros(sample.n_events, dtype=bool)
    mask[rows[evaluate_gate(ref_fit.gate, sample, rows, ref_fit.components, state.masks)]] = True
    return upper, mask


def record_scatter_cuts(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, ref: str,
                        below: list[str]) -> None:
    """Each population below the back-gated scatter ellipse ``gate`` (not the reference ``ref`` and the
    populations below it, which define the lymphocytes' rate) gets :data:`CUT_KEY` in its ``info``: the
    excess share of its cells in the ring just outside the gate over the reference's (%, per 100 inside;
    :mod:`.methods.scatter_cut`), its phenotype read by the gates between the scatter gate and itself. Not
    for a population whose back-gated share of other events (:data:`BACKGATE_KEY`) is above 0: events like
    those let in (monocytes through a CD16dim NK gate) fill the ring too, and are not its cells."""
    fit = state.fits.get(gate)
    if fit is None or not isinstance(fit.gate, EllipsoidGate):
        return
    ring = ring_rows(fit.gate, gather(sample.events, np.arange(sample.n_events), _columns(sample, fit.gate.dims)))

    def between(name: str) -> list[str]:  # the gates from just below the scatter gate down to ``name``'s parent
        chain = ancestors(definition, name)
        return chain[:chain.index(gate)]

    def ring_count(name: str) -> int:
        rows = ring
        for step in [*reversed(between(name)), name]:
            if rows.size == 0:
                return 0
            f = state.fits[step]
            rows = rows[evaluate_gate(f.gate, sample, rows, f.components, state.masks)]
        return int(rows.size)

    if ref not in state.fits:
        return
    ring_ref, inside_ref = ring_count(ref), int(np.count_nonzero(state.masks[ref]))
    for name in below:
        if name == gate or name == ref or ref in ancestors(definition, name) or name in ancestors(definition, ref):
            continue
        if any(a not in state.fits for a in between(name)):
            continue
        if state.fits[name].info.get(BACKGATE_KEY, 0.0) > 0.0:
            continue  # its high-SSC excess is other events let in (back-gated): the ring holds more of them
        share = cut_share(ring_count(name), int(np.count_nonzero(state.masks[name])), ring_ref, inside_ref)
        state.fits[name].info[CUT_KEY] = round(100.0 * share, 3)


def dependents(definition: StrategyDefinition, name: str) -> list[str]:
    """``name`` and every population below it (children, grandchildren, boolean users), in order."""
    out = [name]
    for spec in definition.populations:
        refs = {spec.parent} if spec.parent else set()
        if spec.negative_reference:
            refs |= {name for name, _ in reference_operands(spec.negative_reference)}
        refs |= set(spec.threshold_floor.values())
        if spec.method == "boolean":
            refs |= {o.lstrip("!").strip() for o in spec.params.get("operands", ())}
        if spec.name not in out and refs & set(out):
            out.append(spec.name)
    return out


def ancestors(definition: StrategyDefinition, name: str) -> list[str]:
    """Parents of ``name`` up to the root (nearest first)."""
    out: list[str] = []
    parent = definition.population(name).parent
    while parent is not None:
        out.append(parent)
        parent = definition.population(parent).parent
    return out


def _est_error(fit: FitResult) -> float:
    """The fit's estimated error of % of parent (pp; :mod:`.methods.confidence`), NaN when not measured."""
    v = fit.info.get(S.EST_ERROR_PP)
    return float(v) if v is not None else float("nan")


def _scatter_overlap(definition: StrategyDefinition, state: FitState, lymph: str,
                     other: float | None) -> float | None:
    """Estimated % of other event classes in the lymphocyte denominator: the larger of the mixture's estimate
    of the nearest scatter gate at or above it flagged ``scatter_overlap`` and ``other``, the estimate made
    without the mixture (:func:`_denominator_other`, counted when at least :data:`MIRROR_MIN_PCT`); None when
    neither."""
    mixture = None
    for name in [lymph, *ancestors(definition, lymph)]:
        fit = state.fits.get(name)
        if fit is not None and OVERLAP_FLAG in fit.flags and fit.info.get(OTHER_SHARE_KEY) is not None:
            mixture = float(fit.info[OTHER_SHARE_KEY])
            break
    if other is not None and other >= MIRROR_MIN_PCT:
        return max(other, mixture or 0.0)
    return mixture


def _denominator_other(definition: StrategyDefinition, state: FitState, lymph: str) -> float | None:
    """The mixture-free % of other events in the lymphocyte denominator (:data:`DENOMINATOR_OTHER_KEY` of the
    nearest scatter gate at or above it that has one), None when not measured."""
    for name in [lymph, *ancestors(definition, lymph)]:
        fit = state.fits.get(name)
        if fit is not None and fit.info.get(DENOMINATOR_OTHER_KEY) is not None:
            return float(fit.info[DENOMINATOR_OTHER_KEY])
    return None


def _share_error(state: FitState, spec: PopulationSpec, pct_parent: float, key: str,
                 error_pp: Callable[[float, float, float], float]) -> float:
    """Error (pp) of ``spec``'s % of parent from a share (%) recorded in its and its parent's fit info under
    ``key``, by ``error_pp(pct_parent, share, parent_share)`` with shares as fractions; 0 when ``spec`` has no
    such share, and a parent without one counts as 0. Keys: :data:`BACKGATE_KEY` (other events in a
    back-gated scatter gate, :func:`backgate_scatter`; for the gate itself and the populations below the
    lymphocyte denominator) and :data:`CUT_KEY` (cells left just outside it beyond the reference's rate,
    :func:`record_scatter_cuts`)."""
    share = state.fits[spec.name].info.get(key)
    if share is None:
        return 0.0
    parent = state.fits.get(spec.parent) if spec.parent else None
    parent_share = parent.info.get(key, 0.0) if parent is not None else 0.0
    return error_pp(pct_parent, float(share) / 100.0, float(parent_share) / 100.0)


def population_table(definition: StrategyDefinition, state: FitState, n_events: int) -> "pd.DataFrame":
    """One row per fitted population (schema in docs/architecture.md): counts, % of parent, % of the
    lymphocyte denominator (percent, 0-100, of the strategy's ``lymphocytes`` population; defined for that
    population and the populations below it only: NaN for gates *above* it, e.g. the ``Lymphocytes``
    scatter gate before ``Singlets``, whose events include doublets and are not a fraction of single
    lymphocytes, and for populations outside it, e.g. counting beads), method, flags (every word), ``review``
    (bool: a review flag, the estimate may be wrong), ``review_flags`` and ``notes`` (flags split into those
    words and the placement notes; :func:`.methods.review_columns`), ``est_error_pp``
    (estimated error of % of parent, percentage points; NaN for gates not placed by fitted thresholds) and
    ``count_sd_pp`` (binomial SD of % of parent from the counts alone, pp; :mod:`.count_error`, which also
    flags ``few_events`` below its limit of parent events)."""
    import pandas as pd

    return pd.DataFrame(population_rows(definition, state, n_events), columns=list(TABLE_COLUMNS))


def missed(fit: FitResult) -> bool:
    """A back-gated scatter gate holding fewer of its reference's events than lie outside it by more than
    :data:`MISSED_RATIO` (:func:`reference_outside`): it missed the lymphocytes."""
    return float(fit.info.get(OUTSIDE_KEY, 0.0)) > MISSED_RATIO


def _add_error_part(est: float, flags: list[str], part: float, word: str) -> float:
    """``est`` (pp) with the error ``part`` (pp) added by root sum of squares; ``word`` and ``uncertain`` are
    appended to ``flags`` when this part is what takes the estimate over :data:`UNCERTAIN_PP` (a NaN
    ``est``, not measured, counts as not above the limit)."""
    crossed = not est > UNCERTAIN_PP
    est = with_error(est, part)
    if crossed and est > UNCERTAIN_PP:
        flags += [word, "uncertain"]
    return est


def population_rows(definition: StrategyDefinition, state: FitState, n_events: int) -> list[dict[str, Any]]:
    """The rows of :func:`population_table` as dicts (keys :data:`TABLE_COLUMNS`, same values), without
    pandas."""
    lymph = definition.lymphocytes
    lymph_count = int(state.masks[lymph].sum()) if lymph in state.masks else 0
    # below = the denominator's descendants by parent (a parentless boolean of them counts as below);
    # a population that only uses it as negative_reference is not a fraction of it
    in_lymph = {spec.name for spec in definition.populations if spec.name == lymph
                or lymph in ancestors(definition, spec.name)
                or (spec.parent is None and spec.method == "boolean" and spec.name in dependents(definition, lymph))
                } if lymph_count else set()
    denominator_other = _denominator_other(definition, state, lymph) if lymph_count else None
    overlap = _scatter_overlap(definition, state, lymph, denominator_other) if lymph_count else None
    # back-gated errors: on the scatter gate itself and below the denominator; not on gates between them
    # (a singlet gate's % of the scatter gate is not a lymphocyte fraction)
    scatter_gates = {spec.name for spec in definition.populations
                     if spec.method == "gmm_ellipse" and spec.params.get("backgate_reference")}
    rows = []
    failed: set[str] = set()  # scatter gates whose own row is estimated more than FAILED_PP off
    for spec in definition.populations:
        if spec.name not in state.masks:
            continue
        count = int(state.masks[spec.name].sum())
        parent_count = int(state.masks[spec.parent].sum()) if spec.parent else n_events
        pct_parent = 100.0 * count / parent_count if parent_count else float("nan")
        pct_lymph = 100.0 * count / lymph_count if (spec.name in in_lymph and lymph_count) else float("nan")
        flags, est = list(state.fits[spec.name].flags), _est_error(state.fits[spec.name])
        dil = dilution_error_pp(pct_parent, overlap) if overlap is not None and spec.parent == lymph else 0.0
        if (spec.name in in_lymph and spec.name != lymph) or spec.name in scatter_gates:
            # the larger of two estimates of one error
            dil = max(dil, _share_error(state, spec, pct_parent, BACKGATE_KEY, backgate_error_pp))
        if dil > 0:  # diluted or inflated by other events in the lymphocyte scatter gate
            est = with_error(est, dil)
            if est > UNCERTAIN_PP:  # the dilution matters for this population
                flags += [OVERLAP_FLAG, "uncertain"]
        cut = (_share_error(state, spec, pct_parent, CUT_KEY, cut_error_pp)
               if spec.name in in_lymph and spec.name != lymph else 0.0)
        if cut > 0:  # part of its cells left just outside the scatter gate (.methods.scatter_cut)
            est = _add_error_part(est, flags, cut, CUT_FLAG)
        edge = state.fits[spec.name].info.get(PARENT_EDGE_KEY)
        if edge:  # its parent's edge moves its share (.parent_edge)
            est = _add_error_part(est, flags, float(edge), PARENT_EDGE_FLAG)
        doublets = float(state.fits[spec.name].info.get(DOUBLET_KEY) or 0.0)
        if doublets > UNCERTAIN_PP:  # the doublet convention alone moves the row (.lymphocyte_doublets)
            est = with_error(est, doublets)
            flags += [DOUBLET_NOTE, "uncertain"]
        gate_missed = spec.name in scatter_gates and missed(state.fits[spec.name])
        if spec.name in scatter_gates and (est > FAILED_PP or gate_missed):
            failed.add(spec.name)
            if gate_missed:
                flags.append(FAILED_FLAG)  # it holds few of the reference's events: not the lymphocytes
        if failed.intersection(ancestors(definition, spec.name)):
            flags.append(FAILED_FLAG)  # its denominator is mostly other events (.methods.scatter_overlap)
        if spec.name == lymph and denominator_other is not None and denominator_other > DENOMINATOR_FLAG_PCT:
            flags += [OVERLAP_FLAG, "uncertain"]  # its count (and every single-platform count) holds other events
        if few_events(parent_count) and not any(w.split(":")[-1] == FEW_EVENTS_FLAG for w in flags):
            flags.append(FEW_EVENTS_FLAG)  # a % counted from few events (.count_error)
        rows.append({
            S.POPULATION: spec.name, S.PARENT: spec.parent or "", S.COUNT: count, S.PARENT_COUNT: parent_count,
            S.PCT_PARENT: pct_parent, S.PCT_LYMPHOCYTES: pct_lymph, S.METHOD: spec.method,
            S.FLAGS: ";".join(dict.fromkeys(flags)), **review_columns(flags), S.EST_ERROR_PP: est,
            S.COUNT_SD_PP: count_sd_pp(count, parent_count),
            "dims": ";".join(spec.dims),
            S.PHENOTYPE: spec.phenotype or "",
        })
    return rows
