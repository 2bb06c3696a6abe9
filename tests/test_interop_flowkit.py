"""In-memory FlowKit interop: Samples both ways and fitted gates as a FlowKit GatingStrategy with the same
counts (bundled sample trial and real files from ../shared/data)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.compensation import compensate
from cytokit.errors import FCSError, GatingError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.interop import flowkit_counts, flowkit_gate_ids
from cytokit.sample import Sample

fk = pytest.importorskip("flowkit", reason="FlowKit is a dependency of cytokit; install the package")

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "sample_data" / "fcs"


def _fk_sample(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fk.Sample(str(path))


def _time_index(sample: Sample) -> int | None:
    kinds = list(sample.channels["kind"])
    return kinds.index("time") if "time" in kinds else None


def _assert_same_sample(ours: Sample, back: Sample) -> None:
    assert back.events.dtype == np.float32 and back.events.shape == ours.events.shape
    t = _time_index(ours)
    keep = [j for j in range(ours.n_channels) if j != t]
    np.testing.assert_array_equal(back.events[:, keep], ours.events[:, keep])
    if t is not None:  # FlowKit scales time by $TIMESTEP; from_flowkit divides it back
        np.testing.assert_allclose(back.events[:, t], ours.events[:, t], rtol=1e-6)
    assert list(back.channels.columns) == list(ours.channels.columns)
    for col in ("pnn", "pns", "marker", "kind", "gain", "log_decades"):
        assert list(back.channels[col]) == list(ours.channels[col]), col


@pytest.mark.parametrize("name", ["P001_W0_tmem.fcs", "P002_W24_nkb.fcs"])
def test_sample_roundtrip_bundled(name):
    ours = read_fcs(BUNDLED / name)
    converted = ours.to_flowkit()
    assert converted.event_count == ours.n_events
    assert list(converted.pnn_labels) == list(ours.channels["pnn"])
    # what FlowKit builds from our in-memory Sample is what it builds from the file itself
    original = _fk_sample(BUNDLED / name)
    np.testing.assert_array_equal(converted.get_events(source="raw"), original.get_events(source="raw"))
    assert converted.metadata.get("spillover") == original.metadata.get("spillover")
    # and back: the cytokit Sample of either equals read_fcs of the file
    _assert_same_sample(ours, Sample.from_flowkit(original))
    _assert_same_sample(ours, Sample.from_flowkit(converted))
    assert Sample.from_flowkit(original).metadata["spillover"] == ours.metadata["spillover"]


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", ["flowsom_68983/68983.fcs", "flowkit/100715.fcs",
                                 "gatingml2/FCSFiles/data1.fcs", "gatingml2/FCSFiles/9399_1_3_NKR.fcs"])
def test_sample_roundtrip_real_files(shared_data, rel):
    """Real files of several FCS versions and instruments (FCS 2.0 integers with $PnG, FCS 3.0 floats)."""
    path = shared_data / rel
    ours = read_fcs(path)
    original = _fk_sample(path)
    back = Sample.from_flowkit(original)
    t = _time_index(ours)
    keep = [j for j in range(ours.n_channels) if j != t]
    np.testing.assert_allclose(back.events[:, keep], ours.events[:, keep], rtol=1e-6, atol=1e-6)
    assert list(back.channels["pnn"]) == list(ours.channels["pnn"])
    with warnings.catch_warnings():  # FlowKit left the stored values: $PnE/$PnG decoded by from_flowkit
        warnings.simplefilter("ignore")
        stored = Sample.from_flowkit(fk.Sample(str(path), preprocess=False))
    np.testing.assert_allclose(stored.events[:, keep], ours.events[:, keep], rtol=1e-6, atol=1e-6)
    again = ours.to_flowkit()
    np.testing.assert_allclose(again.get_events(source="raw")[:, keep], original.get_events(source="raw")[:, keep],
                               rtol=1e-6, atol=1e-6)


def test_to_flowkit_refuses_a_processed_sample():
    compensated = compensate(read_fcs(BUNDLED / "P001_W0_tmem.fcs"))
    with pytest.raises(FCSError, match="raw Sample"):
        compensated.to_flowkit()


@pytest.mark.parametrize("name,strategy", [("P001_W0_tmem.fcs", "tmem"), ("P003_W74_tmem.fcs", "tmem"),
                                           ("P001_W0_nkb.fcs", "nkb"), ("P004_W24_nkb.fcs", "nkb")])
def test_fitted_strategy_counts_identical_in_flowkit_bundled(name, strategy):
    result = load_strategy(strategy).apply(read_fcs(BUNDLED / name))
    gs = result.to_flowkit()
    assert isinstance(gs, fk.GatingStrategy)
    table = flowkit_counts(result, strategy=gs)
    assert set(table["population"]) == set(result.counts())
    assert table["flowkit_count"].notna().all()
    assert (table["difference"] == 0).all(), table[table["difference"] != 0]
    assert table["count"].sum() > 0


@pytest.mark.shared_data
def test_fitted_strategy_counts_identical_in_flowkit_real_mouse(shared_data):
    """The automated mouse strategy fitted on a real file (FACS data, acquisition matrix, logicle)."""
    path = shared_data / "flowsom_68983" / "68983.fcs"
    result = load_strategy("mouse_lymphocytes").apply(read_fcs(path))
    table = flowkit_counts(result, _fk_sample(path))
    assert len(table) == len(result.counts()) >= 8
    assert (table["difference"] == 0).all(), table[table["difference"] != 0]


@pytest.mark.shared_data
def test_imported_gatingml_strategy_counts_identical_in_flowkit(shared_data):
    """ISAC compliance set 5 (logicle polygons, booleans, FCS compensation; 124,600 events) applied as a
    fixed strategy and handed to FlowKit as a GatingStrategy. (Sets 1-2 are not used: FlowKit 1.3 itself
    fails some of their gates, see ../shared/data/README.md.)"""
    base = shared_data / "gatingml2"
    result = load_strategy(base / "Gating-MLFiles" / "gates5.xml").apply(
        read_fcs(base / "FCSFiles" / "9399_1_3_NKR.fcs"))
    table = flowkit_counts(result)
    assert len(table) == 11
    assert (table["difference"] == 0).all(), table[table["difference"] != 0]


@pytest.mark.shared_data
def test_flowjo_only_scales_are_refused_with_a_clear_error(shared_data):
    """FlowJo's biex has no Gating-ML 2.0 form, so such a workspace cannot become a GatingStrategy."""
    base = shared_data / "flowsom_68983"
    result = load_strategy(base / "gating.wsp").apply(read_fcs(base / "68983.fcs"))
    with pytest.raises(GatingError, match="flowjo_biex"):
        result.to_flowkit()


