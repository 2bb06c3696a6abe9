"""Threshold-based gate methods: 1-D threshold, quadrant and multi-marker phenotype.

Each dimension's threshold is fitted with :func:`cytokit.gating.methods.density.fit_threshold` on the
parent's events (transformed scale); signs say which side is kept (``+`` = at or above the threshold,
``-`` = below). The concrete gates are Gating-ML gates: a 1-D range (:class:`RectangleGate`), a
:class:`QuadrantGate`, or, when some markers are combined with OR ("CD56+ and/or CD16+"), a
:class:`BooleanGate` over those.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ...gates import BooleanGate, Gate, QuadrantGate, RectangleGate
from .base import FitResult, MethodParams, finite_rows
from .confidence import (UNCERTAIN_PP, ThresholdUncertainty, estimated_error, negative_model_estimate,
                         tail_estimate, threshold_sensitivity)
from .density import ThresholdParams, fit_threshold
from .edge import record_edge
from .shared_fits import fit_threshold_shared

Sign = Literal["+", "-"]


class ThresholdGateParams(MethodParams):
    """One marker above (``+``) or below (``-``) a fitted threshold."""

    sign: Sign = "+"
    threshold: ThresholdParams = Field(default_factory=ThresholdParams)


class PhenotypeParams(MethodParams):
    """Several markers, each ``+`` or ``-`` of its own fitted threshold.

    ``thresholds`` holds one :class:`ThresholdParams` for every dimension (or a single one used for all).
    Dimensions named in ``any_of`` are combined with OR (e.g. NK cells: CD56+ and/or CD16+), the others
    with AND.
    """

    signs: tuple[Sign, ...]
    thresholds: tuple[ThresholdParams, ...] = (ThresholdParams(),)
    any_of: tuple[str, ...] = ()

    @field_validator("signs")
    @classmethod
    def _signs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one sign is needed")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> "PhenotypeParams":
        if len(self.thresholds) not in (1, len(self.signs)):
            raise ValueError(f"thresholds: give 1 or {len(self.signs)} entries (one per dimension)")
        return self

    def threshold_for(self, i: int) -> ThresholdParams:
        return self.thresholds[0] if len(self.thresholds) == 1 else self.thresholds[i]


class QuadrantParams(PhenotypeParams):
    """Two markers, one quadrant: ``signs`` like ``["+", "-"]`` (CD4+ CD8-)."""

    @field_validator("signs")
    @classmethod
    def _two(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) != 2:
            raise ValueError("a quadrant needs exactly two signs")
        return v


def _ref_column(reference: np.ndarray | None, i: int) -> np.ndarray | None:
    """Dimension ``i`` of a negative-reference population's events (None when there is none)."""
    return None if reference is None else np.asarray(reference, dtype=np.float64)[:, i]


def _fit_all(X: np.ndarray, dims: tuple[str, ...], params: PhenotypeParams,
             reference: np.ndarray | None = None) -> tuple[list[float], list[str], dict]:
    X = finite_rows(X)
    values: list[float] = []
    flags: list[str] = []
    info: dict[str, Any] = {}
    for i, dim in enumerate(dims):
        t = fit_threshold_shared(X[:, i], params.threshold_for(i), reference=_ref_column(reference, i))
        values.append(t.value)
        flags.extend(f"{dim}:{f}" for f in t.flags)
        info[dim] = t.info
    return values, flags, info


def fit_threshold_gate(X: np.ndarray, params: ThresholdGateParams, *, dims: tuple[str, ...],
                       gate_id: str, reference: np.ndarray | None = None) -> FitResult:
    """``x >= t`` (sign ``+``) or ``x < t`` (sign ``-``) on one dimension, ``t`` fitted from ``X``
    (``reference``: a negative-reference population's events, see :func:`fit_threshold`)."""
    X = finite_rows(X)
    t = fit_threshold_shared(X[:, 0], params.threshold, reference=_ref_column(reference, 0))
    lower, upper = ((t.value,), (None,)) if params.sign == "+" else ((None,), (t.value,))
    gate = RectangleGate(id=gate_id, dims=tuple(dims), lower=lower, upper=upper)
    info = {"threshold": t.value, "sign": params.sign, dims[0]: t.info}
    flags = _with_sensitivity(X, [t.value], lambda Z, v: _signed_and(Z, v, (params.sign,)), list(t.flags), info,
                              [t.info], reference, tail_sds=[params.threshold.tail_sd])
    return FitResult(gate, flags, info)


