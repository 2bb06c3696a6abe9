"""Evaluate a gate hierarchy on a Sample: compensation, transforms, gate kernels, parent intersection.

Input is a raw Sample (linear scale, $PnE/$PnG decoded, not compensated or transformed), as
:func:`cytokit.fcs.read_fcs` returns it. Each gate dimension is computed as its
:class:`~cytokit.gatingml.model.DimensionSpec` says (compensation -> optional ratio -> optional scale
transformation, clipped to the transformation's bounds), the gate's kernel from :mod:`cytokit.gates` is
applied, and the result is intersected with the parent's membership. Boolean gates combine the full
memberships of the gates they reference. Nothing is cached between calls (no global state).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import CompensationError, GatingError, PanelError, TransformError
from ..gates import BooleanGate
from ..results import schema as S
from ..sample import Sample
from ..scales import scale_transform
from .compensation import compensation_matrix, spillover_from_metadata
from .model import FCS_COMPENSATION, UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument, TransformSpec

log = logging.getLogger(__name__)

def _bound(values: np.ndarray, spec: TransformSpec) -> np.ndarray:
    if spec.bound_min is not None or spec.bound_max is not None:
        lo = -np.inf if spec.bound_min is None else spec.bound_min
        hi = np.inf if spec.bound_max is None else spec.bound_max
        values = np.clip(values, lo, hi)
    return values


class DimensionResolver:
    """Computes gate coordinates for one Sample and one document; caches within its own lifetime."""

    def __init__(self, document: GatingDocument, sample: Sample) -> None:
        if sample.compensated or sample.transforms:
            raise GatingError("gate hierarchies with their own compensation/transforms must be evaluated on a "
                              "raw Sample (not compensated or transformed)", path=sample.path)
        self.document = document
        self.sample = sample
        self._pnn = [str(p) for p in sample.channels["pnn"]]
        self._cache: dict[tuple, np.ndarray] = {}
        self._scales: dict[tuple, Any] = {}
        self._cache_setup: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._fcs_spill: tuple[tuple[str, ...], np.ndarray] | None | bool = False

    # -- raw channels -------------------------------------------------------------------------------
    def channel_index(self, name: str) -> int:
        if name in self._pnn and self._pnn.count(name) == 1:
            return self._pnn.index(name)
        folded = [p.strip().casefold() for p in self._pnn]
        key = name.strip().casefold()
        if folded.count(key) == 1:
            return folded.index(key)
        try:
            return self.sample.channel_index(name)
        except PanelError as exc:
            raise GatingError(f"gating document {self.document.source or ''} uses dimension {name!r}: {exc}",
                              path=self.sample.path) from None

    def raw(self, name: str) -> np.ndarray:
        key = ("raw", name)
        if key not in self._cache:
            self._cache[key] = np.asarray(self.sample.events[:, self.channel_index(name)], dtype=np.float64)
        return self._cache[key]

    # -- compensation ---------------------------------------------------------------------------------
    def _fcs_matrix(self) -> tuple[tuple[str, ...], np.ndarray] | None:
        if self._fcs_spill is False:
            self._fcs_spill = spillover_from_metadata(self.sample.metadata, path=self.sample.path)
        return self._fcs_spill  # type: ignore[return-value]

    def compensated(self, name: str, comp: str) -> np.ndarray:
        if comp == UNCOMPENSATED:
            return self.raw(name)
        key = ("comp", comp, name)
        if key in self._cache:
            return self._cache[key]
        if comp == FCS_COMPENSATION:
            spill = self._fcs_matrix()
            if spill is None or name not in spill[0]:
                return self.raw(name)  # no acquisition matrix, or a channel it does not cover
            channels, matrix = spill
            inverted, outputs = False, channels
        else:
            m = self.document.matrices[comp]
            if name not in m.fluorochromes:
                if name in m.detectors:
                    raise GatingError(f"dimension {name!r} is a detector of spectrum matrix {comp!r}; gates on "
                                      f"compensated data must name its fluorochromes {list(m.fluorochromes)}",
                                      path=self.document.source)
                return self.raw(name)
            channels, matrix, inverted, outputs = m.detectors, m.values, m.inverted, m.fluorochromes
        setup_key = ("comp-setup", comp)
        if setup_key not in self._cache_setup:
            try:
                C = compensation_matrix(matrix, inverted=inverted, n_detectors=len(channels), path=self.sample.path)
            except CompensationError as exc:
                raise CompensationError(f"compensation {comp!r}: {exc}", path=self.sample.path) from None
            X = np.column_stack([self.raw(c) for c in channels])
            self._cache_setup[setup_key] = (X, C)
        X, C = self._cache_setup[setup_key]
        # only the requested output column: one matrix-vector product instead of the full product
        self._cache[key] = X @ C[:, list(outputs).index(name)]
        return self._cache[key]

    # -- dimensions -----------------------------------------------------------------------------------
    def dimension(self, dim: DimensionSpec) -> np.ndarray:
        key = ("dim", dim)
        if key in self._cache:
            return self._cache[key]
        if dim.ratio:
            spec = self.document.transforms[dim.name]
            num, den = (self.compensated(n, dim.compensation) for n in spec.inputs)
            a, b, c = (spec.params[p] for p in ("A", "B", "C"))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = a * (num - b) / (den - c)
            values = _bound(ratio, spec)
        else:
            values = self.compensated(dim.name, dim.compensation)
        if dim.transform:
            spec = self.document.transforms[dim.transform]
            if spec.kind == "fratio":
                raise GatingError(f"fratio {spec.id!r} can only define a new dimension, not rescale one",
                                  path=self.document.source)
            key_t = ("scale", spec.id)
            if key_t not in self._scales:
                try:
                    self._scales[key_t] = scale_transform(spec)
                except TransformError as exc:
                    raise TransformError(str(exc), path=self.document.source) from None
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                values = _bound(np.asarray(self._scales[key_t].forward(values), dtype=np.float64), spec)
        self._cache[key] = values
        return values

    def coordinates(self, node: GateNode) -> np.ndarray:
        """``(n_events, n_dims)`` coordinates of the node's gate (float64)."""
        return np.column_stack([self.dimension(d) for d in node.dims])


