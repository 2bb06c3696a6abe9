"""Read FlowJo 10 workspaces (``.wsp``) into :class:`~cytokit.flowjo.model.FlowJoWorkspace` (one dialect of
:func:`cytokit.flowjo.reader.read_workspace`, which recognises FlowJo 9 and FACSDiva XML too).

Supported: per-sample spillover matrices (``Comp-`` prefixed dimensions), per-parameter transforms
(linear, log, logicle, fasinh, biex), rectangle, polygon and ellipse gates (FlowJo quadrants are stored
as rectangles), and/or/not boolean nodes (``Dependents`` paths). The per-sample gate trees
(``SampleNode``) are read; group templates are not (FlowJo copies them into every sample).
Errors raise :class:`~cytokit.errors.GatingError` naming the workspace, sample and population.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from lxml import etree

from ..errors import GatingError, TransformError
from ..gates import BooleanGate, EllipsoidGate, Gate, PolygonGate, RectangleGate
from ..scales import scale_transform
from ..gatingml.model import UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument, SpectrumMatrixSpec, TransformSpec
from ..gatingml.reader import parse_dimension
from ..gatingml.xmlutil import attr, child, children, float_attr, line_of, local, parse_xml
from .model import FlowJoSample, FlowJoWorkspace
from .nodes import stored_count, workspace_major

log = logging.getLogger(__name__)

#: FlowJo transform element -> (TransformSpec kind, {our parameter: FlowJo attribute}).
FLOWJO_TRANSFORMS: dict[str, tuple[str, dict[str, str]]] = {
    "linear": ("flin", {"T": "maxRange", "A": "minRange"}),
    "log": ("flowjo_log", {"offset": "offset", "decades": "decades"}),
    "logicle": ("logicle", {"T": "T", "W": "W", "M": "M", "A": "A"}),
    "fasinh": ("fasinh", {"T": "T", "M": "M", "A": "A"}),
    "biex": ("flowjo_biex", {"pos": "pos", "neg": "neg", "width": "width", "max_value": "maxRange"}),
}
#: Output range of each scale in FlowJo's display (ellipse coordinates are bins 0..256 of this range).
DISPLAY_RANGE = {"flowjo_biex": 4096.0}
BOOLEAN_NODES = {"AndNode": "and", "OrNode": "or", "NotNode": "not"}
DISPLAY_BINS = 256.0


def read_flowjo10(source: str | Path | bytes) -> FlowJoWorkspace:
    """Parse a FlowJo 10 workspace file (or its bytes)."""
    root, path = parse_xml(source, what="FlowJo workspace")
    return flowjo10_workspace(root, path)


def flowjo10_workspace(root: etree._Element, path: str | None) -> FlowJoWorkspace:
    """The workspace of a parsed FlowJo 10 document (``path`` names the file in errors)."""
    version = root.get("flowJoVersion") or root.get("version") or ""
    if local(root) != "Workspace" or workspace_major(root) < 10:
        raise GatingError(f"not a FlowJo 10 workspace (root <{local(root)}>, version {version!r})", path=path)
    groups: dict[str, tuple[str, ...]] = {}
    for gnode in root.iter():
        if local(gnode) == "GroupNode":
            group = child(gnode, "Group")
            refs = child(group, "SampleRefs") if group is not None else None
            ids = tuple(r.get("sampleID", "") for r in children(refs, "SampleRef")) if refs is not None else ()
            groups[gnode.get("name", "")] = ids
    sample_list = child(root, "SampleList")
    scales: dict[tuple, object] = {}  # transform objects shared by samples with identical parameters
    samples = tuple(_parse_sample(s, path, scales) for s in children(sample_list, "Sample")) if sample_list is not None else ()
    return FlowJoWorkspace(samples, groups, version, source=path)


def _parse_sample(el: etree._Element, path: str | None, scales: dict[tuple, object]) -> FlowJoSample:
    ds = child(el, "DataSet")
    node = child(el, "SampleNode")
    sample_id = (ds.get("sampleID") if ds is not None else None) or (node.get("sampleID") if node is not None else "")
    name = node.get("name", "") if node is not None else sample_id
    where = f"sample {name!r}"
    keywords = {}
    kw = child(el, "Keywords")
    if kw is not None:
        keywords = {k.get("name", ""): k.get("value", "") for k in children(kw, "Keyword")}
    matrix, prefix, suffix = None, "", ""
    m_el = child(el, "spilloverMatrix")
    if m_el is not None:
        matrix, prefix, suffix = _parse_spillover(m_el, where=where, path=path)
    transforms: dict[str, TransformSpec] = {}
    x_el = child(el, "Transformations")
    if x_el is not None:
        for t in x_el:
            spec = _parse_transform(t, where=where, path=path)
            if spec is not None:
                transforms[spec.id] = spec
    counts: dict[str, int] = {}
    nodes: list[GateNode] = []
    ctx = _Context(matrix, prefix, suffix, transforms, where, path, scales)
    ctx.time_gain = _time_gains(x_el, where=where, path=path) if x_el is not None else {}
    for tid in transforms:
        ctx.scale(tid)  # validate every transform's parameters now, with a clear error
    if node is not None:
        subs = child(node, "Subpopulations")
        if subs is not None:
            _parse_populations(subs, None, ctx, nodes, counts)
    doc = None
    if nodes:
        doc = GatingDocument(tuple(nodes), transforms, {matrix.id: matrix} if matrix else {}, source=path)
    total = stored_count(node, where=where, path=path) if node is not None else None
    return FlowJoSample(sample_id=sample_id, name=name, document=doc, uri=ds.get("uri") if ds is not None else None,
                        total_count=total, flowjo_counts=counts,
                        keywords=keywords, matrix_id=matrix.id if matrix else None)


def _parse_spillover(el: etree._Element, *, where: str, path: str | None):
    mid = attr(el, "id") or el.get("name") or "flowjo_matrix"
    prefix, suffix = el.get("prefix", "Comp-"), el.get("suffix", "")
    params_el = child(el, "parameters")
    params = tuple(attr(p, "name") or "" for p in children(params_el, "parameter")) if params_el is not None else ()
    if not params:
        raise GatingError(f"{where}: spillover matrix {mid!r} lists no parameters", path=path)
    index = {p: i for i, p in enumerate(params)}
    values = np.eye(len(params))
    for row in children(el, "spillover"):
        src = attr(row, "parameter")
        if src not in index:
            raise GatingError(f"{where}: spillover row for unknown parameter {src!r} ({line_of(row)})", path=path)
        for c in children(row, "coefficient"):
            det = attr(c, "parameter")
            if det not in index:
                raise GatingError(f"{where}: spillover coefficient for unknown parameter {det!r}", path=path)
            values[index[src], index[det]] = float_attr(c, "value", where=where, path=path, required=True)
    fluoro = tuple(f"{prefix}{p}{suffix}" for p in params)
    return SpectrumMatrixSpec(mid, fluoro, params, values), prefix, suffix


def _parse_transform(el: etree._Element, *, where: str, path: str | None) -> TransformSpec | None:
    kind_name = local(el)
    p_el = child(el, "parameter")
    param = attr(p_el, "name") if p_el is not None else None
    if kind_name not in FLOWJO_TRANSFORMS:
        log.warning("%s: %s: FlowJo transform %r is not supported; %r stays linear", path, where, kind_name, param)
        return None
    if not param:
        raise GatingError(f"{where}: {kind_name} transform without a parameter name ({line_of(el)})", path=path)
    kind, mapping = FLOWJO_TRANSFORMS[kind_name]
    params: dict[str, float] = {}
    for ours, theirs in mapping.items():
        context = f"{where}: {kind_name} transform of {param!r}"
        if ours in ("A", "neg"):  # optional, 0 by default
            params[ours] = float_attr(el, theirs, where=context, path=path, default=0.0)
        else:
            params[ours] = float_attr(el, theirs, where=context, path=path, required=True)
    return TransformSpec(f"{kind}:{param}", kind, params)


class _Context:
    def __init__(self, matrix, prefix, suffix, transforms, where, path, scales: dict[tuple, object]) -> None:
        self.matrix = matrix
        self.prefix, self.suffix = prefix, suffix
        self.transforms = transforms
        self.where, self.path = where, path
        self._scales = scales
        self.time_gain: dict[str, float] = {}  # time parameter -> FlowJo's display factor (see _time_gains)

    def scale(self, transform_id: str):
        """The transform object of one of this sample's transforms (built once per parameter set)."""
        spec = self.transforms[transform_id]
        key = (spec.kind, tuple(sorted(spec.params.items())))
        if key not in self._scales:
            try:
                self._scales[key] = scale_transform(spec)
            except TransformError as exc:
                raise TransformError(f"{self.where}: {exc}", path=self.path) from None
        return self._scales[key]

    def dim(self, spec: DimensionSpec, population: str) -> DimensionSpec:
        """FlowJo dimension -> our spec: ``Comp-`` names use the sample's matrix; transform by parameter."""
        name = spec.name
        comp = UNCOMPENSATED
        param = name
        if self.matrix is not None and name in self.matrix.fluorochromes:
            comp = self.matrix.id
            param = self.matrix.detectors[self.matrix.fluorochromes.index(name)]
        elif name.startswith(self.prefix or "Comp-"):
            raise GatingError(f"{self.where}, population {population!r}: dimension {name!r} is compensated but "
                              "the sample has no spillover matrix for it", path=self.path)
        xform = None
        for key in (name, param):
            for kind, _ in FLOWJO_TRANSFORMS.values():
                if f"{kind}:{key}" in self.transforms:
                    xform = f"{kind}:{key}"
                    break
            if xform:
                break
        return DimensionSpec(name, comp, xform)


