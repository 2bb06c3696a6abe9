"""A logicle whose estimated W was clipped into range (W < 0 estimated, W = 0 used) is shown to the user: a
``<marker>:logicle_w_clipped`` QC flag of the sample, a note on every population row gated on that marker
(a note, not a review flag), the AnnData export's qc_flags and the patient report's data warnings. The
transform itself is unchanged (W = 0, as before)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytokit.compensation import compensate
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.results import schema as S
from cytokit.transforms import estimate_logicle, estimate_logicle_details
from cytokit.transforms.estimate import CLIPPED_FLAG, clipped_markers

BUNDLED = Path(__file__).resolve().parents[1] / "sample_data" / "fcs"
FLAG = f"CD4:{CLIPPED_FLAG}"


def test_details_report_the_clipped_w_and_keep_the_transform():
    rng = np.random.default_rng(3)
    # negatives within 3 linear units of zero: W = (4.5 - log10(262144 / 3)) / 2 < 0
    x = np.concatenate([rng.uniform(-3.0, 0.0, 2000), rng.lognormal(6, 1, 8000)])
    est = estimate_logicle_details(x, T=262144.0)
    assert est.W_estimated is not None and est.W_estimated < -0.2
    assert est.clipped == ("W",) and est.transform.W == 0.0
    plain = estimate_logicle(x, T=262144.0)
    assert (plain.T, plain.W, plain.M, plain.A) == (est.transform.T, est.transform.W, est.transform.M,
                                                     est.transform.A)
    # a usual spread of negatives is not clipped
    wide = estimate_logicle_details(np.concatenate([rng.normal(0, 150, 5000), x[2000:]]), T=262144.0)
    assert wide.clipped == () and wide.transform.W == pytest.approx(wide.W_estimated) and wide.W_estimated > 0


@pytest.fixture(scope="module")
def narrow_cd4():
    """P001 W0 tmem, compensated, with CD4's negative values squeezed to within ~0.3 units of zero."""
    sample = compensate(read_fcs(BUNDLED / "P001_W0_tmem.fcs"))
    events = sample.events.copy()
    i = sample.channel_index("PE-Cy7-A")
    neg = events[:, i] < 0
    events[neg, i] *= 1e-3
    return sample.replace(events=events)


@pytest.fixture(scope="module")
def clipped_result(narrow_cd4):
    return load_strategy("tmem").apply(narrow_cd4)


def test_clipped_logicle_is_a_qc_flag_and_a_note_on_rows_gated_on_the_marker(clipped_result):
    result = clipped_result
    t = {ct.pnn: ct for ct in result.transforms}["PE-Cy7-A"]
    assert t.name == "logicle" and t.params["W"] == 0.0 and t.warning
    assert "W estimated -" in t.warning and "CD4" in t.warning
    assert clipped_markers(result.sample.warnings) == ["CD4"]
    assert FLAG in result.data_flags and FLAG in result.summary()[S.QC_FLAGS]
    table = result.populations
    on_cd4 = table["dims"].str.split(";").map(lambda d: "CD4" in d)
    assert on_cd4.sum() >= 2 and (~on_cd4).sum() >= 2
    for row in table.itertuples(index=False):
        notes = row.notes.split(";")
        assert (FLAG in notes) == ("CD4" in row.dims.split(";")), row.population
        assert FLAG not in row.review_flags.split(";")  # a note: the number is not said to be wrong
        assert FLAG in row.flags.split(";") or FLAG not in notes


def test_unclipped_file_has_no_note():
    result = load_strategy("tmem").apply(read_fcs(BUNDLED / "P001_W0_tmem.fcs"))
    assert not result.channel_notes
    assert not any(CLIPPED_FLAG in f for f in result.data_flags)
    assert not result.populations["flags"].str.contains(CLIPPED_FLAG).any()


def test_anndata_export_carries_the_flag_and_the_split(clipped_result):
    pytest.importorskip("anndata", reason="anndata is in the test extra: pip install 'cytokit[test]'")
    adata = clipped_result.to_anndata()
    info = adata.uns["cytokit"]
    assert FLAG in info["qc"][S.QC_FLAGS].split(";")
    fit = info["fits"]["CD4 T"]
    assert FLAG in fit["notes"].split(";") and FLAG not in fit["review_flags"].split(";")
    assert FLAG not in fit["fit_flags"].split(";")  # the row's note, not a word of the gate's fit


def test_patient_report_explains_the_flag():
    import pandas as pd

    from cytokit.report.patient import _data_warnings

    samples = pd.DataFrame({S.TUBE: ["tmem", "nkb"], S.QC_FLAGS: [f"{FLAG};clog", ""]})
    warnings = _data_warnings(samples)
    assert [w["flag"] for w in warnings] == [FLAG]
    assert "CD4" in warnings[0]["text"] and "logicle" in warnings[0]["text"]


def test_notebook_editor_shows_the_note_and_the_sample_flag(narrow_cd4):
    pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    from cytokit.notebook import GateEditor

    editor = GateEditor("tmem", narrow_cd4, population="CD4 T")
    text = editor.counts.value
    assert "notes: " in text and FLAG in text.split("notes: ", 1)[1].split("<", 1)[0]
    assert f"sample: {FLAG}" in text
    editor.picker.value = "CD28+ CD8"  # gated on CD28, not CD4: no note on the row, the sample flag stays
    row_part, _, sample_part = editor.counts.value.partition("sample: ")
    assert FLAG not in row_part and sample_part.startswith(FLAG)


def test_samples_table_text_of_the_estimated_w():
    from cytokit.pipeline.assemble import logicle_w_text

    transforms = [
        {"pnn": "FSC-A", "marker": "FSC-A", "name": "linear", "params": {}},
        {"pnn": "FITC-A", "marker": "CD45RA", "name": "logicle", "params": {"T": 262144.0, "W": 0.0, "M": 4.5,
                                                                           "A": 0.0},
         "W_estimated": -0.0634, "warning": "logicle W clipped: CD45RA (FITC-A): ..."},
        {"pnn": "PE-A", "marker": "CD4", "name": "logicle", "params": {"T": 262144.0, "W": 0.5213, "M": 4.5, "A": 0.0},
         "W_estimated": 0.5213},
        {"pnn": "APC-A", "marker": "CD8", "name": "logicle", "params": {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}},
    ]
    assert logicle_w_text(transforms) == "CD45RA=0 (estimated -0.063); CD4=0.52"  # CD8's W was not estimated


def test_plan_records_the_estimate(clipped_result):
    plan = {t.pnn: t for t in clipped_result.transforms}
    assert plan["PE-Cy7-A"].W_estimated is not None and plan["PE-Cy7-A"].W_estimated < 0
    assert plan["PE-A"].W_estimated == pytest.approx(plan["PE-A"].params["W"])  # not clipped: the same W
