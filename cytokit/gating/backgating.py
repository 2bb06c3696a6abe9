"""Back-gating of scatter gates (a ``gmm_ellipse`` or ``density_polygon`` with a ``backgate_reference``:
:func:`.scatter_reference.backgate_reference`), as a cytometrist checks a
lymphocyte gate: the share of other events in each population below it (:func:`backgate_scatter`), whether the
gate missed the lymphocytes (:func:`reference_outside`, :func:`missed`), which gates to redraw around the
reference's events (:func:`scatter_redraws`), the mixture-free share of other events in the lymphocyte
denominator (:func:`record_denominator_other`) and the cells left just outside the gate
(:func:`record_scatter_cuts`). Shares are percent (0-100) in each fit's ``info``."""
from __future__ import annotations

import logging
import math
from typing import Callable, Mapping, NamedTuple

import numpy as np

from ..gates import EllipsoidGate, PolygonGate
from ..results import schema as S
from ..sample import Sample
from .fit_state import FIT_EVENTS, FitState, columns, evaluate_gate
from .methods import FitResult
from .methods.base import every_nth, gather
from .methods.scatter import RECHOSEN_KEY
from .methods.scatter_cut import CUT_KEY, RING_KEY, cut_share, ring_rows
from .methods.confidence import UNCERTAIN_PP
from .lymphocyte_doublets import counts_doublets, singlets_child
from .methods.scatter_overlap import (BACKGATE_KEY, BACKGATE_MAX_EVENTS, BACKGATE_MAX_KEY, DEBRIS_KEY,
                                      DEBRIS_NET_KEY, DEBRIS_STRIP_KEY, DENOMINATOR_OTHER_KEY, Backgate, MIRROR_MIN_PCT, MISSED_RATIO,
                                      OVERLAP_FLAG, debris_net_share, debris_pct, dilution_error_pp,
                                      OTHER_SHARE_KEY, OUTSIDE_KEY, fit_backgate, mirror_excess_share)
from .methods.scatter_core import lymphocyte_core
from .model import StrategyDefinition, ancestors, dependents
from .scatter_reference import backgate_reference

log = logging.getLogger(__name__)


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
    :func:`missed`) is not redrawn: its CD3+ events are no template. Its mixture component is instead chosen
    again, once, by the parent's events inside the reference's own gate (``state.anchors``;
    :func:`.methods.scatter.anchored_component`: only among the components about as near the target as the
    first); one that still misses is kept (flagged ``scatter_failed``). A gate on a fluorescence dim (CD45 x SSC)
    counts its mixture-free share of other events (:data:`DENOMINATOR_OTHER_KEY`) too and is redrawn around its
    lymphocyte core instead (:func:`cd45_template`). Returns the redrawn gates and every population below them
    (to re-fit); a gate already redrawn is not redrawn again."""
    redo: set[str] = set()
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        ref = backgate_reference(spec)
        if fit is None or ref is None or ref not in state.masks or fit.info.get("redrawn") is not None:
            continue
        params = fit.info.get("params") or {}
        if not params.get("redraw") or spec.name not in ancestors(definition, ref):
            continue
        if missed(fit):
            if RECHOSEN_KEY in fit.info:  # its component was chosen by the reference already
                log.warning("%s: %s not redrawn: most %s events lie outside it (the gate missed the lymphocytes)",
                            sample.name, spec.name, ref)
                continue
            # the parent's events inside the reference's own gate choose among the components the target cannot
            # tell apart (lysed blood: the red cells and the lymphocytes); a component the target clearly
            # preferred is kept, and a gate that still misses is flagged scatter_failed below
            state.anchors[spec.name] = reference_events(definition, sample, state, spec.name, ref)
            log.warning("%s: %s missed the lymphocytes (most %s events lie outside it): its mixture component is "
                        "chosen again by them", sample.name, spec.name, ref)
            redo |= set(dependents(definition, spec.name))
            continue
        share = max(float(fit.info.get(OTHER_SHARE_KEY, 0.0)), float(fit.info.get(BACKGATE_KEY, 0.0)))
        cols = columns(sample, spec.dims)
        log_dims = linear_dims(sample, cols)
        if not all(log_dims):  # CD45 x SSC: the mixture-free share counts too (record_denominator_other)
            share = max(share, float(fit.info.get(DENOMINATOR_OTHER_KEY, 0.0)))
        if share <= float(params.get("max_other_pct", math.inf)):
            continue
        if not all(log_dims):
            template = cd45_template(definition, sample, state, spec.name, cols, log_dims)
            if template is not None:
                state.templates[spec.name] = template
                log.info("%s: %s redrawn around its lymphocyte core (estimated %.1f %% other events)",
                         sample.name, spec.name, share)
                redo |= set(dependents(definition, spec.name))
                continue
        # the reference's own gate on the scatter gate's events, whatever gates lie between (a viability gate:
        # dead T cells are CD3+ and in the template, as dead lymphocytes belong in the scatter gate), and its
        # doublets too (lymphocyte-debris doublets belong in the scatter gate and have more side scatter)
        rows = np.flatnonzero(state.masks[spec.name])
        ref_fit = state.fits[ref]
        rows = every_nth(rows[evaluate_gate(ref_fit.gate, sample, rows, ref_fit.components, state.masks)], FIT_EVENTS)
        state.templates[spec.name] = gather(sample.events, rows, columns(sample, spec.dims))
        log.info("%s: %s redrawn around %s (estimated %.1f %% other events)", sample.name, spec.name, ref, share)
        redo |= set(dependents(definition, spec.name))
    return redo


def cd45_template(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, cols: np.ndarray,
                  log_dims: tuple[bool, ...]) -> np.ndarray | None:
    """The template of a scatter gate on a fluorescence dim (CD45 x SSC): the gate's events outside the counting
    beads (:func:`foreign_events`) in the lymphocyte core (:func:`.methods.scatter_core.lymphocyte_core`: CD45
    and log SSC within the robust ellipse of the majority), in the gate's dims; None when no core is found.
    The reference's own gate (CD3+) is no template there: beads are CD3+, and myeloid events can be too."""
    rows = np.flatnonzero(state.masks[gate] & ~foreign_events(definition, state, sample.n_events))
    X = gather(sample.events, every_nth(rows, FIT_EVENTS), cols)
    core = lymphocyte_core(X, log_dims)
    return X[core] if core is not None else None


