"""Read BD FACSDiva experiment XML exports into :class:`~cytokit.flowjo.model.FlowJoWorkspace`.

Each acquired tube (``data_filename``) becomes a sample whose gates are moved into the space DiVa draws
them in: log parameters on a logicle scale (T = 262144, M = 4.5, A = 0, W from the tube's biexponential
scale value ``r``: ``W = max(0, (M - log10(T / r)) / 2)``), linear parameters on the linear scale. Gate
coordinates are stored either "scaled" (0..4096 display units of a logicle with the *gate's* scale value,
or of 0..262144 for linear parameters), or unscaled (log10 values for log parameters, linear values
otherwise). The compensation is DiVa's own compensation matrix (already inverted) when the tube says
compensation is enabled, else the file's $SPILLOVER. Rectangle, polygon and interval regions are read.
This follows the published reading of DiVa exports (CytoML); DiVa's display scale is not documented.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lxml import etree

from ..errors import GatingError
from ..gates import Gate, PolygonGate, RectangleGate
from ..scales import scale_transform
from ..gatingml.model import (FCS_COMPENSATION, UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument,
                              SpectrumMatrixSpec, TransformSpec)
from ..gatingml.xmlutil import parse_xml
from .model import FlowJoSample, FlowJoWorkspace

TOP = 262144.0
DECADES = 4.5
DISPLAY = 4096.0


def _width(r: float) -> float:
    if r <= 0:
        return 0.0
    return max(0.0, (DECADES - np.log10(TOP / r)) / 2.0)


def _logicle(r: float) -> TransformSpec:
    w = _width(r)
    return TransformSpec(f"logicle_W{w!r}", "logicle", {"T": TOP, "W": w, "M": DECADES, "A": 0.0})


def read_diva(source: str | Path | bytes) -> FlowJoWorkspace:
    """Parse a FACSDiva XML export (``<bdfacs>``); one sample per tube with a data file."""
    root, path = parse_xml(source, what="FACSDiva XML")
    return diva_workspace(root, path)


def diva_workspace(root: etree._Element, path: str | None) -> FlowJoWorkspace:
    """The workspace of a parsed FACSDiva XML export (``path`` names the file in errors)."""
    if root.tag != "bdfacs":
        raise GatingError(f"not a FACSDiva export (root element is <{root.tag}>)", path=path)
    samples = []
    for tube in root.iter("tube"):
        fname = (tube.findtext("data_filename") or "").strip()
        if fname and tube.find("gates") is not None:
            samples.append(_tube(tube, fname, path))
    return FlowJoWorkspace(tuple(samples), {}, root.get("version", ""), source=path)


def _float(text: str | None, where: str, path: str | None) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GatingError(f"{where}: {text!r} is not a number", path=path) from None


def _int(text: str | None, where: str, path: str | None) -> int | None:
    """An event count (None when absent)."""
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise GatingError(f"{where}: event count {text!r} is not an integer", path=path) from None


def _tube(tube: etree._Element, fname: str, path: str | None) -> FlowJoSample:
    where = f"tube {tube.get('name')!r} ({fname})"
    ins = tube.find("instrument_settings")
    anc = tube.getparent()
    while ins is None and anc is not None:  # settings shared by a specimen or the experiment
        ins = anc.find("instrument_settings")
        anc = anc.getparent()
    if ins is None:
        raise GatingError(f"{where}: no instrument_settings", path=path)
    auto = (ins.findtext("use_auto_biexp_scale") or "true").strip().lower() == "true"
    comp_on = (ins.findtext("compensation_enabled") or "false").strip().lower() == "true"
    scale_tag = "comp_biexp_scale" if auto else "manual_biexp_scale"
    log_params: dict[str, TransformSpec] = {}
    comp_names, comp_rows = [], []
    for p in ins.findall("parameter"):
        name = p.get("name", "")
        if (p.findtext("is_log") or "").strip().lower() == "true":
            log_params[name] = _logicle(_float(p.findtext(scale_tag) or "0", f"{where}, parameter {name!r}", path))
        c = p.find("compensation")
        if c is not None:
            comp_names.append(name)
            comp_rows.append([_float(v.text, f"{where}, compensation of {name!r}", path)
                              for v in c.findall("compensation_coefficient")])
    matrix = None
    if comp_on and comp_names:
        D = np.asarray(comp_rows, dtype=np.float64).T  # column j = coefficients of parameter j
        if D.shape != (len(comp_names), len(comp_names)):
            raise GatingError(f"{where}: compensation matrix is {D.shape}, expected {len(comp_names)} square", path=path)
        matrix = SpectrumMatrixSpec("diva", tuple(comp_names), tuple(comp_names), D, inverted=True)
    comp_ref = matrix.id if matrix is not None else FCS_COMPENSATION
    transforms = {t.id: t for t in log_params.values()}
    scales: dict[str, object] = {}

    def scale(spec: TransformSpec):
        if spec.id not in scales:
            scales[spec.id] = scale_transform(spec)
        return scales[spec.id]

    def dim_and_coords(param: str, coords: np.ndarray, scaled: bool, gate_r: float) -> tuple[DimensionSpec, np.ndarray]:
        is_log = param in log_params
        comp = comp_ref if param in comp_names else UNCOMPENSATED
        if not is_log:
            lin = coords / DISPLAY * TOP if scaled else coords
            return DimensionSpec(param, comp), lin
        lin = scale(_logicle(gate_r)).inverse(coords / DISPLAY) if scaled else 10.0 ** coords
        spec = log_params[param]
        return DimensionSpec(param, comp, spec.id), np.asarray(scale(spec).forward(lin), dtype=np.float64)

    nodes: list[GateNode] = []
    counts: dict[str, int] = {}
    total = None
    for g in tube.find("gates").findall("gate"):
        full = (g.get("fullname") or "").replace("\\", "/")
        n_events = g.findtext("num_events")
        if g.get("type") == "EventSource_Classifier":
            total = _int(n_events, where, path)
            continue
        if g.get("type") != "Region_Classifier":
            continue
        node_id = full.split("/", 1)[1] if "/" in full else full
        parent_full = (g.findtext("parent") or "").replace("\\", "/")
        parent = parent_full.split("/", 1)[1] if "/" in parent_full else None
        region = g.find("region")
        if region is None:
            raise GatingError(f"{where}: gate {full!r} has no region", path=path)
        pts = np.array([[_float(p.get("x"), f"{where}, gate {full!r}", path),
                         _float(p.get("y"), f"{where}, gate {full!r}", path)] for p in region.iter("point")])
        if len(pts) < 2:
            raise GatingError(f"{where}: gate {full!r} has {len(pts)} region point(s)", path=path)
        params = [region.get("xparm")] + ([region.get("yparm")] if region.get("yparm") else [])
        dims, cols = [], []
        for axis, param in zip("xy", params):
            scaled = (g.findtext(f"is_{axis}_parameter_scaled") or "false").strip().lower() == "true"
            r = _float(g.findtext(f"{axis}_parameter_scale_value") or "0", f"{where}, gate {full!r}", path)
            d, c = dim_and_coords(param, pts[:, "xy".index(axis)], scaled, r)
            dims.append(d)
            cols.append(c)
        labels = tuple(d.name for d in dims)
        rtype = region.get("type")
        gate: Gate
        if rtype == "INTERVAL_REGION":
            lo, hi = sorted(cols[0][:2])
            gate = RectangleGate(node_id, labels[:1], lower=(float(lo),), upper=(float(hi),))
            dims = dims[:1]
        elif rtype == "RECTANGLE_REGION":
            gate = RectangleGate(node_id, labels, lower=tuple(float(c.min()) for c in cols),
                                 upper=tuple(float(c.max()) for c in cols))
        elif rtype == "POLYGON_REGION":
            gate = PolygonGate(node_id, labels, vertices=tuple(map(tuple, np.column_stack(cols).tolist())))
        else:
            raise GatingError(f"{where}: gate {full!r}: region type {rtype!r} is not supported", path=path)
        nodes.append(GateNode(node_id.rsplit("/", 1)[-1], parent, gate, tuple(dims)))
        count = _int(n_events, f"{where}, gate {full!r}", path)
        if count is not None:
            counts[node_id] = count
    doc = GatingDocument(tuple(nodes), transforms, {matrix.id: matrix} if matrix else {}, source=path) if nodes else None
    return FlowJoSample(sample_id=tube.get("name", fname), name=fname, document=doc, total_count=total,
                        flowjo_counts=counts, keywords={"$FIL": fname}, matrix_id=matrix.id if matrix else None)
