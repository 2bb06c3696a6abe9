"""Gate methods that do not learn from the data: manual rectangle/polygon, imported gates, boolean.

These make a strategy able to mix automated and hand-drawn gates, and let gates imported from
Gating-ML or a FlowJo workspace run through the same engine (they are "fitted" by returning themselves).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ...errors import GatingError
from ...gates import BooleanGate, PolygonGate, RectangleGate, gate_from_dict
from .base import FitResult, MethodParams


class RectangleParams(MethodParams):
    """Fixed bounds per dimension on the gate's scale; ``null`` = unbounded."""

    lower: tuple[float | None, ...]
    upper: tuple[float | None, ...]

    @model_validator(mode="after")
    def _same_length(self) -> "RectangleParams":
        if len(self.lower) != len(self.upper):
            raise ValueError("lower and upper need one value per dimension")
        for lo, hi in zip(self.lower, self.upper):
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"lower bound {lo} is not below upper bound {hi}")
        return self


class PolygonParams(MethodParams):
    """Fixed polygon vertices ``[[x, y], ...]`` (at least 3) on the gate's scale."""

    vertices: tuple[tuple[float, float], ...] = Field(min_length=3)


class FixedGateParams(MethodParams):
    """A concrete gate as a dict (``Gate.to_dict()`` form), e.g. imported from Gating-ML or FlowJo."""

    gate: dict[str, Any]

    @field_validator("gate")
    @classmethod
    def _parse(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            gate_from_dict(v)
        except (GatingError, TypeError) as exc:
            raise ValueError(f"not a valid gate: {exc}") from None
        return v


class BooleanParams(MethodParams):
    """Combine other populations' memberships: ``op`` of ``operands`` (population names; prefix ``!``
    to take the complement)."""

    op: Literal["and", "or", "not"] = "and"
    operands: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _not_one(self) -> "BooleanParams":
        if self.op == "not" and len(self.operands) != 1:
            raise ValueError("'not' takes exactly one operand")
        return self


def fit_rectangle(X: np.ndarray, params: RectangleParams, *, dims: tuple[str, ...], gate_id: str) -> FitResult:
    if len(params.lower) != len(dims):
        raise ValueError(f"{len(params.lower)} bounds for {len(dims)} dimensions")
    return FitResult(RectangleGate(id=gate_id, dims=tuple(dims), lower=params.lower, upper=params.upper),
                     (), {"fixed": True})


def fit_polygon(X: np.ndarray, params: PolygonParams, *, dims: tuple[str, ...], gate_id: str) -> FitResult:
    return FitResult(PolygonGate(id=gate_id, dims=tuple(dims), vertices=params.vertices), (), {"fixed": True})


def fit_fixed(X: np.ndarray, params: FixedGateParams, *, dims: tuple[str, ...], gate_id: str) -> FitResult:
    d = dict(params.gate)
    d["id"] = gate_id
    d["dims"] = list(dims) if dims else d.get("dims", [])
    return FitResult(gate_from_dict(d), (), {"fixed": True, "source": params.gate.get("id")})


def fit_boolean(X: np.ndarray, params: BooleanParams, *, dims: tuple[str, ...], gate_id: str) -> FitResult:
    operands = tuple((o[1:].strip(), True) if o.startswith("!") else (o, False) for o in params.operands)
    return FitResult(BooleanGate(id=gate_id, dims=(), op=params.op, operands=operands), (), {"fixed": True})
