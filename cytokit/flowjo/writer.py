"""Write FlowJo 10 workspaces: several samples, each with its own concrete gates, compensation and transforms.

Each entry is a raw :class:`~cytokit.sample.Sample` (its file is referenced, never copied) and the
:class:`~cytokit.gatingml.GatingDocument` of gates drawn on it. FlowJo keeps one spillover matrix and one
transform per parameter for each sample, stores rectangle/polygon coordinates on the linear scale and
ellipses in 256 display bins of each axis' transformed range, and draws (and evaluates) polygons and
ellipses on the parameter's axis. So the writer

* maps dimension compensation ``"FCS"`` (the file's $SPILLOVER) or a square spectrum matrix of the
  document to the sample's ``Comp-`` matrix (one matrix per sample);
* writes each parameter's transform (flin -> linear, logicle, fasinh, flowjo_biex -> biex,
  flowjo_log -> log) and refuses conflicting transforms for one parameter; a parameter gated without a
  transform (linear scale, e.g. scatter) gets FlowJo's ``linear`` transform from 0 to its $PnR rounded
  up to a power of two (so that the scaling is exact in binary floating point and FlowJo, FlowKit and
  cytokit put polygon edges and ellipses at the same place); using one parameter both untransformed
  and with a non-linear transform is refused, except for range gates next to an increasing, unclipped
  transform (:data:`RANGE_SAFE`), which select the same events on either axis;
* shows the time parameter of a file with $TIMESTEP in seconds, as FlowJo and FlowKit do: its linear
  transform has ``gain`` = $TIMESTEP and its gate coordinates are in seconds;
* converts gate coordinates back to the linear scale (quadrants become half-open rectangles), ellipses
  to FlowJo foci/edge points computed in the display bins (so an ellipse on axes of different ranges,
  e.g. FSC-H and SSC-A, or biex and logicle, stays the same ellipse), and boolean gates to And/Or/Not
  nodes whose dependents are population paths; a complemented boolean operand (FlowJo has none)
  becomes a helper ``NotNode`` named ``not <operand>`` next to the boolean node;
* replaces ``/`` in population names (FlowJo's path separator) with ``|`` and makes sibling names unique;
* writes cytokit's own counts as the populations' ``count`` so FlowJo users see them before recomputing,
  an entry's ``annotations`` (population name -> text, e.g. its review flags and notes) as the
  populations' ``annotation`` and its ``keywords`` (e.g. ``CYTOKIT_QC_FLAGS``) beside $FIL, $TOT and $PAR.

Anything FlowJo cannot express (ratio dimensions, flog/hyperlog, bounded transforms, a second matrix,
ellipses that are not two-dimensional, an ellipse on a linear transform with an offset) raises
:class:`~cytokit.errors.GatingError` naming the sample and the gate.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from lxml import etree

from ..errors import GatingError
from ..gates import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate
from ..gatingml.compensation import spillover_from_metadata
from ..gatingml.evaluate import evaluate_document
from ..scales import scale_transform
from ..gatingml.model import FCS_COMPENSATION, UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument, TransformSpec
from ..gatingml.xmlutil import DATATYPE_NS, GATING_NS, TRANSFORMS_NS, XSI_NS
from ..gatingml.xmlutil import datatype_tag as _d, gating_tag as _g, transforms_tag as _t
from ..io_utils import atomic_write_bytes
from ..sample import Sample
from .flowjo10 import DISPLAY_BINS, DISPLAY_RANGE

log = logging.getLogger(__name__)

NSMAP = {"xsi": XSI_NS, "gating": GATING_NS, "transforms": TRANSFORMS_NS, "data-type": DATATYPE_NS}
PREFIX = "Comp-"
FLOWJO_VERSION = "10.6.2"
#: transforms that are strictly increasing and unclipped over all reals: a range gate drawn on the linear
#: scale selects the same events on such an axis, so a parameter can carry one of them and linear ranges
#: (e.g. QC limits on the raw scale) at once
RANGE_SAFE = frozenset({"flin", "logicle", "fasinh"})
#: top of FlowJo's linear axis for a parameter without $PnR
DEFAULT_LINEAR_TOP = 262144.0

#: TransformSpec kind -> (FlowJo element, {FlowJo attribute: our parameter or a constant}).
FLOWJO_ELEMENTS: dict[str, tuple[str, dict[str, str | float]]] = {
    "flin": ("linear", {"minRange": "A", "maxRange": "T", "gain": 1.0}),
    "logicle": ("logicle", {"length": 256.0, "T": "T", "W": "W", "M": "M", "A": "A"}),
    "fasinh": ("fasinh", {"length": 256.0, "maxRange": "T", "T": "T", "M": "M", "A": "A", "W": 1.0}),
    "flowjo_biex": ("biex", {"length": 256.0, "maxRange": "max_value", "neg": "neg", "width": "width", "pos": "pos"}),
    "flowjo_log": ("log", {"offset": "offset", "decades": "decades"}),
}


@dataclass(frozen=True)
class WorkspaceEntry:
    """One sample of a workspace to write: the raw FCS Sample and its gate hierarchy; ``annotations``
    (population name as in ``document`` -> the FlowJo population's annotation text) and ``keywords``
    (name -> value, added to the sample's keywords)."""

    sample: Sample
    document: GatingDocument
    annotations: Mapping[str, str] = field(default_factory=dict)
    keywords: Mapping[str, str] = field(default_factory=dict)


def _num(x: float) -> str:
    return repr(float(x))


class _SamplePlan:
    """Per-sample mapping of dimensions to FlowJo parameter names, matrix and transforms."""

    def __init__(self, entry: WorkspaceEntry, where: str) -> None:
        self.entry, self.where = entry, where
        self.doc = entry.document
        self.matrix: tuple[tuple[str, ...], np.ndarray] | None = None
        self.matrix_source: str | None = None
        self.transforms: dict[str, TransformSpec] = {}  # FlowJo parameter -> its one transform
        self._linear: dict[str, GateNode] = {}  # parameter -> first gate using it untransformed
        self._ranges: dict[str, GateNode] = {}  # parameter -> first range gate using it untransformed
        self._scales: dict[str, Any] = {}  # transform id -> scale_transform() object

    def fail(self, message: str, node: GateNode | None = None) -> GatingError:
        at = f"{self.where}, gate {node.id!r}" if node is not None else self.where
        return GatingError(f"{at}: {message}", path=self.entry.sample.path)

    def _use_matrix(self, source: str, node: GateNode) -> None:
        if self.matrix_source not in (None, source):
            raise self.fail(f"FlowJo allows one compensation per sample; gates use both {self.matrix_source!r} "
                            f"and {source!r}", node)
        if self.matrix is None:
            if source == FCS_COMPENSATION:
                spill = spillover_from_metadata(self.entry.sample.metadata, path=self.entry.sample.path)
                if spill is None:
                    raise self.fail("gates use the file's compensation but the FCS file has no $SPILLOVER", node)
                self.matrix = spill
            else:
                m = self.doc.matrices[source]
                if m.inverted or len(m.fluorochromes) != len(m.detectors):
                    raise self.fail(f"spectrum matrix {source!r} must be a square spillover matrix for FlowJo", node)
                self.matrix = (m.detectors, np.asarray(m.values, dtype=np.float64))
            self.matrix_source = source

    def param(self, dim: DimensionSpec, node: GateNode) -> tuple[str, str]:
        """(FlowJo dimension name, raw parameter name) of one gate dimension."""
        if dim.ratio:
            raise self.fail(f"ratio dimension {dim.name!r} has no FlowJo equivalent", node)
        if dim.compensation == UNCOMPENSATED:
            param, fj_name = dim.name, dim.name
        else:
            self._use_matrix(dim.compensation, node)
            if dim.compensation == FCS_COMPENSATION:
                param = dim.name
            else:
                m = self.doc.matrices[dim.compensation]
                param = m.detectors[m.fluorochromes.index(dim.name)] if dim.name in m.fluorochromes else dim.name
            fj_name = PREFIX + param if self.matrix is not None and param in self.matrix[0] else param
        known = self.transforms.get(param)
        if dim.transform:
            spec = self.doc.transforms[dim.transform]
            if spec.kind not in FLOWJO_ELEMENTS:
                raise self.fail(f"transform {spec.kind!r} has no FlowJo equivalent", node)
            if spec.bound_min is not None or spec.bound_max is not None:
                raise self.fail(f"bounded transform {spec.id!r} has no FlowJo equivalent", node)
            if known is not None and (known.kind, dict(known.params)) != (spec.kind, dict(spec.params)):
                raise self.fail(f"parameter {param!r} is used with two different transforms; FlowJo keeps one "
                                "per parameter", node)
            if spec.kind not in RANGE_SAFE and param in self._ranges:
                raise self.fail(f"parameter {param!r} is gated on the {spec.kind} scale here and by a range on "
                                f"the linear scale in gate {self._ranges[param].id!r}; FlowJo keeps one transform "
                                "per parameter", node)
            if spec.kind != "flin" and param in self._linear:
                raise self.fail(f"parameter {param!r} is gated on the {spec.kind} scale here and on the linear "
                                f"scale by gate {self._linear[param].id!r}; FlowJo keeps one transform per "
                                "parameter", node)
            self.transforms[param] = spec
        elif isinstance(node.gate, (RectangleGate, QuadrantGate)) and (known is None or known.kind in RANGE_SAFE):
            self._ranges.setdefault(param, node)
        else:
            if known is not None and known.kind != "flin":
                raise self.fail(f"parameter {param!r} is gated on the linear scale here and on the {known.kind} "
                                "scale by another gate; FlowJo keeps one transform per parameter", node)
            self._linear.setdefault(param, node)
        return fj_name, param

    def finish(self) -> None:
        """Give every parameter gated on the linear scale FlowJo's ``linear`` transform (0..$PnR rounded
        up to a power of two) unless a gate already gave it a linear (flin) one. The time parameter of a
        file with $TIMESTEP is shown in seconds (FlowJo and FlowKit multiply time values by $TIMESTEP):
        its transform records the factor as FlowJo's ``gain`` and its gate coordinates are in seconds."""
        for param in [*self._linear, *self._ranges]:
            if param not in self.transforms:
                top = _linear_top(self.entry.sample, param)
                step = _time_step(self.entry.sample, param)
                params = {"T": top * step, "A": 0.0, **({"gain": step} if step != 1.0 else {})}
                self.transforms[param] = TransformSpec(f"flin:{param}", "flin", params)

    def coordinates(self, dim: DimensionSpec, node: GateNode, values) -> np.ndarray:
        """Gate coordinates of ``dim`` as FlowJo stores them: linear scale, time in seconds."""
        values = self.inverse(dim, values)
        gain = float(self.transforms[self.param(dim, node)[1]].params.get("gain", 1.0))
        return values if gain == 1.0 else values * gain

    def range_limit(self, dim: DimensionSpec, node: GateNode, value: float) -> float:
        """One limit of a range gate as FlowJo stores it. A limit on time in seconds is placed a quarter
        float32 step below the smallest float32 time it admits (events are float32), so rounding in
        the conversion to seconds and back cannot move an event across it."""
        lin = float(self.inverse(dim, value))
        gain = float(self.transforms[self.param(dim, node)[1]].params.get("gain", 1.0))
        if gain == 1.0 or not math.isfinite(lin):
            return lin
        c = np.float32(lin)
        if float(c) < lin:
            c = np.nextafter(c, np.float32(np.inf))
        below = np.nextafter(c, np.float32(-np.inf))
        return (float(c) - (float(c) - float(below)) / 4.0) * gain

    def display_scale(self, dim: DimensionSpec, node: GateNode) -> float:
        """Factor from this dimension's gate coordinates to FlowJo's display bins (0..256 over the axis)."""
        param = self.param(dim, node)[1]
        spec = self.transforms[param]
        if spec.kind == "flin" and float(spec.params.get("gain", 1.0)) != 1.0:
            raise self.fail(f"an ellipse on the time parameter {param!r} is not supported", node)
        if spec.kind == "flin":
            # FlowJo's display runs from minRange to maxRange; FlowKit and cytokit read minRange as the
            # Gating-ML flin offset A. Both agree only without an offset.
            if float(spec.params.get("A", 0.0)) != 0.0:
                raise self.fail(f"an ellipse on parameter {param!r} needs a linear transform without offset "
                                f"(A = {spec.params['A']!r}): FlowJo and FlowKit read the offset differently", node)
            top = float(spec.params["T"])
            return DISPLAY_BINS if dim.transform else DISPLAY_BINS / top
        return DISPLAY_BINS / DISPLAY_RANGE.get(spec.kind, 1.0)

    def inverse(self, dim: DimensionSpec, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if not dim.transform:
            return values
        if dim.transform not in self._scales:
            self._scales[dim.transform] = scale_transform(self.doc.transforms[dim.transform])
        return np.asarray(self._scales[dim.transform].inverse(values), dtype=np.float64)


def _time_step(sample: Sample, param: str) -> float:
    """$TIMESTEP when ``param`` is the sample's time channel (kind ``time`` or named Time), else 1."""
    channels = sample.channels
    kinds = channels.loc[channels["pnn"].astype(str) == param, "kind"] if "kind" in channels else ()
    if param.casefold() != "time" and not any(str(k) == "time" for k in kinds):
        return 1.0
    try:
        step = float(sample.metadata.get("timestep") or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return step if math.isfinite(step) and step > 0 else 1.0


def _linear_top(sample: Sample, param: str) -> float:
    """Top of FlowJo's linear axis for ``param``: its $PnR rounded up to a power of two."""
    top = DEFAULT_LINEAR_TOP
    channels = sample.channels
    if "pnn" in channels and "range" in channels:
        hits = channels.loc[channels["pnn"].astype(str) == param, "range"]
        value = float(hits.iloc[0]) if len(hits) else math.nan
        if math.isfinite(value) and value > 0:
            top = value
    return float(2.0 ** math.ceil(math.log2(top)))


def _dimension(parent: etree._Element, fj_name: str, extra: dict[str, str] | None = None) -> None:
    el = etree.SubElement(parent, _g("dimension"), {_g(k): v for k, v in (extra or {}).items()})
    etree.SubElement(el, _d("fcs-dimension"), {_d("name"): fj_name})


def _vertex(parent: etree._Element, coords: Iterable[float]) -> None:
    v = etree.SubElement(parent, _g("vertex"))
    for c in coords:
        etree.SubElement(v, _g("coordinate"), {_d("value"): _num(c)})


def _gate_element(gate_el: etree._Element, node: GateNode, plan: _SamplePlan, gid: str) -> None:
    gate = node.gate
    names = [plan.param(d, node)[0] for d in node.dims]
    attrs = {"eventsInside": "0" if node.complement else "1", _g("id"): gid}
    if isinstance(gate, (RectangleGate, QuadrantGate)):
        if isinstance(gate, QuadrantGate):
            lower = tuple(div if s > 0 else None for div, s in zip(gate.dividers, gate.signs))
            upper = tuple(None if s > 0 else div for div, s in zip(gate.dividers, gate.signs))
        else:
            lower, upper = gate.lower, gate.upper
        el = etree.SubElement(gate_el, _g("RectangleGate"), attrs)
        for dim, name, lo, hi in zip(node.dims, names, lower, upper):
            extra = {}
            if lo is not None:
                extra["min"] = _num(plan.range_limit(dim, node, lo))
            if hi is not None:
                extra["max"] = _num(plan.range_limit(dim, node, hi))
            _dimension(el, name, extra)
    elif isinstance(gate, PolygonGate):
        el = etree.SubElement(gate_el, _g("PolygonGate"), attrs)
        for name in names:
            _dimension(el, name)
        verts = np.asarray(gate.vertices, dtype=np.float64)
        lin = np.column_stack([plan.coordinates(node.dims[i], node, verts[:, i]) for i in range(2)])
        for row in lin:
            _vertex(el, row)
    elif isinstance(gate, EllipsoidGate):
        if len(node.dims) != 2:
            raise plan.fail(f"FlowJo ellipses have two dimensions, this one has {len(node.dims)}", node)
        el = etree.SubElement(gate_el, _g("EllipsoidGate"), attrs)
        for name in names:
            _dimension(el, name)
        foci, edge = _ellipse_points(gate, np.array([plan.display_scale(d, node) for d in node.dims]))
        foci_el = etree.SubElement(el, _g("foci"))
        for p in foci:
            _vertex(foci_el, p)
        edge_el = etree.SubElement(el, _g("edge"))
        for p in edge:
            _vertex(edge_el, p)
    else:
        raise plan.fail(f"cannot write a {type(gate).__name__} as a FlowJo gate", node)


def _ellipse_points(gate: EllipsoidGate, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FlowJo's two foci and four edge points (ends of the major, then of the minor axis) of ``gate``
    in display bins, ``scale`` being each axis' factor from gate coordinates to bins. The ellipse is
    moved into the bins first: foci are not preserved by scaling the axes differently."""
    cov = np.asarray(gate.covariance, dtype=np.float64) * gate.distance_square * np.outer(scale, scale)
    evals, evecs = np.linalg.eigh((cov + cov.T) / 2.0)
    b, a = np.sqrt(np.maximum(evals, 0.0))
    v, u = evecs[:, 0], evecs[:, 1]
    c = np.asarray(gate.mean, dtype=np.float64) * scale
    f = np.sqrt(max(a * a - b * b, 0.0))
    return np.array([c - f * u, c + f * u]), np.array([c - a * u, c + a * u, c - b * v, c + b * v])


def _population_tree(parent_el: etree._Element, parent_id: str | None, plan: _SamplePlan,
                     counts: dict[str, int], ids: dict[str, str], notes: Mapping[str, str]) -> None:
    kids = plan.doc.children(parent_id)
    if not kids:
        return
    subs = etree.SubElement(parent_el, "Subpopulations")
    for node in kids:
        common = {"name": node.name, "annotation": _xml_text(notes.get(node.id, "")), "owningGroup": "",
                  "expanded": "1", "sortPriority": "10", "count": str(counts.get(node.id, -1))}
        if isinstance(node.gate, BooleanGate):
            if any(comp for _, comp in node.gate.operands):
                raise plan.fail("FlowJo boolean nodes cannot complement an operand", node)
            tag = {"and": "AndNode", "or": "OrNode", "not": "NotNode"}[node.gate.op]
            pop = etree.SubElement(subs, tag, common)
            deps = etree.SubElement(pop, "Dependents")
            for ref, _ in node.gate.operands:
                etree.SubElement(deps, "Dependent", {"name": "/".join(plan.doc.path(ref))})
        else:
            pop = etree.SubElement(subs, "Population", common)
            g_attrs = {_g("id"): ids[node.id]}
            if node.parent is not None:
                g_attrs[_g("parent_id")] = ids[node.parent]
            gate_el = etree.SubElement(pop, "Gate", g_attrs)
            _gate_element(gate_el, node, plan, ids[node.id])
        _population_tree(pop, node.id, plan, counts, ids, notes)


def _matrix_element(parent: etree._Element, plan: _SamplePlan, matrix_id: str) -> None:
    channels, values = plan.matrix  # type: ignore[misc]
    m = etree.SubElement(parent, _t("spilloverMatrix"), {
        "prefix": PREFIX, "name": "Acquisition-defined" if plan.matrix_source == FCS_COMPENSATION else str(plan.matrix_source),
        "editable": "0", "color": "#c0c0c0", "version": f"FlowJo-{FLOWJO_VERSION}", "status": "FINALIZED",
        _t("id"): matrix_id, "suffix": ""})
    params = etree.SubElement(m, _d("parameters"))
    for ch in channels:
        etree.SubElement(params, _d("parameter"), {_d("name"): ch})
    for i, src in enumerate(channels):
        row = etree.SubElement(m, _t("spillover"), {_d("parameter"): src})
        for j, det in enumerate(channels):
            etree.SubElement(row, _t("coefficient"), {_d("parameter"): det, _t("value"): _num(values[i, j])})


def _transform_element(parent: etree._Element, param: str, spec: TransformSpec) -> None:
    tag, mapping = FLOWJO_ELEMENTS[spec.kind]
    attrs = {}
    for fj_attr, ours in mapping.items():
        value = spec.params[ours] if isinstance(ours, str) else spec.params.get(fj_attr, ours)
        key = "gain" if fj_attr == "gain" else _t(fj_attr)
        attrs[key] = _num(value) if fj_attr not in ("length",) else str(int(value))
    el = etree.SubElement(parent, _t(tag), attrs)
    etree.SubElement(el, _d("parameter"), {_d("name"): param})


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 2
    while name in taken:
        name, k = f"{base} ({k})", k + 1
    return name


def flowjo_document(doc: GatingDocument) -> tuple[GatingDocument, list[tuple[str, str]]]:
    """``doc`` as a FlowJo gate tree can hold it, with the same memberships, and the (old, new) names
    that changed.

    FlowJo boolean nodes cannot complement a dependent, so each complemented operand of a boolean gate
    becomes a helper ``NotNode`` ("not <operand>") next to that gate (one per parent and operand);
    under the same parent ``P``, ``P and not X`` is what the complemented operand contributed. Names
    lose ``/`` (FlowJo's path separator, replaced by ``|``) and are made unique among siblings.
    """
    ids = set(doc.ids)
    helpers: dict[tuple[str | None, str], str] = {}
    nodes: list[GateNode] = []
    for node in doc.nodes:
        gate = node.gate
        if isinstance(gate, BooleanGate) and any(comp for _, comp in gate.operands):
            operands = []
            for ref, comp in gate.operands:
                if comp:
                    key = (node.parent, ref)
                    if key not in helpers:
                        hid = _unique(f"{ref} [not]", ids)
                        ids.add(hid)
                        helpers[key] = hid
                        nodes.append(GateNode(f"not {doc.node(ref).name}", node.parent,
                                              BooleanGate(hid, (), op="not", operands=((ref, False),))))
                    ref = helpers[key]
                operands.append((ref, False))
            node = replace(node, gate=replace(gate, operands=tuple(operands)))
        nodes.append(node)
    taken: dict[str | None, set[str]] = {}
    renamed: list[tuple[str, str]] = []
    named = []
    for node in nodes:
        siblings = taken.setdefault(node.parent, set())
        name = _unique(node.name.replace("/", "|").strip() or node.id.replace("/", "|"), siblings)
        siblings.add(name)
        if name != node.name:
            renamed.append((node.name, name))
            node = replace(node, name=name)
        named.append(node)
    return GatingDocument(tuple(named), doc.transforms, doc.matrices, source=doc.source), renamed


#: characters XML 1.0 cannot hold (lxml refuses them): C0 controls other than tab/LF/CR, surrogates, U+FFFE/F
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: object) -> str:
    """Untrusted FCS text ($FIL, file names) as an XML attribute value: invalid characters dropped."""
    return _XML_INVALID.sub("", str(text))


def _sample_node_name(sample: Sample) -> str:
    """FlowJo names a sample by its $FIL keyword (FlowKit matches FCS files to samples by it); else the
    file name."""
    return _xml_text(str(sample.metadata.get("fil") or sample.name).strip() or sample.name)


def workspace_bytes(entries: Sequence[WorkspaceEntry | tuple[Sample, GatingDocument]], *,
                    group: str = "All Samples", with_counts: bool = True) -> bytes:
    """The FlowJo 10 workspace XML for ``entries`` (see module docstring)."""
    items = [e if isinstance(e, WorkspaceEntry) else WorkspaceEntry(*e) for e in entries]
    if not items:
        raise GatingError("a FlowJo workspace needs at least one sample")
    root = etree.Element("Workspace", {"version": "20.0", "flowJoVersion": FLOWJO_VERSION, "curGroup": group},
                         nsmap=NSMAP)
    etree.SubElement(root, "Matrices")
    groups = etree.SubElement(root, "Groups")
    gnode = etree.SubElement(groups, "GroupNode", {"name": group, "annotation": "", "owningGroup": group,
                                                   "expanded": "1", "sortPriority": "10", "count": "-1"})
    g = etree.SubElement(gnode, "Group", {"name": group, "live": "1"})
    etree.SubElement(g, "Criteria")
    refs = etree.SubElement(g, "SampleRefs")
    sample_list = etree.SubElement(root, "SampleList")
    next_gate = 1
    all_renamed: dict[str, str] = {}
    for k, entry in enumerate(items, start=1):
        sample = entry.sample
        notes = {n.id: str(entry.annotations[n.name]) for n in entry.document.nodes if n.name in entry.annotations}
        doc, renamed = flowjo_document(entry.document)
        all_renamed.update(renamed)
        sid = str(k)
        etree.SubElement(refs, "SampleRef", {"sampleID": sid})
        plan = _SamplePlan(WorkspaceEntry(sample, doc), f"sample {sample.name!r}")
        ids = {}
        for node in doc.nodes:
            ids[node.id] = f"ID{next_gate}"
            next_gate += 1
            for d in node.dims:
                plan.param(d, node)
        plan.finish()
        counts: dict[str, int] = {}
        if with_counts:
            counts = {nid: int(np.count_nonzero(m)) for nid, m in evaluate_document(doc, sample).items()}
        s_el = etree.SubElement(sample_list, "Sample")
        uri = Path(sample.path).resolve().as_uri() if sample.path else _xml_text(sample.name)
        etree.SubElement(s_el, "DataSet", {"uri": uri, "sampleID": sid})
        if plan.matrix is not None:
            _matrix_element(s_el, plan, f"matrix-{sid}")
        xforms = etree.SubElement(s_el, "Transformations")
        for param, spec in plan.transforms.items():
            _transform_element(xforms, param, spec)
        kw = etree.SubElement(s_el, "Keywords")
        for key, value in (("$FIL", sample.metadata.get("fil", sample.name)), ("$TOT", str(sample.n_events)),
                           ("$PAR", str(sample.n_channels)), *entry.keywords.items()):
            etree.SubElement(kw, "Keyword", {"name": _xml_text(key), "value": _xml_text(value)})
        node_el = etree.SubElement(s_el, "SampleNode", {
            "name": _sample_node_name(sample), "annotation": "", "owningGroup": "", "expanded": "1", "sortPriority": "10",
            "count": str(sample.n_events), "sampleID": sid})
        _population_tree(node_el, None, plan, counts, ids, notes)
    if all_renamed:
        log.info("FlowJo population names: %s", "; ".join(f"{old!r} written as {new!r}"
                                                           for old, new in all_renamed.items()))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_workspace(path: str | Path, entries: Sequence[WorkspaceEntry | tuple[Sample, GatingDocument]], *,
                    group: str = "All Samples", with_counts: bool = True, force: bool = True) -> Path:
    """Write a FlowJo 10 workspace atomically (``force=False`` refuses to overwrite)."""
    return atomic_write_bytes(path, workspace_bytes(entries, group=group, with_counts=with_counts), force=force)
