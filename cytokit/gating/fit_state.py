"""What one sample's gating has fitted so far (:class:`FitState`) and the evaluation of fitted gates on its
events: a gate over its parent's rows (:func:`evaluate_gate`), stored concrete gates (:func:`evaluate_stored`)
and ``negative_reference`` expressions (:func:`reference_mask`). Masks are boolean arrays over all events."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GatingError
from ..gates import BooleanGate, Gate, gate_from_dict
from ..results import schema as S
from ..sample import Sample
from .methods import FitResult
from .methods.base import gather
from .model import reference_operands

#: At most this many parent events are handed to a fit (methods subsample internally with their own
#: ``max_events``); membership is always evaluated on every event.
FIT_EVENTS = 100_000


@dataclass
class FitState:
    """Masks and fits of the populations fitted so far (one sample)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    fits: dict[str, FitResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: scatter gates to be redrawn around a lymphocytes-only population's events (:func:`scatter_redraws`)
    templates: dict[str, np.ndarray] = field(default_factory=dict)
    #: scatter gates that missed the lymphocytes, to choose their mixture component again by the back-gating
    #: reference's events in their parent (:func:`scatter_redraws`)
    anchors: dict[str, np.ndarray] = field(default_factory=dict)


def columns(sample: Sample, dims: tuple[str, ...]) -> np.ndarray:
    """Channel indices (intp array, usable with ``np.ix_``) of the named dims."""
    return np.array([sample.channel_index(d) for d in dims], dtype=np.intp)


def evaluate_gate(gate: Gate, sample: Sample, rows: np.ndarray, components: tuple[Gate, ...] = (),
                  masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Membership (over ``rows``, the parent's event indices) of a fitted gate."""
    if isinstance(gate, BooleanGate):
        local: dict[str, np.ndarray] = {}
        for comp in components:
            X = gather(sample.events, rows, columns(sample, comp.dims))
            local[comp.id] = comp.contains(X)
        if masks:
            for name, m in masks.items():
                local.setdefault(name, m[rows])
        return gate.evaluate(local)
    X = gather(sample.events, rows, columns(sample, gate.dims))
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
