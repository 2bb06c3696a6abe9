"""Gating-ML 2.0 writing (round trip, FlowKit reads it back identically) and clear errors on bad input."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import CytokitError, GatingError
from cytokit.fcs import read_fcs
from cytokit.gates import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate
from cytokit.gatingml import (DimensionSpec, GateNode, GatingDocument, SpectrumMatrixSpec, TransformSpec,
                              evaluate_document, gatingml_bytes, population_counts, read_gatingml,
                              write_gatingml)
from cytokit.gatingml.writer import xml_ids
from cytokit.sample import CHANNEL_COLUMNS, Sample


def _doc() -> GatingDocument:
    """A hierarchy of concrete gates drawn on compensated, transformed data2.fcs channels."""
    logicle = TransformSpec("logicle1", "logicle", {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0})
    asinh = TransformSpec("asinh1", "fasinh", {"T": 262144.0, "M": 4.5, "A": 0.5})
    lin = TransformSpec("lin1", "flin", {"T": 262144.0, "A": 0.0})
    spill = SpectrumMatrixSpec("custom", ("cFITC", "cPE"), ("FITC-A", "PE-A"),
                               np.array([[1.0, 0.13], [0.01, 1.0]]))
    fsc = DimensionSpec("FSC-A")
    ssc = DimensionSpec("SSC-A")
    fitc = DimensionSpec("FITC-A", "FCS", "logicle1")
    pe = DimensionSpec("PE-A", "FCS", "logicle1")
    nodes = [
        GateNode("Cells", None, RectangleGate("Cells", ("FSC-A", "SSC-A"), lower=(20000.0, 5000.0),
                                              upper=(250000.0, None)), (fsc, ssc)),
        GateNode("Lymph", "Cells", PolygonGate("Lymph", ("FSC-A", "SSC-A"), vertices=(
            (30000.0, 5000.0), (120000.0, 5000.0), (150000.0, 60000.0), (60000.0, 90000.0))), (fsc, ssc)),
        GateNode("FITC+ PE+", "Lymph", QuadrantGate("FITC+ PE+", ("FITC-A", "PE-A"), dividers=(0.35, 0.3),
                                                     signs=(1, 1)), (fitc, pe)),
        GateNode("FITC- PE-", "Lymph", QuadrantGate("FITC- PE-", ("FITC-A", "PE-A"), dividers=(0.35, 0.3),
                                                    signs=(-1, -1)), (fitc, pe)),
        GateNode("Blob", "Lymph", EllipsoidGate("Blob", ("FITC-A", "PE-A"), mean=(0.3, 0.3),
                                                covariance=((0.01, 0.002), (0.002, 0.02)), distance_square=2.0),
                 (DimensionSpec("FITC-A", "FCS", "asinh1"), DimensionSpec("PE-A", "FCS", "asinh1"))),
        GateNode("Custom", "Cells", RectangleGate("Custom", ("cFITC", "cPE"), lower=(0.2, 0.2), upper=(0.8, None)),
                 (DimensionSpec("cFITC", "custom", "logicle1"), DimensionSpec("cPE", "custom", "logicle1"))),
        GateNode("Linear", "Cells", RectangleGate("Linear", ("SSC-A",), lower=(0.05,), upper=(0.3,)),
                 (DimensionSpec("SSC-A", "uncompensated", "lin1"),)),
        GateNode("Blob or DP", "Lymph", BooleanGate("Blob or DP", (), op="or",
                                                    operands=(("Blob", False), ("FITC+ PE+", False)))),
        GateNode("not DN", None, BooleanGate("not DN", (), op="not", operands=(("FITC- PE-", False),))),
    ]
    return GatingDocument(tuple(nodes), {t.id: t for t in (logicle, asinh, lin)}, {"custom": spill})


@pytest.fixture(scope="module")
def data2(shared_data: Path) -> Path:
    return shared_data / "gatingml2" / "FCSFiles" / "data2.fcs"


def test_round_trip_is_identical(tmp_path: Path) -> None:
    doc = _doc()
    path = write_gatingml(doc, tmp_path / "gates.xml")
    back = read_gatingml(path)
    assert back.nodes == doc.nodes
    assert dict(back.transforms) == dict(doc.transforms)
    assert dict(back.matrices) == dict(doc.matrices)
    with pytest.raises(CytokitError, match="exists"):
        write_gatingml(doc, path, force=False)


def test_flowkit_reads_written_gates_with_identical_membership(tmp_path: Path, data2: Path) -> None:
    import flowkit as fk

    doc = _doc()
    path = write_gatingml(doc, tmp_path / "gates.xml")
    masks = evaluate_document(doc, read_fcs(data2))
    counts = population_counts(doc, masks, len(next(iter(masks.values()))))
    assert (counts["count"] > 0).all() and (counts["count"] < counts["parent_count"]).all(), counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fk.parse_gating_xml(str(path)).gate_sample(fk.Sample(str(data2)))
    ids = xml_ids(doc)
    assert ids["FITC+ PE+"] == "FITC_p_PE_p" and ids["Blob or DP"] == "Blob_or_DP"
    for node in doc.nodes:
        theirs = np.asarray(result.get_gate_membership(ids[node.id]), dtype=bool)
        assert np.array_equal(masks[node.id], theirs), (
            f"{node.id}: {np.count_nonzero(masks[node.id] != theirs)} events differ from FlowKit")


def test_population_counts_are_percent_of_parent(data2: Path) -> None:
    doc = _doc()
    sample = read_fcs(data2)
    table = population_counts(doc, evaluate_document(doc, sample), sample.n_events)
    row = table.set_index("id").loc["Lymph"]
    assert row["path"] == "/Cells/Lymph"
    assert row["pct_parent"] == pytest.approx(100.0 * row["count"] / row["parent_count"])
    assert table.set_index("id").loc["Cells", "parent_count"] == sample.n_events


def test_evaluate_subset_of_ids_includes_dependencies(data2: Path) -> None:
    masks = evaluate_document(_doc(), read_fcs(data2), ids=["Blob or DP"])
    assert set(masks) == {"Cells", "Lymph", "Blob", "FITC+ PE+", "Blob or DP"}


# -- errors ----------------------------------------------------------------------------------------
GML = """<?xml version="1.0"?>
<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating"
 xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
 xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">{body}</gating:Gating-ML>"""
