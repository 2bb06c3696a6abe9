"""Cohort-aware gating: compare each file's gate positions with its cohort and re-fit the outliers.

Contract
--------
A *cohort* is the files of one tube acquired with the same instrument settings (the caller groups them,
e.g. by ``tube`` and ``instrument``). Gate positions are read from the stored concrete gates
(:func:`gate_positions`): every finite threshold of a threshold-type gate (1-D range bounds, quadrant
dividers, the component ranges of an and/or phenotype), on the gate's transformed scale (logicle 0..1).

:func:`cohort_outliers` compares each position with the cohort of the same population, dimension and side:
centre = median, spread = 1.4826 × MAD (at least ``min_spread``); a position is an outlier when it lies more
than ``k`` spreads **and** more than ``min_shift`` from the median, in a cohort of at least ``min_samples``
files. The range the cohort supports is ``median ± k × spread``.

:func:`refit_within` re-fits an outlying population (and everything below it) on the file's prepared
events with the threshold search restricted to that range (:class:`~cytokit.gating.methods.density.
ThresholdParams` ``bounds``: valleys outside are rejected, the result is clipped), through
:meth:`Strategy.set_params` / :meth:`Strategy.refit`, so the original strategy and result are unchanged and
both fits are kept. Only threshold-type methods (:data:`REFIT_METHODS`) are re-fitted; other gates are
flagged only. Positions and ranges are on the transformed scale; nothing here reads or writes files.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..gates import BooleanGate, Gate, QuadrantGate, RectangleGate, gate_from_dict
from ..results import schema as S
from .result import GatingResult
from .strategy import Strategy

#: methods whose thresholds can be re-fitted within a range (ThresholdParams ``bounds``)
REFIT_METHODS: tuple[str, ...] = ("threshold", "quadrant", "phenotype")
#: flag added to a re-fitted population (and its method becomes ``<method>+cohort``)
OUTLIER_FLAG = "cohort_outlier"
POSITION_COLUMNS = (S.SAMPLE_ID, S.POPULATION, "dim", "side", "position")


def _positions(gate: Gate, components: Iterable[Gate]) -> list[tuple[str, str, float]]:
    out: list[tuple[str, str, float]] = []
    if isinstance(gate, QuadrantGate):
        out += [(d, "divider", float(v)) for d, v in zip(gate.dims, gate.dividers)]
    elif isinstance(gate, RectangleGate):
        for d, lo, hi in zip(gate.dims, gate.lower, gate.upper):
            if lo is not None and np.isfinite(lo):
                out.append((d, "lower", float(lo)))
            if hi is not None and np.isfinite(hi):
                out.append((d, "upper", float(hi)))
    elif isinstance(gate, BooleanGate):
        for comp in components:
            out += _positions(comp, ())
    return out


def gate_positions(records: Mapping[str, Iterable[Mapping[str, Any]]],
                   methods: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per sample × population × dimension × side (``lower``/``upper``/``divider``) with the
    stored gate's ``position`` (transformed scale). ``records``: sample id -> stored gate records
    (``population``, ``gate``, ``components``); ``methods``: population -> method (only
    :data:`REFIT_METHODS` populations are kept when given)."""
    rows = []
    for sid, recs in records.items():
        for rec in recs:
            pop = str(rec[S.POPULATION])
            if methods is not None and methods.get(pop) not in REFIT_METHODS:
                continue
            gate = gate_from_dict(dict(rec["gate"]))
            comps = [gate_from_dict(dict(c)) for c in rec.get("components", [])]
            for dim, side, value in _positions(gate, comps):
                rows.append((sid, pop, dim, side, value))
    return pd.DataFrame(rows, columns=list(POSITION_COLUMNS))


def cohort_outliers(positions: pd.DataFrame, *, k: float = 4.0, min_shift: float = 0.05,
                    min_spread: float = 0.02, min_samples: int = 5,
                    group_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """``positions`` with the cohort's ``median``, ``spread``, ``range_low``/``range_high``, ``n_cohort``
    and ``outlier`` (bool) per row (see module contract); cohorts are ``group_columns`` + population +
    dim + side."""
    keys = [*group_columns, S.POPULATION, "dim", "side"]
    out = positions.copy()
    if out.empty:
        for col in ("median", "spread", "range_low", "range_high", "n_cohort"):
            out[col] = pd.Series(dtype=float)
        out["outlier"] = pd.Series(dtype=bool)
        return out
    grouped = out.groupby(keys, sort=False)["position"]
    out["median"] = grouped.transform("median")
    mad = (out["position"] - out["median"]).abs().groupby([out[k_] for k_ in keys], sort=False).transform("median")
    out["spread"] = np.maximum(1.4826 * mad, min_spread)
    out["n_cohort"] = grouped.transform("size").astype(int)
    out["range_low"] = out["median"] - k * out["spread"]
    out["range_high"] = out["median"] + k * out["spread"]
    shift = (out["position"] - out["median"]).abs()
    out["outlier"] = (out["n_cohort"] >= min_samples) & (shift > k * out["spread"]) & (shift > min_shift)
    return out


def _within(thr: dict[str, Any], low: float, high: float) -> dict[str, Any]:
    """``thr`` with ``bounds`` = the cohort range, inside the strategy's own plausible bounds when they overlap."""
    old = thr.get("bounds")
    if old is not None and max(low, float(old[0])) < min(high, float(old[1])):
        low, high = max(low, float(old[0])), min(high, float(old[1]))
    return {**thr, "bounds": [float(low), float(high)]}


def _bounded_params(method: str, params: Mapping[str, Any], dims: tuple[str, ...],
                    ranges: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """The population's parameters with each outlying dimension's threshold ``bounds`` set to its range."""
    new = dict(params)
    if method == "threshold":
        new["threshold"] = _within(dict(new.get("threshold") or {}), *ranges[dims[0]])
        return new
    given = list(new.get("thresholds") or [{}])
    per_dim = [dict(given[0] if len(given) == 1 else given[i]) for i in range(len(dims))]
    for i, d in enumerate(dims):
        if d in ranges:
            per_dim[i] = _within(per_dim[i], *ranges[d])
    new["thresholds"] = per_dim
    return new


def refit_within(strategy: Strategy, result: GatingResult, population: str,
                 ranges: Mapping[str, tuple[float, float]]) -> tuple[Strategy, GatingResult]:
    """Re-fit ``population`` (and its descendants) on ``result``'s events with its thresholds on the
    dimensions in ``ranges`` (dim -> (low, high), transformed scale) restricted to those ranges. Returns
    the strategy that made the re-fit and the new result; ``strategy`` and ``result`` are unchanged."""
    spec = strategy.population(population)
    params = _bounded_params(spec.method, spec.params, tuple(spec.dims), ranges)
    tuned = strategy.set_params(population, replace=True, **params)
    return tuned, tuned.refit(result, population)
