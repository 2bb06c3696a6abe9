"""The gate editor's state model (state -> refit -> counts) and its thin ipywidgets view, without a browser."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import ConfigError
from cytokit.gating import load_strategy
from cytokit.notebook import NO_POPULATION, GateEditorState, flag_outliers, png_bytes
from cytokit.simulate import SimulationConfig, simulate_trial


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("editor")
    simulate_trial(out, SimulationConfig(patients_per_arm=1, visits=["W0", "W24"], tubes=["tmem"], events=5000, seed=3))
    return sorted((out / "fcs").glob("*.fcs"))


@pytest.fixture()
def state(files) -> GateEditorState:
    return GateEditorState("tmem", files[0], population="CD25+ CD4")


def test_moving_a_threshold_refits_that_population_only(state):
    before = state.counts()
    parent_gate = state.result.gates["CD4 T"]
    controls = {c.label: c for c in state.controls()}
    assert {"CD25 position", "CD25 method"} <= set(controls)
    pos = controls["CD25 position"]
    assert pos.value == pytest.approx(state.result.fit("CD25+ CD4").info["threshold"])
    after = state.set(pos.key, pos.value + 0.08)
    assert after["count"] < before["count"] and after["parent_count"] == before["parent_count"]
    assert state.result.gates["CD4 T"] is parent_gate
    thr = state.params()["threshold"]
    assert thr["mode"] == "fixed" and thr["value"] == pytest.approx(pos.value + 0.08)
    x = state.result.sample.column("CD25")[state.result.masks["CD4 T"]]
    assert after["count"] == int((x >= pos.value + 0.08).sum())  # counts follow the moved gate exactly
    state.undo()
    assert state.counts() == before


def test_switching_method_and_parameters(state):
    c = state.set(("threshold", "mode"), "valley")
    assert state.params()["threshold"]["mode"] == "valley"
    labels = [ctl.label for ctl in state.controls()]
    assert "CD25 valley" in labels and "CD25 tail width (SD)" not in labels
    state.set(("threshold", "mode"), "tail")
    assert "CD25 tail width (SD)" in [ctl.label for ctl in state.controls()]
    wide = state.set(("threshold", "tail_sd"), 3.0)
    narrow = state.set(("threshold", "tail_sd"), 1.0)
    assert narrow["count"] > wide["count"]
    with pytest.raises(ConfigError):
        state.set(("threshold", "tail_sd"), -1.0)
    assert state.params()["threshold"]["tail_sd"] == 1.0  # a refused edit changes nothing
    assert isinstance(c["pct_parent"], float)


def test_quadrant_and_ellipse_controls(state):
    state.select("CD4 T")
    keys = [c.key for c in state.controls()]
    assert ("thresholds", 0, "value") in keys and ("thresholds", 1, "value") in keys
    before = state.counts()["count"]
    cd4 = state.result.sample.column("CD4")[state.result.masks["CD4 T"]]
    state.set(("thresholds", 0, "value"), float(np.median(cd4)))  # move the quadrant centre into the CD4+ cloud
    assert state.counts()["count"] < before
    assert state.params()["thresholds"][1].get("mode") != "fixed"  # the other divider stays adaptive
    state.select("Lymphocytes")
    n = state.counts()["count"]
    state.set(("coverage",), 0.9)
    assert state.counts()["count"] < n


def test_make_adaptive_reproduces_a_manual_gate(state, files):
    pos = next(c for c in state.controls() if c.label == "CD25 position")
    manual = state.set(pos.key, pos.value + 0.05)
    adapted = state.adapt()
    thr = state.params()["threshold"]
    assert thr.get("mode", "valley") != "fixed"  # no mode = the default valley: adaptive too
    assert abs(adapted["count"] - manual["count"]) <= max(3, 0.02 * manual["count"])


def test_apply_to_cohort_flags_outliers_and_saves_yaml(state, files, tmp_path):
    cohort = state.apply_to_cohort(files)
    assert list(cohort.table["sample"]) == [f.stem for f in files]
    assert {"count", "pct_parent", "flags", "review", "notes", "outlier", "reason"} <= set(cohort.table.columns)
    assert (cohort.table["review"] <= cohort.table["outlier"]).all()
    assert png_bytes(cohort.plot(cols=2))[:4] == b"\x89PNG"
    bad = tmp_path / "broken.fcs"
    bad.write_bytes(b"not an fcs file")
    with_bad = state.apply_to_cohort([*files[:1], bad])
    assert "broken" in with_bad.errors and len(with_bad.table) == 1  # one bad file does not stop the cohort
    state.set(("threshold", "tail_sd"), 2.2)
    out = state.save(tmp_path / "tuned.yaml")
    assert load_strategy(out).definition == state.strategy.definition
    assert load_strategy(out).population("CD25+ CD4").params["threshold"]["tail_sd"] == 2.2


def test_flag_outliers():
    pct = pd.Series([20.0, 21.0, 19.5, 20.5, 45.0])
    flags = pd.Series(["", "", "CD25:fell_back:tail;uncertain", "", "", "CD25:fell_back:tail"])
    out, reason = flag_outliers(pd.concat([pct, pd.Series([20.2])], ignore_index=True), flags)
    # a review flag makes an outlier; a placement note alone (fell_back:tail) does not
    assert list(out) == [False, False, True, False, True, False]
    assert "45.0%" in reason[4] and reason[2] == "review: uncertain" and reason[5] == ""


def test_widget_is_a_thin_view(files):
    ipywidgets = pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    from cytokit.notebook import GateEditor

    editor = GateEditor("tmem", files[0], cohort=files, population="CD25+ CD4")
    assert isinstance(editor.widget, ipywidgets.VBox)
    assert bytes(editor.image.value[:4]) == b"\x89PNG" and "of parent" in editor.counts.value
    slider = next(w for w in editor.controls_box.children if w.description == "CD25 position")
    before = editor.state.counts()["count"]
    slider.value = min(slider.max, slider.value + 0.08)  # what dragging the slider does
    assert editor.state.counts()["count"] < before
    assert editor.state.params()["threshold"]["mode"] == "fixed"
    editor.picker.value = "CD4 T"
    assert editor.state.population == "CD4 T"
    res = editor.apply_to_cohort()
    assert len(res.table) == len(files) and bytes(editor.cohort_image.value[:4]) == b"\x89PNG"
    assert "<table" in editor.cohort_table.value


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("method", ["gmm_ellipse", "density_polygon"])
def test_scatter_gate_shared_controls_refit_and_round_trip(files, tmp_path, method):
    """The back-gating reference and the doublet convention of a scatter lymphocyte gate (the controls every
    method with those parameters gets): an edit re-fits live, and the saved YAML gives the same table."""
    strategy = load_strategy("tmem")
    if method == "density_polygon":
        strategy = strategy.set_params("Lymphocytes", replace=True, method="density_polygon", target=[0.4, 0.06],
                                       backgate_reference="T cells")
    state = GateEditorState(strategy, files[2], population="Lymphocytes")
    controls = {c.label: c for c in state.controls()}
    ref, doublets = controls["back-gating reference"], controls["lymphocyte doublets"]
    assert ref.kind == doublets.kind == "choice"
    assert ref.value == "T cells" and ref.options[0] == NO_POPULATION
    assert set(ref.options[1:]) == set(state.populations) - {"Lymphocytes"}  # every population below the gate
    assert doublets.value == "unstated" and doublets.options == ("unstated", "excluded", "counted", "singles_and_pairs")

    before = state.table().set_index("population")
    state.set(ref.key, NO_POPULATION)
    assert "backgate_reference" not in state.params()
    off = state.table().set_index("population")
    # without the reference nothing is back-gated: the rows below lose the back-gated error part
    assert (off["est_error_pp"] < before["est_error_pp"] - 1e-3).any()
    assert {c.label: c.value for c in state.controls()}["back-gating reference"] == NO_POPULATION

    n = state.counts()["count"]
    counted = state.set(doublets.key, "counted")
    assert counted["count"] > n  # the doublets estimated outside the gate are added to its count
    assert state.params()["lymphocyte_doublets"] == "counted"
    state.set(ref.key, "T cells")

    out = state.save(tmp_path / f"{method}.yaml")
    reloaded = load_strategy(out)
    assert reloaded.population("Lymphocytes").params["lymphocyte_doublets"] == "counted"
    assert reloaded.population("Lymphocytes").params["backgate_reference"] == "T cells"
    _same_table(reloaded.apply(state.sample).populations, state.table())  # the refit is what `cytokit run` gets


def test_widget_builds_the_shared_scatter_controls(files):
    pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    from cytokit.notebook import GateEditor

    editor = GateEditor("tmem", files[0], population="Lymphocytes")
    box = {w.description: w for w in editor.controls_box.children}
    assert box["back-gating reference"].value == "T cells"
    n = editor.state.counts()["count"]
    box["lymphocyte doublets"].value = "counted"  # what picking it in the dropdown does
    assert editor.state.params()["lymphocyte_doublets"] == "counted" and editor.state.counts()["count"] > n
    box = {w.description: w for w in editor.controls_box.children}
    box["back-gating reference"].value = NO_POPULATION
    assert "backgate_reference" not in editor.state.params()
