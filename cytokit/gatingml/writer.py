"""Write a :class:`~cytokit.gatingml.model.GatingDocument` as Gating-ML 2.0.

Every gate keeps its dimension specs (compensation-ref, transformation-ref, fcs- or new-dimension), the
document's transformations and spectrum matrices are written first, and numbers are written with
``repr`` so that reading the file back gives bit-identical gates. A :class:`~cytokit.gates.QuadrantGate`
node becomes a ``QuadrantGate`` element holding one ``Quadrant`` whose id is the node id.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from lxml import etree

from ..errors import GatingError
from ..gates import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate
from ..io_utils import atomic_write_bytes
from .model import TRANSFORM_PARAMS, GateNode, GatingDocument, SpectrumMatrixSpec, TransformSpec
from .xmlutil import CYTOKIT_NS, DATATYPE_NS, GATING_NS, TRANSFORMS_NS, XSI_NS
from .xmlutil import datatype_tag as _d, gating_tag as _g, transforms_tag as _t

NSMAP = {"gating": GATING_NS, "transforms": TRANSFORMS_NS, "data-type": DATATYPE_NS, "xsi": XSI_NS}
QUADRANT_SUFFIX = "__quadrant"
_NCNAME_BAD = re.compile(r"[^A-Za-z0-9._-]")


def _ncname(text: str) -> str:
    base = _NCNAME_BAD.sub("_", text.replace("+", "_p"))
    if not base or not (base[0].isalpha() or base[0] == "_"):
        base = "g_" + base
    return base


def xml_ids(document: GatingDocument) -> dict[str, str]:
    """Node id -> the xs:ID written to Gating-ML (letters, digits, ``._-``; ``+`` becomes ``_p``).

    Gating-ML ids must be XML NCNames, so population names such as ``"CD28+ CD4"`` are rewritten
    (``"CD28_p_CD4"``); the original id and name are kept in each gate's ``custom_info`` and restored by
    :func:`~cytokit.gatingml.read_gatingml`. Ids are made unique with a numeric suffix if needed.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for node in document.nodes:
        base = _ncname(node.id)
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate)
        out[node.id] = candidate
    return out


def _num(x: float) -> str:
    x = float(x)
    if not np.isfinite(x):
        raise GatingError(f"cannot write non-finite number {x!r} to Gating-ML")
    return repr(x)


def _fcs_dim(parent: etree._Element, name: str) -> None:
    etree.SubElement(parent, _d("fcs-dimension"), {_d("name"): name})


def _dimension(parent: etree._Element, tag: str, dim, extra: dict[str, str] | None = None) -> etree._Element:
    attrs = {_g("compensation-ref"): dim.compensation}
    if dim.transform:
        attrs[_g("transformation-ref")] = dim.transform
    attrs.update(extra or {})
    el = etree.SubElement(parent, _g(tag), attrs)
    if dim.ratio:
        etree.SubElement(el, _d("new-dimension"), {_d("transformation-ref"): dim.name})
    else:
        _fcs_dim(el, dim.name)
    return el


def _transform(root: etree._Element, spec: TransformSpec) -> None:
    attrs = {_t("id"): spec.id}
    if spec.bound_min is not None:
        attrs[_t("boundMin")] = _num(spec.bound_min)
    if spec.bound_max is not None:
        attrs[_t("boundMax")] = _num(spec.bound_max)
    el = etree.SubElement(root, _t("transformation"), attrs)
    inner = etree.SubElement(el, _t(spec.kind), {_t(k): _num(v) for k, v in spec.params.items()})
    for name in spec.inputs:
        _fcs_dim(inner, name)


def _matrix(root: etree._Element, m: SpectrumMatrixSpec) -> None:
    attrs = {_t("id"): m.id}
    if m.inverted:
        attrs[_t("matrix-inverted-already")] = "true"
    el = etree.SubElement(root, _t("spectrumMatrix"), attrs)
    for tag, names in (("fluorochromes", m.fluorochromes), ("detectors", m.detectors)):
        holder = etree.SubElement(el, _t(tag))
        for n in names:
            _fcs_dim(holder, n)
    for row in np.asarray(m.values, dtype=np.float64):
        spec = etree.SubElement(el, _t("spectrum"))
        for v in row:
            etree.SubElement(spec, _t("coefficient"), {_t("value"): _num(v)})


def _coordinate(parent: etree._Element, value: float) -> None:
    etree.SubElement(parent, _g("coordinate"), {_d("value"): _num(value)})


def _custom_info(el: etree._Element, node: GateNode) -> None:
    info = etree.SubElement(el, _d("custom_info"))
    etree.SubElement(info, f"{{{CYTOKIT_NS}}}node", {"id": node.id, "name": node.name}, nsmap={"cytokit": CYTOKIT_NS})


