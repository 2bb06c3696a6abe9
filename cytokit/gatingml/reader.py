"""Read Gating-ML 2.0 into a :class:`~cytokit.gatingml.model.GatingDocument`.

Supported: rectangle/range, polygon, ellipsoid, quadrant (one node per quadrant; dividers may hold
several values), boolean and/or/not gates with ``use-as-complement``, ``parent_id`` references;
dimensions with ``compensation-ref`` (``uncompensated``, ``FCS`` or a ``spectrumMatrix`` id, including
``matrix-inverted-already`` and non-square matrices) and ``transformation-ref``; ratio new dimensions
(``fratio``); flin, flog, fasinh, logicle and hyperlog with optional ``boundMin``/``boundMax``.
Every problem raises :class:`~cytokit.errors.GatingError` naming the file, the gate and the XML line.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from lxml import etree

from ..errors import GatingError
from ..gates import BooleanGate, EllipsoidGate, Gate, PolygonGate, QuadrantGate, RectangleGate
from .model import (TRANSFORM_PARAMS, UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument,
                    SpectrumMatrixSpec, TransformSpec)
from .xmlutil import CYTOKIT_NS, attr, child, children, float_attr, line_of, local, parse_xml

log = logging.getLogger(__name__)

GATE_TAGS = ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")


def read_gatingml(source: str | Path | bytes) -> GatingDocument:
    """Parse a Gating-ML 2.0 file (path) or document (bytes) into an ordered gate hierarchy."""
    root, path = parse_xml(source, what="Gating-ML file")
    if local(root) != "Gating-ML":
        raise GatingError(f"not a Gating-ML document (root element is <{local(root)}>)", path=path)
    transforms: dict[str, TransformSpec] = {}
    matrices: dict[str, SpectrumMatrixSpec] = {}
    nodes: list[GateNode] = []
    renamed: dict[str, tuple[str, str]] = {}
    for el in root.iter():  # gates are normally top-level, but tolerate wrapper elements
        tag = local(el)
        if tag == "transformation":
            spec = parse_transformation(el, path=path)
            transforms[spec.id] = spec
        elif tag == "spectrumMatrix":
            m = parse_spectrum_matrix(el, path=path)
            matrices[m.id] = m
        elif tag in GATE_TAGS:
            parsed = parse_gate_element(el, path=path)
            info = _cytokit_info(el)
            if info is not None and len(parsed) == 1:
                renamed[parsed[0].id] = info
            nodes.extend(parsed)
    if not nodes:
        raise GatingError("Gating-ML document holds no gates", path=path)
    return GatingDocument(tuple(_restore_ids(nodes, renamed)), transforms, matrices, source=path)


def _cytokit_info(el: etree._Element) -> tuple[str, str] | None:
    """(original id, name) that cytokit's writer keeps in a gate's custom_info, if present."""
    info = child(el, "custom_info")
    if info is None:
        return None
    for c in info:
        if local(c) == "node" and isinstance(c.tag, str) and c.tag.startswith(f"{{{CYTOKIT_NS}}}"):
            if c.get("id"):
                return c.get("id"), c.get("name") or c.get("id")
    return None


def _restore_ids(nodes: list[GateNode], renamed: dict[str, tuple[str, str]]) -> list[GateNode]:
    """Put back the original ids/names cytokit wrote in custom_info (XML ids must be NCNames)."""
    if not renamed:
        return nodes
    new_id = {x: orig for x, (orig, _) in renamed.items()}
    out = []
    for n in nodes:
        gate = n.gate
        changes: dict = {"id": new_id.get(gate.id, gate.id)}
        if isinstance(gate, BooleanGate):
            changes["operands"] = tuple((new_id.get(g, g), c) for g, c in gate.operands)
        name = renamed[gate.id][1] if gate.id in renamed else n.name
        out.append(GateNode(name, new_id.get(n.parent, n.parent) if n.parent else None,
                            dataclasses.replace(gate, **changes), n.dims))
    return out


# -- gates ------------------------------------------------------------------------------------------
def _gate_id(el: etree._Element, path: str | None) -> str:
    gid = attr(el, "id")
    if not gid:
        raise GatingError(f"<{local(el)}> at {line_of(el)} has no id", path=path)
    return gid


def parse_dimension(el: etree._Element, *, where: str, path: str | None) -> DimensionSpec:
    """A ``gating:dimension`` or ``gating:divider`` element -> DimensionSpec."""
    comp = attr(el, "compensation-ref") or UNCOMPENSATED
    xform = attr(el, "transformation-ref") or None
    fcs = child(el, "fcs-dimension")
    if fcs is not None:
        name = attr(fcs, "name")
        if not name:
            raise GatingError(f"{where}: fcs-dimension without a name at {line_of(fcs)}", path=path)
        return DimensionSpec(name=name, compensation=comp, transform=xform)
    new = child(el, "new-dimension")
    if new is not None:
        ref = attr(new, "transformation-ref")
        if not ref:
            raise GatingError(f"{where}: new-dimension without transformation-ref at {line_of(new)}", path=path)
        return DimensionSpec(name=ref, compensation=comp, transform=xform, ratio=True)
    raise GatingError(f"{where}: dimension at {line_of(el)} names no fcs-dimension or new-dimension", path=path)


def _coords(el: etree._Element, *, where: str, path: str | None) -> tuple[float, ...]:
    out = []
    for c in children(el, "coordinate"):
        out.append(float_attr(c, "value", where=where, path=path, required=True))
    return tuple(out)


def parse_gate_element(el: etree._Element, *, path: str | None,
                       name_of: dict[str, str] | None = None) -> list[GateNode]:
    """One Gating-ML gate element -> GateNode(s) (a quadrant gate yields one node per quadrant)."""
    tag = local(el)
    gid = _gate_id(el, path)
    parent = attr(el, "parent_id") or None
    where = f"{tag} {gid!r} ({line_of(el)})"
    names = name_of or {}
    if tag == "QuadrantGate":
        return _parse_quadrants(el, gid, parent, where=where, path=path, names=names)
    if tag == "BooleanGate":
        gate: Gate = _parse_boolean(el, gid, where=where, path=path)
        return [GateNode(names.get(gid, gid), parent, gate, ())]
    dim_els = list(children(el, "dimension"))
    if not dim_els:
        raise GatingError(f"{where} has no dimensions", path=path)
    dims = tuple(parse_dimension(d, where=where, path=path) for d in dim_els)
    labels = tuple(d.label for d in dims)
    try:
        if tag == "RectangleGate":
            lower = tuple(float_attr(d, "min", where=where, path=path) for d in dim_els)
            upper = tuple(float_attr(d, "max", where=where, path=path) for d in dim_els)
            if all(lo is None and hi is None for lo, hi in zip(lower, upper)):
                raise GatingError(f"{where}: every dimension needs a min or a max", path=path)
            gate = RectangleGate(gid, labels, lower=lower, upper=upper)
        elif tag == "PolygonGate":
            verts = tuple(_coords(v, where=where, path=path) for v in children(el, "vertex"))
            if any(len(v) != 2 for v in verts):
                raise GatingError(f"{where}: every vertex needs 2 coordinates", path=path)
            gate = PolygonGate(gid, labels, vertices=verts)  # type: ignore[arg-type]
        else:  # EllipsoidGate
            mean_el = child(el, "mean")
            cov_el = child(el, "covarianceMatrix")
            ds_el = child(el, "distanceSquare")
            if mean_el is None or cov_el is None or ds_el is None:
                raise GatingError(f"{where}: needs mean, covarianceMatrix and distanceSquare", path=path)
            mean = _coords(mean_el, where=where, path=path)
            cov = tuple(
                tuple(float_attr(e, "value", where=where, path=path, required=True) for e in children(r, "entry"))
                for r in children(cov_el, "row"))
            ds = float_attr(ds_el, "value", where=where, path=path, required=True)
            gate = EllipsoidGate(gid, labels, mean=mean, covariance=cov, distance_square=ds)
    except GatingError as exc:
        if path and path not in str(exc):
            raise GatingError(f"{where}: {exc}", path=path) from None
        raise
    return [GateNode(names.get(gid, gid), parent, gate, dims)]


def _parse_boolean(el: etree._Element, gid: str, *, where: str, path: str | None) -> BooleanGate:
    ops = [c for c in el if local(c) in ("and", "or", "not")]
    if len(ops) != 1:
        raise GatingError(f"{where}: expected exactly one of and/or/not", path=path)
    op_el = ops[0]
    operands = []
    for ref in children(op_el, "gateReference"):
        target = attr(ref, "ref")
        if not target:
            raise GatingError(f"{where}: gateReference without ref at {line_of(ref)}", path=path)
        comp = (attr(ref, "use-as-complement") or "false").strip().lower() == "true"
        operands.append((target, comp))
    op = local(op_el)
    if op == "not" and len(operands) != 1:
        raise GatingError(f"{where}: 'not' takes exactly one gate reference", path=path)
    if op in ("and", "or") and len(operands) < 2:
        raise GatingError(f"{where}: '{op}' needs at least two gate references", path=path)
    return BooleanGate(gid, (), op=op, operands=tuple(operands))


def _parse_quadrants(el: etree._Element, gid: str, parent: str | None, *, where: str, path: str | None,
                     names: dict[str, str]) -> list[GateNode]:
    dividers: dict[str, tuple[DimensionSpec, list[float]]] = {}
    for d in children(el, "divider"):
        did = attr(d, "id")
        if not did:
            raise GatingError(f"{where}: divider without id at {line_of(d)}", path=path)
        values = []
        for v in children(d, "value"):
            try:
                values.append(float((v.text or "").strip()))
            except ValueError:
                raise GatingError(f"{where}: divider {did!r} value {v.text!r} is not a number", path=path) from None
        if not values:
            raise GatingError(f"{where}: divider {did!r} has no value", path=path)
        dividers[did] = (parse_dimension(d, where=where, path=path), sorted(values))
    nodes = []
    for q in children(el, "Quadrant"):
        qid = attr(q, "id")
        if not qid:
            raise GatingError(f"{where}: Quadrant without id at {line_of(q)}", path=path)
        dims, lower, upper = [], [], []
        for pos in children(q, "position"):
            ref = attr(pos, "divider_ref")
            if ref not in dividers:
                raise GatingError(f"{where}: quadrant {qid!r} refers to unknown divider {ref!r}", path=path)
            loc = float_attr(pos, "location", where=where, path=path, required=True)
            spec, values = dividers[ref]
            below = [v for v in values if v <= loc]
            above = [v for v in values if v > loc]
            dims.append(spec)
            lower.append(max(below) if below else None)
            upper.append(min(above) if above else None)
        if not dims:
            raise GatingError(f"{where}: quadrant {qid!r} has no positions", path=path)
        labels = tuple(d.label for d in dims)
        if all((lo is None) != (hi is None) for lo, hi in zip(lower, upper)):
            # exactly one side of each dimension is bounded: that bound is the divider
            bounds = tuple(b for lo, hi in zip(lower, upper) for b in (lo, hi) if b is not None)
            gate: Gate = QuadrantGate(qid, labels, dividers=bounds,
                                      signs=tuple(1 if lo is not None else -1 for lo in lower))
        else:
            gate = RectangleGate(qid, labels, lower=tuple(lower), upper=tuple(upper))
        nodes.append(GateNode(names.get(qid, qid), parent, gate, tuple(dims)))
    if not nodes:
        raise GatingError(f"{where} defines no Quadrant", path=path)
    return nodes


# -- transformations and matrices -------------------------------------------------------------------
def parse_transformation(el: etree._Element, *, path: str | None) -> TransformSpec:
    tid = attr(el, "id")
    if not tid:
        raise GatingError(f"transformation without id at {line_of(el)}", path=path)
    where = f"transformation {tid!r} ({line_of(el)})"
    kinds = [c for c in el if local(c) in TRANSFORM_PARAMS]
    if len(kinds) != 1:
        found = [local(c) for c in el if local(c) != "custom_info"]
        raise GatingError(f"{where}: unsupported or missing transformation {found}; supported: "
                          f"{', '.join(TRANSFORM_PARAMS)}", path=path)
    t = kinds[0]
    kind = local(t)
    params = {}
    for p in TRANSFORM_PARAMS[kind]:
        params[p] = float_attr(t, p, where=where, path=path, required=True)
    inputs: tuple[str, ...] = ()
    if kind == "fratio":
        inputs = tuple(attr(d, "name") or "" for d in children(t, "fcs-dimension"))
        if len(inputs) != 2 or not all(inputs):
            raise GatingError(f"{where}: fratio needs exactly two named fcs-dimensions", path=path)
    return TransformSpec(tid, kind, params,
                         bound_min=float_attr(el, "boundMin", where=where, path=path),
                         bound_max=float_attr(el, "boundMax", where=where, path=path),
                         inputs=inputs)


def parse_spectrum_matrix(el: etree._Element, *, path: str | None) -> SpectrumMatrixSpec:
    mid = attr(el, "id")
    if not mid:
        raise GatingError(f"spectrumMatrix without id at {line_of(el)}", path=path)
    where = f"spectrumMatrix {mid!r} ({line_of(el)})"

    def names(tag: str) -> tuple[str, ...]:
        holder = child(el, tag)
        if holder is None:
            raise GatingError(f"{where}: missing <{tag}>", path=path)
        return tuple(attr(d, "name") or "" for d in children(holder, "fcs-dimension"))

    fluoro, detectors = names("fluorochromes"), names("detectors")
    rows = [[float_attr(c, "value", where=where, path=path, required=True) for c in children(s, "coefficient")]
            for s in children(el, "spectrum")]
    if not rows or len({len(r) for r in rows}) != 1:
        raise GatingError(f"{where}: spectra must all have the same number of coefficients", path=path)
    inverted = (attr(el, "matrix-inverted-already") or "false").strip().lower() == "true"
    try:
        return SpectrumMatrixSpec(mid, fluoro, detectors, np.asarray(rows, dtype=np.float64), inverted=inverted)
    except GatingError as exc:
        raise GatingError(str(exc), path=path) from None
