"""Fit a strategy's populations top-down on a prepared Sample and evaluate them on all events; the population
table with its error estimates and flags. Back-gating of scatter gates is :mod:`.backgating`; the fit state and
gate evaluation :mod:`.fit_state`.

Fits see the parent's events (methods subsample internally); membership is evaluated on every event with
the array kernels of :mod:`cytokit.gates`. Masks are boolean arrays over all the sample's events.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import GatingError, PanelError
from ..gates import BooleanGate
from ..results import schema as S
from ..sample import Sample
from .backgating import (LEFT_OUT_KEY, LEFT_OUT_NOTE, REMOVED_OTHER_KEY, REMOVED_OTHER_NOTE, backgate_scatter,
                         in_and_out_pct, left_out_composition_pp, missed, scatter_redraws)
from .count_error import FEW_EVENTS_FLAG, count_sd_pp, few_events
from .edge_loss import EDGE_LOSS_NOTE, LINEAGE_LOSS_NOTE, edge_loss_note, lineage_loss_note
from .fit_state import FIT_EVENTS, FitState, columns, evaluate_gate, reference_mask
from .lymphocyte_doublets import (DOUBLET_KEY, DOUBLET_NOTE, ESTIMATE_NOTE, counted_doublets, counts_doublets, noted,
                                  record_lymphocyte_doublets)
from .methods import FitResult, fit_gate, get_method, needs_review, review_columns
from .methods.base import every_nth, gather
from .methods.confidence import UNCERTAIN_PP, with_error
from .methods.scatter import shared_mixtures
from .methods.scatter_cut import CUT_FLAG, CUT_KEY, cut_error_pp
from .methods.scatter_overlap import (BACKGATE_KEY, BACKGATE_MAX_KEY, DENOMINATOR_FLAG_PCT,
                                      DENOMINATOR_OTHER_KEY, FAILED_FLAG, FAILED_PP, MIRROR_MIN_PCT, OTHER_SHARE_KEY,
                                      OVERLAP_FLAG,
                                      backgate_error_pp, debris_pct, dilution_error_pp)
from .methods.shared_fits import shared_threshold_fits
from .model import PopulationSpec, StrategyDefinition, ancestors, defining_populations, dependents
from .parent_edge import PARENT_EDGE_FLAG, PARENT_EDGE_KEY, record_parent_edges
from .scatter_reference import backgate_reference
from .threshold_floor import (DISAGREE_FLAG, DISAGREE_PP, FLOORED_OFF_PP, OWN_INSIDE_PCT, floored_params, floors,
                              moved_out_pct, moved_pct)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

#: Parents holding more than this fraction of all events are evaluated on every event (then AND-ed) when
#: the gate's kernel is cheaper than gathering the parent's rows (:attr:`~cytokit.gates.Gate.cheap_kernel`).
DENSE_PARENT = 0.3
#: a population holding fewer than NEAR_EMPTY_SHARE (fraction) of a parent of at least NEAR_EMPTY_PARENT events is
#: flagged ``near_empty`` (review): a gate placed beyond its population (lab B: NK cells 1 of 16,047 events for
#: 6.8 % true, flagged only by placement notes); no simulated or lab-A estimate is that small
NEAR_EMPTY_SHARE, NEAR_EMPTY_PARENT = 0.001, 1000

TABLE_COLUMNS = (S.POPULATION, S.PARENT, S.COUNT, S.PARENT_COUNT, S.PCT_PARENT, S.PCT_LYMPHOCYTES, S.METHOD,
                 S.FLAGS, *S.REVIEW_COLUMNS, "dims", S.PHENOTYPE, S.EST_ERROR_PP, S.COUNT_SD_PP)


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


def fit_population(spec: PopulationSpec, sample: Sample, state: FitState) -> None:
    """Fit one population from its parent's events and store its mask (or why it was skipped)."""
    if spec.parent is not None and spec.parent not in state.masks:
        state.skipped[spec.name] = f"parent {spec.parent!r} was skipped"
        return
    parent = state.masks[spec.parent] if spec.parent is not None else np.ones(sample.n_events, dtype=bool)
    rows = np.flatnonzero(parent)
    method = get_method(spec.method)
    try:
        cols = columns(sample, spec.dims)
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
                       template=state.templates.get(spec.name), anchor=state.anchors.get(spec.name))
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
    for the floor's populations (their fits get it; a refit that no longer disagrees takes it off them again),
    and for ``spec`` itself only where the raise took more than ``FLOORED_OFF_PP`` % of the parent's events out
    of its gate. ``info["floor_moved_pct"]`` and ``info["floor_moved_out_pct"]`` record the two shares (%)."""
    moved = moved_pct(spec, fit, fit_X)
    fit.info["floor_moved_pct"] = round(moved, 3)
    disagree = DISAGREE_PP < moved <= OWN_INSIDE_PCT
    moved_out = moved_out_pct(spec, fit, fit_X) if disagree else 0.0
    if disagree:
        fit.info["floor_moved_out_pct"] = round(moved_out, 3)
    for name in set(spec.threshold_floor.values()):
        other = state.fits.get(name)
        if other is None or (DISAGREE_FLAG in other.flags) == disagree:
            continue
        words = other.flags + (DISAGREE_FLAG,) if disagree else tuple(f for f in other.flags if f != DISAGREE_FLAG)
        state.fits[name] = FitResult(other.gate, words, other.info, other.components)
    return (DISAGREE_FLAG,) if disagree and moved_out > FLOORED_OFF_PP else ()


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
            state.anchors.clear()
        record_parent_edges(definition, sample, state)
        record_lymphocyte_doublets(definition, sample, state)
    return state


def _est_error(fit: FitResult) -> float:
    """The fit's estimated error of % of parent (pp; :mod:`.methods.confidence`), NaN when not measured."""
    v = fit.info.get(S.EST_ERROR_PP)
    return float(v) if v is not None else float("nan")


