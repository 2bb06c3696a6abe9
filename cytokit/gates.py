"""Concrete gates and their membership kernels.

Contract
--------
A concrete gate is what an automated method fits for one sample, or what is read from Gating-ML/FlowJo:
an ordinary Gating-ML 2.0 gate (rectangle/range, polygon, ellipsoid, quadrant, boolean). Gates are frozen
dataclasses; ``dims`` names the dimensions (markers or channel names) and ``contains(X)`` takes an array
``X`` of shape ``(n_events, len(dims))`` **in the gate's coordinate space** (the already compensated and
transformed scale the gate was drawn on) and returns a boolean mask. Mapping a Sample to those coordinates
is the caller's job (the gating engine, or the Gating-ML evaluator for files with their own transforms).

Gating-ML semantics (checked against the ISAC compliance suite): rectangle and quadrant bounds are
``min <= x < max`` (a missing bound compares with -inf/+inf, so +inf and NaN fall in no range); polygons use
the even-odd rule and include points on their edges; an ellipsoid holds points with Mahalanobis distance
squared ``<= distance_square``. Coordinates are whatever scale the gate was drawn on (linear or
transformed); the kernels never rescale.

``GATE_TYPES`` is the registry used by :func:`gate_from_dict` (round trip with ``Gate.to_dict``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from .errors import GatingError


def _as_2d(X: np.ndarray, n_dims: int, gate_id: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 1 and n_dims == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != n_dims:
        raise GatingError(f"gate {gate_id!r} expects {n_dims} dimension(s), got array of shape {X.shape}")
    return X


@dataclass(frozen=True)
class Gate:
    """Base class of concrete gates."""

    id: str
    dims: tuple[str, ...]
    kind: ClassVar[str] = "gate"
    #: ``contains`` costs a comparison or two per event and dimension (axis-aligned bounds): cheaper than
    #: gathering a parent's rows, so callers may evaluate it on every event and AND the parent's mask
    cheap_kernel: ClassVar[bool] = False

    def contains(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "id": self.id, "dims": list(self.dims)}


@dataclass(frozen=True)
class RectangleGate(Gate):
    """Axis-aligned box (or 1-D range): ``lower[i] <= x_i < upper[i]``; ``None`` means unbounded.

    An unbounded side compares against infinity with the same half-open rule, so ``-inf`` is inside
    ``[-inf, b)`` while ``+inf`` (e.g. a ratio with a zero denominator) and NaN are in no range; this
    is what the Gating-ML 2.0 compliance suite expects.
    """

    lower: tuple[float | None, ...] = ()
    upper: tuple[float | None, ...] = ()
    kind: ClassVar[str] = "rectangle"
    cheap_kernel: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if len(self.lower) != len(self.dims) or len(self.upper) != len(self.dims):
            raise GatingError(f"rectangle gate {self.id!r}: bounds do not match {len(self.dims)} dims")

    def contains(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, len(self.dims), self.id)
        mask = np.ones(X.shape[0], dtype=bool)
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            mask &= X[:, i] >= (-np.inf if lo is None else lo)
            mask &= X[:, i] < (np.inf if hi is None else hi)
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "lower": list(self.lower), "upper": list(self.upper)}


POLYGON_RULES = ("evenodd", "nonzero")


def _edge_crossings(points: np.ndarray, vertices: np.ndarray):
    """Yield, for each polygon edge, (crossing mask, edge goes downward) for a ray to +x from each point.

    The side test uses the cross product relative to the edge's lower end rather than an interpolated
    intercept, which loses precision for long edges (points on or next to an edge are then misjudged).
    """
    x = np.asarray(points[:, 0], dtype=np.float64)
    y = np.asarray(points[:, 1], dtype=np.float64)
    vx = np.asarray(vertices[:, 0], dtype=np.float64)
    vy = np.asarray(vertices[:, 1], dtype=np.float64)
    j = len(vx) - 1
    for i in range(len(vx)):
        xi, yi, xj, yj = vx[i], vy[i], vx[j], vy[j]
        if yi != yj:
            crosses = (yi > y) != (yj > y)
            (x0, y0, x1, y1) = (xj, yj, xi, yi) if yj < yi else (xi, yi, xj, yj)  # x0,y0 = lower end
            a, b = (x1 - x0) * (y - y0), (y1 - y0) * (x - x0)
            cross = a - b
            yield crosses & (cross > 0), bool(yj > yi)
        j = i


def _on_boundary(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Points lying on an edge of the polygon (to rounding error of the cross product)."""
    x = np.asarray(points[:, 0], dtype=np.float64)
    y = np.asarray(points[:, 1], dtype=np.float64)
    vx = np.asarray(vertices[:, 0], dtype=np.float64)
    vy = np.asarray(vertices[:, 1], dtype=np.float64)
    on = np.zeros(x.shape[0], dtype=bool)
    j = len(vx) - 1
    for i in range(len(vx)):
        x0, y0, x1, y1 = vx[j], vy[j], vx[i], vy[i]
        a, b = (x1 - x0) * (y - y0), (y1 - y0) * (x - x0)
        tol = 8 * np.finfo(np.float64).eps * (np.abs(a) + np.abs(b))
        on |= ((np.abs(a - b) <= tol) & (x >= min(x0, x1)) & (x <= max(x0, x1))
               & (y >= min(y0, y1)) & (y <= max(y0, y1)))
        j = i
    return on


