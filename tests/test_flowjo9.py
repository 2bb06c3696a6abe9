"""FlowJo 9 XML workspace import (bonus dialect): structure and approximate agreement with FlowJo's counts."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from cytokit.errors import GatingError
from cytokit.fcs import read_fcs
from cytokit.flowjo import read_workspace, workspace_counts
from cytokit.gates import EllipsoidGate, RectangleGate

log = logging.getLogger(__name__)


def test_flowjo9_workspace_against_flowjo_counts(shared_data: Path) -> None:
    folder = shared_data / "flowjo9_diva"
    ws = read_workspace(folder / "A2004Analysis.xml")
    assert ws.version == "9.2" and [s.sample_id for s in ws.samples] == ["1", "2"]
    expected = pd.read_csv(folder / "A2004Analysis_flowjo_counts.csv")
    expected = expected[expected["sample"].str.endswith("sampleID=2")]
    sample = read_fcs(folder / "a2004_O1T2pb05i_A2_A02.fcs")
    table = workspace_counts(ws, sample)  # found by $FIL
    doc = ws.sample("2").document
    assert sorted(table["path"]) == sorted(expected["gate_path"])
    assert any(isinstance(n.gate, EllipsoidGate) for n in doc.nodes)
    assert any(isinstance(n.gate, RectangleGate) and len(n.dims) == 1 for n in doc.nodes)  # Range gates
    apc = doc.node("Live/APC")
    assert [d.name for d in apc.dims] == ["<PerCP-CY5-5-A>", "<PE-CY7-A>"]
    assert all(d.compensation == ws.sample("2").matrix_id and d.transform.startswith("flowjo_table") for d in apc.dims)
    assert [d.transform for d in doc.node("Live").dims] == [None, None]  # scatter stays linear
    merged = table.merge(expected, left_on="path", right_on="gate_path").dropna(subset=["flowjo_count_y"])
    assert len(merged) == 18
    dev = (merged["count"] - merged["flowjo_count_y"]).abs()
    pct = 100 * dev / merged["parent_count"]
    big = merged["parent_count"] >= 1000
    log.info("FlowJo 9 deviations (%% of parent): %s", dict(zip(merged["path"], pct.round(3))))
    # Agreement with FlowJo 9 is approximate (cause not found; see docs/interop.md): worst 0.33 % of
    # parent for parents >= 1000 events, at most 1 event below that.
    assert pct[big].max() < 0.5
    assert dev[~big].max() <= 2
    assert (merged["count"] == merged["flowjo_count_y"]).sum() >= 9


def test_flowjo9_rejects_broken_tables(tmp_path: Path, shared_data: Path) -> None:
    text = (shared_data / "flowjo9_diva" / "A2004Analysis.xml").read_text(encoding="latin-1")
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace('calibrationIndex="1"', 'calibrationIndex="99"', 1), encoding="latin-1")
    with pytest.raises(GatingError, match="calibration table 99") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)


def test_flowjo9_bad_numbers_raise_gating_error(tmp_path: Path, shared_data: Path) -> None:
    # a non-numeric vertex or count used to leak float()/int()'s ValueError
    text = (shared_data / "flowjo9_diva" / "A2004Analysis.xml").read_text(encoding="latin-1")
    k = text.index("<Vertex x=", text.index("<SampleNode"))
    bad = tmp_path / "vertex.xml"
    bad.write_text(text[:k] + text[k:].replace('<Vertex x="', '<Vertex x="abc', 1), encoding="latin-1")
    with pytest.raises(GatingError, match="not numbers") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)
    bad = tmp_path / "count.xml"
    bad.write_text(text.replace('count="61832"', 'count="61,832"', 1), encoding="latin-1")
    with pytest.raises(GatingError, match="count '61,832' is not an integer") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)
