"""Lymphocyte–lymphocyte doublets left outside a scatter lymphocyte gate: how much the gate's % of parent depends
on the doublet convention (percentage points of the gate's parent).

cytokit's lymphocyte gate holds one lymphocyte's scatter (docs/gating.md, "What Lymphocytes % means"): a doublet
of two lymphocytes has a lymphocyte's FSC-H but about twice its FSC-A and SSC-A, and lies mostly above the gate.
A lab whose lymphocyte gate counts these doublets (gated on FSC-A before its singlet gate) reads ``Lymphocytes``
higher by their share of events. After the populations are fitted, the events of the gate's parent outside the
gate are counted as such doublets when, against the single lymphocytes of the gate's ``singlets`` child
(``dims = [area, height]``):

* their area/height ratio lies above the singlet band (a doublet's area adds, its height does not),
* their area (FSC-A) lies within :data:`AREA_RANGE` x the single lymphocytes' median (two cells' areas), and
* their side scatter (the gate's second dimension) within :data:`SIDE_RANGE` x the single lymphocytes' median.

Their share of the parent's events is recorded (``info[DOUBLET_KEY]``, pp); where it alone exceeds the ``uncertain``
limit it enters the gate's ``est_error_pp`` and the row gets the note :data:`DOUBLET_NOTE` and ``uncertain`` when
the lab has not stated its convention (``lymphocyte_doublets: unstated``, the default; added
to the gate's own estimate below the limit, it flagged rows of cytokit's simulator whose truth excludes the doublets
as this gate does, without catching more of the independent lab's; docs/gating.md). Not applied to the
singlet gate's own % of parent under the default convention: there both conventions hold every file by about the same amount (measured on both
generators in docs/gating.md), so a flag would not separate right from wrong.

A lab whose lymphocyte gate counts the doublets states it on the gate (``lymphocyte_doublets: counted``,
:data:`COUNTED`): the ``Lymphocytes`` row then reports the gate's events plus the estimated doublets (events, the
recorded pp x the parent's events) and its children (the singlet gate) are read against that count
(:func:`counted_doublets`, used by the populations table); the row is not flagged for the convention, and the
estimate's own error (:data:`ESTIMATE_REL_ERROR` of it) enters ``est_error_pp`` of the gate and of its children.
The gate and its mask (what is drawn, exported, and counted below the singlet gate) do not change.

A lab whose lymphocyte gate leaves the doublets out, as cytokit's does, states that (``lymphocyte_doublets:
excluded``, :data:`EXCLUDED`, :func:`noted`): its row is the drawn gate, with no convention note and no
convention part in ``est_error_pp``; the estimate is still recorded in ``info[DOUBLET_KEY]``.

A lab whose ``Lymphocytes`` are single lymphocytes plus lymphocyte–lymphocyte doublets and nothing else (no
doublet of a lymphocyte with debris or a red cell) states ``lymphocyte_doublets: singles_and_pairs``
(:data:`SINGLES_AND_PAIRS`): the row reports the gate's ``singlets`` child's events plus the lymphocyte–lymphocyte
doublets estimated among the events that singlet gate removes inside the gate (:data:`INSIDE_KEY`, pp of the
gate's parent, the criteria above) plus those outside it (:data:`DOUBLET_KEY`), and its children are read against
that count; the estimate's own error (:data:`PAIRS_REL_ERROR` of both estimates together) enters ``est_error_pp``
as under ``counted``, with :data:`ESTIMATE_NOTE` where it takes the row over the limit. The other events the
singlet gate removes (lymphocyte–particle doublets) are then in neither the row nor its children's denominator.

The values and what each does are one registry, :data:`CONVENTIONS` (:class:`Convention`); the parameter's type
(:data:`~.methods.scatter.DoubletConvention`) lists the same names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, get_args

import numpy as np

from .methods import GATE_METHODS, FitResult
from .methods.base import every_nth, gather
from .methods.scatter import DoubletConvention, LymphocyteDoubletsParams

if TYPE_CHECKING:  # pragma: no cover
    from ..sample import Sample
    from .fit_state import FitState
    from .model import PopulationSpec, StrategyDefinition

#: fit-info key of a scatter gate: estimated lymphocyte–lymphocyte doublets outside it, pp of its parent
DOUBLET_KEY = "lymphocyte_doublets_pp"
#: note word (not a review flag by itself) of a gate whose doublets alone exceed the uncertain limit
DOUBLET_NOTE = "lymphocyte_doublets"
#: a doublet's area (FSC-A), x the single lymphocytes' median: two cells, each from a skewed distribution
AREA_RANGE = (1.5, 2.7)
#: a doublet's side scatter (the scatter gate's second dimension), x the single lymphocytes' median
SIDE_RANGE = (1.4, 2.8)
#: at most this many parent events are examined (a systematic sample; the share is scaled back)
MAX_EVENTS = 200_000
#: fit-info key of a scatter gate: estimated lymphocyte–lymphocyte doublets among the events its ``singlets`` child
#: removes inside it, pp of the gate's parent
INSIDE_KEY = "lymphocyte_doublets_inside_pp"
#: the ``lymphocyte_doublets`` value of a lab whose lymphocyte gate counts the doublets (its singlet gate removes
#: them): the gate plus the doublets outside it (:data:`CONVENTIONS`)
COUNTED = "counted"
#: the value of a lab whose lymphocyte gate leaves the doublets out, as cytokit's does: no :data:`DOUBLET_NOTE`
EXCLUDED = "excluded"
#: the default value: the lab's convention is not known (:data:`DOUBLET_NOTE` applies)
UNSTATED = "unstated"
#: the value of a lab whose ``Lymphocytes`` are single lymphocytes + lymphocyte–lymphocyte doublets only: the
#: singlet gate's events plus the doublets estimated inside and outside the gate
SINGLES_AND_PAIRS = "singles_and_pairs"
#: error of the doublet estimate outside the gate, as a fraction of it, under :data:`COUNTED` (enters
#: ``est_error_pp``): lab A's generator, seeds 7070 and 6060 (96 files), estimate - true doublets outside the gate
#: -0.15..+0.12 pp of the parent, 7 % of the estimate at most (p95 5 %); seed 5050: 90-99 % of the counted events
#: are such doublets
ESTIMATE_REL_ERROR = 0.1
#: error of the doublet estimate inside plus outside the gate, as a fraction of it, under :data:`SINGLES_AND_PAIRS`
#: (enters ``est_error_pp``): lab B's generator, seed 13131 (36 files), estimate - true lymphocyte-lymphocyte
#: doublets +4..+34 % of the estimate (median 15 %, p95 30 %); docs/gating.md, "A lab whose Lymphocytes are
#: singles and pairs"
PAIRS_REL_ERROR = 0.35
#: note word of a row whose doublet estimate's error (:data:`ESTIMATE_REL_ERROR`) takes ``est_error_pp`` over
#: the uncertain limit under a counting convention, or whose estimate could not be made
ESTIMATE_NOTE = "lymphocyte_doublets_estimate"


@dataclass(frozen=True)
class DoubletCounts:
    """What a scatter gate's row is counted from (events): the drawn gate, its ``singlets`` child, and the
    lymphocyte–lymphocyte doublets estimated outside the gate and, among the events the singlet gate removes,
    inside it."""

    gate: int
    singles: int
    outside: int
    inside: int


def _gate_plus_outside(c: DoubletCounts) -> tuple[int, float]:
    return c.outside, ESTIMATE_REL_ERROR * c.outside


def _singles_and_pairs(c: DoubletCounts) -> tuple[int, float]:
    return c.singles + c.inside + c.outside - c.gate, PAIRS_REL_ERROR * (c.inside + c.outside)


@dataclass(frozen=True)
class Convention:
    """One value of ``lymphocyte_doublets``: ``noted``, the row gets :data:`DOUBLET_NOTE` (and the doublets outside
    in ``est_error_pp``) where they exceed the uncertain limit, since the lab has not said what its row holds;
    ``count``, None for the drawn gate, else (events added to the gate's count, may be negative; that number's
    error, events) from :class:`DoubletCounts`, the gate's children then read against that count; ``inside``,
    the doublets inside the gate are estimated (:data:`INSIDE_KEY`; else ``DoubletCounts.inside`` is 0)."""

    noted: bool
    count: Callable[[DoubletCounts], tuple[int, float]] | None
    meaning: str
    inside: bool = False


#: every value of ``lymphocyte_doublets`` and what it does (docs/gating.md, "What Lymphocytes % means" and after)
CONVENTIONS: dict[str, Convention] = {
    UNSTATED: Convention(True, None, "the drawn gate; noted where the doublets outside it exceed the limit"),
    EXCLUDED: Convention(False, None, "the drawn gate: single lymphocytes (and lymphocyte-particle doublets)"),
    COUNTED: Convention(False, _gate_plus_outside, "the drawn gate plus the lymphocyte doublets outside it"),
    SINGLES_AND_PAIRS: Convention(False, _singles_and_pairs, "single lymphocytes plus lymphocyte-lymphocyte "
                                  "doublets, inside and outside the gate; no lymphocyte-particle doublets",
                                  inside=True),
}
if set(CONVENTIONS) != set(get_args(DoubletConvention)):  # pragma: no cover - a programming error
    raise RuntimeError(f"lymphocyte_doublets: registry {sorted(CONVENTIONS)} != parameter "
                       f"{sorted(get_args(DoubletConvention))}")


def doublet_share_pp(outside: np.ndarray, singles: np.ndarray, ratio_max: float) -> float:
    """Estimated lymphocyte–lymphocyte doublets among ``outside`` (columns area, height, side scatter; the gate's
    parent's events outside the gate), as % of ``outside``'s rows: ratio area/height above ``ratio_max`` and area and
    side scatter within :data:`AREA_RANGE` / :data:`SIDE_RANGE` x the medians of ``singles`` (same columns, single
    lymphocytes). 0 when there are no single lymphocytes."""
    if singles.shape[0] == 0 or outside.shape[0] == 0:
        return 0.0
    area_med, side_med = float(np.median(singles[:, 0])), float(np.median(singles[:, 2]))
    a, h, s = outside[:, 0], outside[:, 1], outside[:, 2]
    ratio = np.divide(a, h, out=np.zeros_like(a, dtype=np.float64), where=h > 0)
    hit = ((ratio > ratio_max) & (a >= AREA_RANGE[0] * area_med) & (a <= AREA_RANGE[1] * area_med)
           & (s >= SIDE_RANGE[0] * side_med) & (s <= SIDE_RANGE[1] * side_med))
    return 100.0 * float(np.count_nonzero(hit)) / outside.shape[0]


def record_lymphocyte_doublets(definition: "StrategyDefinition", sample: "Sample", state: "FitState") -> None:
    """Record :data:`DOUBLET_KEY` (outside the gate) in the ``info`` of every fitted scatter gate
    (:func:`doublet_gate`) with a fitted ``singlets`` child (the first one in strategy order), and
    :data:`INSIDE_KEY` (among the events that child removes inside the gate) where the gate's convention reads it
    (``Convention.inside``); recomputed on every fit."""
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        if fit is None or not doublet_gate(spec) or len(spec.dims) != 2:
            continue
        child = singlets_child(definition, state, spec.name)
        info = {k: v for k, v in fit.info.items() if k not in (DOUBLET_KEY, INSIDE_KEY)}
        band = state.fits[child].info.get("ratio_band") if child is not None else None
        if child is not None and band is not None:
            cols = np.array([sample.channel_index(d) for d in (*definition.population(child).dims, spec.dims[1])],
                            dtype=np.intp)
            parent = state.masks[spec.parent] if spec.parent else np.ones(sample.n_events, dtype=bool)
            gate = state.masks[spec.name] & parent
            singles = gather(sample.events, every_nth(np.flatnonzero(state.masks[child]), MAX_EVENTS), cols)
            n_parent = max(int(np.count_nonzero(parent)), 1)
            regions = {DOUBLET_KEY: parent & ~gate}
            if _read_inside(spec):
                regions[INSIDE_KEY] = gate & ~state.masks[child]
            for key, where in regions.items():
                rows = np.flatnonzero(where)
                share = doublet_share_pp(gather(sample.events, every_nth(rows, MAX_EVENTS), cols), singles,
                                         float(band[1]))
                info[key] = round(share * rows.size / n_parent, 3)
        if any(info.get(k) != fit.info.get(k) for k in (DOUBLET_KEY, INSIDE_KEY)):  # a new FitResult (a re-fit's
            state.fits[spec.name] = FitResult(fit.gate, fit.flags, info, fit.components)  # state shares others)


def singlets_child(definition: "StrategyDefinition", state: "FitState", gate: str) -> str | None:
    """The first fitted population with method ``singlets`` whose parent is ``gate``, or None."""
    return next((c.name for c in definition.populations if c.parent == gate and c.method == "singlets"
                 and c.name in state.fits), None)


def doublet_gate(spec: "PopulationSpec") -> bool:
    """True when ``spec``'s method is a scatter lymphocyte gate that takes the ``lymphocyte_doublets`` convention
    (its parameters are :class:`~.methods.scatter.LymphocyteDoubletsParams`: ``gmm_ellipse``, ``density_polygon``)."""
    method = GATE_METHODS.get(spec.method)
    return method is not None and issubclass(method.params_model, LymphocyteDoubletsParams)


def convention(spec: "PopulationSpec") -> Convention | None:
    """The :data:`CONVENTIONS` entry ``spec`` states (its default, :data:`UNSTATED`, when it states none); None
    when ``spec`` is not a scatter gate that takes the key (:func:`doublet_gate`)."""
    if not doublet_gate(spec):
        return None
    return CONVENTIONS[str(spec.params.get("lymphocyte_doublets", UNSTATED))]


def _read_inside(spec: "PopulationSpec") -> bool:
    conv = convention(spec)
    return conv is not None and conv.inside


def counts_doublets(spec: "PopulationSpec") -> bool:
    """True when ``spec`` is a scatter gate whose row is counted by its lab's convention rather than as drawn
    (a :data:`CONVENTIONS` entry with a ``count``: ``counted``, ``singles_and_pairs``)."""
    conv = convention(spec)
    return conv is not None and conv.count is not None


def noted(spec: "PopulationSpec") -> bool:
    """False when ``spec`` is a scatter gate whose lab stated its doublet convention (no :data:`DOUBLET_NOTE`, no
    convention part in ``est_error_pp``); True otherwise."""
    conv = convention(spec)
    return conv is None or conv.noted


def counted_doublets(definition: "StrategyDefinition", state: "FitState",
                     n_events: int) -> dict[str, tuple[int, float]]:
    """Gate name -> (events added to the gate's count, may be negative; that number's error, events) for every
    fitted gate whose convention counts its row (:func:`counts_doublets`) and whose doublets were estimated
    (:data:`DOUBLET_KEY`, :data:`INSIDE_KEY`: pp of the gate's parent, times the parent's events; ``n_events``
    when it has no parent), from :data:`CONVENTIONS`."""
    out: dict[str, tuple[int, float]] = {}
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        conv = convention(spec)
        child = singlets_child(definition, state, spec.name)
        keys = (DOUBLET_KEY, INSIDE_KEY) if conv is not None and conv.inside else (DOUBLET_KEY,)
        if (fit is None or conv is None or conv.count is None or child is None
                or any(fit.info.get(k) is None for k in keys)):
            continue
        n_parent = int(state.masks[spec.parent].sum()) if spec.parent else n_events
        events = {k: int(round(float(fit.info.get(k, 0.0)) / 100.0 * n_parent)) for k in (DOUBLET_KEY, INSIDE_KEY)}
        out[spec.name] = conv.count(DoubletCounts(int(state.masks[spec.name].sum()), int(state.masks[child].sum()),
                                                  events[DOUBLET_KEY], events[INSIDE_KEY]))
    return out
