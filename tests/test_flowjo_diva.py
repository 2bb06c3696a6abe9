"""BD FACSDiva XML export (bonus dialect): tube gates applied to the FCS file against DiVa's counts."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from cytokit.errors import GatingError
from cytokit.fcs import read_fcs
from cytokit.flowjo import read_workspace, workspace_counts
from cytokit.gates import PolygonGate, RectangleGate

log = logging.getLogger(__name__)


def test_diva_tube_within_0_2_percent_of_parent(shared_data: Path) -> None:
    folder = shared_data / "flowjo9_diva" / "diva"
    ws = read_workspace(folder / "PE_2.xml")
    assert len(ws.samples) == 13 and ws.sample("124500.fcs").total_count == 19090
    expected = pd.read_csv(folder / "PE_2_tube_001_124500_diva_counts.csv")
    expected = expected[expected["region_type"].notna()].copy()
    expected["path"] = "/" + expected["gate_fullname"].str.split("/", n=1).str[1]
    table = workspace_counts(ws, read_fcs(folder / "124500.fcs"))
    merged = table.merge(expected, on="path")
    assert len(merged) == len(expected) == 5
    assert (merged["flowjo_count"] == merged["diva_num_events"]).all()
    doc = ws.sample("124500.fcs").document
    kinds = {"RECTANGLE_REGION": RectangleGate, "POLYGON_REGION": PolygonGate, "INTERVAL_REGION": RectangleGate}
    for row in merged.itertuples():
        node = doc.node(row.path.lstrip("/"))
        assert isinstance(node.gate, kinds[row.region_type])
        assert node.dims[0].name == row.x_param
    assert doc.node("P1/P2/P3").dims[1].transform is not None  # APC-Cy7-A on DiVa's logicle scale
    assert doc.node("P1/P2/P3").dims[1].compensation == "diva"
    worst = merged["deviation_pct_parent"].abs().max()
    log.info("DiVa worst deviation: %.3f%% of parent", worst)
    assert worst < 0.2, merged[["path", "count", "diva_num_events", "deviation_pct_parent"]]


def test_diva_rejects_unknown_regions(tmp_path: Path, shared_data: Path) -> None:
    text = (shared_data / "flowjo9_diva" / "diva" / "PE_2.xml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace('type="POLYGON_REGION"', 'type="SNAKE_REGION"'), encoding="utf-8")
    with pytest.raises(GatingError, match="SNAKE_REGION") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)


def test_diva_bad_counts_and_regions_raise_gating_error(tmp_path: Path, shared_data: Path) -> None:
    # used to leak int()'s ValueError / numpy's IndexError
    text = (shared_data / "flowjo9_diva" / "diva" / "PE_2.xml").read_text(encoding="utf-8")
    bad = tmp_path / "count.xml"
    bad.write_text(text.replace("<num_events>36899</num_events>", "<num_events>36,899</num_events>"),
                   encoding="utf-8")
    with pytest.raises(GatingError, match="'36,899' is not an integer") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)
    start = text.index("<points>", text.index("<num_events>36899</num_events>"))
    end = text.index("</points>", start)
    empty = tmp_path / "points.xml"
    empty.write_text(text[:start] + "<points>" + text[end:], encoding="utf-8")
    with pytest.raises(GatingError, match="0 region point") as info:
        read_workspace(empty)
    assert str(empty) in str(info.value)
