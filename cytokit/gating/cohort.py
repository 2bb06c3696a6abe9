"""Cohort-aware gating: compare each file's gate positions with its cohort and re-fit the outliers.

Contract
--------
A *cohort* is the files of one tube acquired with the same instrument settings (the caller groups them,
e.g. by ``tube`` and ``instrument``). Gate positions are read from the stored concrete gates
(:func:`gate_positions`): every finite threshold of a threshold-type gate (1-D range bounds, quadrant
dividers, the component ranges of an and/or phenotype), on the gate's transformed scale (logicle 0..1),
with the file's own *landmarks* on that dimension when the stored record has them (:func:`fit_landmarks`:
the lowest mode of the parent's density and the SD of its lower half, recorded by the threshold fit).

:func:`cohort_outliers` compares each position with the cohort of the same population, dimension and side
twice: on the common scale (*absolute*) and in a *frame* relative to the file's own landmarks
(:data:`FRAMES`): ``sd`` = ``(position - low_mode) / low_sd``, the distance from the file's own lowest
(negative) mode in units of that mode's spread; ``modes`` = ``(position - low_mode) / (high_mode -
low_mode)``, where the gate lies between the file's lowest and highest mode, for a cohort most of whose
files have two modes at least :data:`MIN_MODE_GAP` apart (a valley between negatives and positives), else ``sd``
(a lone negative mode and a tail) -- in a cohort where most files have two modes, a file with one (e.g. an
all-positive file whose only mode is its positives) has no comparable landmarks and is judged on the common
scale alone (``frame`` ``absolute``); ``offset`` = ``position - low_mode``; ``absolute`` = the position itself
(also used for a cohort in which any file lacks landmarks). In each: centre = median,
spread = 1.4826 × MAD (at least ``min_spread``, frame units); a position is outlying when it lies more than
``k`` spreads from the median **and**, on the file's own scale, more than ``min_shift`` (transformed scale)
from where the cohort's median puts it, in a cohort of at least ``min_samples`` files. A gate is a cohort
**outlier** when it is outlying in both: atypical on the common scale *and* for its own data. A gate that is
outlying on the common scale only is **shifted**: the file's distribution moved (detector gain, staining,
spillover spreading) and the gate moved with it -- a correct gate of an atypical file, recorded but not
re-fitted. (Relative positions alone are noisier than absolute ones -- a file's lowest mode and its spread
are themselves estimates -- so a gate outlying relative to its landmarks only is not flagged.) The range
the cohort supports, ``median ± k × spread`` in the frame, is mapped back into each file's own coordinates
(``range_low`` / ``range_high``, transformed scale): for ``sd``, ``low_mode + (median ± k × spread) ×
low_sd``.

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
LANDMARK_COLUMNS = ("low_mode", "low_sd", "high_mode")
POSITION_COLUMNS = (S.SAMPLE_ID, S.POPULATION, "dim", "side", "position", *LANDMARK_COLUMNS)
#: frames positions are compared in (see module contract); ``sd`` is the default
FRAMES: tuple[str, ...] = ("modes", "sd", "offset", "absolute")
#: smallest cohort spread per frame (frame units: SDs of the negative mode for ``sd``, the distance between
#: the lowest and highest mode for ``modes``, transformed scale else)
MIN_SPREAD: dict[str, float] = {"modes": 0.05, "sd": 0.25, "offset": 0.02, "absolute": 0.02}
#: ``modes`` frame: a cohort's files are compared between their lowest and highest mode when most files have
#: two modes at least this far apart (transformed scale); otherwise in SDs of the lowest mode (``sd``)
MIN_MODE_GAP = 0.1


def fit_landmarks(info: Mapping[str, Any], dims: Iterable[str]) -> dict[str, dict[str, float]]:
    """Dimension -> the threshold fit's landmarks (``low_mode``, ``low_sd``, ``high_mode``, transformed
    scale; :func:`cytokit.gating.methods.density.landmarks`) from a population's fit ``info`` (threshold,
    quadrant and phenotype fits keep each dimension's threshold info under the dimension's name); dimensions
    without them are left out."""
    out: dict[str, dict[str, float]] = {}
    for dim in dims:
        sub = info.get(dim) if isinstance(info, Mapping) else None
        marks = sub.get("landmarks") if isinstance(sub, Mapping) else None
        if isinstance(marks, Mapping) and all(k in marks for k in LANDMARK_COLUMNS):
            out[str(dim)] = {k: float(marks[k]) for k in LANDMARK_COLUMNS}
    return out


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
    stored gate's ``position`` and the file's landmarks on that dimension (``low_mode``, ``low_sd``,
    ``high_mode``; NaN when the record has none), transformed scale. ``records``: sample id -> stored gate
    records (``population``, ``gate``, ``components``, optional ``landmarks``); ``methods``: population ->
    method (only :data:`REFIT_METHODS` populations are kept when given)."""
    rows = []
    for sid, recs in records.items():
        for rec in recs:
            pop = str(rec[S.POPULATION])
            if methods is not None and methods.get(pop) not in REFIT_METHODS:
                continue
            gate = gate_from_dict(dict(rec["gate"]))
            comps = [gate_from_dict(dict(c)) for c in rec.get("components", [])]
            marks = rec.get("landmarks") or {}
            for dim, side, value in _positions(gate, comps):
                m = marks.get(dim) or {}
                rows.append((sid, pop, dim, side, value, *(float(m.get(k, np.nan)) for k in LANDMARK_COLUMNS)))
    return pd.DataFrame(rows, columns=list(POSITION_COLUMNS))