def _time_gains(x_el: etree._Element, *, where: str, path: str | None) -> dict[str, float]:
    """Time parameter -> the ``gain`` of its FlowJo ``linear`` transform, when not 1. FlowJo shows time as
    the file's time values times this factor (usually $TIMESTEP, i.e. seconds), and stores time gate
    coordinates in those units; cytokit keeps the file's time units."""
    gains: dict[str, float] = {}
    for t in x_el:
        if not isinstance(t.tag, str) or local(t) != "linear":
            continue
        p_el = child(t, "parameter")
        param = attr(p_el, "name") if p_el is not None else None
        gain = float_attr(t, "gain", where=f"{where}: linear transform of {param!r}", path=path, default=1.0)
        if param and param.casefold() == "time" and gain not in (0.0, 1.0):
            gains[param] = gain
    return gains


def _forward(ctx: _Context, dim: DimensionSpec, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    gain = ctx.time_gain.get(dim.name)
    if gain is not None:
        values = values / gain
    if dim.transform is None:
        return values
    return np.asarray(ctx.scale(dim.transform).forward(values), dtype=np.float64)


def _parse_populations(subs: etree._Element, parent: str | None, ctx: _Context, nodes: list[GateNode],
                       counts: dict[str, int]) -> None:
    for pop in subs:
        tag = local(pop)
        if tag not in ("Population", *BOOLEAN_NODES):
            continue
        name = pop.get("name", "")
        node_id = name if parent is None else f"{parent}/{name}"
        if any(n.id == node_id for n in nodes):
            raise GatingError(f"{ctx.where}: two populations are named {node_id!r}", path=ctx.path)
        if tag in BOOLEAN_NODES:
            gate: Gate = _boolean(pop, node_id, BOOLEAN_NODES[tag], ctx)
            nodes.append(GateNode(name, parent, gate, ()))
        else:
            g_el = child(pop, "Gate")
            inner = [c for c in g_el if isinstance(c.tag, str)] if g_el is not None else []
            if not inner:
                raise GatingError(f"{ctx.where}: population {node_id!r} has no gate ({line_of(pop)})", path=ctx.path)
            try:
                gate, dims = _flowjo_gate(inner[0], node_id, ctx)
            except GatingError as exc:
                if ctx.path and ctx.path in str(exc):
                    raise
                raise GatingError(f"{ctx.where}, population {node_id!r}: {exc}", path=ctx.path) from None
            outside = (inner[0].get("eventsInside") or "1").strip() == "0"
            nodes.append(GateNode(name, parent, gate, dims, complement=outside))
        count = stored_count(pop, where=f"{ctx.where}, population {node_id!r}", path=ctx.path)
        if count is not None:
            counts[node_id] = count
        sub = child(pop, "Subpopulations")
        if sub is not None:
            _parse_populations(sub, node_id, ctx, nodes, counts)


def _boolean(el: etree._Element, node_id: str, op: str, ctx: _Context) -> BooleanGate:
    deps = child(el, "Dependents")
    refs = tuple((d.get("name", "").strip("/"), False) for d in children(deps, "Dependent")) if deps is not None else ()
    if not refs or (op == "not" and len(refs) != 1) or (op != "not" and len(refs) < 2):
        raise GatingError(f"{ctx.where}: boolean population {node_id!r} has {len(refs)} dependents", path=ctx.path)
    return BooleanGate(node_id, (), op=op, operands=refs)


def _flowjo_gate(el: etree._Element, node_id: str, ctx: _Context) -> tuple[Gate, tuple[DimensionSpec, ...]]:
    tag = local(el)
    where = f"{ctx.where}, population {node_id!r} ({line_of(el)})"
    dim_els = list(children(el, "dimension"))
    dims = tuple(ctx.dim(parse_dimension(d, where=where, path=ctx.path), node_id) for d in dim_els)
    labels = tuple(d.name for d in dims)
    if tag == "RectangleGate":
        lower, upper = [], []
        for d_el, dim in zip(dim_els, dims):
            lo = float_attr(d_el, "min", where=where, path=ctx.path)
            hi = float_attr(d_el, "max", where=where, path=ctx.path)
            lower.append(None if lo is None else float(_forward(ctx, dim, lo)))
            upper.append(None if hi is None else float(_forward(ctx, dim, hi)))
        return RectangleGate(node_id, labels, lower=tuple(lower), upper=tuple(upper)), dims
    if tag == "PolygonGate":
        verts = _points(el, where, ctx.path)
        if verts.ndim != 2 or verts.shape[1] != 2 or len(dims) != 2:
            raise GatingError(f"{where}: polygon needs 2 dimensions and (x, y) vertices", path=ctx.path)
        out = np.column_stack([_forward(ctx, dims[i], verts[:, i]) for i in range(2)])
        return PolygonGate(node_id, labels, vertices=tuple(map(tuple, out.tolist()))), dims
    if tag == "EllipsoidGate":
        return _ellipse(el, node_id, labels, dims, ctx, where), dims
    raise GatingError(f"{where}: FlowJo gate type {tag!r} is not supported", path=ctx.path)


def _points(el: etree._Element | None, where: str, path: str | None) -> np.ndarray:
    """The (x, y) ``vertex`` children of ``el`` as an (n, 2) array."""
    if el is None:
        return np.zeros((0, 2))
    rows = [[float_attr(c, "value", where=where, path=path, required=True) for c in children(v, "coordinate")]
            for v in children(el, "vertex")]
    if any(len(r) != 2 for r in rows):
        raise GatingError(f"{where}: every vertex needs 2 coordinates (x, y)", path=path)
    return np.array(rows, dtype=np.float64).reshape(len(rows), 2)


def _ellipse(el, node_id, labels, dims, ctx: _Context, where: str) -> EllipsoidGate:
    """FlowJo ellipse: foci and 4 edge points in display bins (0..256 of each axis' transformed range).

    The ellipse is built in the bins, where FlowJo (and FlowKit) draw it, then moved to the transformed
    coordinates: when the axes' ranges differ (biex 0..4096 against logicle 0..1, or a dimension without
    transform) scaling the foci and edge points first would give another ellipse.
    """
    foci = _points(child(el, "foci"), where, ctx.path)
    edge = _points(child(el, "edge"), where, ctx.path)
    if len(dims) != 2 or foci.shape != (2, 2) or edge.shape[0] < 4 or edge.shape[1] != 2:
        raise GatingError(f"{where}: ellipse needs 2 dimensions, 2 foci and 4 edge points", path=ctx.path)
    scale = np.array([DISPLAY_RANGE.get(ctx.transforms[d.transform].kind, 1.0) if d.transform else 1.0
                      for d in dims]) / DISPLAY_BINS
    centre = foci.mean(axis=0)
    half_focal = float(np.linalg.norm(foci[1] - foci[0])) / 2.0
    a = float(np.max(np.linalg.norm(edge - centre, axis=1)))  # the major vertex is the farthest edge point
    if a <= half_focal:
        raise GatingError(f"{where}: ellipse edge points lie inside its foci", path=ctx.path)
    b = float(np.sqrt(a * a - half_focal * half_focal))
    if half_focal > 0:
        u = (foci[1] - foci[0]) / (2.0 * half_focal)
    else:
        u = np.array([1.0, 0.0])
    v = np.array([-u[1], u[0]])
    cov = (a * a * np.outer(u, u) + b * b * np.outer(v, v)) * np.outer(scale, scale)
    return EllipsoidGate(node_id, labels, mean=tuple((centre * scale).tolist()),
                         covariance=tuple(map(tuple, cov.tolist())), distance_square=1.0)