#: fit-info key of a back-gated scatter-only gate: its reference's cells (single T cells) in the ring just outside it
#: per 100 inside (:func:`record_scatter_cuts`, %): the single lymphocytes its edge leaves out (a lower bound: the
#: ring reaches 1.5 x the gate's radius). Not recorded for a gate on a fluorescence dim (CD45 x SSC: lab C's tbnk
#: gates read 1-21 % there with 0.6-4 % of their lymphocytes truly outside)
LEFT_OUT_KEY = "lymphocytes_left_out_pct"


#: the lymphocytes a back-gated scatter gate leaves out are at most this multiple of the ring's reading
#: (:data:`LEFT_OUT_KEY`, a lower bound: it counts the reference's cells to 1.5 x the gate's radius only);
#: docs/gating.md, "The Lymphocytes row: other events in, lymphocytes out"
LEFT_OUT_MAX_RATIO = 1.5
#: the lymphocytes a back-gated scatter gate leaves out may hold a lineage at a share up to this fraction (relative)
#: above its share among those it keeps: on lab C's labels (T-cell tube, seeds 3737-4040) the T cells' share among
#: the lymphocytes left out by gates that left 10-45 % of them out was 6.5 % below to 4.6 % above that among the kept.
#: Below it is the usual case (the edge of a gate that leaves a few % out holds the larger NK and B cells: T share
#: 22-82 % lower), and then the row reads high, against the dilution by the other events in: not counted here.
#: docs/gating.md, "The composition of the lymphocytes the gate leaves out"
LEFT_OUT_COMPOSITION_REL = 0.05
#: note on a row directly below the lymphocyte denominator whose error part from the lymphocytes the scatter gate
#: left out (:func:`left_out_composition_pp`) takes its ``est_error_pp`` over the limit
LEFT_OUT_NOTE = "lymphocytes_left_out"


#: fit-info key of the lymphocyte denominator when it is a gate of its own below a back-gated scatter gate and its
#: singlet gates (a viability gate: ``Live`` under ``Singlets``): the parent's events it removes that are not
#: lymphocytes (% of the parent's events, :func:`record_removed_other`): debris and doublets the scatter and singlet
#: gates let in and the viability dye stains. They were in the parent's count and are not in the gate's, so its %
#: of parent reads low by ``pct x removed_other_pct / 100`` (:func:`.methods.scatter_overlap.dilution_error_pp`);
#: docs/gating.md, "The denominator gate below the singlets: other events it removes"
REMOVED_OTHER_KEY = "removed_other_pct"
#: note on the lymphocyte denominator's row whose error part from the other events it removes
#: (:data:`REMOVED_OTHER_KEY`) takes its ``est_error_pp`` over the limit
REMOVED_OTHER_NOTE = "other_events_removed"


