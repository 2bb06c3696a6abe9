"""`cytokit learn` / `compare-gates` read every workspace dialect the FlowJo reader reads, whatever the file
is called: FlowJo 9 and FACSDiva workspaces are ``.xml`` files, not Gating-ML (both entry points stopped with
"not a Gating-ML document" before), and a strategy derived from a FlowJo 9 workspace gates on the file's
channels (its compensated dimensions are named ``<FITC-A>`` after the matrix, not ``Comp-FITC-A``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cytokit.errors import ConfigError
from cytokit.fcs import read_fcs
from cytokit.learn.derive import derive_strategy
from cytokit.learn.expert import load_expert


def test_flowjo9_and_diva_xml_are_read_as_workspaces(shared_data: Path) -> None:
    folder = shared_data / "flowjo9_diva"
    fj9 = load_expert(folder / "A2004Analysis.xml", [folder / "a2004_O1T2pb05i_A2_A02.fcs"])
    assert [e.name for e in fj9] == ["a2004_O1T2pb05i_A2_A02"]
    assert "Live/APC/mDC" in {"/".join(fj9[0].document.path(n.id)) for n in fj9[0].document.nodes}
    diva = load_expert(folder / "diva" / "PE_2.xml", [folder / "diva" / "124500.fcs"])
    assert [e.name for e in diva] == ["124500"] and len(diva[0].document.nodes) >= 5


def test_strategy_derived_from_flowjo9_gates_on_the_files_channels(shared_data: Path) -> None:
    folder = shared_data / "flowjo9_diva"
    fcs = folder / "a2004_O1T2pb05i_A2_A02.fcs"
    expert = load_expert(folder / "A2004Analysis.xml", [fcs])[0]
    strategy = derive_strategy(expert.document, fcs)
    channels = set(read_fcs(fcs).channels["pnn"])
    dims = {d for p in strategy.definition.populations for d in (p.dims or ())}
    assert {"PerCP-CY5-5-A", "PE-CY7-A", "Am Cyan-A", "APC-A"} <= dims
    assert dims <= channels, sorted(dims - channels)


def test_a_ratio_gate_cannot_be_derived_and_the_error_says_so(shared_data: Path) -> None:
    gml = shared_data / "gatingml2"
    fcs = gml / "FCSFiles" / "data1.fcs"
    expert = load_expert(gml / "Gating-MLFiles" / "gates1.xml", [fcs])[0]
    with pytest.raises(ConfigError, match=r"'RatRange1' is drawn on the ratio dimension\(s\) FL2Rat1") as err:
        derive_strategy(expert.document, fcs, source=gml / "Gating-MLFiles" / "gates1.xml")
    assert "gates1.xml" in str(err.value)  # before: "no channel named 'FL2Rat1'", as if the file lacked one
