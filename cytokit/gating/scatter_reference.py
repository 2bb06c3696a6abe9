"""Which scatter gates are back-gated: a gate whose method takes a back-gating reference (its parameters are
:class:`~.methods.scatter.BackgateParams`: ``gmm_ellipse``, ``density_polygon``) and that names one
(``backgate_reference``, e.g. T cells). :mod:`.backgating` back-gates the populations below such a gate onto its
scatter; the engine gives its own row the in-and-out error and the rows below it the dilution."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .methods import GATE_METHODS
from .methods.scatter import BackgateParams

if TYPE_CHECKING:  # pragma: no cover
    from .model import PopulationSpec


def backgate_reference(spec: "PopulationSpec") -> str | None:
    """The back-gating reference (a population name) of ``spec`` when its method takes one (the registry entry's
    parameters are :class:`~.methods.scatter.BackgateParams`) and it names one; None otherwise."""
    method = GATE_METHODS.get(spec.method)
    if method is None or not issubclass(method.params_model, BackgateParams):
        return None
    ref = spec.params.get("backgate_reference")
    return None if ref is None else str(ref)
