"""The neutral gate hierarchy shared by Gating-ML, FlowJo and the gating engine.

Contract
--------
A :class:`GatingDocument` is an ordered tuple of :class:`GateNode` (parents and gates referenced by
boolean gates always come before the gates that use them) plus the transformations and spectrum
(compensation) matrices the gates' dimensions refer to. Each node holds one concrete gate from
:mod:`cytokit.gates` in **its own coordinates**, and one :class:`DimensionSpec` per gate dimension saying
how to compute those coordinates from a raw Sample: which $PnN channel (or ratio "new dimension"), which
compensation (``"uncompensated"``, ``"FCS"`` = the file's $SPILLOVER, or the id of a spectrum matrix in the
document) and which transformation (``None`` = linear values as read from the file, $PnG applied).

Node ids are unique within a document; ``name`` is the population's display name (equal to the id for
Gating-ML files; FlowJo names may repeat under different parents). ``parent`` is a node id or ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import GatingError
from ..gates import BooleanGate, Gate

UNCOMPENSATED = "uncompensated"
FCS_COMPENSATION = "FCS"

#: Gating-ML 2.0 transformation kinds and their parameter names (values are floats).
TRANSFORM_PARAMS: dict[str, tuple[str, ...]] = {
    "flin": ("T", "A"),
    "flog": ("T", "M"),
    "fasinh": ("T", "M", "A"),
    "logicle": ("T", "W", "M", "A"),
    "hyperlog": ("T", "W", "M", "A"),
    "fratio": ("A", "B", "C"),
}


@dataclass(frozen=True)
class DimensionSpec:
    """How one gate dimension is computed from a raw (uncompensated, linear) Sample.

    ``name`` is a $PnN (or, with a spectrum matrix, a fluorochrome name of that matrix); when ``ratio`` is
    true it is the id of an ``fratio`` transformation defining a new dimension instead.
    ``compensation`` is ``"uncompensated"``, ``"FCS"`` or a spectrum-matrix id; ``transform`` is the id of
    a scale transformation applied last (``None`` = linear scale).
    """

    name: str
    compensation: str = UNCOMPENSATED
    transform: str | None = None
    ratio: bool = False

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class TransformSpec:
    """A Gating-ML transformation: ``kind`` (flin, flog, fasinh, logicle, hyperlog, fratio), its
    parameters, optional output bounds (values are clipped to ``[bound_min, bound_max]``) and, for
    ``fratio``, the two input $PnN names (numerator, denominator). Parameters are numbers or tuples of
    numbers (a lookup table's ``values``); :mod:`cytokit.scales` turns a scale kind into its function."""

    id: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    bound_min: float | None = None
    bound_max: float | None = None
    inputs: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformSpec) and (
            self.id, self.kind, dict(self.params), self.bound_min, self.bound_max, self.inputs
        ) == (other.id, other.kind, dict(other.params), other.bound_min, other.bound_max, other.inputs)

    def __hash__(self) -> int:
        return hash((self.id, self.kind))


@dataclass(frozen=True, eq=False)
class SpectrumMatrixSpec:
    """A compensation (spectrum) matrix.

    ``values`` has one row per fluorochrome and one column per detector (spillover convention: row =
    source, column = detector), so compensated fluorochrome values are ``detectors @ pinv(values)``.
    When ``inverted`` is true the matrix is already the compensation matrix, one row per detector and one
    column per fluorochrome (``detectors @ values``). Non-square matrices (unmixing) are allowed.
    """

    id: str
    fluorochromes: tuple[str, ...]
    detectors: tuple[str, ...]
    values: np.ndarray
    inverted: bool = False

    def __post_init__(self) -> None:
        shape = (len(self.detectors), len(self.fluorochromes)) if self.inverted else (
            len(self.fluorochromes), len(self.detectors))
        if np.shape(self.values) != shape:
            raise GatingError(
                f"spectrum matrix {self.id!r}: expected {shape[0]}x{shape[1]} coefficients, "
                f"got {np.shape(self.values)}")

    def compensation_matrix(self) -> np.ndarray:
        """Matrix ``C`` (n_detectors x n_fluorochromes) with compensated = detectors @ C."""
        values = np.asarray(self.values, dtype=np.float64)
        if self.inverted:
            return values
        try:
            return np.linalg.pinv(values)
        except np.linalg.LinAlgError as exc:
            raise GatingError(f"spectrum matrix {self.id!r} cannot be inverted: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpectrumMatrixSpec) and (
            self.id, self.fluorochromes, self.detectors, self.inverted) == (
            other.id, other.fluorochromes, other.detectors, other.inverted) and np.allclose(
            self.values, other.values)

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(frozen=True)
class GateNode:
    """One population: its ``name``, ``parent`` node id, concrete ``gate`` (``gate.id`` is the node id)
    and one :class:`DimensionSpec` per gate dimension (empty for boolean gates). With ``complement`` the
    population is the parent's events *outside* the gate (FlowJo's ``eventsInside="0"``)."""

    name: str
    parent: str | None
    gate: Gate
    dims: tuple[DimensionSpec, ...] = ()
    complement: bool = False

    @property
    def id(self) -> str:
        return self.gate.id

    def __post_init__(self) -> None:
        if not isinstance(self.gate, BooleanGate) and len(self.dims) != len(self.gate.dims):
            raise GatingError(
                f"gate {self.gate.id!r}: {len(self.dims)} dimension specs for {len(self.gate.dims)} dims")