def _scatter_overlap(definition: StrategyDefinition, state: FitState, lymph: str,
                     other: float | None) -> float | None:
    """Estimated % of other event classes in the lymphocyte denominator: the larger of the mixture's estimate
    of the nearest scatter gate at or above it that is back-gated or flagged ``scatter_overlap`` and ``other``,
    the estimate made without the mixture (:func:`_denominator_other`, counted when at least
    :data:`MIRROR_MIN_PCT`); None when neither. The mixture's estimate of a back-gated scatter-only gate
    (:func:`in_and_out_pct` measured) is its debris-edge part only, net of the strip's doublets and the
    lymphocytes' own tail (:func:`.methods.scatter_overlap.debris_pct`), read whether or not the mixture flagged the gate: the larger,
    more granular events its neighbour share is meant to find are measured there against the lymphocytes' own
    scatter (the back-gated share, which the rows read besides this), while the neighbour share reads the
    Gaussian tails of the components next to the cloud (docs/gating.md, "What dilutes the rows below the
    lymphocyte denominator", "The debris edge net of the lymphocytes' own tail")."""
    mixture = None
    for name in [lymph, *ancestors(definition, lymph)]:
        fit = state.fits.get(name)
        if fit is None or fit.info.get(OTHER_SHARE_KEY) is None:
            continue
        if in_and_out_pct(definition, state, name) is not None:  # back-gated: its debris edge, flagged or not
            mixture = debris_pct(fit.info)
            break
        if OVERLAP_FLAG in fit.flags:
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


def left_out_above(definition: StrategyDefinition, state: FitState, name: str, scatter_gates: set[str]
                   ) -> float | None:
    """The lymphocytes left out by the back-gated scatter gate above population ``name``
    (:data:`~.backgating.LEFT_OUT_KEY`: its reference's cells in the ring per 100 inside, %), the nearest such gate
    above it; None when there is none or it does not record it (a gate on a fluorescence dim)."""
    for up in ancestors(definition, name):
        if up in scatter_gates:
            value = state.fits[up].info.get(LEFT_OUT_KEY) if up in state.fits else None
            return float(value) if value is not None else None
    return None


