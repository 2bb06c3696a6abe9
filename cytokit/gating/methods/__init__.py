"""The registry of automated (and fixed) gate methods: :data:`GATE_METHODS`.

Each entry names a parameter model (pydantic, validated declaratively) and a fit function
``function(X, params, *, dims, gate_id) -> FitResult`` (see :mod:`.base`);
``GATE_METHODS[name].fit(X, params)`` validates a params dict and fits. Adding a method = write one
function and add one :class:`GateMethod` line below.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import ValidationError

from ...errors import GatingError
from ...results import schema as S
from ...results.review import REVIEW_FLAGS, needs_review, review_columns, split_flags
from .base import FitResult, GateMethod, MethodParams
from .density import ThresholdParams, fit_threshold
from .fixed import (BooleanParams, FixedGateParams, PolygonParams, RectangleParams, fit_boolean, fit_fixed,
                    fit_polygon, fit_rectangle)
from .scatter import (DensityPolygonParams, GMMEllipseParams, SingletParams, fit_density_polygon,
                      fit_gmm_ellipse, fit_singlets)
from .threshold import (IntervalParams, PhenotypeParams, QuadrantParams, ThresholdGateParams, fit_interval,
                        fit_phenotype, fit_threshold_gate)

GATE_METHODS: dict[str, GateMethod] = {m.name: m for m in (
    GateMethod("threshold", ThresholdGateParams, fit_threshold_gate, (1,),
               "one marker above/below a density threshold (valley, tail, quantile or fixed)", takes_reference=True),
    GateMethod("interval", IntervalParams, fit_interval, (1,),
               "one marker between two fitted thresholds (e.g. CD56dim)", takes_reference=True),
    GateMethod("quadrant", QuadrantParams, fit_phenotype, (2,),
               "one quadrant from two fitted thresholds", takes_reference=True),
    GateMethod("phenotype", PhenotypeParams, fit_phenotype, None,
               "several markers +/-, optionally some OR-ed (e.g. CD3- and CD56+ and/or CD16+)", takes_reference=True),
    GateMethod("gmm_ellipse", GMMEllipseParams, fit_gmm_ellipse, None,
               "ellipse of the Gaussian-mixture component nearest a target (scatter populations)", takes_template=True),
    GateMethod("density_polygon", DensityPolygonParams, fit_density_polygon, (2,),
               "polygon along a density contour around the peak nearest a target"),
    GateMethod("singlets", SingletParams, fit_singlets, (2,),
               "band around the area/height diagonal (doublet exclusion)"),
    GateMethod("rectangle", RectangleParams, fit_rectangle, None, "fixed manual rectangle / range"),
    GateMethod("polygon", PolygonParams, fit_polygon, (2,), "fixed manual polygon"),
    GateMethod("fixed", FixedGateParams, fit_fixed, None, "a concrete gate imported from Gating-ML or FlowJo"),
    GateMethod("boolean", BooleanParams, fit_boolean, (0,), "and/or/not of other populations",
               needs_masks=True),
)}


def get_method(name: str) -> GateMethod:
    """The registry entry ``name``; :class:`GatingError` lists the known ones otherwise."""
    try:
        return GATE_METHODS[name]
    except KeyError:
        raise GatingError(f"unknown gate method {name!r}; known: {', '.join(sorted(GATE_METHODS))}") from None


def fit_gate(method: str, X: np.ndarray, params: dict[str, Any] | MethodParams | None = None, *,
             dims: tuple[str, ...] = (), gate_id: str = "gate", reference: np.ndarray | None = None,
             template: np.ndarray | None = None, anchor: np.ndarray | None = None) -> FitResult:
    """Validate ``params`` for ``method`` and fit it on ``X`` (the parent's events in ``dims``).

    ``reference``: the events of a negative-reference population in the same ``dims`` (same scale), for
    methods with ``takes_reference`` (threshold-type): where a lone mode counts as positive is then measured
    from that population's main mode in this file rather than from ``negative_max``. ``template``: events of
    a population holding lymphocytes only, for methods with ``takes_template`` (a scatter gate redrawn around
    them). ``anchor``: the parent's events inside a back-gating reference's own gate, for the same methods
    (a scatter gate that missed the lymphocytes chooses its mixture component by them). Invalid parameters,
    a reference for a method without one, or a fit that cannot be made raise :class:`GatingError`.
    """
    m = get_method(method)
    if reference is not None and not m.takes_reference:
        raise GatingError(f"gate {gate_id!r}: method {method!r} takes no negative reference")
    if (template is not None or anchor is not None) and not m.takes_template:
        raise GatingError(f"gate {gate_id!r}: method {method!r} takes no template")
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    dims = tuple(dims) or tuple(f"x{i}" for i in range(X.shape[1] if X.ndim == 2 else 0))
    if m.n_dims is not None and len(dims) not in m.n_dims:
        raise GatingError(f"gate {gate_id!r}: method {method!r} takes {m.n_dims} dimension(s), got {list(dims)}")
    try:
        p = m.validate_params(params)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
        raise GatingError(f"gate {gate_id!r}: invalid parameters for {method!r}: {msgs}") from None
    try:
        if template is not None or anchor is not None:
            fit = m.function(X, p, dims=dims, gate_id=gate_id,
                             template=None if template is None else np.asarray(template),
                             anchor=None if anchor is None else np.asarray(anchor))
        elif reference is None:
            fit = m.function(X, p, dims=dims, gate_id=gate_id)
        else:
            ref = np.asarray(reference)
            fit = m.function(X, p, dims=dims, gate_id=gate_id, reference=ref[:, None] if ref.ndim == 1 else ref)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise GatingError(f"gate {gate_id!r}: cannot fit {method!r}: {exc}") from None
    # every fit records the parameters that produced it (validated, defaults filled in)
    return dataclasses.replace(fit, info={**fit.info, "gate_method": method, "params": p.model_dump(mode="json")})


__all__ = ["GATE_METHODS", "REVIEW_FLAGS", "needs_review", "review_columns", "split_flags", "FitResult", "GateMethod", "MethodParams",
           "ThresholdParams", "fit_gate",
           "fit_threshold", "get_method"]