def points_in_polygon(points: np.ndarray, vertices: np.ndarray, rule: str = "evenodd", *,
                      boundary: bool = True) -> np.ndarray:
    """Membership of ``points`` (n, 2) in the polygon ``vertices`` (k, 2).

    ``rule`` is ``"evenodd"`` (a point is inside when a ray from it crosses the boundary an odd number of
    times; the rule of the Gating-ML 2.0 compliance suite for non-simple polygons) or ``"nonzero"``
    (winding number different from zero). Both agree on simple polygons. With ``boundary`` (default)
    points on an edge are inside, as Gating-ML specifies. Vectorised over points: cost is
    O(n_points x n_vertices).
    """
    if rule not in POLYGON_RULES:
        raise GatingError(f"unknown polygon rule {rule!r}; expected one of {POLYGON_RULES}")
    vertices = np.asarray(vertices, dtype=np.float64)
    if rule == "evenodd":
        inside = np.zeros(points.shape[0], dtype=bool)
        for hit, _ in _edge_crossings(points, vertices):
            inside ^= hit
    else:
        winding = np.zeros(points.shape[0], dtype=np.int32)
        for hit, downward in _edge_crossings(points, vertices):
            winding += np.where(hit, -1 if downward else 1, 0).astype(np.int32)
        inside = winding != 0
    if boundary:
        inside |= _on_boundary(points, vertices)
    return inside


@dataclass(frozen=True)
class PolygonGate(Gate):
    """Polygon in two dimensions (even-odd rule); ``vertices`` is a tuple of (x, y) pairs."""

    vertices: tuple[tuple[float, float], ...] = ()
    kind: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        if len(self.dims) != 2 or len(self.vertices) < 3:
            raise GatingError(f"polygon gate {self.id!r} needs 2 dims and at least 3 vertices")
        if any(len(v) != 2 for v in self.vertices):
            raise GatingError(f"polygon gate {self.id!r}: every vertex needs 2 coordinates (x, y)")

    def contains(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, 2, self.id)
        return points_in_polygon(X, np.asarray(self.vertices, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "vertices": [list(v) for v in self.vertices]}


@dataclass(frozen=True)
class EllipsoidGate(Gate):
    """Points whose squared Mahalanobis distance from ``mean`` under ``covariance`` is <= ``distance_square``."""

    mean: tuple[float, ...] = ()
    covariance: tuple[tuple[float, ...], ...] = ()
    distance_square: float = 1.0
    kind: ClassVar[str] = "ellipsoid"

    def __post_init__(self) -> None:
        n = len(self.dims)
        if any(len(row) != n for row in self.covariance):
            raise GatingError(f"ellipsoid gate {self.id!r}: every covariance row needs {n} entries "
                              f"(rows have {[len(row) for row in self.covariance]})")
        cov = np.asarray(self.covariance, dtype=np.float64) if self.covariance else np.zeros((0, 0))
        if n < 1 or len(self.mean) != n or cov.shape != (n, n):
            raise GatingError(f"ellipsoid gate {self.id!r}: mean and covariance must match {n} dims "
                              f"(mean has {len(self.mean)}, covariance is {cov.shape})")
        if not np.all(np.isfinite(cov)) or abs(np.linalg.det(cov)) <= np.finfo(np.float64).tiny:
            raise GatingError(f"ellipsoid gate {self.id!r}: covariance matrix is singular")
        if not self.distance_square > 0:
            raise GatingError(f"ellipsoid gate {self.id!r}: distance_square must be positive")

    def contains(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, len(self.dims), self.id)
        inv = np.linalg.inv(np.asarray(self.covariance, dtype=np.float64))
        d = X.astype(np.float64) - np.asarray(self.mean, dtype=np.float64)
        return np.einsum("ij,jk,ik->i", d, inv, d) <= self.distance_square

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "mean": list(self.mean), "covariance": [list(r) for r in self.covariance],
                "distance_square": self.distance_square}