def _share_error(state: FitState, spec: PopulationSpec, pct_parent: float, key: str,
                 error_pp: Callable[[float, float, float], float], parent_key: str | None = None) -> float:
    """Error (pp) of ``spec``'s % of parent from a share (%) recorded in its and its parent's fit info under
    ``key``, by ``error_pp(pct_parent, share, parent_share)`` with shares as fractions; 0 when ``spec`` has no
    such share, and a parent without one counts as 0. Keys: :data:`BACKGATE_KEY` (other events in a
    back-gated scatter gate, :func:`backgate_scatter`; for the gate itself and the populations below the
    lymphocyte denominator) and :data:`CUT_KEY` (cells left just outside it beyond the reference's rate,
    :func:`record_scatter_cuts`); ``parent_key``: the parent's share under another key (default ``key``):
    :data:`BACKGATE_MAX_KEY` (the most other events a population below the back-gating reference can hold,
    :func:`.backgating.subset_other_max`) against its parent's :data:`BACKGATE_KEY`."""
    share = state.fits[spec.name].info.get(key)
    if share is None:
        return 0.0
    parent = state.fits.get(spec.parent) if spec.parent else None
    parent_share = parent.info.get(parent_key or key, 0.0) if parent is not None else 0.0
    return error_pp(pct_parent, float(share) / 100.0, float(parent_share) / 100.0)


def population_table(definition: StrategyDefinition, state: FitState, n_events: int,
                     channel_notes: Mapping[str, Sequence[str]] | None = None) -> "pd.DataFrame":
    """One row per fitted population (schema in docs/architecture.md): counts, % of parent, % of the
    lymphocyte denominator (percent, 0-100, of the strategy's ``lymphocytes`` population; defined for that
    population and the populations below it only: NaN for gates *above* it, e.g. the ``Lymphocytes``
    scatter gate before ``Singlets``, whose events include doublets and are not a fraction of single
    lymphocytes, and for populations outside it, e.g. counting beads), method, flags (every word), ``review``
    (bool: a review flag, the estimate may be wrong), ``review_flags`` and ``notes`` (flags split into those
    words and the placement notes; :func:`.methods.review_columns`), ``est_error_pp``
    (estimated error of % of parent, percentage points; NaN for gates not placed by fitted thresholds) and
    ``count_sd_pp`` (binomial SD of % of parent from the counts alone, pp; :mod:`.count_error`, which also
    flags ``few_events`` below its limit of parent events). ``channel_notes``: marker -> words added to the
    flags of every row gated on that marker as ``<marker>:<word>`` (e.g. ``logicle_w_clipped``, a note about
    the channel's transform; ``overcompensated``, a review flag: the file's compensation check failed and
    compensation moved the channel; see :attr:`~cytokit.gating.result.GatingResult.channel_notes`); a review
    word also goes, plain, to every row whose parents' (or boolean operands') gates read such a marker
    (:func:`_channel_words`)."""
    import pandas as pd

    return pd.DataFrame(population_rows(definition, state, n_events, channel_notes), columns=list(TABLE_COLUMNS))


def _add_error_part(est: float, flags: list[str], part: float, word: str) -> float:
    """``est`` (pp) with the error ``part`` (pp) added by root sum of squares; ``word`` and ``uncertain`` are
    appended to ``flags`` when this part is what takes the estimate over :data:`UNCERTAIN_PP` (a NaN
    ``est``, not measured, counts as not above the limit)."""
    crossed = not est > UNCERTAIN_PP
    est = with_error(est, part)
    if crossed and est > UNCERTAIN_PP:
        flags += [word, "uncertain"]
    return est


