"""The gate editor's logic as a plain state model (no widgets): select a population, change one control,
re-fit that population and its descendants, read counts, apply to a cohort, save YAML.

Contract
--------
:class:`GateEditorState` holds the edited :class:`~cytokit.gating.Strategy` and the current
:class:`~cytokit.gating.GatingResult` of one sample. :meth:`~GateEditorState.controls` lists the editable
parameters of a population's method as :class:`Control` records, from one registry keyed by the method's
parameter model (:data:`~cytokit.notebook.controls.METHOD_CONTROLS`: threshold positions, mode and that mode's
rules, signs; ellipse coverage, components, target, redraw; singlet widths; polygon level...), and the
parameters a family of methods shares (:data:`SHARED_CONTROLS`: a scatter lymphocyte gate's back-gating
reference and lymphocyte-doublet convention). A method without an entry gets the shared controls only and
:meth:`~GateEditorState.controls_note` says so.
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
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import GatingError
from ..io_utils import matching_files
from ..gating import GatingResult, Strategy, load_strategy
from ..gating.model import StrategyDefinition
from ..results import schema as S
from ..sample import Sample
from .controls import MODES, NO_POPULATION, SHARED_CONTROLS, Control, MethodControls, Slot  # noqa: F401 - re-exported
from .controls import (method_controls, position_range, shared_controls, slot_controls, start_position,
                       unedited_reasons)

log = logging.getLogger(__name__)

#: :meth:`GateEditorState.controls_note` of a population whose method has no ``METHOD_CONTROLS`` entry
NO_CONTROLS_NOTE = "method {method!r} has no editor controls{shared}: edit its parameters in the strategy YAML"


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


def _leaf_names(params: Any) -> set[str]:
    """The names of the parameters set in ``params`` (nested threshold entries included; a list of numbers
    is one parameter)."""
    out: set[str] = set()
    items = params.items() if isinstance(params, dict) else enumerate(params) if isinstance(params, list) else ()
    for k, v in items:
        if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict) for x in v)):
            out |= _leaf_names(v)
        elif isinstance(k, str):
            out.add(k)
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

    def _entry(self, name: str) -> tuple[MethodControls, dict[str, Any]]:
        """The population's :data:`METHOD_CONTROLS` entry (an empty one for a method without an entry) and
        its params expanded by it (a copy)."""
        spec = self.strategy.population(name)
        entry = method_controls(spec.method) or MethodControls()
        return entry, entry.expand(spec.params, tuple(spec.dims))

    def controls(self, name: str | None = None) -> list[Control]:
        """The editable parameters of a population's method, with current values: its thresholds' (position,
        method and that method's rules), its own, then those its family shares (:data:`SHARED_CONTROLS`).
        A method without a :data:`METHOD_CONTROLS` entry gets the shared ones only (:meth:`controls_note`)."""
        name = name or self.population
        dims = tuple(self.strategy.population(name).dims)
        entry, p = self._entry(name)
        positions = entry.positions(self.result, name)
        out: list[Control] = []
        for slot in entry.slots(p, dims):
            tp = _get(p, slot.path) or {}
            start = None if slot.path in positions else self._fixed_start(name, slot, tp, positions)
            out += slot_controls(slot, tp, positions.get(slot.path),
                                 position_range(self.result, name, dims[slot.dim]), start)
        out += entry.own(p, dims)
        return out + shared_controls(self.strategy.definition, name, p)

    def controls_note(self, name: str | None = None) -> str:
        """What the editor cannot edit for a population: its method has no :data:`METHOD_CONTROLS` entry, or
        its YAML sets parameters without a control (named; the reasons: :func:`unedited_reasons`). Empty
        when every parameter it sets has a control."""
        name = name or self.population
        spec = self.strategy.population(name)
        if method_controls(spec.method) is None:
            shared = " beyond the shared ones" if shared_controls(self.strategy.definition, name, spec.params) else ""
            return NO_CONTROLS_NOTE.format(method=spec.method, shared=shared)
        unedited = sorted(_leaf_names(spec.params) & set(unedited_reasons(spec.method)))
        return f"set in the YAML, no control here: {', '.join(unedited)}" if unedited else ""

    # -- editing ---------------------------------------------------------------------------------------
    def set(self, key: tuple[Any, ...], value: Any, *, name: str | None = None) -> dict[str, Any]:
        """Change one control (a :class:`Control` ``key``) and re-fit; returns the new :meth:`counts`.

        Setting a threshold's ``value`` makes it fixed at that position; setting its ``mode`` keeps the
        other threshold parameters, and ``fixed`` starts at the fitted position, else where the data are
        (:func:`~cytokit.notebook.controls.start_position`: the parent's median, on the gate's scale); None
        for a value that takes it (a rectangle's open side) keeps or makes it None; :data:`NO_POPULATION`
        unsets a population parameter (its default); one element of a list parameter (``target``,
        ``bounds``...) is set in the list the controls show."""
        name = name or self.population
        entry, p = self._entry(name)
        key = tuple(key)
        if value == NO_POPULATION:
            value = None
        if key[-1] == "value" and isinstance(_get(p, key[:-1]), dict):
            if value is None:
                raise GatingError(f"{name}: a threshold position needs a number (on the gate's scale)")
            tp = dict(_get(p, key[:-1]))
            tp.update(mode="fixed", value=float(value))
            _set(p, key[:-1], tp)
        elif key[-1] == "mode" and value == "fixed":
            tp = dict(_get(p, key[:-1]))
            if tp.get("value") is None:
                dims = tuple(self.strategy.population(name).dims)
                slot = next(s for s in entry.slots(p, dims) if s.path == key[:-1])
                tp["value"] = self._fixed_start(name, slot, tp, entry.positions(self.result, name))
            tp["mode"] = "fixed"
            _set(p, key[:-1], tp)
        else:
            if key[-1] == "mode":
                tp = _get(p, key[:-1])
                if isinstance(tp, dict):
                    tp.pop("value", None)
            if isinstance(key[-1], int) and not isinstance(_get(p, key[:-1]), list):
                shown = sorted((c.key[-1], c.value) for c in self.controls(name) if c.key[:-1] == key[:-1])
                _set(p, key[:-1], [v for _i, v in shown])  # a default or unset list: the values shown
            _set(p, key, value)
        return self.set_params(p, name=name)

    def _fixed_start(self, name: str, slot: Slot, tp: dict[str, Any],
                     positions: dict[tuple[Any, ...], float]) -> float:
        """Where threshold ``slot`` (params ``tp``) starts when made fixed, on the gate's scale: its fitted
        position (``positions``, by slot path), else :func:`~cytokit.notebook.controls.start_position`."""
        if positions.get(slot.path) is not None:
            return float(positions[slot.path])
        dims = tuple(self.strategy.population(name).dims)
        return start_position(self.result, name, dims[slot.dim], tp.get("bounds"))

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
        entry, p = self._entry(name)
        for slot in entry.slots(p, tuple(self.strategy.population(name).dims)):
            tp = _get(p, slot.path)
            if isinstance(tp, dict) and tp.get("mode") == "fixed":  # start from an adaptive default
                _set(p, slot.path, {k: v for k, v in tp.items() if k not in ("mode", "value")})
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
            return matching_files(root)
        return [root]
    return [Path(f) for f in files]