class InAndOut(NamedTuple):
    """What moves a back-gated scatter-only gate's own % of parent, each % of the gate's events: other events
    in = ``back_gated`` (counted against the reference's own scatter) + ``debris_edge`` (the debris running into
    its low-FSC edge, :func:`.methods.scatter_overlap.debris_pct`: the mixture's extrapolated edge net of the
    strip's doublets and the lymphocytes' own tail where back-gating measured it); lymphocytes out = ``left_out``
    (the ring's reading, :data:`LEFT_OUT_KEY`)."""

    back_gated: float
    debris_edge: float
    left_out: float

    @property
    def other_in(self) -> float:
        """Other events in (% of the gate's events): back-gated share + debris edge."""
        return self.back_gated + self.debris_edge

    def error_pct(self) -> float:
        """The largest relative error (% of the gate's events, >= 0) of the gate's own % of parent: the row is
        off by (other events truly in) - (lymphocytes truly left out), with each side known to its own
        uncertainty: other events in between the back-gated share alone (the debris edge may over-read: the
        mixture's edge regressed at 0.3-0.65 x the true debris on labs A and B, and the strip it is read from
        also holds red cells on lab B) and the back-gated share + the whole debris edge; lymphocytes out between the ring's reading and
        :data:`LEFT_OUT_MAX_RATIO` x it. Returns max(|back_gated - ratio x left_out|, |other_in - left_out|)."""
        low = self.back_gated - LEFT_OUT_MAX_RATIO * self.left_out
        high = self.other_in - self.left_out
        return max(abs(low), abs(high))


def left_out_fraction(left_out_pct: float) -> float:
    """The share (fraction 0..1) of a back-gated scatter gate's lymphocytes that it leaves out, at the high end of
    its reading: ``left_out_pct`` (:data:`LEFT_OUT_KEY`, the reference's cells in the ring per 100 inside, a lower
    bound) times :data:`LEFT_OUT_MAX_RATIO`, as a share of all (inside + out)."""
    out = LEFT_OUT_MAX_RATIO * max(float(left_out_pct), 0.0) / 100.0
    return out / (1.0 + out)


def left_out_composition_pp(pct_parent: float, left_out_pct: float) -> float:
    """Error (pp, >= 0) of a lineage's % of the lymphocyte denominator (T cells, NK, B cells) from the lymphocytes
    the scatter gate above left out: the row reads the lineage's share among the kept lymphocytes, the truth is
    its share among all, ``kept x (1 - L) + out x L`` with ``L`` = :func:`left_out_fraction` of ``left_out_pct``
    (%). With the left-out share above the kept by up to :data:`LEFT_OUT_COMPOSITION_REL` of it (the row then reads
    low, as the dilution by other events makes it): ``pct x L x LEFT_OUT_COMPOSITION_REL``. 0 when ``pct_parent``
    is not finite."""
    if not math.isfinite(pct_parent):
        return 0.0
    return float(pct_parent) * left_out_fraction(left_out_pct) * LEFT_OUT_COMPOSITION_REL


def in_and_out_pct(definition: StrategyDefinition, state: FitState, gate: str) -> InAndOut | None:
    """What moves a back-gated scatter-only gate's own % of parent (:class:`InAndOut`, each % of its events):
    its own % of parent is off by (other events in) - (lymphocytes left out), bounded by
    :meth:`InAndOut.error_pct`. Other events are the debris running into it (:func:`debris_pct`: the mixture's
    edge estimate, net of the lymphocytes' own tail where measured) plus its back-gated share (:data:`BACKGATE_KEY`);
    under a counting ``lymphocyte_doublets`` value (``counted``, ``singles_and_pairs``) the back-gated share is
    its singlet gate's (per event of the gate): the lymphocyte doublets the gate holds have twice a lymphocyte's
    side scatter, but they are lymphocytes of that lab's row. The mixture's neighbour share
    is not used: where the reference back-gates the gate, larger and more granular events are measured against
    the lymphocytes' own scatter, where the mixture reads Gaussian tails. Lymphocytes left out:
    :data:`LEFT_OUT_KEY`. None when not measured (no :data:`LEFT_OUT_KEY` or :data:`BACKGATE_KEY`).
    docs/gating.md, "The Lymphocytes row: other events in, lymphocytes out"."""
    info = state.fits[gate].info
    if info.get(LEFT_OUT_KEY) is None or info.get(BACKGATE_KEY) is None:
        return None
    other = float(info[BACKGATE_KEY])
    if counts_doublets(definition.population(gate)):
        child = next((c.name for c in definition.populations if c.parent == gate and c.method == "singlets"
                      and c.name in state.fits and state.fits[c.name].info.get(BACKGATE_KEY) is not None), None)
        n_gate = int(np.count_nonzero(state.masks[gate]))
        if child is not None and n_gate:
            other = (float(state.fits[child].info[BACKGATE_KEY]) * int(np.count_nonzero(state.masks[child]))
                     / n_gate)
    return InAndOut(other, debris_pct(info), float(info[LEFT_OUT_KEY]))


