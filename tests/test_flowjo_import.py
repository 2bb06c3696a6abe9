"""FlowJo 10 workspace import: counts against FlowJo's own, structure of workspaces without FCS files."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from cytokit.errors import GatingError
from cytokit.fcs import read_fcs
from cytokit.flowjo import read_workspace, workspace_counts
from cytokit.gates import BooleanGate, EllipsoidGate

log = logging.getLogger(__name__)


def test_simple_examples_match_flowjo_counts(shared_data: Path) -> None:
    folder = shared_data / "flowkit"
    expected = pd.read_csv(folder / "simple_examples_expected_counts.csv")
    assert len(expected) == 8
    for row in expected.itertuples():
        ws = read_workspace(folder / row.wsp_file)
        sample = read_fcs(folder / row.fcs_file)
        table = workspace_counts(ws, sample, key=ws.samples[0].sample_id)
        hits = table[table["population"] == row.gate_name]
        assert len(hits) == 1, f"{row.wsp_file}: no single population {row.gate_name!r}"
        assert int(hits["count"].iloc[0]) == row.expected_count, f"{row.wsp_file}/{row.gate_name}"


def test_flowsom_workspace_within_0_2_percent_of_parent(shared_data: Path) -> None:
    folder = shared_data / "flowsom_68983"
    ws = read_workspace(folder / "gating.wsp")
    table = workspace_counts(ws, read_fcs(folder / "68983.fcs"))
    expected = pd.read_csv(folder / "gating_wsp_flowjo_counts.csv")
    assert sorted(table["path"]) == sorted(expected["gate_path"])
    merged = table.merge(expected, left_on="path", right_on="gate_path")
    assert (merged["flowjo_count_x"] == merged["flowjo_count_y"]).all()  # counts read from the workspace
    worst = merged["deviation_pct_parent"].abs().max()
    log.info("flowsom_68983 worst deviation from FlowJo: %.4f%% of parent", worst)
    assert worst < 0.2, merged[["path", "count", "flowjo_count_x", "deviation_pct_parent"]]
    # The populations below the (13-event) difference at the root agree exactly with FlowJo.
    exact = merged[merged["path"].str.contains("NK1_1\\+|CD8 T|gd T|DP T")]
    assert (exact["count"] == exact["flowjo_count_y"]).all()


@pytest.fixture(scope="module")
def eight_colour(shared_data: Path) -> tuple[Path, pd.DataFrame]:
    folder = shared_data / "flowkit" / "8_color_data_set"
    return folder, pd.read_csv(folder / "8_color_ICS_wsp_flowjo_counts_FCS_NOT_AVAILABLE.csv")


def test_eight_colour_hierarchy_matches_flowjo_gate_paths(eight_colour) -> None:
    folder, counts = eight_colour
    ws = read_workspace(folder / "8_color_ICS.wsp")
    assert len(ws.samples) == 3
    for s in ws.samples:
        exp = counts[counts["sample"] == f"{s.name}|sampleID={s.sample_id}"]
        assert len(exp) == 14
        paths = {"/" + "/".join(s.document.path(n.id)) for n in s.document.nodes}
        assert paths == set(exp["gate_path"])
        for row in exp.itertuples():
            assert s.flowjo_counts[row.gate_path.lstrip("/")] == row.flowjo_count
        cd4 = s.document.node("Time/Singlets/aAmine-/CD3+/CD4+")
        assert cd4.parent == "Time/Singlets/aAmine-/CD3+"
        assert all(d.compensation == s.matrix_id and d.transform for d in cd4.dims)
        assert s.document.matrices[s.matrix_id].values.shape == (8, 8)


def test_eight_colour_variants(eight_colour) -> None:
    folder, _ = eight_colour
    boolean = read_workspace(folder / "8_color_ICS_boolean_gate_testing.wsp").samples[0].document
    ops = {n.name: n.gate.op for n in boolean.nodes if isinstance(n.gate, BooleanGate)}
    assert ops["CD107a+ & IFNg+"] == "and" and ops["CD107a+ or IFNg+"] == "or" and ops["TNFa+-"] == "not"
    or_node = boolean.node("Time/Singlets/aAmine-/CD3+/CD4+/CD107a+ or IFNg+")
    assert [g for g, _ in or_node.gate.operands] == ["Time/Singlets/aAmine-/CD3+/CD4+/CD107a+",
                                                     "Time/Singlets/aAmine-/CD3+/CD4+/IFNg+"]
    dotted = read_workspace(folder / "8_color_ICS_dot_gate_name.wsp").samples[0].document
    assert "Time/Singlets/aAmine-/CD3+/CD4+/." in dotted.ids
    no_gates = read_workspace(folder / "8_color_ICS_sample_without_gates.wsp")
    assert [s.document is None for s in no_gates.samples] == [False, True, False]
    ellipse = read_workspace(folder / "8_color_ICS_with_ellipse.wsp").samples[0].document
    assert sum(isinstance(n.gate, EllipsoidGate) for n in ellipse.nodes) == 1
    quad = read_workspace(folder / "reused_quad_gate_with_child.wsp")
    assert len(quad.samples) == 1 and len(quad.samples[0].document) == 13


def test_workspace_errors(tmp_path: Path, shared_data: Path) -> None:
    bad = tmp_path / "bad.wsp"
    bad.write_text("<Workspace flowJoVersion='10.6'><SampleList><Sample")
    with pytest.raises(GatingError, match="not well-formed") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)
    old = tmp_path / "old.wsp"
    old.write_text("<Workspace flowJoVersion='8.7'/>")
    with pytest.raises(GatingError, match="only FlowJo 9 and 10"):
        read_workspace(old)
    ws = read_workspace(shared_data / "flowsom_68983" / "gating.wsp")
    with pytest.raises(GatingError, match="no sample 'other.fcs'"):
        ws.sample("other.fcs")
    text = (shared_data / "flowkit" / "simple_line_example" / "simple_poly_and_rect.wsp").read_text()
    broken = tmp_path / "broken.wsp"
    broken.write_text(text.replace('transforms:maxRange="', 'transforms:maxRange="x', 1))
    with pytest.raises(GatingError, match="maxRange"):
        read_workspace(broken)


def test_bad_gate_and_transform_errors_name_workspace_and_population(tmp_path: Path, shared_data: Path) -> None:
    from cytokit.errors import TransformError

    text = (shared_data / "flowkit" / "simple_line_example" / "simple_poly_and_rect.wsp").read_text()
    start = text.index("<gating:PolygonGate", text.index("<SampleNode"))
    first_vertex = text.index("<gating:vertex", start)
    end = text.index("</gating:PolygonGate>", start)
    two_vertices = text[:first_vertex] + text[first_vertex:end].split("</gating:vertex>", 2)[0] + \
        "</gating:vertex>" + text[end:]
    bad = tmp_path / "poly.wsp"
    bad.write_text(two_vertices)
    with pytest.raises(GatingError, match="population .*at least 3 vertices") as info:
        read_workspace(bad)
    assert str(bad) in str(info.value)
    diamond = (shared_data / "flowkit" / "simple_diamond_example" / "test_data_diamond_biex_rect.wsp").read_text()
    worse = tmp_path / "biex.wsp"
    worse.write_text(diamond.replace('transforms:width="-10"', 'transforms:width="10"', 1))
    with pytest.raises(TransformError, match="width basis must be negative") as info:
        read_workspace(worse)
    assert str(worse) in str(info.value)


def test_malformed_vertices_and_counts_raise_gating_error(tmp_path: Path, shared_data: Path) -> None:
    # a vertex with one coordinate used to leak numpy's ValueError, a non-integer count int()'s ValueError
    folder = shared_data / "flowkit" / "simple_line_example"
    text = (folder / "simple_poly_and_rect.wsp").read_text()
    start = text.index("<gating:PolygonGate", text.index("<SampleNode"))
    i = text.index("<gating:coordinate", start)
    j = text.index("/>", i) + 2
    ragged = tmp_path / "ragged.wsp"
    ragged.write_text(text[:i] + text[j:])
    with pytest.raises(GatingError, match="population 'poly1'.*2 coordinates") as info:
        read_workspace(ragged)
    assert str(ragged) in str(info.value)
    counted = tmp_path / "count.wsp"
    k = text.index('<Population name="poly1"', text.index("<SampleNode"))
    counted.write_text(text[:k] + text[k:].replace('count="-1"', 'count="many"', 1))
    with pytest.raises(GatingError, match="count 'many' is not an integer") as info:
        read_workspace(counted)
    assert str(counted) in str(info.value)
    ellipse = (folder / "single_ellipse_51_events.wsp").read_text()
    i = ellipse.index("<gating:coordinate", ellipse.index("<gating:edge"))
    j = ellipse.index("/>", i) + 2
    short_edge = tmp_path / "ellipse.wsp"
    short_edge.write_text(ellipse[:i] + ellipse[j:])
    with pytest.raises(GatingError, match="2 coordinates"):
        read_workspace(short_edge)


def test_uncomputed_flowjo_counts_are_absent(shared_data: Path) -> None:
    # FlowJo (and cytokit's writer without counts) store count="-1" for counts not computed: that is no
    # count, not a count of -1 that workspace_counts would report as a deviation
    folder = shared_data / "flowkit" / "simple_line_example"
    ws = read_workspace(folder / "simple_poly_and_rect.wsp")
    ws_sample = ws.samples[0]
    assert ws_sample.flowjo_counts == {} and ws_sample.total_count == 100
    table = workspace_counts(ws, read_fcs(folder / "data_set_simple_line_100.fcs"), key=ws_sample.name)
    assert table["flowjo_count"].isna().all() and table["deviation_pct_parent"].isna().all()
