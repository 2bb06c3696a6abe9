"""The gate editor's controls: one registry, keyed by a gate method's parameter model, of what the editor
shows for a population and how its parameters are laid out.

Contract
--------
:data:`METHOD_CONTROLS` maps a parameter model (``GATE_METHODS[name].params_model``) to a
:class:`MethodControls`: the method's threshold slots (each a :class:`~cytokit.gating.methods.ThresholdParams`
the method fits, with its position, mode and the rules of that mode), the expansion of its params to one
threshold entry per dimension, its own controls (ellipse coverage, singlet widths, polygon level...) and, for
each parameter it leaves out, the reason. :func:`method_controls` looks a method up along its model's
classes (a ``quadrant``'s :class:`~cytokit.gating.methods.threshold.QuadrantParams` subclasses the
``phenotype`` model and gets its entry); a method without an entry gets only the :data:`SHARED_CONTROLS`
(the parameters a family of methods shares, by the model they share) and the editor says so.

Threshold positions are on the gate's scale (logicle 0..1 for fluorescence); ``target`` is the robust-normalised
location (0..1 spans the parent's robust range); singlet widths are in MADs of the area/height ratio; levels,
quantiles and coverages are fractions (0..1); ``max_other_pct`` is percent.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, get_args, get_origin

import numpy as np

from ..gates import RectangleGate
from ..gating import GatingResult
from ..gating.methods import GATE_METHODS
from ..gating.methods.base import MethodParams
from ..gating.methods.density import ThresholdParams
from ..gating.methods.scatter import (BackgateParams, DensityPolygonParams, GMMEllipseParams,
                                      LymphocyteDoubletsParams, SingletParams)
from ..gating.methods.fixed import RectangleParams
from ..gating.methods.threshold import (IntervalParams, PhenotypeParams, Sign, ThresholdGateParams)
from ..gating.model import StrategyDefinition, dependents

#: a threshold's placement modes, in the order the editor offers them
MODES: tuple[str, ...] = get_args(ThresholdParams.model_fields["mode"].annotation)
SIGNS: tuple[str, ...] = get_args(Sign)
#: the choice of a population control that names no population (the parameter unset: its default, None)
NO_POPULATION = "(none)"


@dataclass(frozen=True)
class Control:
    """One editable parameter: ``key`` addresses it in the population's params (tuple path), ``kind`` is
    ``float``, ``int``, ``bool`` or ``choice``; ``value`` is the current value (for a threshold ``position``:
    the fitted threshold on the gate's scale; None where none was fitted). ``optional``: None is a value the
    parameter takes (a rectangle's open side), shown as an empty box, not as a number; ``note``: what the
    control does beyond its label (the widget's tooltip), e.g. where a fixed threshold starts."""

    key: tuple[Any, ...]
    label: str
    kind: str
    value: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()
    optional: bool = False
    note: str = ""


@dataclass(frozen=True)
class Slot:
    """One threshold a method fits: ``path`` to its :class:`ThresholdParams` in the params, ``label`` (the
    marker, and the side of an interval), ``dim`` the dimension index it cuts."""

    path: tuple[Any, ...]
    label: str
    dim: int


def _literal_options(model: type[MethodParams], field_name: str) -> tuple[str, ...]:
    """The values a ``Literal``-typed parameter takes (its declared order)."""
    annotation = model.model_fields[field_name].annotation
    if get_origin(annotation) is not Literal:
        raise TypeError(f"{model.__name__}.{field_name} is not a Literal parameter")
    return tuple(str(v) for v in get_args(annotation))


def _default(model: type[MethodParams], params: Mapping[str, Any], name: str) -> Any:
    """The parameter's value in ``params``, else the model's default."""
    if name in params:
        return params[name]
    f = model.model_fields[name]
    return f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]


def _choice(model: type[MethodParams], params: Mapping[str, Any], key: tuple[Any, ...], label: str) -> Control:
    """A ``Literal`` parameter as a choice (the current value or the model's default)."""
    name = key[-1]
    return Control(key, label, "choice", str(_default(model, params, name)), options=_literal_options(model, name))


def _number(model: type[MethodParams], params: Mapping[str, Any], key: tuple[Any, ...], label: str,
            minimum: float, maximum: float, step: float, kind: str = "float") -> Control:
    return Control(key, label, kind, _default(model, params, key[-1]), minimum, maximum, step)


def _flag(model: type[MethodParams], params: Mapping[str, Any], key: tuple[Any, ...], label: str) -> Control:
    return Control(key, label, "bool", bool(_default(model, params, key[-1])))


# -- threshold slots -----------------------------------------------------------------------------------------

#: :class:`ThresholdParams` fields without a control, and why (every other field has one in some mode)
THRESHOLD_UNEDITED: dict[str, str] = {
    "expected": "where the threshold usually lies: the drift check's reference for the whole study, not a "
                "placement on one sample",
    "drift_tolerance": "the drift check's limit (a QC flag), not the gate",
    "negative_max": "where a negative mode may lie on this panel's scale (default: the middle of the bounds): "
                    "a property of the panel, set with the bounds in the YAML",
    "dim_mode_tail": "a placement rule measured on the benchmarks (docs/gating.md); changing it on one sample "
                     "tunes it to that sample",
    "tail_widen": "a placement rule measured on the benchmarks (docs/gating.md); changing it on one sample "
                  "tunes it to that sample",
    "tail_knee": "a placement rule measured on the benchmarks (docs/gating.md); changing it on one sample "
                 "tunes it to that sample",
    "min_mode_sds": "how far a valley must lie below the KDE's sampling noise to separate two modes where "
                    "negatives may lie (a significance level, docs/gating.md); changing it on one sample tunes it "
                    "to that sample",
    "overlap": "'reference' needs the population's negative_reference: set both in the YAML",
    "fixed_tolerance": "the error a fixed cut carries into est_error_pp (scale differences between files), "
                       "not the cut",
    "at_least": "set by the engine from the population's threshold_floor",
    "max_events": "events subsampled for the fit (speed), not the gate",
    "seed": "the subsample's seed, not the gate",
}


#: transforms whose scale is 0..1 (a threshold position's range on such a dimension)
UNIT_SCALES = ("logicle", "hyperlog")
UNIT_RANGE = (0.0, 1.0, 0.005)


def parent_values(result: GatingResult, name: str, dim: str) -> np.ndarray:
    """The finite values of population ``name``'s parent's events (all events for a root gate) on dimension
    ``dim``, on the gate's scale (the prepared sample's: logicle 0..1 for fluorescence, linear scatter)."""
    parent = result.definition.population(name).parent
    x = np.asarray(result.sample.column(dim), dtype=np.float64)
    if parent is not None:
        x = x[result.masks[parent]]
    return x[np.isfinite(x)]


def position_range(result: GatingResult, name: str, dim: str) -> tuple[float, float, float]:
    """(minimum, maximum, step) of a threshold position on dimension ``dim`` of population ``name``, on the
    gate's scale: 0..1 on a logicle/hyperlog dimension; otherwise (a linear scatter dimension) the range of
    the parent's events, in 200 steps -- of all the sample's events when the parent has none (or one value),
    and 0..1 only when the sample has none either."""
    t = next((t for t in result.transforms if dim in (t.marker, t.pnn)), None)
    if t is not None and t.name in UNIT_SCALES:
        return UNIT_RANGE
    x = parent_values(result, name, dim)
    if x.size == 0 or x.min() == x.max():
        x = np.asarray(result.sample.column(dim), dtype=np.float64)
        x = x[np.isfinite(x)]
    if x.size == 0 or x.min() == x.max():
        return UNIT_RANGE
    lo, hi = float(x.min()), float(x.max())
    return lo, hi, (hi - lo) / 200


def start_position(result: GatingResult, name: str, dim: str, bounds: Any = None) -> float:
    """Where a threshold made ``fixed`` starts when no position was fitted for it: the median of the parent's
    events on ``dim`` (:func:`parent_values`, the gate's scale: linear units on a scatter axis, 0..1 on
    logicle), moved into the threshold's ``bounds`` ([low, high], same scale) when it lies outside them;
    without events, the middle of the bounds or of :func:`position_range`."""
    x = parent_values(result, name, dim)
    if x.size:
        pos = float(np.median(x))
        return float(np.clip(pos, bounds[0], bounds[1])) if bounds else pos
    lo, hi = (bounds[0], bounds[1]) if bounds else position_range(result, name, dim)[:2]
    return (float(lo) + float(hi)) / 2


def start_note(start: float, bounds: Any = None) -> str:
    """The tooltip of a threshold without a fitted position (``start``: :func:`start_position`, gate scale)."""
    within = " (moved into the threshold's bounds)" if bounds else ""
    return (f"no position fitted on this sample: 'fixed' starts at {start:.4g}, the parent's median on this "
            f"axis{within}")


def slot_controls(slot: Slot, tp: Mapping[str, Any], position: float | None,
                  scale: tuple[float, float, float] = UNIT_RANGE, start: float | None = None) -> list[Control]:
    """The controls of one threshold: its position (``position``: the fitted one, or the fixed ``value``;
    None: not fitted, shown empty; ``scale``: the (minimum, maximum, step) of a position on its dimension,
    :func:`position_range`), its mode and the rules of that mode. ``start``: where ``fixed`` starts when no
    position was fitted (:func:`start_position`; the position and mode controls say so in their note)."""
    path, label, T = slot.path, slot.label, ThresholdParams
    mode = tp.get("mode", "valley")
    pos = tp.get("value") if mode == "fixed" else position
    lo, hi, step = scale
    if pos is not None:  # a position outside the dimension's range (a fixed cut) stays on its slider
        lo, hi = min(lo, float(pos)), max(hi, float(pos))
    note = start_note(start, tp.get("bounds")) if pos is None and start is not None else ""
    out = [Control(path + ("value",), f"{label} position", "float", pos, lo, hi, step, note=note),
           Control(path + ("mode",), f"{label} method", "choice", mode, options=MODES, note=note)]
    if mode == "tail":
        out.append(_number(T, tp, path + ("tail_sd",), f"{label} tail width (SD)", 0.25, 6.0, 0.05))
    if mode == "quantile":
        out.append(_number(T, tp, path + ("quantile",), f"{label} quantile", 0.01, 0.99, 0.005))
    if mode == "valley":
        out.append(_choice(T, tp, path + ("valley",), f"{label} valley"))
    if mode == "tail":
        out += [_choice(T, tp, path + ("tail_side",), f"{label} tail side"),
                _choice(T, tp, path + ("reference_peak",), f"{label} tail from peak")]
    if mode == "valley":
        out += [_choice(T, tp, path + ("separates",), f"{label} valley separates"),
                _number(T, tp, path + ("max_valley_ratio",), f"{label} max valley depth ratio", 0.05, 1.0, 0.01),
                _number(T, tp, path + ("min_peak_fraction",), f"{label} min peak fraction", 0.0, 0.5, 0.005),
                _choice(T, tp, path + ("fallback",), f"{label} without a valley")]
        if tp.get("fallback", "tail") == "tail":  # the tail placed where no valley is found
            out += [_number(T, tp, path + ("tail_sd",), f"{label} fallback tail width (SD)", 0.25, 6.0, 0.05),
                    _choice(T, tp, path + ("tail_side",), f"{label} fallback tail side"),
                    _choice(T, tp, path + ("reference_peak",), f"{label} fallback tail from peak")]
    if mode in ("valley", "tail"):
        out.append(_number(T, tp, path + ("adjust",), f"{label} smoothing (x bandwidth)", 0.25, 4.0, 0.05))
    if mode != "fixed":  # unset bounds: the dimension's range
        bounds = tp.get("bounds") or scale[:2]
        out += [Control(path + ("bounds", i), f"{label} bounds {side}", "float", float(bounds[i]),
                        min(scale[0], float(bounds[i])), max(scale[1], float(bounds[i])), scale[2])
                for i, side in enumerate(("lower", "upper"))]
    return out


# -- the registry ----------------------------------------------------------------------------------------------

Params = dict[str, Any]
Dims = tuple[str, ...]


def _copy(params: Mapping[str, Any], dims: Dims) -> Params:
    return copy.deepcopy(dict(params))


def _no_slots(params: Mapping[str, Any], dims: Dims) -> list[Slot]:
    return []


def _no_positions(result: GatingResult, name: str) -> dict[tuple[Any, ...], float]:
    return {}


def _no_own(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    return []


@dataclass(frozen=True)
class MethodControls:
    """What the editor shows for one method (one :data:`METHOD_CONTROLS` entry).

    ``expand(params, dims)``: the params with every entry the controls address present (one threshold entry
    per dimension); ``slots(expanded, dims)``: the thresholds it fits; ``positions(result, name)``: the fitted
    position of each slot (by its path, gate scale); ``own(expanded, dims)``: its other controls;
    ``unedited``: each parameter without a control, and why."""

    expand: Callable[[Mapping[str, Any], Dims], Params] = _copy
    slots: Callable[[Mapping[str, Any], Dims], list[Slot]] = _no_slots
    positions: Callable[[GatingResult, str], dict[tuple[Any, ...], float]] = _no_positions
    own: Callable[[Mapping[str, Any], Dims], list[Control]] = _no_own
    unedited: Mapping[str, str] = field(default_factory=dict)


def _threshold_expand(params: Mapping[str, Any], dims: Dims) -> Params:
    p = _copy(params, dims)
    p.setdefault("threshold", {})
    return p


def _threshold_positions(result: GatingResult, name: str) -> dict[tuple[Any, ...], float]:
    info = result.fit(name).info
    return {("threshold",): float(info["threshold"])} if "threshold" in info else {}


def _phenotype_expand(params: Mapping[str, Any], dims: Dims) -> Params:
    p = _copy(params, dims)
    th = list(p.get("thresholds") or [{}])
    p["thresholds"] = [copy.deepcopy(th[0]) for _ in p["signs"]] if len(th) == 1 else th
    return p


def _phenotype_positions(result: GatingResult, name: str) -> dict[tuple[Any, ...], float]:
    info = result.fit(name).info
    dims = result.definition.population(name).dims
    fitted = info.get("thresholds", {})
    return {("thresholds", i): float(fitted[d]) for i, d in enumerate(dims) if d in fitted}


def _interval_positions(result: GatingResult, name: str) -> dict[tuple[Any, ...], float]:
    g = result.gates[name]
    if not isinstance(g, RectangleGate):
        return {}
    return {(side,): float(v) for side, v in (("lower", g.lower[0]), ("upper", g.upper[0])) if v is not None}


def _sign(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    return [Control(("sign",), f"{dims[0]} sign", "choice", str(params.get("sign", "+")), options=SIGNS)]


def _signs(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    return [Control(("signs", i), f"{d} sign", "choice", str(s), options=SIGNS)
            for i, (d, s) in enumerate(zip(dims, params["signs"]))]


def _targets(model: type[MethodParams], params: Mapping[str, Any], dims: Dims) -> list[Control]:
    tgt = list(_default(model, params, "target"))
    return [Control(("target", i), f"target {d} (0..1)", "float", tgt[i], -0.5, 1.5, 0.01)
            for i, d in enumerate(dims[:len(tgt)])]


def _ellipse(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    M = GMMEllipseParams
    return [_number(M, params, ("coverage",), "coverage", 0.5, 0.99999, 0.0005),
            _number(M, params, ("n_components",), "components", 1, 10, 1, kind="int"),
            *_targets(M, params, dims),
            _number(M, params, ("min_weight",), "min component weight", 0.0, 0.5, 0.005),
            _flag(M, params, ("whole_cloud",), "whole cloud"),
            _flag(M, params, ("redraw",), "redraw around the reference"),
            _number(M, params, ("redraw_coverage",), "redraw coverage", 0.9, 0.9999, 0.0005),
            _number(M, params, ("max_other_pct",), "max other events (%)", 0.5, 20.0, 0.1)]


def _polygon(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    M = DensityPolygonParams
    return [_number(M, params, ("level",), "contour level", 0.01, 0.9, 0.01),
            *_targets(M, params, dims),
            _number(M, params, ("smooth",), "smoothing (bins)", 0.0, 8.0, 0.25)]


def _singlets(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    M = SingletParams
    return [_number(M, params, ("lower_mads",), "lower width (MADs)", 0.5, 12, 0.25),
            _number(M, params, ("upper_mads",), "upper width (MADs)", 0.5, 12, 0.25),
            _number(M, params, ("min_area_quantile",), "debris cut (area quantile)", 0.0, 0.45, 0.005)]


#: the note of a rectangle bound (None: that side is open)
OPEN_BOUND_NOTE = "empty = open (no bound on this side)"


def _rectangle(params: Mapping[str, Any], dims: Dims) -> list[Control]:
    """A rectangle's bounds per dimension (gate scale); an open side (None) stays None unless edited."""
    return [Control((side, i), f"{d} {side}", "float", params[side][i], optional=True, note=OPEN_BOUND_NOTE)
            for i, d in enumerate(dims) for side in ("lower", "upper")]


_SAMPLING = {"max_events": "events subsampled for the fit (speed), not the gate",
             "seed": "the subsample's seed, not the gate"}

#: the registry: a parameter model -> what the editor shows for the methods with that model (or a subclass)
METHOD_CONTROLS: dict[type[MethodParams], MethodControls] = {
    ThresholdGateParams: MethodControls(
        expand=_threshold_expand, positions=_threshold_positions, own=_sign,
        slots=lambda p, dims: [Slot(("threshold",), dims[0], 0)]),
    PhenotypeParams: MethodControls(  # and QuadrantParams, its subclass
        expand=_phenotype_expand, positions=_phenotype_positions, own=_signs,
        slots=lambda p, dims: [Slot(("thresholds", i), d, i) for i, d in enumerate(dims)],
        unedited={"any_of": "which markers are OR-ed defines the population: edit it in the YAML"}),
    IntervalParams: MethodControls(
        positions=_interval_positions,
        slots=lambda p, dims: [Slot((side,), f"{dims[0]} {side}", 0) for side in ("lower", "upper")
                               if p.get(side) is not None]),
    GMMEllipseParams: MethodControls(own=_ellipse, unedited=_SAMPLING),
    DensityPolygonParams: MethodControls(own=_polygon, unedited={
        **_SAMPLING, "bins": "the density grid's resolution, not the gate",
        "max_vertices": "the drawn polygon's simplification, not the gate"}),
    SingletParams: MethodControls(own=_singlets, unedited={
        **_SAMPLING, "max_band_ratio": "the review limit of the band's width (flag 'unreliable'), not the gate"}),
    RectangleParams: MethodControls(own=_rectangle),
}

#: parameters a family of methods shares, by the parameter model they share (every method whose
#: ``params_model`` subclasses the key gets these controls): (field, label, kind). ``choice``: the options are
#: the field's ``Literal`` values; ``population``: a population below the gate, or :data:`NO_POPULATION`
SHARED_CONTROLS: dict[type[MethodParams], tuple[tuple[str, str, str], ...]] = {
    BackgateParams: (("backgate_reference", "back-gating reference", "population"),),
    LymphocyteDoubletsParams: (("lymphocyte_doublets", "lymphocyte doublets", "choice"),),
}


def method_controls(method: str) -> MethodControls | None:
    """The :data:`METHOD_CONTROLS` entry of gate method ``method``: the first of its parameter model's classes
    (the model, then what it subclasses) with an entry; None for a method without one (or not registered)."""
    m = GATE_METHODS.get(method)
    if m is None:
        return None
    return next((METHOD_CONTROLS[c] for c in m.params_model.__mro__ if c in METHOD_CONTROLS), None)


def shared_controls(definition: StrategyDefinition, name: str, params: Mapping[str, Any]) -> list[Control]:
    """The :data:`SHARED_CONTROLS` of population ``name`` (those its method's parameter model shares), with the
    current values (the model's default where ``params`` leaves one out)."""
    spec = definition.population(name)
    method = GATE_METHODS.get(spec.method)
    if method is None:
        return []
    model = method.params_model
    out: list[Control] = []
    for mixin, fields in SHARED_CONTROLS.items():
        if not issubclass(model, mixin):
            continue
        for field_name, label, kind in fields:
            value = _default(model, params, field_name)
            if kind == "population":
                below = tuple(dependents(definition, name)[1:])
                out.append(Control((field_name,), label, "choice", NO_POPULATION if value is None else str(value),
                                   options=(NO_POPULATION, *below)))
            else:
                out.append(Control((field_name,), label, "choice", str(value),
                                   options=_literal_options(model, field_name)))
    return out


def unedited_reasons(method: str) -> dict[str, str]:
    """Every parameter of ``method`` the editor has no control for (its own and its thresholds'), and why."""
    entry = method_controls(method)
    if entry is None:
        return {}
    out = dict(entry.unedited)
    if entry.slots is not _no_slots:
        out.update(THRESHOLD_UNEDITED)
    return out