def removed_other_share(removed: int, removed_reference: int, reference_share: float, parent: int) -> float:
    """The share (% of the ``parent`` events, >= 0) of a gate's parent that the gate removes and that are not
    lymphocytes: of the ``removed`` events (in the parent, not in the gate), the lymphocytes among them are
    estimated from those inside the back-gating reference's own gate (``removed_reference``: dead T cells are CD3+)
    over the reference's share of the gate's events (``reference_share``, fraction 0-1: the lineages stand in the
    same proportion among the lymphocytes the gate removes as among those it keeps); the rest are other events.
    0 when ``parent`` or ``reference_share`` is not positive."""
    if parent <= 0 or reference_share <= 0.0:
        return 0.0
    lymphocytes = removed_reference / reference_share
    return 100.0 * max(removed - lymphocytes, 0.0) / parent


def record_removed_other(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, ref: str) -> None:
    """Record on the lymphocyte denominator (info :data:`REMOVED_OTHER_KEY`, %) the other events it removes from its
    parent (:func:`removed_other_share`) where it is a gate of its own between the back-gated scatter gate ``gate``
    and its reference ``ref`` (not the scatter gate nor a singlet gate: a viability gate). Its removed events are
    read through the gates from just below it down to ``ref``'s own; the reference's share is its events over the
    denominator's. Nothing is recorded elsewhere."""
    lymph = definition.lymphocytes
    if lymph == gate or lymph not in state.masks or ref not in state.masks or gate not in ancestors(definition, lymph):
        return
    spec = definition.population(lymph)
    above_ref = ancestors(definition, ref)
    if spec.method == "singlets" or spec.parent is None or spec.parent not in state.masks or lymph not in above_ref:
        return
    n_lymph, n_parent = int(np.count_nonzero(state.masks[lymph])), int(np.count_nonzero(state.masks[spec.parent]))
    if n_lymph == 0:
        return
    removed = np.flatnonzero(state.masks[spec.parent] & ~state.masks[lymph])
    rows = removed
    for step in [*reversed(above_ref[:above_ref.index(lymph)]), ref]:  # from just below the denominator to ref
        if rows.size:
            fit = state.fits[step]
            rows = rows[evaluate_gate(fit.gate, sample, rows, fit.components, state.masks)]
    share = removed_other_share(int(removed.size), int(rows.size), int(np.count_nonzero(state.masks[ref])) / n_lymph,
                                n_parent)
    state.fits[lymph].info[REMOVED_OTHER_KEY] = round(share, 3)


#: fit-info key of a gate redrawn around its lymphocyte core: the mixture's estimate of other events (%), which
#: no longer describes the gate (its component holds the monocytes the core left out)
MIXTURE_SHARE_KEY = "mixture_other_share_pct"


def judge_core_gate(parent: str | None, sample: Sample, state: FitState, gate: str) -> None:
    """A gate redrawn around its lymphocyte core (:func:`cd45_template`) is judged by its mixture-free share of
    other events (:data:`DENOMINATOR_OTHER_KEY`, counted from :data:`MIRROR_MIN_PCT` as everywhere), not by its
    mixture: the component the core was cut from still holds the monocytes left out. Its ``other_share_pct``,
    ``est_error_pp`` (dilution of its % of parent) and the flags ``scatter_overlap`` / ``uncertain`` follow that
    share; the mixture's share is kept under :data:`MIXTURE_SHARE_KEY`. Idempotent (a re-fit of the rows below
    calls it again)."""
    fit = state.fits[gate]
    info = dict(fit.info)
    info.setdefault(MIXTURE_SHARE_KEY, info.get(OTHER_SHARE_KEY))
    share = float(info.get(DENOMINATOR_OTHER_KEY) or 0.0)
    share = share if share >= MIRROR_MIN_PCT else 0.0
    n_parent = int(np.count_nonzero(state.masks[parent])) if parent else sample.n_events
    pct = 100.0 * int(np.count_nonzero(state.masks[gate])) / max(n_parent, 1)
    est = dilution_error_pp(pct, share)
    info[OTHER_SHARE_KEY], info[S.EST_ERROR_PP] = round(share, 3), round(est, 3)
    flags = [f for f in fit.flags if f not in (OVERLAP_FLAG, "uncertain")]
    if share > float((info.get("params") or {}).get("max_other_pct", 3.0)):
        flags.append(OVERLAP_FLAG)
    if est > UNCERTAIN_PP:
        flags.append("uncertain")
    state.fits[gate] = FitResult(fit.gate, tuple(flags), info, fit.components)


