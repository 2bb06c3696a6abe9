"""Shared pieces of the gate-method registry: the fit result, the method record and small helpers.

Contract
--------
A gate method is a plain function ``fit(X, params, *, dims, gate_id) -> FitResult`` (threshold-type methods
also take ``reference=``: a negative-reference population's events in the same dims). ``X`` holds the
*parent* population's events as an ``(n_events, len(dims))`` float array **in the gate's coordinate
space** (compensated and transformed as the strategy says: logicle 0..1 for fluorescence, linear scatter);
``params`` is an instance of the method's pydantic parameter model. The result is a concrete gate from
:mod:`cytokit.gates` plus flags (``fell_back:tail``, ``no_valley``, ``unreliable``...) and ``info`` (the
fitted numbers and the parameters used), so every automated decision can be reviewed and exported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

from ...gates import Gate


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FitResult:
    """What a gate method returns for one sample.

    ``gate`` is the population's concrete gate; when it is a :class:`~cytokit.gates.BooleanGate`,
    ``components`` holds the gates its operands name (evaluated on the same parent events).
    ``flags`` are short machine-readable words; ``info`` records fitted values and parameters.
    """

    gate: Gate
    flags: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    components: tuple[Gate, ...] = ()


FitFunction = Callable[..., FitResult]


@dataclass(frozen=True)
class GateMethod:
    """One entry of :data:`cytokit.gating.methods.GATE_METHODS`."""

    name: str
    params_model: type[MethodParams]
    function: FitFunction
    n_dims: tuple[int, ...] | None  # allowed numbers of dimensions; None = any >= 1
    description: str
    needs_masks: bool = False  # evaluated from other populations' masks (boolean), not from events
    #: accepts ``reference=`` (a negative-reference population's events in the same dims, see
    #: :class:`~cytokit.gating.model.PopulationSpec` ``negative_reference``)
    takes_reference: bool = False
    #: accepts ``template=`` (a lymphocytes-only population's scatter events: a scatter gate redrawn around
    #: them, see :class:`~cytokit.gating.methods.scatter.GMMEllipseParams` ``redraw``)
    takes_template: bool = False

    def validate_params(self, params: dict[str, Any] | MethodParams | None) -> MethodParams:
        """Validate ``params`` against this method's model (raises pydantic ValidationError)."""
        if isinstance(params, self.params_model):
            return params
        return self.params_model.model_validate(dict(params or {}))

    def fit(self, X: np.ndarray, params: dict[str, Any] | MethodParams | None = None, *,
            dims: tuple[str, ...] = (), gate_id: str = "gate") -> FitResult:
        """Fit on ``X`` (the parent's events, gate coordinates); ``params`` as a dict or model."""
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[:, None]
        dims = tuple(dims) or tuple(f"x{i}" for i in range(X.shape[1]))
        return self.function(X, self.validate_params(params), dims=dims, gate_id=gate_id)


def subsample(X: np.ndarray, max_events: int, seed: int = 0) -> np.ndarray:
    """At most ``max_events`` rows of ``X`` drawn without replacement (deterministic for a seed)."""
    if max_events <= 0 or X.shape[0] <= max_events:
        return X
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(X.shape[0], size=max_events, replace=False))
    return X[idx]


def every_nth(a: np.ndarray, max_n: int) -> np.ndarray:
    """At most ``max_n`` rows of ``a``: a systematic sample (every k-th row, k = ceil(rows / max_n)); events
    arrive in random order, so this samples evenly over acquisition time. ``a`` itself when it is small enough."""
    n = a.shape[0]
    return a[:: int(np.ceil(n / max_n))] if n > max_n else a


def gather(events: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``events[np.ix_(rows, cols)]`` (a new C-contiguous array), about twice as fast: whole rows are
    taken first (an event's channels share a cache line), then the columns of that smaller array."""
    return events.take(rows, axis=0)[:, cols]


def finite_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` with no NaN/inf (as float64)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    return X[np.all(np.isfinite(X), axis=1)]