def _signed_and(X: np.ndarray, values, signs) -> np.ndarray:
    m = np.ones(X.shape[0], dtype=bool)
    for j, (v, s) in enumerate(zip(values, signs)):
        m &= (X[:, j] >= v) if s == "+" else (X[:, j] < v)
    return m


def _with_sensitivity(X: np.ndarray, values, member, flags: list[str], info: dict, fits: list,
                      reference: np.ndarray | None = None, columns: list[int] | None = None,
                      tail_sds: list[float | None] | None = None) -> tuple[str, ...]:
    """Record the gate's estimated error and threshold sensitivity (pp) in ``info`` (``fits``: each
    threshold's fit info, or None; ``reference``: the negative reference's events in the same dims, for the
    negative model's second estimate; ``columns``: each threshold's dimension, default one per dimension;
    ``tail_sds``: each threshold's ``tail_sd``, for the tail rule as the second estimate of a count);
    flag ``uncertain`` when the estimated error exceeds the limit; the error relative to the population
    (``edge_share``, ``est_error_rel``, note ``cut_through``: :mod:`.edge`)."""
    info["sensitivity_pp"] = round(threshold_sensitivity(X, values, member), 3)
    unc = [ThresholdUncertainty.from_fit(v, f) for v, f in zip(values, fits)]
    cols = columns if columns is not None else list(range(len(values)))
    tails = tail_sds if tail_sds is not None else [None] * len(values)
    unc = [dataclasses.replace(u, second=negative_model_estimate(X[:, c], _ref_column(reference, c), v, f, column=c)
                               or tail_estimate(X[:, c], v, f, k, column=c))
           for u, v, f, c, k in zip(unc, values, fits, cols, tails)]
    parts: dict[str, float] = {}
    est = estimated_error(X, unc, member, parts=parts)
    info["est_error_pp"] = round(est, 3) if np.isfinite(est) else None
    info["est_error_parts"] = parts
    if est > UNCERTAIN_PP:
        flags.append("uncertain")
    if parts.get("set_aside"):
        flags.append("count_misfit")  # a note: the negative model's count disagreed too far to weigh
    record_edge(X, values, member, cols, unc, info, flags)
    return tuple(dict.fromkeys(flags))