@dataclass(frozen=True)
class QuadrantGate(Gate):
    """One quadrant of a 2-D (or n-D) split at ``dividers``; ``signs[i]`` is +1 for ``x_i >= divider``, -1 below."""

    dividers: tuple[float, ...] = ()
    signs: tuple[int, ...] = ()
    kind: ClassVar[str] = "quadrant"
    cheap_kernel: ClassVar[bool] = True

    def __post_init__(self) -> None:
        n = len(self.dims)
        if n < 1 or len(self.dividers) != n or len(self.signs) != n:
            raise GatingError(f"quadrant gate {self.id!r}: needs one divider and one sign per dimension "
                              f"({n} dims, {len(self.dividers)} dividers, {len(self.signs)} signs)")

    def contains(self, X: np.ndarray) -> np.ndarray:
        X = _as_2d(X, len(self.dims), self.id)
        mask = np.ones(X.shape[0], dtype=bool)
        for i, (div, sign) in enumerate(zip(self.dividers, self.signs)):
            mask &= ((X[:, i] >= div) & (X[:, i] < np.inf)) if sign > 0 else (X[:, i] < div)
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "dividers": list(self.dividers), "signs": list(self.signs)}


@dataclass(frozen=True)
class BooleanGate(Gate):
    """``and``/``or``/``not`` of other gates' memberships; ``operands`` are (gate id, complement) pairs."""

    op: str = "and"
    operands: tuple[tuple[str, bool], ...] = ()
    kind: ClassVar[str] = "boolean"

    def contains(self, X: np.ndarray) -> np.ndarray:
        raise GatingError(f"boolean gate {self.id!r} is evaluated from other gates: use evaluate(masks)")

    def evaluate(self, masks: Mapping[str, np.ndarray]) -> np.ndarray:
        try:
            parts = [~masks[g] if comp else masks[g] for g, comp in self.operands]
        except KeyError as exc:
            raise GatingError(f"boolean gate {self.id!r} refers to unknown gate {exc.args[0]!r}") from None
        if self.op == "not":
            if len(parts) != 1:
                raise GatingError(f"boolean 'not' gate {self.id!r} needs exactly one operand")
            return ~parts[0]
        if not parts:
            raise GatingError(f"boolean gate {self.id!r} has no operands")
        if self.op == "and":
            return np.logical_and.reduce(parts)
        if self.op == "or":
            return np.logical_or.reduce(parts)
        raise GatingError(f"boolean gate {self.id!r}: unknown operator {self.op!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "op": self.op, "operands": [[g, c] for g, c in self.operands]}


GATE_TYPES: dict[str, type[Gate]] = {
    cls.kind: cls for cls in (RectangleGate, PolygonGate, EllipsoidGate, QuadrantGate, BooleanGate)
}


def gate_from_dict(d: Mapping[str, Any]) -> Gate:
    """Inverse of ``Gate.to_dict``."""
    d = dict(d)
    kind = d.pop("type", None)
    cls = GATE_TYPES.get(kind)
    if cls is None:
        raise GatingError(f"unknown gate type {kind!r}; known: {sorted(GATE_TYPES)}")
    d["dims"] = tuple(d.get("dims", ()))
    for key in ("lower", "upper", "mean", "dividers", "signs"):
        if key in d:
            d[key] = tuple(d[key])
    if "vertices" in d:
        d["vertices"] = tuple(tuple(v) for v in d["vertices"])
    if "covariance" in d:
        d["covariance"] = tuple(tuple(r) for r in d["covariance"])
    if "operands" in d:
        d["operands"] = tuple((g, bool(c)) for g, c in d["operands"])
    try:
        return cls(**d)
    except TypeError as exc:  # missing or unknown keys
        raise GatingError(f"{kind} gate {d.get('id')!r}: {exc}") from None