def missed(fit: FitResult) -> bool:
    """A back-gated scatter gate holding fewer of its reference's events than lie outside it by more than
    :data:`MISSED_RATIO` (:func:`reference_outside`): it missed the lymphocytes."""
    return float(fit.info.get(OUTSIDE_KEY, 0.0)) > MISSED_RATIO


def linear_dims(sample: Sample, cols: np.ndarray) -> tuple[bool, ...]:
    """Per column index of ``cols``: True when the channel is on its linear scale (no transform recorded on the
    sample: scatter), False when transformed (logicle fluorescence such as the CD45 of a CD45 x SSC gate)."""
    pnn = sample.channel_table.column("pnn")
    return tuple(str(pnn[int(i)]) not in sample.transforms for i in cols)


def backgate_scatter(definition: StrategyDefinition, sample: Sample, state: FitState) -> None:
    """Back-gate every population below a scatter gate with a ``backgate_reference`` (``gmm_ellipse``,
    ``density_polygon``: :func:`.scatter_reference.backgate_reference`) onto that
    gate's scatter (:mod:`.methods.scatter_overlap`): each fitted population's ``info`` gets
    :data:`BACKGATE_KEY`, its estimated % of events that are not lymphocytes (0 for the reference itself; the
    populations below it by :func:`subset_other_share`: myeloid events its gate let in). Recomputed on every
    :func:`fit_all` (a re-fit of some populations changes the others' shares)."""
    for spec in definition.populations:
        ref = backgate_reference(spec)
        if ref is None or spec.name not in state.masks:
            continue
        below = [p.name for p in definition.populations if p.name in state.fits
                 and (p.name == spec.name or spec.name in ancestors(definition, p.name))]
        for name in below:  # new FitResults: a re-fit's state shares the others with the earlier result
            fit = state.fits[name]
            kept = {k: v for k, v in fit.info.items() if k not in (BACKGATE_KEY, BACKGATE_MAX_KEY, CUT_KEY,
                                                                   LEFT_OUT_KEY, DEBRIS_NET_KEY, REMOVED_OTHER_KEY)}
            state.fits[name] = FitResult(fit.gate, fit.flags, kept, fit.components)
        if ref not in state.masks:
            log.warning("%s: %s: back-gating reference %r was not fitted; no back-gating", sample.name,
                        spec.name, ref)
            continue
        cols = columns(sample, spec.dims)
        log_dims = linear_dims(sample, cols)
        foreign = foreign_events(definition, state, sample.n_events)  # beads are no lymphocyte reference
        ref_rows = every_nth(np.flatnonzero(state.masks[ref] & ~foreign), BACKGATE_MAX_EVENTS)
        if all(log_dims):  # a scatter-only gate; the missed-gate rule was measured on those only (docs/gating.md)
            # also where too few reference events lie inside for a back-gating region (a gate on red cells)
            state.fits[spec.name].info[OUTSIDE_KEY] = round(reference_outside(definition, sample, state, spec.name,
                                                                              ref), 3)
        region = fit_backgate(gather(sample.events, ref_rows, cols), log_dims)
        if region is None:
            continue
        # the gate and the singlet gates below it are read against single T cells live and dead when a viability
        # gate lies between them and the reference; the populations below that gate against the reference itself
        upper, whole_mask = whole_reference(definition, sample, state, spec.name, ref)
        # the reference's parent (the lymphocyte denominator) is divided by the lineage gates; a population above
        # it also holds events no lineage gate reads (dead cells above a viability gate) and is read as a whole
        lineages, divided = reference_siblings(definition, state, ref), definition.population(ref).parent
        whole = (fit_backgate(gather(sample.events, every_nth(np.flatnonzero(whole_mask), BACKGATE_MAX_EVENTS), cols),
                              log_dims)
                 if whole_mask is not None else None)
        for name in below:
            if name == ref:  # lymphocytes only, by definition of the reference
                share = 0.0
            elif ref in ancestors(definition, name):  # a subset of the reference: the events its own low side
                # leaves beyond the region (a subset whose whole cloud sits higher, larger blasts, moves the region
                # up with it; myeloid events the reference's gate let in do not): :func:`subset_other_share`
                share = subset_other_share(sample.events, state.masks[name], region, cols)
            else:  # a population holding the reference: its other events are among the non-reference ones
                mask = state.masks[name]
                holds_ref = name in ancestors(definition, ref)
                against, ref_mask = region, state.masks[ref]
                if whole is not None and whole_mask is not None and name in upper:
                    against, ref_mask = whole, whole_mask
                if holds_ref:  # its non-reference events, lineage by lineage (lineage_other_events)
                    share = lineage_other_events(sample.events, state.masks, mask & ~ref_mask,
                                                 lineages if name == divided else [], against, cols)
                    share /= max(int(np.count_nonzero(mask)), 1)
                else:
                    rows = every_nth(np.flatnonzero(mask), BACKGATE_MAX_EVENTS)
                    share = against.share(gather(sample.events, rows, cols)) if rows.size else 0.0
            state.fits[name].info[BACKGATE_KEY] = round(100.0 * share, 3)
        if ref in below:
            state.fits[ref].info[BACKGATE_KEY] = round(100.0 * reference_other_share(definition, state, ref), 3)
            for name in below:  # after the reference's share: the subsets' upper bounds read their parents'
                if ref in ancestors(definition, name):
                    state.fits[name].info[BACKGATE_MAX_KEY] = round(100.0 * subset_other_max(definition, state, name),
                                                                    3)
        record_denominator_other(definition, sample, state, spec.name, cols, log_dims)
        if not all(log_dims) and state.fits[spec.name].info.get("redrawn"):
            judge_core_gate(spec.parent, sample, state, spec.name)
        record_scatter_cuts(definition, sample, state, spec.name, ref, below,
                            (upper[1:], whole_mask) if whole_mask is not None else None)
        record_removed_other(definition, sample, state, spec.name, ref)