RECT = """<gating:RectangleGate gating:id="{id}" {extra}><gating:dimension gating:min="{min}" {dimextra}>
<data-type:fcs-dimension data-type:name="{name}"/></gating:dimension></gating:RectangleGate>"""


def _rect(id="R", extra="", min="1", dimextra="", name="FSC-A") -> str:
    return RECT.format(id=id, extra=extra, min=min, dimextra=dimextra, name=name)


@pytest.mark.parametrize("body,message", [
    ("", "holds no gates"),
    (_rect(min="abc"), "not a number"),
    (_rect(id=""), "has no id"),
    (_rect(extra='gating:parent_id="nope"'), "unknown gate 'nope'"),
    (_rect(dimextra='gating:transformation-ref="T1"'), "unknown transformation 'T1'"),
    (_rect(dimextra='gating:compensation-ref="M1"'), "unknown compensation 'M1'"),
    (_rect(id="A", extra='gating:parent_id="B"') + _rect(id="B", extra='gating:parent_id="A"'), "cycle"),
    (_rect() + _rect(), "duplicate gate id"),
    ('<transforms:transformation transforms:id="t"><transforms:splog transforms:T="1"/></transforms:transformation>'
     + _rect(), "unsupported or missing transformation"),
    ('<gating:BooleanGate gating:id="B"><gating:and><gating:gateReference gating:ref="R"/></gating:and>'
     '</gating:BooleanGate>' + _rect(), "at least two"),
])
def test_bad_documents_raise_gating_errors_naming_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(GML.format(body=body))
    with pytest.raises(GatingError, match=message) as info:
        read_gatingml(path)
    assert str(path) in str(info.value)