def _gate(root: etree._Element, node: GateNode, ids: dict[str, str]) -> None:
    gate = node.gate
    gid = ids[gate.id]
    if node.complement:
        raise GatingError(f"gate {gate.id!r} selects events outside its shape, which Gating-ML 2.0 cannot "
                          "express for a single gate; combine it with a 'not' boolean gate instead")
    parent_attr = {_g("parent_id"): ids[node.parent]} if node.parent else {}
    if isinstance(gate, QuadrantGate):
        el = etree.SubElement(root, _g("QuadrantGate"), {_g("id"): gid + QUADRANT_SUFFIX, **parent_attr})
        _custom_info(el, node)
        quadrant_positions = []
        for i, (dim, div, sign) in enumerate(zip(node.dims, gate.dividers, gate.signs)):
            did = f"{gid}{QUADRANT_SUFFIX}_d{i}"
            d_el = _dimension(el, "divider", dim, {_g("id"): did})
            etree.SubElement(d_el, _g("value")).text = _num(div)
            step = max(1.0, abs(float(div)))
            quadrant_positions.append((did, float(div) + step if sign > 0 else float(div) - step))
        q = etree.SubElement(el, _g("Quadrant"), {_g("id"): gid})
        for did, loc in quadrant_positions:
            etree.SubElement(q, _g("position"), {_g("divider_ref"): did, _g("location"): _num(loc)})
        return
    tag = {RectangleGate: "RectangleGate", PolygonGate: "PolygonGate", EllipsoidGate: "EllipsoidGate",
           BooleanGate: "BooleanGate"}.get(type(gate))
    if tag is None:
        raise GatingError(f"gate {gate.id!r}: cannot write a {type(gate).__name__} to Gating-ML")
    el = etree.SubElement(root, _g(tag), {_g("id"): gid, **parent_attr})
    _custom_info(el, node)
    if isinstance(gate, BooleanGate):
        op = etree.SubElement(el, _g(gate.op))
        for ref, comp in gate.operands:
            attrs = {_g("ref"): ids[ref]}
            if comp:
                attrs[_g("use-as-complement")] = "true"
            etree.SubElement(op, _g("gateReference"), attrs)
        return
    if isinstance(gate, RectangleGate):
        # Gating-ML needs a min or a max on some dimension: a pass-through (no bound at all, e.g. the
        # Singlets of a tube without FSC-A) is written as min = the lowest finite double on the first one
        unbounded = all(lo is None and hi is None for lo, hi in zip(gate.lower, gate.upper))
        for i, (dim, lo, hi) in enumerate(zip(node.dims, gate.lower, gate.upper)):
            if unbounded and i == 0:
                lo = -sys.float_info.max
            extra = {}
            if lo is not None:
                extra[_g("min")] = _num(lo)
            if hi is not None:
                extra[_g("max")] = _num(hi)
            _dimension(el, "dimension", dim, extra)
        return
    for dim in node.dims:
        _dimension(el, "dimension", dim)
    if isinstance(gate, PolygonGate):
        for vx, vy in gate.vertices:
            v = etree.SubElement(el, _g("vertex"))
            _coordinate(v, vx)
            _coordinate(v, vy)
    elif isinstance(gate, EllipsoidGate):
        mean = etree.SubElement(el, _g("mean"))
        for m in gate.mean:
            _coordinate(mean, m)
        cov = etree.SubElement(el, _g("covarianceMatrix"))
        for row in gate.covariance:
            r = etree.SubElement(cov, _g("row"))
            for v in row:
                etree.SubElement(r, _g("entry"), {_d("value"): _num(v)})
        etree.SubElement(el, _g("distanceSquare"), {_d("value"): _num(gate.distance_square)})


def gatingml_bytes(document: GatingDocument) -> bytes:
    """The Gating-ML 2.0 text (UTF-8 bytes) of a document."""
    for ref in list(document.transforms) + list(document.matrices):
        if _ncname(ref) != ref:
            raise GatingError(f"transformation/matrix id {ref!r} is not a valid XML id (letters, digits and "
                              "'._-', starting with a letter)", path=document.source)
    for spec in document.transforms.values():
        if spec.kind not in TRANSFORM_PARAMS:
            raise GatingError(f"transformation {spec.id!r} is a {spec.kind!r}, which Gating-ML 2.0 does not define "
                              f"(it defines {', '.join(TRANSFORM_PARAMS)})", path=document.source)
    root = etree.Element(_g("Gating-ML"), nsmap=NSMAP)
    for spec in document.transforms.values():
        _transform(root, spec)
    for m in document.matrices.values():
        _matrix(root, m)
    ids = xml_ids(document)
    for node in document.nodes:
        _gate(root, node, ids)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_gatingml(document: GatingDocument, path: str | Path, *, force: bool = True) -> Path:
    """Write a document atomically as Gating-ML 2.0 (``force=False`` refuses to overwrite)."""
    return atomic_write_bytes(path, gatingml_bytes(document), force=force)