def subset_other_share(events: np.ndarray, mask: np.ndarray, region: Backgate, cols: np.ndarray) -> float:
    """Estimated share (fraction 0-1) of the events ``mask`` of a subset of the back-gating reference that are not
    lymphocytes: its events beyond the reference's region moved up by the subset's own low side
    (:meth:`Backgate.share`). The reference's gate is a phenotype gate (CD3+), and myeloid events that read
    dim-positive there (unmixed spectral files: monocytes CD3 and CD4 dim) come into its subsets; where they
    form a mode of their own in a subset's marker (CD25 between CD25- and the bright Treg mode) they are most of
    a small subset (docs/gating.md, "Myeloid events inside the T-cell gate")."""
    rows = every_nth(np.flatnonzero(mask), BACKGATE_MAX_EVENTS)
    return region.share(gather(events, rows, cols)) if rows.size else 0.0


def subset_other_max(definition: StrategyDefinition, state: FitState, name: str) -> float:
    """The most (fraction 0-1) of the events of ``name``, a population below the back-gating reference, that can
    be other events. A subset that reads other events of its own (:func:`subset_other_share` > 0: they fall in its
    phenotype) may hold all of its parent's (:data:`BACKGATE_KEY` x the parent's events), at most all its events:
    where they are a large part of it they move its low side up with them and its own reading falls short (lab C's
    monocytes, half of the CD45RA- CCR7- EM CD4 gate, read 9 %), while its parent still reads them. Its row
    then reads between its own reading and all of them (high by ``(100 - pct) x s_p / (1 - s_p)``); see
    docs/gating.md, "Myeloid events inside the T-cell gate". A subset that reads none keeps 0 (diluted only)."""
    own = float(state.fits[name].info.get(BACKGATE_KEY) or 0.0) / 100.0
    parent = definition.population(name).parent
    n = int(np.count_nonzero(state.masks[name]))
    if own <= 0.0 or parent is None or parent not in state.fits or parent not in state.masks or n == 0:
        return own
    n_parent = int(np.count_nonzero(state.masks[parent]))
    other = float(state.fits[parent].info.get(BACKGATE_KEY) or 0.0) / 100.0 * n_parent
    return min(max(own, other / n), 1.0)


def reference_other_share(definition: StrategyDefinition, state: FitState, ref: str) -> float:
    """Estimated share (fraction 0-1) of the back-gating reference's events that are not lymphocytes, read from
    the populations below it (:data:`BACKGATE_KEY`, :func:`subset_other_share`): the most other events any one
    of them holds, over the reference's events. The reference cannot read its own (its region is drawn on them);
    a lower bound, as each subset's is. Its other rows then carry the dilution (CD8 T beside a CD4 T gate that
    holds monocytes). 0 when nothing below it was read."""
    n_ref = int(np.count_nonzero(state.masks[ref]))
    if n_ref == 0:
        return 0.0
    other = max((float(state.fits[name].info.get(BACKGATE_KEY) or 0.0) / 100.0
                 * int(np.count_nonzero(state.masks[name]))
                 for name in state.fits if name in state.masks and ref in ancestors(definition, name)), default=0.0)
    return min(other / n_ref, 1.0)


def reference_siblings(definition: StrategyDefinition, state: FitState, ref: str) -> list[str]:
    """The fitted populations beside the back-gating reference (same parent, not boolean): the other lymphocyte
    lineages the strategy gates (NK and B cells beside T cells), in strategy order."""
    parent = definition.population(ref).parent
    return [p.name for p in definition.populations if p.parent == parent and p.name != ref
            and p.method != "boolean" and p.name in state.masks]