def test_not_xml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xml"
    bad.write_text("<gating:Gating-ML><unclosed>")
    with pytest.raises(GatingError, match="not well-formed") as info:
        read_gatingml(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(GatingError, match="cannot read"):
        read_gatingml(tmp_path / "absent.xml")
    other = tmp_path / "other.xml"
    other.write_text("<html/>")
    with pytest.raises(GatingError, match="not a Gating-ML document"):
        read_gatingml(other)


def _tiny_sample(names=("FSC-A", "SSC-A"), compensated=False) -> Sample:
    ch = pd.DataFrame({c: [""] * len(names) for c in CHANNEL_COLUMNS})
    ch["pnn"] = list(names)
    return Sample(np.ones((5, len(names)), dtype=np.float32), ch, path=Path("tiny.fcs"), compensated=compensated)


def test_evaluation_errors_name_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "g.xml"
    path.write_text(GML.format(body=_rect(name="CD4-PE")))
    doc = read_gatingml(path)
    with pytest.raises(GatingError, match="CD4-PE") as info:
        evaluate_document(doc, _tiny_sample())
    assert "tiny.fcs" in str(info.value)
    with pytest.raises(GatingError, match="raw Sample"):
        evaluate_document(doc, _tiny_sample(compensated=True))


def test_written_text_is_namespaced_gatingml() -> None:
    text = gatingml_bytes(_doc()).decode()
    assert "http://www.isac-net.org/std/Gating-ML/v2.0/gating" in text
    assert 'gating:parent_id="Lymph"' in text and "transforms:logicle" in text and "spectrumMatrix" in text


def test_writer_refuses_transforms_outside_gatingml() -> None:
    doc = _doc()
    biex = TransformSpec("bx", "flowjo_biex", {"pos": 4.4, "neg": 0.0, "width": -10.0, "max_value": 262144.0})
    bad = GatingDocument(doc.nodes, {**doc.transforms, "bx": biex}, doc.matrices)
    with pytest.raises(GatingError, match="'flowjo_biex', which Gating-ML 2.0 does not define"):
        gatingml_bytes(bad)
    odd = GatingDocument(doc.nodes, {**doc.transforms, "bad id": TransformSpec("bad id", "flin", {"T": 1.0, "A": 0.0})},
                         doc.matrices)
    with pytest.raises(GatingError, match="not a valid XML id"):
        gatingml_bytes(odd)


def test_reads_flowkit_exported_eight_colour_gatingml(shared_data: Path) -> None:
    doc = read_gatingml(shared_data / "flowkit" / "8_color_data_set" / "8_color_ICS.xml")
    assert [n.id for n in doc.nodes] == ["TimeGate", "Singlets", "aAmine-", "CD3-pos", "CD4-pos", "CD8-pos"]
    assert doc.path("CD8-pos") == ("TimeGate", "Singlets", "aAmine-", "CD3-pos", "CD8-pos")
    cd4 = doc.node("CD4-pos")
    assert [(d.compensation, d.transform) for d in cd4.dims] == [("Acquisition-defined", "logicle-default")] * 2
    assert doc.transforms["logicle-default"].kind == "logicle"
    assert doc.matrices["Acquisition-defined"].values.shape[0] == len(doc.matrices["Acquisition-defined"].fluorochromes)


def test_flowjo_gatingml_export_without_compensation_is_a_clear_error(shared_data: Path) -> None:
    # FlowJo's own Gating-ML export names "Comp-" channels without a compensation reference or matrix.
    folder = shared_data / "flowsom_68983"
    doc = read_gatingml(folder / "manualGating.xml")
    with pytest.raises(GatingError, match="Comp-PE-Cy5-A") as info:
        evaluate_document(doc, read_fcs(folder / "68983.fcs"))
    assert "68983.fcs" in str(info.value) and "manualGating.xml" in str(info.value)


def test_malformed_spillover_keyword_raises_compensation_error() -> None:
    from cytokit.errors import CompensationError
    from cytokit.gatingml.compensation import spillover_from_metadata

    assert spillover_from_metadata({"spillover": "2,A,B,1,0.1,0,1"})[0] == ("A", "B")
    for text in ("inf,A,1", "x,A,1", "2,A,B,1,0,0", "1,A,one"):  # "inf" used to leak int()'s OverflowError
        with pytest.raises(CompensationError, match="spillover"):
            spillover_from_metadata({"spillover": text}, path="f.fcs")


def test_a_pass_through_rectangle_is_written_as_valid_gatingml(tmp_path: Path, data2: Path) -> None:
    """A rectangle with no bound (the Singlets of a tube without FSC-A) must still have a min or a max in
    Gating-ML: it is written with the lowest finite double as min, and this reader and FlowKit keep every
    event, as the gate does."""
    import flowkit as fk

    doc = GatingDocument(nodes=(GateNode("All", None, RectangleGate("All", ("FSC-A", "SSC-A"), lower=(None, None),
                                                                    upper=(None, None)),
                                         (DimensionSpec("FSC-A"), DimensionSpec("SSC-A"))),))
    path = write_gatingml(doc, tmp_path / "gates.xml")
    back = read_gatingml(path)
    gate = back.nodes[0].gate
    assert isinstance(gate, RectangleGate) and gate.lower[0] is not None and gate.lower[0] < -1e300
    sample = read_fcs(data2)
    assert evaluate_document(back, sample)["All"].all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fk.parse_gating_xml(str(path)).gate_sample(fk.Sample(str(data2)))
    assert np.asarray(result.get_gate_membership("All"), dtype=bool).all()
