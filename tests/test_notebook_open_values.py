"""Gate editor values that are not numbers on a 0..1 scale: a threshold made ``fixed`` without a fitted position
starts where the parent's events are (in the axis's own units, not at 0.5), and a rectangle's open side (null) is
shown empty and stays null through an edit of another bound, the saved YAML and a reload."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_gating_4colour import TUBES, four_colour

from cytokit.errors import CytokitError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.notebook import METHOD_CONTROLS, GateEditorState, method_controls
from cytokit.simulate import SimulationConfig, simulate_trial


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("open_values")
    simulate_trial(out, SimulationConfig(seed=5, patients_per_arm=1, visits=["W0"], events=5000, tubes=["tmem"]))
    return out


@pytest.fixture(scope="module")
def mouse_sample():
    from conftest import shared_data_dir

    path = shared_data_dir() / "flowsom_68983" / "68983.fcs"
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (set CYTOKIT_SHARED_DATA to the shared/data folder)")
    return read_fcs(path)


def parent_values(result, name: str, dim: str) -> np.ndarray:
    """The parent's events on ``dim`` (all events for a root gate), on the gate's scale (the prepared sample)."""
    x = np.asarray(result.sample.column(dim), dtype=float)
    parent = result.definition.population(name).parent
    x = x if parent is None else x[result.masks[parent]]
    return x[np.isfinite(x)]


def _unfitted(monkeypatch, method: str) -> None:
    """The method's editor entry reports no fitted position (as for a threshold the fit left without one)."""
    model = next(c for c in METHOD_CONTROLS if METHOD_CONTROLS[c] is method_controls(method))
    monkeypatch.setitem(METHOD_CONTROLS, model, dataclasses.replace(METHOD_CONTROLS[model], positions=lambda r, n: {}))


@pytest.mark.parametrize("population, dim, linear", [("Cells", "FSC-A", True), ("Live", "L/D", False)])
def test_fixed_without_a_fitted_position_starts_at_the_parents_median(population, dim, linear, mouse_sample,
                                                                      monkeypatch, tmp_path):
    state = GateEditorState("mouse_lymphocytes", mouse_sample, population=population)
    _unfitted(monkeypatch, "threshold")
    median = float(np.median(parent_values(state.result, population, dim)))
    assert (median > 1000) if linear else (0 < median < 1)  # FSC-A in linear units; L/D on logicle 0..1
    bounds = state.params()["threshold"].get("bounds")
    start = float(np.clip(median, *bounds)) if bounds else median  # the median, moved into the bounds
    position, mode = state.controls()[:2]
    parent = state.counts()["parent_count"]
    counts = state.set(mode.key, "fixed")
    assert state.params()["threshold"] == {**state.params()["threshold"], "mode": "fixed", "value": start}
    cut = parent_values(state.result, population, dim)
    sign = state.params().get("sign", "+")
    assert counts["count"] == int(np.sum(cut >= start if sign == "+" else cut < start))
    if start == median:  # a cut through the data's middle, not at 0.5 on FSC-A's scale (all events kept)
        assert 0.3 * parent < counts["count"] < 0.7 * parent
    reloaded = load_strategy(state.save(tmp_path / "mouse.yaml"))
    assert reloaded.population(population).params["threshold"]["value"] == start
    assert reloaded.definition == state.strategy.definition
    assert position.value is None and f"{start:.4g}" in position.note and mode.note == position.note


def test_fixed_keeps_the_fitted_position_where_there_is_one(trial):
    state = GateEditorState("tmem", sorted((trial / "fcs").glob("*_tmem.fcs"))[0], population="CD4 T")
    position = next(c for c in state.controls() if c.key[-1] == "value")
    assert position.value is not None and position.note == ""
    before = state.counts()["count"]
    assert state.set(position.key[:-1] + ("mode",), "fixed")["count"] == before
    assert state.params()["thresholds"][position.key[1]]["value"] == position.value
    with pytest.raises(CytokitError, match="needs a number"):
        state.set(position.key, None)