def lineage_other_events(events: np.ndarray, masks: Mapping[str, np.ndarray], rest: np.ndarray, lineages: list[str],
                         against: Backgate, cols: np.ndarray) -> float:
    """Estimated count of other events (not lymphocytes) among the events ``rest`` (bool mask: a population's
    events outside the reference; ``events``: the sample's events, linear scatter in ``cols``, ``masks`` the
    populations' events) read lineage by lineage: the events of each of ``lineages`` (the reference's siblings,
    :func:`reference_siblings`; an event in two counts with the first) against the region moved up by their own
    low side (:meth:`Backgate.share`), then the events in none of them against the reference's own region (they
    are no lineage the strategy gates; moved up by their low side, monocytes alone would move it onto
    themselves). With no lineage split off, the events are read together, moved up by their low side, as
    before. A lineage whose whole cloud has more side scatter than the reference's (NK cells beside T cells) holds
    no other events for that; read together with one sitting where the reference does (B cells), its upper side
    was counted as other events (docs/gating.md, "What dilutes the rows below the lymphocyte denominator").
    Events (a count, not a share)."""
    left = rest.copy()
    parts = []
    for name in lineages:
        part = left & masks[name]
        if part.any():
            parts.append((part, True))
            left &= ~part
    total = 0.0
    for part, shifted in [*parts, (left, not parts)]:
        n = int(np.count_nonzero(part))
        if n:
            rows = every_nth(np.flatnonzero(part), BACKGATE_MAX_EVENTS)
            total += against.share(gather(events, rows, cols), shifted=shifted) * n
    return total


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


def reference_events(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, ref: str
                     ) -> np.ndarray:
    """The events of the scatter gate's parent inside ``ref``'s own gate (CD3+ for T cells), in the gate's dims
    (at most :data:`FIT_EVENTS`, evenly spaced): where the T cells lie in the parent's scatter."""
    spec = definition.population(gate)
    rows = np.flatnonzero(state.masks[spec.parent]) if spec.parent else np.arange(sample.n_events)
    ref_fit = state.fits[ref]
    hit = rows[evaluate_gate(ref_fit.gate, sample, rows, ref_fit.components, state.masks)]
    return gather(sample.events, every_nth(hit, FIT_EVENTS), columns(sample, spec.dims))


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


def singlet_gates(definition: StrategyDefinition, state: FitState, gate: str) -> list[str]:
    """The fitted singlet gates (method ``singlets``) right below ``gate``, from the top: its first ``singlets``
    child, that one's, and so on (FSC and SSC singlet gates in turn); [] when there is none."""
    out: list[str] = []
    child = singlets_child(definition, state, gate)
    while child is not None:
        out.append(child)
        child = singlets_child(definition, state, child)
    return out


def debris_net_pct(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str,
                   reference_count: Callable[[np.ndarray], int], inside_reference: int) -> float | None:
    """The scatter gate's debris edge (:data:`DEBRIS_KEY`, %) net of what in its strip (:data:`DEBRIS_STRIP_KEY`) is
    not debris (:func:`.methods.scatter_overlap.debris_net_share`): the doublets, which the singlet gates right below
    it (:func:`singlet_gates`) remove, and the lymphocytes' own low-FSC tail. The gate's parent's events in the strip
    that pass those singlet gates, per event inside the gate, less the reference's per reference event inside
    (``reference_count`` of the strip's rows: those passing the gates down to the reference's own; ``inside_reference``:
    the reference's events inside the gate). None when the gate has no strip or no debris edge."""
    info = state.fits[gate].info
    strip, debris = info.get(DEBRIS_STRIP_KEY), info.get(DEBRIS_KEY)
    n_gate = int(np.count_nonzero(state.masks[gate]))
    if strip is None or not debris or not n_gate or inside_reference < 1:
        return None
    parent = definition.population(gate).parent
    rows = np.flatnonzero(state.masks[parent]) if parent else np.arange(sample.n_events)
    X = gather(sample.events, rows, columns(sample, state.fits[gate].gate.dims[:2]))
    (f_lo, f_hi), (s_lo, s_hi) = strip
    in_strip = rows[(X[:, 0] >= f_lo) & (X[:, 0] < f_hi) & (X[:, 1] >= s_lo) & (X[:, 1] <= s_hi)]
    single = in_strip
    for name in singlet_gates(definition, state, gate):
        if single.size:
            fit = state.fits[name]
            single = single[evaluate_gate(fit.gate, sample, single, fit.components, state.masks)]
    return debris_net_share(float(debris), int(in_strip.size), n_gate, reference_count(in_strip), inside_reference,
                            int(single.size))