def fit_phenotype(X: np.ndarray, params: PhenotypeParams, *, dims: tuple[str, ...], gate_id: str,
                  reference: np.ndarray | None = None) -> FitResult:
    """AND of per-marker signs, with the ``any_of`` markers OR-ed (see :class:`PhenotypeParams`);
    ``reference``: a negative-reference population's events in the same dims."""
    dims = tuple(dims)
    if len(params.signs) != len(dims):
        raise ValueError(f"{len(params.signs)} signs for {len(dims)} dimensions {list(dims)}")
    unknown = set(params.any_of) - set(dims)
    if unknown:
        raise ValueError(f"any_of names {sorted(unknown)} that are not among the dims {list(dims)}")
    X = finite_rows(X)
    values, flags, info = _fit_all(X, dims, params, reference)
    info["thresholds"] = dict(zip(dims, values))
    sign_num = [1 if s == "+" else -1 for s in params.signs]
    gate: Gate
    any_mask = np.array([d in params.any_of for d in dims])

    def member(Z: np.ndarray, v) -> np.ndarray:
        m = _signed_and(Z[:, ~any_mask], [x for x, a in zip(v, any_mask) if not a],
                        [s for s, a in zip(params.signs, any_mask) if not a])
        if any_mask.any():
            anyv = np.zeros(Z.shape[0], dtype=bool)
            for j in np.flatnonzero(any_mask):
                anyv |= _signed_and(Z[:, [j]], [v[j]], [params.signs[j]])
            m &= anyv
        return m

    flags = list(_with_sensitivity(X, values, member, flags, info, [info[d] for d in dims], reference,
                                   tail_sds=[params.threshold_for(i).tail_sd for i in range(len(dims))]))
    if not params.any_of:
        gate = QuadrantGate(id=gate_id, dims=dims, dividers=tuple(values), signs=tuple(sign_num))
        return FitResult(gate, tuple(dict.fromkeys(flags)), info)
    all_idx = [i for i, d in enumerate(dims) if d not in params.any_of]
    any_idx = [i for i, d in enumerate(dims) if d in params.any_of]
    # OR of positives == NOT (all of them on the other side)
    none_gate = QuadrantGate(id=f"{gate_id} [none of {'/'.join(dims[i] for i in any_idx)}]",
                             dims=tuple(dims[i] for i in any_idx),
                             dividers=tuple(values[i] for i in any_idx),
                             signs=tuple(-sign_num[i] for i in any_idx))
    components = [none_gate]
    operands = [(none_gate.id, True)]
    if all_idx:
        all_gate = QuadrantGate(id=f"{gate_id} [{' '.join(dims[i] + params.signs[i] for i in all_idx)}]",
                                dims=tuple(dims[i] for i in all_idx),
                                dividers=tuple(values[i] for i in all_idx),
                                signs=tuple(sign_num[i] for i in all_idx))
        components.insert(0, all_gate)
        operands.insert(0, (all_gate.id, False))
        gate = BooleanGate(id=gate_id, dims=dims, op="and", operands=tuple(operands))
    else:  # only OR-ed markers: "not none of them" (Gating-ML's 'and' needs two operands)
        gate = BooleanGate(id=gate_id, dims=dims, op="not", operands=((none_gate.id, False),))
    return FitResult(gate, tuple(dict.fromkeys(flags)), info, components=tuple(components))


class IntervalParams(MethodParams):
    """One marker between two fitted thresholds: ``lower <= x < upper`` (e.g. CD56dim: above the
    negative valley, below the bright valley). Either side may be ``null`` (open)."""

    lower: ThresholdParams | None = None
    upper: ThresholdParams | None = None

    @model_validator(mode="after")
    def _one_side(self) -> "IntervalParams":
        if self.lower is None and self.upper is None:
            raise ValueError("give 'lower', 'upper' or both")
        return self


def fit_interval(X: np.ndarray, params: IntervalParams, *, dims: tuple[str, ...], gate_id: str,
                 reference: np.ndarray | None = None) -> FitResult:
    """A 1-D range whose bounds are fitted thresholds; flagged ``inverted`` if lower >= upper.
    ``reference``: a negative-reference population's events (both bounds use it)."""
    X = finite_rows(X)
    flags: list[str] = []
    info: dict = {}
    lo = hi = None
    if params.lower is not None:
        t = fit_threshold(X[:, 0], params.lower, reference=_ref_column(reference, 0))
        lo, info["lower"] = t.value, t.info
        flags.extend(f"lower:{f}" for f in t.flags)
    if params.upper is not None:
        t = fit_threshold(X[:, 0], params.upper, reference=_ref_column(reference, 0))
        hi, info["upper"] = t.value, t.info
        flags.extend(f"upper:{f}" for f in t.flags)
    if lo is not None and hi is not None and lo >= hi:
        flags.append("inverted")
        hi = lo + 1e-9

    def member(Z: np.ndarray, v) -> np.ndarray:
        m = np.ones(Z.shape[0], dtype=bool)
        if v[0] is not None:
            m &= Z[:, 0] >= v[0]
        if v[1] is not None:
            m &= Z[:, 0] < v[1]
        return m

    gate = RectangleGate(id=gate_id, dims=tuple(dims), lower=(lo,), upper=(hi,))
    return FitResult(gate, _with_sensitivity(X, [lo, hi], member, flags, info,
                                             [info.get("lower"), info.get("upper")], reference, [0, 0],
                                             [None if t is None else t.tail_sd for t in (params.lower, params.upper)]),
                     info)
