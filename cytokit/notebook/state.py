"""The gate editor's logic as a plain state model (no widgets): select a population, change one control,
re-fit that population and its descendants, read counts, apply to a cohort, save YAML.

Contract
--------
:class:`GateEditorState` holds the edited :class:`~cytokit.gating.Strategy` and the current
:class:`~cytokit.gating.GatingResult` of one sample. :meth:`~GateEditorState.controls` lists the editable
parameters of a population's method as :class:`Control` records (threshold positions, mode, tail width,
quantile, valley choice; ellipse coverage, components, target; singlet widths; polygon level...) and the
parameters a family of methods shares (:data:`SHARED_CONTROLS`: a scatter lymphocyte gate's back-gating
reference and lymphocyte-doublet convention).
:meth:`~GateEditorState.set` changes one control, validates the new parameters and re-fits only that
population and those below it (events are not re-read, the parent's gates are kept). Moving a threshold
makes it a fixed (manual) one; :meth:`~GateEditorState.adapt` turns a manual placement back into adaptive
parameters that reproduce it on this sample (:mod:`cytokit.learn`), so it follows the data on the
others. Thresholds are on the gate's scale (logicle 0..1 for fluorescence, linear scatter); percentages
are percent (0-100) of the parent.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, get_args, get_origin

import numpy as np
import pandas as pd

from ..errors import ConfigError, GatingError
from ..gates import RectangleGate
from ..gating import GatingResult, Strategy, load_strategy
from ..gating.methods import GATE_METHODS
from ..gating.methods.base import MethodParams
from ..gating.methods.scatter import BackgateParams, LymphocyteDoubletsParams
from ..gating.model import StrategyDefinition, dependents
from ..results import schema as S
from ..sample import Sample

log = logging.getLogger(__name__)

MODES = ("valley", "tail", "quantile", "fixed")
#: the choice of a population control that names no population (the parameter unset: its default, None)
NO_POPULATION = "(none)"
#: parameters a family of methods shares, by the parameter model they share (the registry: every method whose
#: ``params_model`` subclasses the key gets these controls): (field, label, kind). ``choice``: the options are
#: the field's ``Literal`` values; ``population``: a population below the gate, or :data:`NO_POPULATION`
SHARED_CONTROLS: dict[type[MethodParams], tuple[tuple[str, str, str], ...]] = {
    BackgateParams: (("backgate_reference", "back-gating reference", "population"),),
    LymphocyteDoubletsParams: (("lymphocyte_doublets", "lymphocyte doublets", "choice"),),
}


@dataclass(frozen=True)
class Control:
    """One editable parameter: ``key`` addresses it in the population's params (tuple path), ``kind`` is
    ``float``, ``int`` or ``choice``; ``value`` is the current value (for a threshold ``position``: the
    fitted threshold on the gate's scale)."""

    key: tuple[Any, ...]
    label: str
    kind: str
    value: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()


def _threshold_slots(method: str, params: dict[str, Any], dims: tuple[str, ...]) -> list[tuple[tuple, str, int]]:
    """(params path, label, dimension index) of every threshold the method fits."""
    if method == "threshold":
        return [(("threshold",), dims[0], 0)]
    if method in ("quadrant", "phenotype"):
        return [(("thresholds", i), d, i) for i, d in enumerate(dims)]
    if method == "interval":
        return [((side,), f"{dims[0]} {side}", 0) for side in ("lower", "upper") if params.get(side) is not None]
    return []


def _expand(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params with one threshold entry per dimension (a single shared entry is copied)."""
    p = copy.deepcopy(params)
    if method in ("quadrant", "phenotype"):
        th = list(p.get("thresholds") or [{}])
        p["thresholds"] = [copy.deepcopy(th[0]) for _ in p["signs"]] if len(th) == 1 else th
    if method == "threshold":
        p.setdefault("threshold", {})
    return p


def _get(d: Any, path: tuple) -> Any:
    for k in path:
        d = d[k] if isinstance(d, list) or k in d else {}
    return d


def _set(d: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        if isinstance(d, dict):
            d = d.setdefault(k, {})
        else:
            d = d[k]
    if value is None and isinstance(d, dict):
        d.pop(path[-1], None)
    else:
        d[path[-1]] = value


def _literal_options(model: type[MethodParams], field: str) -> tuple[str, ...]:
    """The values a ``Literal``-typed parameter takes (its declared order)."""
    annotation = model.model_fields[field].annotation
    if get_origin(annotation) is not Literal:
        raise TypeError(f"{model.__name__}.{field} is not a Literal parameter")
    return tuple(str(v) for v in get_args(annotation))


def _shared_controls(definition: StrategyDefinition, name: str, params: dict[str, Any]) -> list[Control]:
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
        for field, label, kind in fields:
            value = params.get(field, model.model_fields[field].default)
            if kind == "population":
                below = tuple(dependents(definition, name)[1:])
                out.append(Control((field,), label, "choice", NO_POPULATION if value is None else str(value),
                                   options=(NO_POPULATION, *below)))
            else:
                out.append(Control((field,), label, "choice", str(value), options=_literal_options(model, field)))
    return out


def _fitted_positions(result: GatingResult, name: str) -> dict[int, float]:
    """Fitted threshold per dimension index, read from the fit's info."""
    fit = result.fit(name)
    spec = result.definition.population(name)
    info = fit.info
    out: dict[int, float] = {}
    if spec.method == "threshold" and "threshold" in info:
        out[0] = float(info["threshold"])
    elif "thresholds" in info:
        for i, d in enumerate(spec.dims):
            if d in info["thresholds"]:
                out[i] = float(info["thresholds"][d])
    return out


@dataclass
class CohortResult:
    """A population re-fitted on every sample of a cohort: one row per sample (``sample``, ``count``,
    ``parent_count``, ``pct_parent`` (%), ``flags``, ``outlier``, ``reason``) and the results."""

    population: str
    table: pd.DataFrame
    results: dict[str, GatingResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def plot(self, *, cols: int = 4, path: str | Path | None = None):  # noqa: ANN201 - matplotlib Figure
        """Thumbnails of the population's gate on every sample; outliers framed in red."""
        from .figures import cohort_grid

        return cohort_grid(self, cols=cols, path=path)


def flag_outliers(pct: pd.Series, flags: pd.Series, *, z: float = 3.5, min_pp: float = 2.0) -> tuple[pd.Series, pd.Series]:
    """Outlier samples: % of parent further than ``z`` robust SDs (1.4826 x MAD) *and* ``min_pp``
    percentage points from the cohort median, or an estimate flagged for review (a review flag in ``flags``:
    :func:`cytokit.gating.methods.needs_review`, the tables' ``review`` column). Placement notes alone
    (``fell_back:tail``, ``unstable``...) do not make an outlier; the reason names the review flags."""
    from ..gating.methods import split_flags

    med = float(np.nanmedian(pct)) if len(pct) else float("nan")
    mad = float(np.nanmedian(np.abs(pct - med))) * 1.4826 if len(pct) else float("nan")
    dev = (pct - med).abs()
    far = (dev > max(z * mad, min_pp)) if np.isfinite(mad) else pd.Series(False, index=pct.index)
    words = flags.fillna("").astype(str).map(lambda f: ";".join(split_flags(f)[0]))
    has_flag = words != ""
    reason = pd.Series("", index=pct.index, dtype=object)
    reason[far] = [f"{p:.1f}% vs median {med:.1f}%" for p in pct[far]]
    reason[has_flag] = (reason[has_flag] + " review: " + words[has_flag]).str.strip()
    return far | has_flag, reason


class GateEditorState:
    """Edit one strategy on one sample (see module docstring)."""

    def __init__(self, strategy: str | Path | Strategy, sample: Sample | str | Path, *, panel: Any = None,
                 tube: str | None = None, population: str | None = None) -> None:
        from ..fcs import read_fcs

        self.strategy = strategy if isinstance(strategy, Strategy) else load_strategy(strategy)
        self.base = self.strategy
        self.panel, self.tube = panel, tube
        self.sample = sample if isinstance(sample, Sample) else read_fcs(sample)
        self.result = self.strategy.apply(self.sample, panel=panel, tube=tube)
        fitted = [p for p in self.strategy.population_names if p in self.result.state.fits]
        self.population = population or fitted[0]
        self.strategy.population(self.population)
        self._history: list[tuple[Strategy, GatingResult]] = []

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def populations(self) -> list[str]:
        """Fitted populations in strategy order."""
        return [p for p in self.strategy.population_names if p in self.result.state.fits]

    def select(self, name: str) -> None:
        self.strategy.population(name)
        if name not in self.result.state.fits:
            raise GatingError(f"population {name!r} was not fitted on this sample "
                              f"({self.result.skipped.get(name, 'skipped')})")
        self.population = name

    def params(self, name: str | None = None) -> dict[str, Any]:
        return copy.deepcopy(self.strategy.population(name or self.population).params)

    def counts(self, name: str | None = None) -> dict[str, Any]:
        """``count``, ``parent_count``, ``pct_parent`` (%), ``pct_lymphocytes`` (%), ``flags``, ``review`` (bool:
        the estimate may be wrong), ``review_flags`` and ``notes`` of a population (the table's columns)."""
        row = self.table().set_index(S.POPULATION).loc[name or self.population]
        return {k: (row[k].item() if hasattr(row[k], "item") else row[k])
                for k in (S.COUNT, S.PARENT_COUNT, S.PCT_PARENT, S.PCT_LYMPHOCYTES, S.FLAGS, *S.REVIEW_COLUMNS)}

    def table(self) -> pd.DataFrame:
        return self.result.populations

    def controls(self, name: str | None = None) -> list[Control]:
        """The editable parameters of a population's method, with current values."""
        name = name or self.population
        spec = self.strategy.population(name)
        p = _expand(spec.method, spec.params)
        out: list[Control] = []
        positions = _fitted_positions(self.result, name)
        for path, label, dim in _threshold_slots(spec.method, p, spec.dims):
            tp = _get(p, path) or {}
            mode = tp.get("mode", "valley")
            pos = tp.get("value") if mode == "fixed" else positions.get(dim)
            g = self.result.gates[name]
            if spec.method == "interval" and isinstance(g, RectangleGate):
                pos = g.lower[0] if path[0] == "lower" else g.upper[0]
            out.append(Control(path + ("value",), f"{label} position", "float", pos, 0.0, 1.0, 0.005))
            out.append(Control(path + ("mode",), f"{label} method", "choice", mode, options=MODES))
            if mode == "tail":
                out.append(Control(path + ("tail_sd",), f"{label} tail width (SD)", "float",
                                   tp.get("tail_sd", 2.5), 0.25, 6.0, 0.05))
            if mode == "quantile":
                out.append(Control(path + ("quantile",), f"{label} quantile", "float", tp.get("quantile", 0.5),
                                   0.01, 0.99, 0.005))
            if mode == "valley":
                out.append(Control(path + ("valley",), f"{label} valley", "choice", tp.get("valley", "deepest"),
                                   options=("deepest", "first", "last")))
        if spec.method == "gmm_ellipse":
            out += [Control(("coverage",), "coverage", "float", p.get("coverage", 0.95), 0.5, 0.99999, 0.0005),
                    Control(("n_components",), "components", "int", p.get("n_components", 3), 1, 10, 1)]
            tgt = list(p.get("target", (0.4, 0.2)))
            out += [Control(("target", i), f"target {d} (0..1)", "float", tgt[i], -0.5, 1.5, 0.01)
                    for i, d in enumerate(spec.dims[:len(tgt)])]
        elif spec.method == "singlets":
            out += [Control(("lower_mads",), "lower width (MADs)", "float", p.get("lower_mads", 4.0), 0.5, 12, 0.25),
                    Control(("upper_mads",), "upper width (MADs)", "float", p.get("upper_mads", 3.0), 0.5, 12, 0.25)]
        elif spec.method == "density_polygon":
            out += [Control(("level",), "contour level", "float", p.get("level", 0.1), 0.01, 0.9, 0.01)]
        elif spec.method == "rectangle":
            for i, d in enumerate(spec.dims):
                out += [Control(("lower", i), f"{d} lower", "float", p["lower"][i]),
                        Control(("upper", i), f"{d} upper", "float", p["upper"][i])]
        return out + _shared_controls(self.strategy.definition, name, p)

    # -- editing ---------------------------------------------------------------------------------------
    def set(self, key: tuple[Any, ...], value: Any, *, name: str | None = None) -> dict[str, Any]:
        """Change one control (a :class:`Control` ``key``) and re-fit; returns the new :meth:`counts`.

        Setting a threshold's ``value`` makes it fixed at that position; setting its ``mode`` keeps the
        other threshold parameters; :data:`NO_POPULATION` unsets a population parameter (its default)."""
        name = name or self.population
        spec = self.strategy.population(name)
        p = _expand(spec.method, spec.params)
        key = tuple(key)
        if value == NO_POPULATION:
            value = None
        if key[-1] == "value" and isinstance(_get(p, key[:-1]), dict):
            tp = dict(_get(p, key[:-1]))
            tp.update(mode="fixed", value=float(value))
            _set(p, key[:-1], tp)
        elif key[-1] == "mode" and value == "fixed":
            positions = _fitted_positions(self.result, name)
            slot = next(s for s in _threshold_slots(spec.method, p, spec.dims) if s[0] == key[:-1])
            tp = dict(_get(p, key[:-1]))
            tp.update(mode="fixed", value=tp.get("value", positions.get(slot[2], 0.5)))
            _set(p, key[:-1], tp)
        else:
            if key[-1] == "mode":
                tp = _get(p, key[:-1])
                if isinstance(tp, dict):
                    tp.pop("value", None)
            if spec.method in ("gmm_ellipse", "density_polygon") and key[0] == "target":
                p["target"] = list(p.get("target", (0.4, 0.2)))
            _set(p, key, value)
        return self.set_params(p, name=name)

    def set_params(self, params: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
        """Replace a population's params (validated), re-fit it and its descendants; returns counts."""
        name = name or self.population
        strategy = self.strategy.set_params(name, replace=True, **params)  # a new, validated strategy
        result = strategy.refit(self.result, name)
        self._history.append((self.strategy, self.result))
        self.strategy, self.result = strategy, result
        return self.counts(name)

    def undo(self) -> None:
        """Back to the strategy and result before the last change."""
        if self._history:
            self.strategy, self.result = self._history.pop()

    def reset(self, name: str | None = None) -> dict[str, Any]:
        """The population's parameters as loaded."""
        name = name or self.population
        return self.set_params(copy.deepcopy(self.base.population(name).params), name=name)

    def adapt(self, name: str | None = None) -> dict[str, Any]:
        """Replace the population's parameters by adaptive ones (valley/tail/quantile, bounds) that best
        reproduce its current gate on this sample, so the gate follows the data on other samples."""
        from ..learn.search import TrainingSample, tune_definition

        name = name or self.population
        spec = self.strategy.population(name)
        p = _expand(spec.method, spec.params)
        for path, _label, _dim in _threshold_slots(spec.method, p, spec.dims):
            tp = _get(p, path)
            if isinstance(tp, dict) and tp.get("mode") == "fixed":  # start from an adaptive default
                _set(p, path, {k: v for k, v in tp.items() if k not in ("mode", "value")})
        target = {name: self.result.masks[name]}
        data = self.strategy.definition.model_dump()
        for q in data["populations"]:
            if q["name"] == name:
                q["params"] = p
        start = StrategyDefinition.model_validate(data)
        ts = TrainingSample(self.sample.name, self.result.sample, self.result.transforms, target)
        tuned = tune_definition(start, [ts], populations=[name])
        return self.set_params(copy.deepcopy(tuned.population(name).params), name=name)

    # -- cohort and saving -----------------------------------------------------------------------------
    def apply_to_cohort(self, files: Iterable[str | Path] | str | Path, name: str | None = None) -> CohortResult:
        """Apply the edited strategy to every file (a list, a folder of FCS files, or a run's results
        folder) and tabulate ``name``: count, % of parent, flags, review (bool), notes and outliers
        (:func:`flag_outliers`).
        A file that cannot be gated is recorded in ``errors`` and the others go on."""
        from ..errors import CytokitError
        from ..fcs import read_fcs

        name = name or self.population
        rows, results, errors = [], {}, {}
        for path in cohort_files(files):
            try:
                res = self.strategy.apply(read_fcs(path), panel=self.panel, tube=self.tube)
                row = res.populations.set_index(S.POPULATION).loc[name]
                rows.append({"sample": path.stem, S.COUNT: int(row[S.COUNT]), S.PARENT_COUNT: int(row[S.PARENT_COUNT]),
                             S.PCT_PARENT: float(row[S.PCT_PARENT]), S.FLAGS: row[S.FLAGS],
                             S.REVIEW: bool(row[S.REVIEW]), S.NOTES: row[S.NOTES]})
                results[path.stem] = res
            except (CytokitError, KeyError) as exc:
                errors[path.stem] = str(exc)
                log.warning("%s: %s", path.name, exc)
        table = pd.DataFrame(rows, columns=["sample", S.COUNT, S.PARENT_COUNT, S.PCT_PARENT, S.FLAGS, S.REVIEW, S.NOTES])
        out, reason = flag_outliers(table[S.PCT_PARENT], table[S.FLAGS])
        table["outlier"], table["reason"] = out.astype(bool), reason
        return CohortResult(name, table, results, errors)

    def to_yaml(self) -> str:
        return self.strategy.to_yaml()

    def save(self, path: str | Path) -> Path:
        """Write the edited strategy YAML (atomically); ``cytokit run`` / ``load_strategy`` read it as is."""
        return self.strategy.save(path)


def cohort_files(files: Iterable[str | Path] | str | Path) -> list[Path]:
    """FCS paths from a list, a folder, or a run's results folder (``samples.csv`` ``file`` column)."""
    if isinstance(files, (str, Path)):
        root = Path(files)
        if (root / "samples.csv").exists():
            df = pd.read_csv(root / "samples.csv", dtype=str).fillna("")
            out = []
            for f in df[S.FILE]:
                p = Path(f)
                out.append(p if p.is_absolute() or p.exists() else (root / p))
            return out
        if root.is_dir():
            return sorted(root.glob("*.fcs"))
        return [root]
    return [Path(f) for f in files]