def _frame_stats(out: pd.DataFrame, by: list[pd.Series], origin: Any, unit: Any, floor: Any, k: float,
                 min_shift: float, min_samples: int) -> dict[str, Any]:
    """Median / robust spread of ``(position - origin) / unit`` per cohort, mapped back to the file's scale,
    and whether each position is an outlier in that frame."""
    rel = (out["position"] - origin) / unit  # NaN where a file's landmarks are not comparable: left out
    grouped = rel.groupby(by, sort=False)
    med = grouped.transform("median")
    spread = np.maximum(1.4826 * (rel - med).abs().groupby(by, sort=False).transform("median"), floor)
    n = rel.notna().groupby(by, sort=False).transform("sum").astype(int)
    centre = origin + med * unit
    far = (rel - med).abs() > k * spread
    return {"rel": rel, "med": med, "spread": spread, "n": n, "centre": centre,
            "low": origin + (med - k * spread) * unit, "high": origin + (med + k * spread) * unit,
            "outlier": (n >= min_samples) & far & ((out["position"] - centre).abs() > min_shift)}


def cohort_outliers(positions: pd.DataFrame, *, k: float = 4.0, min_shift: float = 0.05,
                    min_spread: float | None = None, min_samples: int = 5,
                    group_columns: tuple[str, ...] = (), frame: str = "modes") -> pd.DataFrame:
    """``positions`` with the cohort comparison per row (see module contract); cohorts are
    ``group_columns`` + population + dim + side. Columns added: ``outlier_absolute`` (the position, on the
    common scale, is an outlier), ``outlier_relative`` (it is one in ``frame``, relative to the file's own
    landmarks), ``outlier`` (both: the gate is atypical for the cohort *and* for its own data; in the
    ``absolute`` frame, ``outlier_absolute``), ``shifted`` (an absolute outlier that lies where the cohort
    puts it relative to the file's own landmarks: the data moved and the gate followed them); ``median``,
    ``spread``, ``range_low``/``range_high`` (the cohort's centre, robust spread and supported range
    ``median ± k × spread`` in ``frame``, mapped into the file's own coordinates, transformed scale),
    ``abs_median``/``abs_spread`` (on the common scale), ``n_cohort``, ``frame`` and the frame values
    ``rel_position``, ``rel_median``, ``rel_spread``. ``min_spread`` (frame units) defaults to
    :data:`MIN_SPREAD`; a cohort in which a file lacks landmarks is compared in the ``absolute`` frame."""
    if frame not in FRAMES:
        raise ValueError(f"frame {frame!r}: choose one of {list(FRAMES)}")
    keys = [*group_columns, S.POPULATION, "dim", "side"]
    out = positions.copy()
    for col in LANDMARK_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    added = ("median", "spread", "range_low", "range_high", "abs_median", "abs_spread", "n_cohort",
             "rel_position", "rel_median", "rel_spread")
    if out.empty:
        for col in added:
            out[col] = pd.Series(dtype=float)
        out["frame"] = pd.Series(dtype=str)
        for col in ("outlier_absolute", "outlier_relative", "outlier", "shifted"):
            out[col] = pd.Series(dtype=bool)
        return out
    by = [out[k_] for k_ in keys]
    usable = out["low_mode"].notna() & (out["low_sd"] > 0) if frame in ("sd", "modes") else out["low_mode"].notna()
    complete = usable.groupby(by, sort=False).transform("all") & (frame != "absolute")
    two = (out["high_mode"] - out["low_mode"]) >= MIN_MODE_GAP
    between = complete & (two.groupby(by, sort=False).transform("mean") > 0.5) & (frame == "modes")
    comparable = ~between | two  # in a cohort of two-mode files, a one-mode file's landmarks are another kind
    used = pd.Series(np.where(between, "modes", np.where(complete, "sd" if frame == "modes" else frame,
                                                         "absolute")), index=out.index)
    origin = np.where(complete, out["low_mode"], 0.0)
    unit = np.where(between, np.where(comparable, out["high_mode"] - out["low_mode"], np.nan),
                    np.where(used == "sd", out["low_sd"], 1.0))
    floor_abs = MIN_SPREAD["absolute"] if min_spread is None else min_spread
    floor = used.map(MIN_SPREAD).to_numpy() if min_spread is None else min_spread
    ab = _frame_stats(out, by, 0.0, 1.0, floor_abs, k, min_shift, min_samples)
    rel = _frame_stats(out, by, origin, unit, floor, k, min_shift, min_samples)
    for key in ("centre", "low", "high"):  # a file without comparable landmarks: the common scale's
        rel[key] = rel[key].where(comparable, ab[key])
    out["frame"] = used.where(comparable, "absolute")
    out["rel_position"], out["rel_median"], out["rel_spread"] = rel["rel"], rel["med"], rel["spread"]
    out["n_cohort"] = rel["n"]
    out["median"], out["spread"] = rel["centre"], (rel["spread"] * unit).where(comparable, ab["spread"])
    out["range_low"], out["range_high"] = rel["low"], rel["high"]
    out["abs_median"], out["abs_spread"] = ab["centre"], ab["spread"]
    out["outlier_absolute"] = ab["outlier"]
    out["outlier_relative"] = rel["outlier"] & comparable
    out["outlier"] = ab["outlier"] & (rel["outlier"] | ~comparable)
    out["shifted"] = ab["outlier"] & comparable & ~rel["outlier"]
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
