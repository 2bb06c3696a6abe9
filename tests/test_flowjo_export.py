"""FlowJo 10 workspace export: several samples with their own gates, re-imported by FlowKit and by cytokit."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cytokit.errors import GatingError
from cytokit.fcs import read_fcs
from cytokit.flowjo import read_workspace, workspace_bytes, write_workspace
from cytokit.gates import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate
from cytokit.gatingml import (DimensionSpec, GateNode, GatingDocument, TransformSpec, evaluate_document)

LOGICLE = TransformSpec("lg", "logicle", {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0})
ASINH = TransformSpec("as", "fasinh", {"T": 262144.0, "M": 4.5, "A": 0.5})
FSC, SSC = DimensionSpec("FSC-A"), DimensionSpec("SSC-A")
FITC, PE = DimensionSpec("FITC-A", "FCS", "lg"), DimensionSpec("PE-A", "FCS", "lg")
APC, CY7 = DimensionSpec("APC-A", "FCS", "as"), DimensionSpec("PE-Cy7-A", "FCS", "as")


def _data2_doc() -> GatingDocument:
    """Gates drawn on data2.fcs: scatter on the linear scale, FCS-compensated logicle/asinh axes."""
    nodes = [
        GateNode("Cells", None, RectangleGate("Cells", ("FSC-A", "SSC-A"), lower=(52000.0, 85000.0),
                                              upper=(70000.0, None)), (FSC, SSC)),
        GateNode("Lymph", "Cells", PolygonGate("Lymph", ("FSC-A", "SSC-A"), vertices=(
            (53000.0, 85000.0), (69000.0, 90000.0), (68000.0, 150000.0), (55000.0, 140000.0))), (FSC, SSC)),
        GateNode("FITC+ PE+", "Lymph", QuadrantGate("FITC+ PE+", ("FITC-A", "PE-A"), dividers=(0.6, 0.65),
                                                     signs=(1, 1)), (FITC, PE)),
        GateNode("FITC- PE-", "Lymph", QuadrantGate("FITC- PE-", ("FITC-A", "PE-A"), dividers=(0.6, 0.65),
                                                    signs=(-1, -1)), (FITC, PE)),
        GateNode("Poly", "Lymph", PolygonGate("Poly", ("FITC-A", "PE-A"), vertices=(
            (0.4, 0.4), (0.9, 0.45), (0.8, 0.95), (0.45, 0.85))), (FITC, PE)),
        GateNode("Outside poly", "Lymph", PolygonGate("Outside poly", ("FITC-A", "PE-A"), vertices=(
            (0.4, 0.4), (0.9, 0.45), (0.8, 0.95), (0.45, 0.85))), (FITC, PE), complement=True),
        GateNode("Blob", "Lymph", EllipsoidGate("Blob", ("APC-A", "PE-Cy7-A"), mean=(0.62, 0.55),
                                                covariance=((0.01, 0.003), (0.003, 0.03)), distance_square=1.0),
                 (APC, CY7)),
        GateNode("Poly or DP", "Lymph", BooleanGate("Poly or DP", (), op="or",
                                                    operands=(("Poly", False), ("FITC+ PE+", False)))),
        GateNode("not DN", "Lymph", BooleanGate("not DN", (), op="not", operands=(("FITC- PE-", False),))),
    ]
    return GatingDocument(tuple(nodes), {"lg": LOGICLE, "as": ASINH}, {})


@pytest.fixture(scope="module")
def entries(shared_data: Path) -> list:
    """Two samples with different gates, instruments, compensation and transforms (incl. FlowJo biex)."""
    mouse = read_fcs(shared_data / "flowsom_68983" / "68983.fcs")
    mouse_doc = read_workspace(shared_data / "flowsom_68983" / "gating.wsp").samples[0].document
    human = read_fcs(shared_data / "gatingml2" / "FCSFiles" / "data2.fcs")
    return [(mouse, mouse_doc), (human, _data2_doc())]


def _counts_by_path(doc: GatingDocument, sample) -> dict[str, int]:
    masks = evaluate_document(doc, sample)
    return {"/".join(doc.path(k)): int(np.count_nonzero(v)) for k, v in masks.items()}


def test_flowkit_reimports_identical_per_sample_counts(tmp_path: Path, entries: list) -> None:
    import flowkit as fk

    path = write_workspace(tmp_path / "review.wsp", entries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(path), fcs_samples=[str(s.path) for s, _ in entries])
        ws.analyze_samples()
    for sample, doc in entries:
        ours = _counts_by_path(doc, sample)
        assert all(v > 0 for v in ours.values()), ours
        report = ws.get_gating_results(sample.metadata.get("fil", sample.name)).report
        theirs = {"/".join([p for p in r.gate_path if p != "root"] + [r.gate_name]): int(r.count)
                  for r in report.itertuples()}
        assert theirs.keys() == ours.keys()
        # FlowKit evaluates FlowJo ellipses as an inscribed 128-vertex polygon, cytokit as the exact ellipse
        # (which is what FlowJo counts, see test_flowjo_import): a few boundary events may differ there.
        ellipses = {"/".join(doc.path(n.id)) for n in doc.nodes if isinstance(n.gate, EllipsoidGate)}
        for key in ours:
            if key in ellipses:
                parent = ours.get(key.rsplit("/", 1)[0], sample.n_events) if "/" in key else sample.n_events
                assert 0 <= ours[key] - theirs[key] <= 0.001 * parent, (key, ours[key], theirs[key])
            else:
                assert theirs[key] == ours[key], f"{sample.name}/{key}: FlowKit {theirs[key]} != cytokit {ours[key]}"


def test_cytokit_reimports_identical_memberships(tmp_path: Path, entries: list) -> None:
    path = write_workspace(tmp_path / "review.wsp", entries)
    back = read_workspace(path)
    assert [s.file_name for s in back.samples] == [s.name for s, _ in entries]
    for ws_sample, (sample, doc) in zip(back.samples, entries):
        ours = {"/".join(doc.path(k)): v for k, v in evaluate_document(doc, sample).items()}
        again = {"/".join(ws_sample.document.path(k)): v
                 for k, v in evaluate_document(ws_sample.document, sample).items()}
        assert ours.keys() == again.keys()
        for key in ours:
            assert np.array_equal(ours[key], again[key]), key
        if "Cells/Lymph/Outside poly" in ours:  # eventsInside="0": the parent's events outside the shape
            assert np.array_equal(ours["Cells/Lymph/Outside poly"], ours["Cells/Lymph"] & ~ours["Cells/Lymph/Poly"])
        # the counts written into the workspace are cytokit's
        assert {("/".join(ws_sample.document.path(k))): v for k, v in ws_sample.flowjo_counts.items()} == \
            {k: int(v.sum()) for k, v in ours.items()}


def _single(node: GateNode, transforms=None, matrices=None) -> GatingDocument:
    return GatingDocument((node,), transforms or {}, matrices or {})


@pytest.mark.parametrize("doc,message", [
    (_single(GateNode("r", None, RectangleGate("r", ("FSC-A",), lower=(0.1,), upper=(0.5,)),
                      (DimensionSpec("FSC-A", "uncompensated", "lg10"),)),
             {"lg10": TransformSpec("lg10", "flog", {"T": 262144.0, "M": 4.5})}), "'flog' has no FlowJo"),
    (GatingDocument((
        GateNode("a", None, RectangleGate("a", ("FITC-A",), lower=(0.1,), upper=(None,)), (FITC,)),
        GateNode("b", None, RectangleGate("b", ("FITC-A",), lower=(0.1,), upper=(None,)),
                 (DimensionSpec("FITC-A", "FCS", "as"),))), {"lg": LOGICLE, "as": ASINH}),
     "two different transforms"),
    (GatingDocument((
        GateNode("a", None, RectangleGate("a", ("FSC-A",), lower=(1.0,), upper=(None,)), (FSC,)),
        GateNode("b", None, RectangleGate("b", ("SSC-A",), lower=(1.0,), upper=(None,)), (SSC,)),
        GateNode("c", None, BooleanGate("c", (), op="and", operands=(("a", False), ("b", True))))), {}),
     "cannot complement"),
    (_single(GateNode("e", None, EllipsoidGate("e", ("FSC-A", "SSC-A"), mean=(1.0, 1.0),
                                               covariance=((1.0, 0.0), (0.0, 1.0))), (FSC, SSC))),
     "need two dimensions, each with a transform"),
])
def test_export_refuses_what_flowjo_cannot_express(entries: list, doc: GatingDocument, message: str) -> None:
    human = entries[1][0]
    with pytest.raises(GatingError, match=message) as info:
        workspace_bytes([(human, doc)], with_counts=False)
    assert "data2.fcs" in str(info.value)