def evaluate_document(document: GatingDocument, sample: Sample, *,
                      ids: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Boolean membership (over all events of ``sample``) of every gate, or of ``ids`` and their
    ancestors/operands. Memberships include the parent's (a gate's events are a subset of its parent's)."""
    wanted = None if ids is None else _closure(document, ids)
    resolver = DimensionResolver(document, sample)
    masks: dict[str, np.ndarray] = {}
    for node in document.nodes:
        if wanted is not None and node.id not in wanted:
            continue
        if isinstance(node.gate, BooleanGate):
            mask = node.gate.evaluate(masks)
        else:
            mask = node.gate.contains(resolver.coordinates(node))
        if node.complement:
            mask = ~mask
        if node.parent is not None:
            mask = mask & masks[node.parent]
        masks[node.id] = mask
    return masks


def _closure(document: GatingDocument, ids: Iterable[str]) -> set[str]:
    out: set[str] = set()
    stack = list(ids)
    while stack:
        nid = stack.pop()
        if nid in out:
            continue
        node = document.node(nid)
        out.add(nid)
        if node.parent:
            stack.append(node.parent)
        if isinstance(node.gate, BooleanGate):
            stack.extend(g for g, _ in node.gate.operands)
    return out


def population_counts(document: GatingDocument, masks: Mapping[str, np.ndarray], n_events: int) -> pd.DataFrame:
    """Tidy counts: ``id``, ``population`` (name), ``path`` ("/"-joined names), ``parent`` (id),
    ``count``, ``parent_count`` and ``pct_parent`` (percent, 0-100; the root's parent is all events)."""
    rows = []
    for node in document.nodes:
        if node.id not in masks:
            continue
        count = int(np.count_nonzero(masks[node.id]))
        parent_count = int(np.count_nonzero(masks[node.parent])) if node.parent else n_events
        rows.append({
            "id": node.id, S.POPULATION: node.name, "path": "/" + "/".join(document.path(node.id)),
            S.PARENT: node.parent or "", S.COUNT: count, S.PARENT_COUNT: parent_count,
            S.PCT_PARENT: 100.0 * count / parent_count if parent_count else float("nan"),
        })
    return pd.DataFrame(rows, columns=["id", S.POPULATION, "path", S.PARENT, S.COUNT, S.PARENT_COUNT, S.PCT_PARENT])
