"""Gating strategies: apply to a Sample, tune (new strategy with other parameters, refit) and save.

Loading (built-in name, YAML, Gating-ML or FlowJo file) is :func:`cytokit.gating.loading.load_strategy`.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, GatingError
from ..io_utils import atomic_write_text
from ..sample import Sample
from ..yamlio import dump_yaml
from .engine import fit_all
from .fit_state import FitState
from .model import dependents
from .model import PopulationSpec, StrategyDefinition
from .preprocess import QCOutcome, prepare
from .result import GatingResult

log = logging.getLogger(__name__)


class Strategy:
    """A validated gating strategy (estimator style: parameters in, :class:`GatingResult` out).

    Parameters live in :attr:`definition` and never change behind a returned object (scikit-learn's
    ``clone``/``set_params`` semantics): :meth:`set_params` returns a *new* strategy with one population's
    method parameters changed (validated); :meth:`refit` re-fits a population and everything below it on an
    existing result and returns a new result; :meth:`clone` copies; :meth:`save` writes the YAML. Every
    :class:`GatingResult` records the definition that produced it.
    """

    def __init__(self, definition: StrategyDefinition, path: str | Path | None = None) -> None:
        self.definition = definition
        self.path = Path(path) if path is not None else None

    # -- introspection -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def population_names(self) -> list[str]:
        return [p.name for p in self.definition.populations]

    def population(self, name: str) -> PopulationSpec:
        try:
            return self.definition.population(name)
        except KeyError:
            raise GatingError(f"strategy {self.name!r} has no population {name!r}; populations: "
                              f"{', '.join(self.population_names)}", path=self.path) from None

    def __repr__(self) -> str:
        return f"Strategy({self.name!r}, {len(self.definition.populations)} populations)"

    # -- applying ----------------------------------------------------------------------------------
    def apply(self, sample: Sample, panel: Any = None, *, tube: str | None = None, qc: Any = True) -> GatingResult:
        """Gate one raw Sample (linear scale, as read) with the per-sample chain of the pipeline
        (:func:`~cytokit.gating.preprocess.prepare`): resolve markers with ``panel`` (Panel, name/path,
        None = the strategy's, False = already resolved), QC, compensate, transform, then fit every
        population top-down. Returns a :class:`GatingResult`.

        ``qc=True`` (default) runs the same QC as the pipeline's default ``qc:`` block, so counts equal the
        pipeline's populations table; the result's masks are then over the events QC kept
        (``result.qc.keep`` maps them to the events read). ``qc=False`` gates every event; a dict is a
        pipeline ``qc:`` block (a ``min_events`` in it raises QCError below that many kept events).

        Runs with one BLAS thread: its matrices are tiny (channels x channels, 2-D covariances), so BLAS
        threads only add overhead; parallelism belongs to the executor that maps samples.
        """
        with threadpool_limits(1):
            prepared = prepare(sample, self.definition, panel=panel, tube=tube, qc=qc)
            return self.apply_prepared(prepared.sample, prepared.plan, qc=prepared.qc)

    def apply_prepared(self, prepared: Sample, plan: Any = (), *, qc: QCOutcome | None = None) -> GatingResult:
        """Fit on a Sample already resolved/QC-ed/compensated/transformed as this strategy expects
        (:func:`~cytokit.gating.preprocess.prepare`); ``qc`` is recorded on the result."""
        state = fit_all(self.definition, prepared)
        return GatingResult(prepared, self.definition.model_copy(deep=True), tuple(plan), state, qc=qc)

    # -- tuning ------------------------------------------------------------------------------------
    def clone(self) -> "Strategy":
        """A copy with the same parameters (its definition is independent of this one's)."""
        new = copy.copy(self)
        new.definition = self.definition.model_copy(deep=True)
        return new

    def set_params(self, name: str, *, replace: bool = False, **params: Any) -> "Strategy":
        """A NEW strategy whose population ``name`` has these method parameters (merged into the current
        ones unless ``replace``); ``method=`` and ``dims=`` change the method or dimensions. Validated
        (ConfigError naming the population); this strategy is left unchanged."""
        spec = self.population(name)
        method = params.pop("method", spec.method)
        dims = tuple(params.pop("dims", spec.dims))
        new_params = params if replace or method != spec.method else _merge(spec.params, params)
        data = self.definition.model_dump()
        for p in data["populations"]:
            if p["name"] == name:
                p.update(method=method, dims=dims, params=new_params)
        try:
            definition = StrategyDefinition.model_validate(data)
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"strategy {self.name!r}, population {name!r}: {msgs}", path=self.path) from None
        new = self.clone()
        new.definition = definition
        return new

    def refit(self, result: GatingResult, name: str, **params: Any) -> GatingResult:
        """Re-fit population ``name`` and its descendants only, on the already-prepared events of
        ``result``; returns a new result. With ``params``, this is
        ``self.set_params(name, **params).refit(result, name)``: the new result records the changed
        parameters (``new.definition``) while this strategy and ``result`` are left unchanged."""
        if params:
            return self.set_params(name, **params).refit(result, name)
        self.population(name)
        redo = dependents(self.definition, name)
        state = FitState(masks=dict(result.state.masks), fits=dict(result.state.fits),
                         skipped=dict(result.state.skipped))
        fit_all(self.definition, result.sample, state, only=set(redo))
        log.info("refitted %s", ", ".join(redo))
        return GatingResult(result.sample, self.definition.model_copy(deep=True), result.transforms, state,
                            qc=result.qc)

    # -- saving ------------------------------------------------------------------------------------
    def to_yaml(self) -> str:
        data = self.definition.model_dump(mode="json", exclude_defaults=False)
        return dump_yaml(_prune(data))

    def save(self, path: str | Path) -> Path:
        """Write the strategy as YAML (atomically); :func:`load_strategy` reads it back identically."""
        atomic_write_text(path, self.to_yaml())
        return Path(path)


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(old)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _prune(data: Any) -> Any:
    """Drop None values from dicts (keeps the YAML readable; None means 'default' everywhere)."""
    if isinstance(data, dict):
        return {k: _prune(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_prune(v) for v in data]
    return data
