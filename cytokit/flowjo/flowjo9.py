"""Read FlowJo 9 (Mac, 9.x XML ``.xml``/``.wsp``) workspaces into :class:`~cytokit.flowjo.model.FlowJoWorkspace`.

FlowJo 9 stores gate vertices on the linear (compensated) scale and draws them on display channels given
by its *calibration tables* (channel 0..4096 -> linear value, one per compensated parameter and one per
"input parameter transform"); the reader turns each table into a ``flowjo_table`` scale and moves the
gates into channel space, where FlowJo evaluates them. Compensated parameters are named with the
matrix's prefix/suffix (``<FITC-A>``). Supported shapes: Polygon, PolyRect, Range (1-D), Ellipse (four
points at the ends of two conjugate diameters). Scatter and other ``log="0"`` parameters stay linear.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree

from ..errors import GatingError
from ..gates import EllipsoidGate, Gate, PolygonGate, RectangleGate
from ..scales import scale_transform
from ..gatingml.model import UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument, SpectrumMatrixSpec, TransformSpec
from ..gatingml.xmlutil import child, children, line_of, local, parse_xml
from .model import FlowJoSample, FlowJoWorkspace
from .nodes import stored_count

log = logging.getLogger(__name__)
SHAPES = ("Polygon", "PolyRect", "Range", "Ellipse")


def read_flowjo9(source: str | Path | bytes) -> FlowJoWorkspace:
    """Parse a FlowJo 9 XML workspace (or its bytes)."""
    root, path = parse_xml(source, what="FlowJo 9 workspace")
    return flowjo9_workspace(root, path)


def flowjo9_workspace(root: etree._Element, path: str | None) -> FlowJoWorkspace:
    """The workspace of a parsed FlowJo 9 document (``path`` names the file in errors)."""
    version = root.get("flowJoVersion") or ""
    if local(root) != "Workspace" or not version.startswith("9"):
        raise GatingError(f"not a FlowJo 9 workspace (root <{local(root)}>, flowJoVersion {version!r})", path=path)
    matrices = _matrices(root, path)
    tables = _tables(root, path)
    samples = []
    sample_list = child(root, "SampleList")
    for s_el in (children(sample_list, "Sample") if sample_list is not None else ()):
        samples.append(_sample(s_el, matrices, tables, path))
    return FlowJoWorkspace(tuple(samples), {}, version, source=path)


def _matrices(root: etree._Element, path: str | None) -> list[tuple[SpectrumMatrixSpec, str, str, str]]:
    out: list[tuple[SpectrumMatrixSpec, str, str, str]] = []
    holder = child(root, "CompensationMatrices")
    for m in (children(holder, "CompensationMatrix") if holder is not None else ()):
        name, prefix, suffix = m.get("name", "matrix"), m.get("prefix", "<"), m.get("suffix", ">")
        rows = list(children(m, "Channel"))
        params = tuple(r.get("name", "") for r in rows)
        index = {p: i for i, p in enumerate(params)}
        values = np.eye(len(params))
        for i, r in enumerate(rows):
            for cv in children(r, "ChannelValue"):
                det = cv.get("name")
                if det not in index:
                    raise GatingError(f"compensation matrix {name!r}: unknown channel {det!r} ({line_of(cv)})", path=path)
                try:
                    values[i, index[det]] = float(cv.get("value", "0"))
                except ValueError:
                    raise GatingError(f"compensation matrix {name!r}: value {cv.get('value')!r} is not a number",
                                      path=path) from None
        fluoro = tuple(f"{prefix}{p}{suffix}" for p in params)
        out.append((SpectrumMatrixSpec(f"matrix{len(out) + 1}", fluoro, params, values), name, prefix, suffix))
    return out


def _tables(root: etree._Element, path: str | None) -> list[tuple[str, tuple[float, ...]]]:
    out = []
    holder = child(root, "CalibrationTables")
    for t in (children(holder, "Table") if holder is not None else ()):
        try:
            pairs = np.array([float(v) for v in (t.text or "").replace("\n", "").split(",") if v.strip()])
            values = pairs.reshape(-1, 2)[:, 1]
        except ValueError:
            raise GatingError(f"calibration table {t.get('name')!r} is not a list of numbers", path=path) from None
        out.append((t.get("name", ""), tuple(values.tolist())))
    return out


def _sample(el: etree._Element, matrices, tables, path: str | None) -> FlowJoSample:
    sid = el.get("sampleID", "")
    node = child(el, "SampleNode")
    name = node.get("name", sid) if node is not None else sid
    where = f"sample {name!r}"
    kw = child(el, "Keywords")
    keywords = {k.get("name", ""): (k.get("value") or "").strip() for k in children(kw, "Keyword")} if kw is not None else {}
    comp_id = el.get("compensationID")
    matrix = prefix = suffix = mname = None
    if comp_id and comp_id.isdigit() and 0 < int(comp_id) <= len(matrices):
        matrix, mname, prefix, suffix = matrices[int(comp_id) - 1]
    transforms: dict[str, TransformSpec] = {}
    by_dim: dict[str, str] = {}

    def table_transform(key: str, values: tuple[float, ...]) -> str:
        tid = f"flowjo_table:{key}"
        transforms.setdefault(tid, TransformSpec(tid, "flowjo_table", {"values": values}))
        return tid

    for p in children(el, "Parameter"):
        pname = p.get("name", "")
        if p.get("log") == "1" and (p.get("calibrationIndex") or "").isdigit():
            idx = int(p.get("calibrationIndex"))
            if not 0 < idx <= len(tables):
                raise GatingError(f"{where}: parameter {pname!r} refers to calibration table {idx} of {len(tables)}",
                                  path=path)
            by_dim[pname] = table_transform(pname, tables[idx - 1][1])
    if matrix is not None:
        for fl in matrix.fluorochromes:
            for tname, values in tables:
                if tname == f"{mname} {fl}":
                    by_dim[fl] = table_transform(fl, values)
    nodes: list[GateNode] = []
    counts: dict[str, int] = {}
    scales: dict[str, Any] = {}  # transform id -> scale_transform() object, shared by the populations
    ctx = (matrix, by_dim, transforms, where, path, scales)
    if node is not None:
        _populations(node, None, ctx, nodes, counts)
    doc = GatingDocument(tuple(nodes), transforms, {matrix.id: matrix} if matrix else {}, source=path) if nodes else None
    total = stored_count(node, where=where, path=path) if node is not None else None
    return FlowJoSample(sample_id=sid, name=name, document=doc, uri=None,
                        total_count=total, flowjo_counts=counts, keywords=keywords,
                        matrix_id=matrix.id if matrix else None)


def _populations(parent_el, parent: str | None, ctx, nodes: list[GateNode], counts: dict[str, int]) -> None:
    matrix, by_dim, transforms, where, path, scales = ctx
    for pop in children(parent_el, "Population"):
        name = pop.get("name", "")
        node_id = name if parent is None else f"{parent}/{name}"
        gate_el = child(pop, "PolygonGate")
        if gate_el is None:
            raise GatingError(f"{where}: population {node_id!r} has no gate ({line_of(pop)})", path=path)
        names_el = child(gate_el, "ParameterNames")
        dim_names = [s.text or "" for s in names_el.iter() if local(s) == "String"] if names_el is not None else []
        shape = next((c for c in gate_el if local(c) in SHAPES), None)
        if shape is None:
            raise GatingError(f"{where}: population {node_id!r}: unsupported FlowJo 9 gate "
                              f"{[local(c) for c in gate_el]}", path=path)
        dims = []
        for d in dim_names[: 1 if local(shape) == "Range" else 2]:
            comp = matrix.id if matrix is not None and d in matrix.fluorochromes else UNCOMPENSATED
            dims.append(DimensionSpec(d, comp, by_dim.get(d)))
        gate = _shape(shape, node_id, tuple(dims), transforms, scales, f"{where}, population {node_id!r}", path)
        nodes.append(GateNode(name, parent, gate, tuple(dims)))
        count = stored_count(pop, where=f"{where}, population {node_id!r}", path=path)
        if count is not None:
            counts[node_id] = count
        _populations(pop, node_id, ctx, nodes, counts)


def _shape(el, node_id: str, dims: tuple[DimensionSpec, ...], transforms, scales, where: str, path) -> Gate:
    poly = child(el, "Polygon")
    try:
        pts = np.array([[float(v.get("x", "nan")), float(v.get("y", "nan"))] for v in children(poly, "Vertex")]
                       if poly is not None else [], dtype=np.float64).reshape(-1, 2)
    except ValueError:
        pts = np.full((0, 2), np.nan)  # reported below
    if not np.all(np.isfinite(pts)) or len(pts) < 2:
        raise GatingError(f"{where}: gate vertices are missing or not numbers", path=path)

    def fwd(i: int, values: np.ndarray) -> np.ndarray:
        tid = dims[i].transform
        if tid is None:
            return values
        if tid not in scales:
            scales[tid] = scale_transform(transforms[tid])
        return np.asarray(scales[tid].forward(values), dtype=np.float64)

    labels = tuple(d.name for d in dims)
    kind = local(el)
    if kind == "Range":
        lo, hi = sorted(fwd(0, pts[:2, 0]))
        return RectangleGate(node_id, labels, lower=(float(lo),), upper=(float(hi),))
    if len(dims) != 2:
        raise GatingError(f"{where}: a 2-D gate needs two parameter names", path=path)
    disp = np.column_stack([fwd(0, pts[:, 0]), fwd(1, pts[:, 1])])
    if kind == "Ellipse":
        if len(disp) != 4:
            raise GatingError(f"{where}: a FlowJo 9 ellipse has 4 points", path=path)
        centre = disp.mean(axis=0)
        d1, d2 = (disp[1] - disp[0]) / 2.0, (disp[3] - disp[2]) / 2.0  # conjugate semi-diameters
        cov = np.outer(d1, d1) + np.outer(d2, d2)
        return EllipsoidGate(node_id, labels, mean=tuple(centre.tolist()), covariance=tuple(map(tuple, cov.tolist())),
                             distance_square=1.0)
    return PolygonGate(node_id, labels, vertices=tuple(map(tuple, disp.tolist())))