def test_gate_ids_are_the_gatingml_ids():
    result = load_strategy("tmem").apply(read_fcs(BUNDLED / "P001_W0_tmem.fcs"))
    ids = flowkit_gate_ids(result)
    assert ids["CD4 T"] == "CD4_T" and ids["Lymphocytes"] == "Lymphocytes"
    assert set(ids.values()) <= set(g for g, _ in result.to_flowkit().get_gate_ids())


def test_pipeline_gatingml_counts_in_flowkit_equal_the_table_with_time_qc(tmp_path):
    """The pipeline's exported gates.xml, handed to FlowKit with the FCS file itself, counts every population
    of the populations table also when time QC removed an interval (the Gating-ML keeps time in the file's
    units and FlowKit multiplies time by $TIMESTEP: as written, the removed interval selects nothing in
    FlowKit and every population kept those events: 2-4 % more Lymphocytes, up to 9 % more in small
    populations on these files)."""
    from cytokit.gatingml import read_gatingml
    from cytokit.interop import flowkit_export_counts, gatingml_for_flowkit
    from cytokit.pipeline import adhoc_pipeline, run
    from cytokit.simulate import simulate_file

    fcs = tmp_path / "fcs"
    fcs.mkdir()
    for i in range(2):
        simulate_file(fcs / f"S{i}_W0_tmem.fcs", n_events=20_000, tube="tmem", instrument="bd", seed=100 + i,
                      arm="control", week=0)
    config = adhoc_pipeline(fcs, "il2_trial", "tmem", tube="tmem",
                            outputs={"gatingml": True, "flowjo_workspace": False, "tables": ["csv"]},
                            executor={"kind": "serial", "task": "analyse"})
    summary = run(config, tmp_path / "out", stages=False)
    assert summary.ok == 2 and not summary.failures
    pops = pd.read_csv(tmp_path / "out" / "populations.csv")
    for sid, table in pops.groupby("sample_id"):
        path = fcs / f"{sid}.fcs"
        gatingml = tmp_path / "out" / "samples" / sid / "gates.xml"
        theirs = flowkit_export_counts(path, gatingml).set_index("population")["flowkit_count"]
        assert theirs["QC removed time 1"] > 0, "precondition: time QC removed an interval of this file"
        assert len(table) == 14
        assert {p: int(theirs[p]) for p in table["population"]} == dict(zip(table["population"], table["count"]))
        # the document as written differs from the converted one in the time gate only
        raw = read_gatingml(gatingml)
        converted = read_gatingml(gatingml_for_flowkit(raw, read_fcs(path)))
        changed = [a.name for a, b in zip(raw.nodes, converted.nodes) if a != b]
        assert changed == ["QC removed time 1"]