@dataclass(frozen=True)
class GatingDocument:
    """An ordered gate hierarchy with the transformations and matrices its dimensions refer to."""

    nodes: tuple[GateNode, ...]
    transforms: Mapping[str, TransformSpec] = field(default_factory=dict)
    matrices: Mapping[str, SpectrumMatrixSpec] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        ordered = order_nodes(self.nodes, source=self.source)
        object.__setattr__(self, "nodes", ordered)
        for node in ordered:
            for dim in node.dims:
                self._check_dim(node, dim)

    def _check_dim(self, node: GateNode, dim: DimensionSpec) -> None:
        where = f"gate {node.id!r}"
        if dim.compensation not in (UNCOMPENSATED, FCS_COMPENSATION) and dim.compensation not in self.matrices:
            raise GatingError(f"{where} refers to unknown compensation {dim.compensation!r}", path=self.source)
        for ref in ([dim.transform] if dim.transform else []) + ([dim.name] if dim.ratio else []):
            if ref not in self.transforms:
                raise GatingError(f"{where} refers to unknown transformation {ref!r}", path=self.source)
        if dim.ratio and self.transforms[dim.name].kind != "fratio":
            raise GatingError(f"{where}: new dimension {dim.name!r} is not an fratio transformation",
                              path=self.source)

    # -- navigation ---------------------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def node(self, node_id: str) -> GateNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise GatingError(f"no gate with id {node_id!r}; gates are: {', '.join(self.ids)}", path=self.source)

    def children(self, node_id: str | None) -> list[GateNode]:
        return [n for n in self.nodes if n.parent == node_id]

    def path(self, node_id: str) -> tuple[str, ...]:
        """Names from the root down to ``node_id`` (e.g. ``("Lymphocytes", "Singlets")``)."""
        out: list[str] = []
        current: str | None = node_id
        while current is not None:
            n = self.node(current)
            out.append(n.name)
            current = n.parent
        return tuple(reversed(out))

    def __iter__(self) -> Iterator[GateNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


def order_nodes(nodes: tuple[GateNode, ...] | list[GateNode], *, source: str | None = None) -> tuple[GateNode, ...]:
    """Order nodes so that parents and boolean operands come first (stable otherwise).

    Raises :class:`GatingError` for duplicate ids, unknown references and cycles.
    """
    by_id: dict[str, GateNode] = {}
    for n in nodes:
        if n.id in by_id:
            raise GatingError(f"duplicate gate id {n.id!r}", path=source)
        by_id[n.id] = n

    def deps(n: GateNode) -> list[str]:
        out = [n.parent] if n.parent is not None else []
        if isinstance(n.gate, BooleanGate):
            out += [g for g, _ in n.gate.operands]
        for d in out:
            if d not in by_id:
                raise GatingError(f"gate {n.id!r} refers to unknown gate {d!r}", path=source)
        return out

    ordered: list[GateNode] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(n: GateNode, chain: tuple[str, ...]) -> None:
        s = state.get(n.id)
        if s == 2:
            return
        if s == 1:
            raise GatingError(f"gate references form a cycle: {' -> '.join(chain + (n.id,))}", path=source)
        state[n.id] = 1
        for d in deps(n):
            visit(by_id[d], chain + (n.id,))
        state[n.id] = 2
        ordered.append(n)

    for n in nodes:
        visit(n, ())
    return tuple(ordered)
