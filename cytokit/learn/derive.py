"""A base strategy derived from an expert's gate tree (when no strategy is given to ``cytokit learn``).

Contract
--------
:func:`derive_strategy` turns each expert gate into an adaptive gate of the matching kind, on the
channel the expert used (``$PnN``; a ``Comp-`` prefix is dropped, the strategy compensates with the
file's matrix when it has one, fluorescence logicle with W estimated, scatter linear):

* a range/rectangle whose sides are open or lie beyond the parent's events on all but one side per
  dimension -> ``threshold`` (1 dimension) or ``quadrant``/``phenotype`` (signs from the kept side);
  a range/rectangle that cuts on both sides of one dimension only -> ``interval`` on that dimension.
  Of a dimension cut on both sides, a side that excludes at most :data:`LOOSE_FRACTION` of the gate's
  events while the other excludes more is open (an edge drawn loosely around the population);
* a quadrant gate -> ``quadrant``/``phenotype`` with its signs;
* a polygon, ellipse or closed rectangle on area/height of one scatter (``FSC-A``/``FSC-H``) ->
  ``singlets``; any other closed shape -> ``gmm_ellipse`` (target = the expert population's centre);
* a Boolean gate -> ``boolean`` of the same populations.

Population names are the expert's (made unique with their path when repeated), so no mapping is needed.
Thresholds start without bounds: :func:`cytokit.learn.search.tune_definition` then bounds them around
the expert's placement measured on the strategy's own scale.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from pydantic import ValidationError

from ..errors import ConfigError

from ..gates import BooleanGate, QuadrantGate, RectangleGate
from ..gating import Strategy
from ..gating.model import StrategyDefinition
from ..gatingml.model import DimensionSpec, GatingDocument

log = logging.getLogger(__name__)

COMP_PREFIX = re.compile(r"^(FJComp-|Comp-|comp-)")
#: an expert range side beyond this quantile of the parent's events counts as open
OPEN_QUANTILE = 0.002
#: of a dimension cut on both sides, a side excluding at most this fraction of the gate's events (among
#: those passing its other sides) while the other side excludes more counts as open
LOOSE_FRACTION = 0.025


def _channel(dim: DimensionSpec, document: GatingDocument) -> str:
    """The $PnN an expert dimension reads: a compensated dimension named after a matrix's fluorochrome
    (FlowJo 9's ``<FITC-A>``, a Gating-ML matrix's own names) is that fluorochrome's detector; otherwise the
    name without a ``Comp-`` prefix."""
    matrix = document.matrices.get(dim.compensation)
    if matrix is not None and dim.name in matrix.fluorochromes and len(matrix.fluorochromes) == len(matrix.detectors):
        return matrix.detectors[matrix.fluorochromes.index(dim.name)]
    return COMP_PREFIX.sub("", dim.name)


def _names(document: GatingDocument) -> dict[str, str]:
    counts: dict[str, int] = {}
    for n in document.nodes:
        counts[n.name] = counts.get(n.name, 0) + 1
    return {n.id: (n.name if counts[n.name] == 1 else "/".join(document.path(n.id))) for n in document.nodes}


def _sides(gate: RectangleGate, X: np.ndarray) -> list[str | None]:
    """Per dimension: '+' (only the lower side cuts events), '-' (only the upper), 'both' or None.

    A side cuts when it lies inside the parent's events (beyond their :data:`OPEN_QUANTILE` quantile).
    A dimension cut on both sides, one of which excludes at most :data:`LOOSE_FRACTION` of the gate's
    events among those passing its other sides while the other excludes more, is cut on the other side
    only (an edge drawn loosely around the population)."""
    lows = [-np.inf if lo is None else lo for lo in gate.lower]
    highs = [np.inf if hi is None else hi for hi in gate.upper]
    with np.errstate(invalid="ignore"):
        inside = [(X[:, i] >= lo) & (X[:, i] < hi) for i, (lo, hi) in enumerate(zip(lows, highs))]
    n_in = int(np.logical_and.reduce(inside).sum()) if inside else 0
    out: list[str | None] = []
    for i, (lo, hi) in enumerate(zip(gate.lower, gate.upper)):
        x = X[:, i][np.isfinite(X[:, i])]
        qlo, qhi = (np.quantile(x, [OPEN_QUANTILE, 1 - OPEN_QUANTILE]) if x.size else (np.inf, -np.inf))
        cuts_lo = lo is not None and lo > qlo
        cuts_hi = hi is not None and hi < qhi
        if cuts_lo and cuts_hi:
            others = np.logical_and.reduce([m for j, m in enumerate(inside) if j != i] or [np.ones(len(X), bool)])
            n_lo, n_hi = int(np.sum(X[others, i] < lo)), int(np.sum(X[others, i] >= hi))
            loose = LOOSE_FRACTION * n_in
            if n_lo <= loose < n_hi:
                cuts_lo = False
            elif n_hi <= loose < n_lo:
                cuts_hi = False
        out.append("both" if cuts_lo and cuts_hi else "+" if cuts_lo else "-" if cuts_hi else None)
    return out


def _is_area_height(dims: tuple[str, ...]) -> bool:
    if len(dims) != 2:
        return False
    a, b = dims
    return a[:-1] == b[:-1] and {a[-1:], b[-1:]} == {"A", "H"} and a.upper().startswith(("FSC", "SSC"))


def derive_strategy(document: GatingDocument, fcs: str | Path, *, mapping: Mapping[str, str] | None = None,
                    name: str = "learned", source: str | Path | None = None) -> Strategy:
    """A strategy whose populations mirror ``document``'s gates (see module docstring); ``fcs`` is one
    of the expert's files (used to see which range sides actually cut events). ``mapping`` (expert ->
    strategy names) renames populations; ``source`` (the expert's gates file) is named in errors."""
    from ..fcs import read_fcs
    from ..gatingml.evaluate import DimensionResolver, evaluate_document

    raw = read_fcs(fcs)
    masks = evaluate_document(document, raw)
    resolver = DimensionResolver(document, raw)
    ids = _names(document)
    rename = dict(mapping or {})
    pop = {nid: rename.get(n, rename.get("/".join(document.path(nid)), n)) for nid, n in ids.items()}
    populations: list[dict[str, Any]] = []
    for node in document.nodes:
        gate = node.gate
        entry: dict[str, Any] = {"name": pop[node.id], "parent": pop[node.parent] if node.parent else None}
        if isinstance(gate, BooleanGate):
            ops = [("!" if neg else "") + pop.get(ref, ref) for ref, neg in gate.operands]
            entry.update(method="boolean", params={"op": gate.op, "operands": ops})
            if node.complement:
                log.warning("%s: complemented Boolean gate kept as its positive form", node.name)
            populations.append(entry)
            continue
        ratios = [d.name for d in node.dims if d.ratio]
        if ratios:
            raise ConfigError(f"expert gate {node.name!r} is drawn on the ratio dimension(s) {', '.join(ratios)} "
                              "(a Gating-ML fratio transformation), which a strategy derived from the expert's gates "
                              "cannot gate on: give a base strategy (--strategy) and map the other populations",
                              path=source)
        dims = tuple(_channel(d, document) for d in node.dims)
        parent = masks[node.parent] if node.parent else np.ones(raw.n_events, dtype=bool)
        X = resolver.coordinates(node)[parent]
        entry["dims"] = list(dims)
        sides: list[str | None] = []
        if isinstance(gate, RectangleGate):
            sides = _sides(gate, X)
            if node.complement and len(dims) == 1 and sides[0] in ("+", "-"):
                sides = ["-" if sides[0] == "+" else "+"]
        elif isinstance(gate, QuadrantGate):
            sides = ["+" if s > 0 else "-" for s in gate.signs]
            if node.complement:
                sides = []
        kept = [(d, s) for d, s in zip(dims, sides) if s is not None]
        if sides and kept and all(s in ("+", "-") for _d, s in kept) and not node.complement or (
                isinstance(gate, RectangleGate) and node.complement and len(dims) == 1 and kept):
            entry["dims"] = [d for d, _s in kept]
            signs = [s for _d, s in kept]
            if len(kept) == 1:
                entry.update(method="threshold", params={"sign": signs[0], "threshold": {}})
            else:
                entry.update(method="quadrant" if len(kept) == 2 else "phenotype",
                             params={"signs": signs, "thresholds": [{} for _ in kept]})
        elif (isinstance(gate, RectangleGate) and not node.complement and sides.count("both") == 1
              and sides.count(None) == len(dims) - 1):
            entry["dims"] = [dims[sides.index("both")]]
            entry.update(method="interval", params={"lower": {}, "upper": {"reference_peak": "highest"}})
        elif _is_area_height(dims) and not node.complement:
            area, height = (dims if dims[0].endswith("A") else dims[::-1])
            entry.update(dims=[area, height], method="singlets", params={})
        else:
            entry.update(method="gmm_ellipse", params={"n_components": 3, "target": [0.5] * len(dims)})
            if node.complement:
                log.warning("%s: complemented closed gate approximated by an ellipse", node.name)
        populations.append(entry)
    top = [p["name"] for p in populations if p["parent"] is None]
    lymph = next((p["name"] for p in populations if "singlet" in p["name"].lower()), top[0] if top else None)
    try:
        definition = StrategyDefinition.model_validate({
            "name": name, "description": f"derived from the expert gates of {Path(fcs).name}",
            "compensation": "file_if_present", "lymphocytes": lymph, "populations": populations})
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"cannot derive a strategy from the expert's gates: {msgs}", path=fcs) from None
    return Strategy(definition)