def record_scatter_cuts(definition: StrategyDefinition, sample: Sample, state: FitState, gate: str, ref: str,
                        below: list[str], whole: tuple[list[str], np.ndarray] | None = None) -> None:
    """Each population below the back-gated scatter gate ``gate`` (an ellipse or a density polygon; not the
    reference ``ref`` and the populations below it, which define the lymphocytes' rate) gets :data:`CUT_KEY` in its ``info``: the
    excess share of its cells in the ring just outside the gate over the reference's (%, per 100 inside;
    :mod:`.methods.scatter_cut`), its phenotype read by the gates between the scatter gate and itself, and
    :data:`RING_KEY`, its own events in the ring per 100 inside (:mod:`.edge_loss`). Not
    for a population whose back-gated share of other events (:data:`BACKGATE_KEY`) is above 0: events like
    those let in (monocytes through a CD16dim NK gate) fill the ring too, and are not its cells.

    The gate itself (a scatter-only gate) gets :data:`LEFT_OUT_KEY`: the reference's cells in the ring per 100
    inside. With ``whole`` (the singlet gates right below the gate and the events of the lowest of them inside
    ``ref``'s own gate, when a viability gate lies between them and ``ref``: :func:`whole_reference`) those are the
    events passing these singlet gates and ``ref``'s own gate, live and dead, per event of that mask: the gate's
    row holds dead lymphocytes too, and they lie at its edge more than live ones. The populations' rate stays the
    reference's (they passed the viability gate as it did)."""
    fit = state.fits.get(gate)
    if fit is None or not isinstance(fit.gate, (EllipsoidGate, PolygonGate)):
        return
    ring = ring_rows(fit.gate, gather(sample.events, np.arange(sample.n_events), columns(sample, fit.gate.dims)))

    def between(name: str) -> list[str]:  # the gates from just below the scatter gate down to ``name``'s parent
        chain = ancestors(definition, name)
        return chain[:chain.index(gate)]

    def inside(rows: np.ndarray, step: str) -> np.ndarray:  # of ``rows``, the events inside ``step``'s own gate
        if rows.size == 0:
            return rows
        f = state.fits[step]
        return rows[evaluate_gate(f.gate, sample, rows, f.components, state.masks)]

    def through(rows: np.ndarray, steps: list[str]) -> np.ndarray:  # of ``rows``, those inside each step's gate
        for step in steps:
            rows = inside(rows, step)
        return rows

    def ring_through(steps: list[str]) -> int:  # the ring's events inside each step's own gate in turn
        return int(through(ring, steps).size)

    in_chain: dict[str, np.ndarray] = {gate: ring}  # the ring's events inside a population and every gate above it

    def ring_in(name: str) -> np.ndarray:  # each gate of a chain evaluated once, however many populations share it
        if name not in in_chain:
            in_chain[name] = inside(ring_in(str(definition.population(name).parent)), name)
        return in_chain[name]

    def ring_count(name: str) -> int:
        return int(ring_in(name).size)

    if ref not in state.fits:
        return
    ring_ref, inside_ref = ring_count(ref), int(np.count_nonzero(state.masks[ref]))
    if inside_ref and all(linear_dims(sample, columns(sample, fit.gate.dims))):  # a scatter-only gate
        ring_own, inside_own = ring_ref, inside_ref
        if whole is not None:
            ring_own, inside_own = ring_through([*whole[0], ref]), int(np.count_nonzero(whole[1]))
        if inside_own:
            state.fits[gate].info[LEFT_OUT_KEY] = round(100.0 * ring_own / inside_own, 3)
            net = debris_net_pct(definition, sample, state, gate,
                                 lambda rows: int(through(rows, [*whole[0], ref] if whole is not None
                                                          else [*reversed(between(ref)), ref]).size), inside_own)
            if net is not None:
                state.fits[gate].info[DEBRIS_NET_KEY] = round(net, 3)
    for name in below:
        if name == gate or name == ref or ref in ancestors(definition, name) or name in ancestors(definition, ref):
            continue
        if any(a not in state.fits for a in between(name)):
            continue
        if state.fits[name].info.get(BACKGATE_KEY, 0.0) > 0.0:
            continue  # its high-SSC excess is other events let in (back-gated): the ring holds more of them
        n_ring, n_inside = ring_count(name), int(np.count_nonzero(state.masks[name]))
        share = cut_share(n_ring, n_inside, ring_ref, inside_ref)
        state.fits[name].info[CUT_KEY] = round(100.0 * share, 3)
        if n_inside:
            state.fits[name].info[RING_KEY] = round(100.0 * n_ring / n_inside, 3)