@pytest.fixture(scope="module")
def naive(trial):
    tube8, markers = TUBES["naive"]
    return four_colour(trial, tube8, markers)[0]


def test_an_open_rectangle_side_stays_open_through_an_edit_and_the_saved_yaml(naive, tmp_path):
    state = GateEditorState("il2_trial_4colour_naive", naive, population="Singlets")
    assert state.params() == {"lower": [None], "upper": [None]}
    controls = {c.label: c for c in state.controls()}
    lower, upper = controls["FSC-H lower"], controls["FSC-H upper"]
    assert lower.value is None and upper.value is None
    parent = state.counts()["parent_count"]
    assert state.counts()["count"] == parent
    cap = float(np.quantile(parent_values(state.result, "Singlets", "FSC-H"), 0.9))
    counts = state.set(upper.key, cap)
    assert 0.85 * parent < counts["count"] < 0.95 * parent
    saved = load_strategy(state.save(tmp_path / "naive.yaml"))
    assert saved.population("Singlets").params == {"lower": [None], "upper": [cap]}
    assert "    lower:\n    - null\n    upper:\n    - " in (tmp_path / "naive.yaml").read_text()  # null, not 0.0
    assert saved.definition == state.strategy.definition
    assert state.set(upper.key, None)["count"] == parent  # cleared: open again
    assert load_strategy(state.save(tmp_path / "naive2.yaml")).population("Singlets").params == \
        {"lower": [None], "upper": [None]}
    assert lower.optional and upper.optional  # the widget shows them as text boxes, empty when open


def test_the_widget_shows_an_open_side_empty_and_saves_it_null(naive, tmp_path):
    ipywidgets = pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    from cytokit.notebook import GateEditor

    editor = GateEditor("il2_trial_4colour_naive", naive, population="Singlets")
    box = {w.description: w for w in editor.controls_box.children if hasattr(w, "description")}
    lower, upper = box["FSC-H lower"], box["FSC-H upper"]
    assert isinstance(lower, ipywidgets.Text) and lower.value == "" and lower.placeholder == "open"
    assert lower.tooltip.startswith("empty = open")
    cap = float(np.quantile(parent_values(editor.state.result, "Singlets", "FSC-H"), 0.9))
    upper.value = repr(cap)
    assert editor.message.value == ""
    assert editor.state.params() == {"lower": [None], "upper": [cap]}
    saved = load_strategy(editor.save(tmp_path / "naive.yaml"))
    assert saved.population("Singlets").params == {"lower": [None], "upper": [cap]}
    box = {w.description: w for w in editor.controls_box.children if hasattr(w, "description")}
    assert box["FSC-H lower"].value == "" and box["FSC-H upper"].value == repr(cap)
    box["FSC-H upper"].value = "ten"  # not a number: said so, nothing changes
    assert "not a number" in editor.message.value and editor.state.params()["upper"] == [cap]


def test_a_linear_position_range_without_parent_events_is_the_samples_not_0_to_1(trial):
    """A scatter threshold whose parent holds no events on this sample (a gate above it emptied it) still gets
    a slider over the axis's own values (linear units), not 0..1 on an FSC axis that runs to ~260,000."""
    from types import SimpleNamespace

    from cytokit.notebook.controls import UNIT_RANGE, position_range

    state = GateEditorState("tmem", sorted((trial / "fcs").glob("*_tmem.fcs"))[0], population="Singlets")
    result = state.result
    dim, parent = result.definition.population("Singlets").dims[0], result.definition.population("Singlets").parent
    assert position_range(result, "Singlets", dim) != UNIT_RANGE  # with events: the parent's range
    empty = SimpleNamespace(transforms=result.transforms, sample=result.sample, definition=result.definition,
                            masks={**result.masks, parent: np.zeros_like(result.masks[parent])})
    lo, hi, step = position_range(empty, "Singlets", dim)
    x = np.asarray(result.sample.column(dim), dtype=float)
    assert (lo, hi) == (float(np.nanmin(x)), float(np.nanmax(x))) and hi > 1000 and step == (hi - lo) / 200