def _channel_words(definition: StrategyDefinition, spec: PopulationSpec,
                   channel_notes: Mapping[str, Sequence[str]]) -> list[str]:
    """The words ``channel_notes`` (marker -> words) give ``spec``'s row: ``<marker>:<word>`` for every marker
    its own gate reads (what moves its % of parent), and each review word (e.g. ``overcompensated``) of a
    marker read by a gate that decides which events it holds (:func:`.model.defining_populations`: parents,
    boolean operands; what moves its count and % of lymphocytes), plain, unless its own gate carries it
    already. Notes (``logicle_w_clipped``) stay with the gates that read the marker."""
    own = [f"{d}:{w}" for d in spec.dims for w in channel_notes.get(d, ())]
    have = {w.split(":")[-1] for w in own}
    above = [w for name in defining_populations(definition, spec.name)
             for d in definition.population(name).dims for w in channel_notes.get(d, ())
             if needs_review(w) and w not in have]
    return own + list(dict.fromkeys(above))


def population_rows(definition: StrategyDefinition, state: FitState, n_events: int,
                    channel_notes: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
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
    scatter_gates = {spec.name for spec in definition.populations if backgate_reference(spec)}
    # gates whose row the lab's doublet convention counts: (events added to the gate, that number's error)
    counted = counted_doublets(definition, state, n_events)
    rows = []
    failed: set[str] = set()  # scatter gates whose own row is estimated more than FAILED_PP off
    for spec in definition.populations:
        if spec.name not in state.masks:
            continue
        own = int(state.masks[spec.name].sum())  # the gate's events; its count as the lab's convention counts it
        count = own + counted.get(spec.name, (0, 0.0))[0]
        parent_count = int(state.masks[spec.parent].sum()) if spec.parent else n_events
        parent_count += counted.get(spec.parent or "", (0, 0.0))[0]
        pct_parent = 100.0 * count / parent_count if parent_count else float("nan")
        pct_lymph = 100.0 * count / lymph_count if (spec.name in in_lymph and lymph_count) else float("nan")
        flags, est = list(state.fits[spec.name].flags), _est_error(state.fits[spec.name])
        dil = dilution_error_pp(pct_parent, overlap) if overlap is not None and spec.parent == lymph else 0.0
        if (spec.name in in_lymph and spec.name != lymph) or spec.name in scatter_gates:
            # the larger of two estimates of one error
            dil = max(dil, _share_error(state, spec, pct_parent, BACKGATE_KEY, backgate_error_pp))
            # below the back-gating reference: its parent's other events may all be in it (subset_other_max)
            dil = max(dil, _share_error(state, spec, pct_parent, BACKGATE_MAX_KEY, backgate_error_pp,
                                        BACKGATE_KEY))
        if dil > 0:  # diluted or inflated by other events in the lymphocyte scatter gate
            est = with_error(est, dil)
            if est > UNCERTAIN_PP:  # the dilution matters for this population
                flags += [OVERLAP_FLAG, "uncertain"]
        one_sided = est  # other events in, as the rows below read the gate (scatter_failed); est as before
        in_out = in_and_out_pct(definition, state, spec.name) if spec.name in scatter_gates else None
        if in_out is not None:  # the gate's own row: off by (other events in) - (lymphocytes left out)
            est = dilution_error_pp(100.0 * own / parent_count if parent_count else float("nan"),
                                    in_out.error_pct())
            flags = [f for f in flags if f not in (OVERLAP_FLAG, "uncertain")]
            if est > UNCERTAIN_PP:
                flags += [OVERLAP_FLAG, "uncertain"]
        cut = (_share_error(state, spec, pct_parent, CUT_KEY, cut_error_pp)
               if spec.name in in_lymph and spec.name != lymph else 0.0)
        if cut > 0:  # part of its cells left just outside the scatter gate (.methods.scatter_cut)
            est = _add_error_part(est, flags, cut, CUT_FLAG)
        left_out = left_out_above(definition, state, spec.name, scatter_gates) if spec.parent == lymph else None
        if left_out:  # the lymphocytes the scatter gate left out may hold it at another share (.backgating)
            est = _add_error_part(est, flags, left_out_composition_pp(pct_parent, left_out), LEFT_OUT_NOTE)
        removed = state.fits[spec.name].info.get(REMOVED_OTHER_KEY) if spec.name == lymph else None
        if removed:  # the denominator gate removed other events its parent held (.backgating.record_removed_other)
            est = _add_error_part(est, flags, dilution_error_pp(pct_parent, float(removed)), REMOVED_OTHER_NOTE)
        if spec.name in in_lymph and spec.name != lymph and edge_loss_note(state.fits[spec.name].info):
            flags.append(EDGE_LOSS_NOTE)  # an events-based (bead) count of it reads low (.edge_loss)
        if spec.name in in_lymph and spec.name != lymph and lineage_loss_note(
                state.fits[spec.name].info, left_out_above(definition, state, spec.name, scatter_gates)):
            flags.append(LINEAGE_LOSS_NOTE)  # a % of lymphocytes (dual-platform count) of it reads low (.edge_loss)
        edge = state.fits[spec.name].info.get(PARENT_EDGE_KEY)
        if edge:  # its parent's edge moves its share (.parent_edge)
            est = _add_error_part(est, flags, float(edge), PARENT_EDGE_FLAG)
        doublets = float(state.fits[spec.name].info.get(DOUBLET_KEY) or 0.0)
        if counts_doublets(spec) and spec.name not in counted:  # the lab's convention could not be applied
            flags += [ESTIMATE_NOTE, "uncertain"]
        elif spec.name in counted or spec.parent in counted:  # the row's count (its parent's) holds estimated doublets
            err = counted[spec.name if spec.name in counted else str(spec.parent)][1]
            # d(% of parent) per doublet event: 1 / parent for the gate; % x 1 / (gate + doublets) for a child
            per_event = 100.0 / parent_count if spec.name in counted else pct_parent / parent_count
            part = err * per_event if parent_count else 0.0
            est, one_sided = _add_error_part(est, flags, part, ESTIMATE_NOTE), with_error(one_sided, part)
        elif doublets > UNCERTAIN_PP and noted(spec):
            # the doublet convention alone moves the row, and the lab has not said its gate excludes them
            est, one_sided = with_error(est, doublets), with_error(one_sided, doublets)
            flags += [DOUBLET_NOTE, "uncertain"]
        gate_missed = spec.name in scatter_gates and missed(state.fits[spec.name])
        # failed: its other events alone (one-sided) make it mostly not lymphocytes; lymphocytes it leaves out
        # do not dilute the rows below it
        if spec.name in scatter_gates and (one_sided > FAILED_PP or gate_missed):
            failed.add(spec.name)
            if gate_missed:
                flags.append(FAILED_FLAG)  # it holds few of the reference's events: not the lymphocytes
        if failed.intersection(ancestors(definition, spec.name)):
            flags.append(FAILED_FLAG)  # its denominator is mostly other events (.methods.scatter_overlap)
        if spec.name == lymph and denominator_other is not None and denominator_other > DENOMINATOR_FLAG_PCT:
            flags += [OVERLAP_FLAG, "uncertain"]  # its count (and every single-platform count) holds other events
        if few_events(parent_count) and not any(w.split(":")[-1] == FEW_EVENTS_FLAG for w in flags):
            flags.append(FEW_EVENTS_FLAG)  # a % counted from few events (.count_error)
        if channel_notes:  # e.g. a clipped logicle, a failed compensation check on a marker the gate reads
            flags += _channel_words(definition, spec, channel_notes)
        rows.append({
            S.POPULATION: spec.name, S.PARENT: spec.parent or "", S.COUNT: count, S.PARENT_COUNT: parent_count,
            S.PCT_PARENT: pct_parent, S.PCT_LYMPHOCYTES: pct_lymph, S.METHOD: spec.method,
            S.FLAGS: ";".join(dict.fromkeys(flags)), **review_columns(flags), S.EST_ERROR_PP: est,
            S.COUNT_SD_PP: count_sd_pp(count, parent_count),
            "dims": ";".join(spec.dims),
            S.PHENOTYPE: spec.phenotype or "",
        })
    return rows
