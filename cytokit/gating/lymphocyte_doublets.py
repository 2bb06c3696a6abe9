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
excluded``, :data:`EXCLUDED`, :func:`states_excluded`): its row is the drawn gate, with no convention note and no
convention part in ``est_error_pp``; the estimate is still recorded in ``info[DOUBLET_KEY]``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .methods import GATE_METHODS, FitResult
from .methods.base import every_nth, gather
from .methods.scatter import LymphocyteDoubletsParams

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
#: the ``gmm_ellipse`` parameter value of a lab whose lymphocyte gate counts the doublets (its singlet gate removes
#: them): :func:`counted_doublets`
COUNTED = "counted"
#: the ``gmm_ellipse`` parameter value of a lab whose lymphocyte gate leaves the doublets out, as cytokit's does:
#: no :data:`DOUBLET_NOTE` (:func:`states_excluded`)
EXCLUDED = "excluded"
#: the default ``gmm_ellipse`` parameter value: the lab's convention is not known (:data:`DOUBLET_NOTE` applies)
UNSTATED = "unstated"
#: error of the doublet estimate, as a fraction of it, under :data:`COUNTED` (enters ``est_error_pp``): lab A's
#: generator, seeds 7070 and 6060 (96 files), estimate - true doublets outside the gate -0.15..+0.12 pp of the
#: parent, 7 % of the estimate at most (p95 5 %); seed 5050: 90-99 % of the counted events are such doublets
ESTIMATE_REL_ERROR = 0.1
#: note word of a row whose doublet estimate's error (:data:`ESTIMATE_REL_ERROR`) takes ``est_error_pp`` over
#: the uncertain limit under :data:`COUNTED`
ESTIMATE_NOTE = "lymphocyte_doublets_estimate"


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
    """Record :data:`DOUBLET_KEY` in the ``info`` of every fitted scatter gate (:func:`doublet_gate`) with a
    fitted ``singlets`` child (the first one in strategy order); recomputed on every fit."""
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        if fit is None or not doublet_gate(spec) or len(spec.dims) != 2:
            continue
        child = next((c for c in definition.populations if c.parent == spec.name and c.method == "singlets"
                      and c.name in state.fits), None)
        info = {k: v for k, v in fit.info.items() if k != DOUBLET_KEY}
        band = state.fits[child.name].info.get("ratio_band") if child is not None else None
        if child is not None and band is not None:
            cols = np.array([sample.channel_index(d) for d in (*child.dims, spec.dims[1])], dtype=np.intp)
            parent = state.masks[spec.parent] if spec.parent else np.ones(sample.n_events, dtype=bool)
            outside = every_nth(np.flatnonzero(parent & ~state.masks[spec.name]), MAX_EVENTS)
            singles = every_nth(np.flatnonzero(state.masks[child.name]), MAX_EVENTS)
            n_parent = int(np.count_nonzero(parent))
            n_outside = n_parent - int(np.count_nonzero(state.masks[spec.name] & parent))
            share = doublet_share_pp(gather(sample.events, outside, cols), gather(sample.events, singles, cols),
                                     float(band[1]))
            info[DOUBLET_KEY] = round(share * n_outside / max(n_parent, 1), 3)
        if info.get(DOUBLET_KEY) != fit.info.get(DOUBLET_KEY):  # a new FitResult (a re-fit's state shares others)
            state.fits[spec.name] = FitResult(fit.gate, fit.flags, info, fit.components)


def doublet_gate(spec: "PopulationSpec") -> bool:
    """True when ``spec``'s method is a scatter lymphocyte gate that takes the ``lymphocyte_doublets`` convention
    (its parameters are :class:`~.methods.scatter.LymphocyteDoubletsParams`: ``gmm_ellipse``, ``density_polygon``)."""
    method = GATE_METHODS.get(spec.method)
    return method is not None and issubclass(method.params_model, LymphocyteDoubletsParams)


def counts_doublets(spec: "PopulationSpec") -> bool:
    """True when ``spec`` is a scatter gate whose lab counts the lymphocyte-lymphocyte doublets in it
    (``lymphocyte_doublets: counted``)."""
    return doublet_gate(spec) and spec.params.get("lymphocyte_doublets") == COUNTED


def states_excluded(spec: "PopulationSpec") -> bool:
    """True when ``spec`` is a scatter gate whose lab states that its lymphocyte gate leaves the
    lymphocyte-lymphocyte doublets out (``lymphocyte_doublets: excluded``): the doublet convention does not move
    its row, so it gets no :data:`DOUBLET_NOTE` and no convention part in ``est_error_pp``."""
    return doublet_gate(spec) and spec.params.get("lymphocyte_doublets") == EXCLUDED


def counted_doublets(definition: "StrategyDefinition", state: "FitState", n_events: int) -> dict[str, tuple[int, float]]:
    """Gate name -> (estimated doublets outside it, events; that estimate's error, events) for every fitted gate
    with ``lymphocyte_doublets: counted`` whose doublets were estimated (:data:`DOUBLET_KEY`, pp of the gate's
    parent, times the parent's events; ``n_events`` when it has no parent). The error is
    :data:`ESTIMATE_REL_ERROR` x the estimate."""
    out: dict[str, tuple[int, float]] = {}
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        if fit is None or not counts_doublets(spec) or fit.info.get(DOUBLET_KEY) is None:
            continue
        n_parent = int(state.masks[spec.parent].sum()) if spec.parent else n_events
        added = int(round(float(fit.info[DOUBLET_KEY]) / 100.0 * n_parent))
        out[spec.name] = (added, ESTIMATE_REL_ERROR * added)
    return out
