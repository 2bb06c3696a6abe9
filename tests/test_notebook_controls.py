"""The gate editor's controls come from one registry (cytokit.notebook.controls.METHOD_CONTROLS): every shipped
strategy's every population has controls, every control's edit survives the saved YAML (the same definition, and
the same populations table from ``cytokit run``'s path), and a method without an entry says so."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from test_gating_4colour import TUBES, four_colour

from cytokit.errors import CytokitError
from cytokit.fcs import read_fcs
from cytokit.definitions import list_builtins
from cytokit.gating import load_strategy
from cytokit.gating.methods import GATE_METHODS
from cytokit.notebook import METHOD_CONTROLS, SHARED_CONTROLS, Control, GateEditorState, method_controls
from cytokit.notebook.controls import unedited_reasons
from cytokit.notebook.state import _leaf_names
from cytokit.simulate import SimulationConfig, simulate_trial

SHIPPED = ("tmem", "nkb", "il2_trial_4colour_naive", "il2_trial_4colour_activation", "il2_trial_4colour_nkb",
           "mouse_lymphocytes")

#: controls none of whose tried values can be fitted on the test sample (the edit is refused and nothing changes)
REFUSED: dict[str, list[tuple[str, str]]] = {
    "mouse_lymphocytes": [("Cells", "FSC-A sign")],  # '-' keeps the debris only: Lymphocytes has no events to fit
}


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("controls")
    simulate_trial(out, SimulationConfig(seed=5, patients_per_arm=1, visits=["W0"], events=5000, tubes=["tmem", "nkb"]))
    return out


def _sample(strategy: str, trial: Path, shared_data_dir: Path):
    if strategy in ("tmem", "nkb"):
        return read_fcs(sorted((trial / "fcs").glob(f"*_{strategy}.fcs"))[0])
    if strategy.startswith("il2_trial_4colour_"):
        tube8, markers = TUBES[strategy.removeprefix("il2_trial_4colour_")]
        return four_colour(trial, tube8, markers)[0]
    path = shared_data_dir / "flowsom_68983" / "68983.fcs"
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (set CYTOKIT_SHARED_DATA to the shared/data folder)")
    return read_fcs(path)


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    from conftest import shared_data_dir as find  # the one place that knows where the real data is

    return find()


def test_the_shipped_strategies_are_all_covered():
    assert set(SHIPPED) == set(list_builtins("gating"))


def _field(c: Control) -> str:
    return [k for k in c.key if isinstance(k, str)][-1]


def _candidates(c: Control) -> list:
    """Values to try for a control other than its current one (in order; the first accepted is used)."""
    if c.kind == "bool":
        return [not c.value]
    if c.kind == "choice":
        return [o for o in c.options if o != c.value]
    lo, hi = (c.minimum, c.maximum) if c.minimum is not None and c.maximum is not None else (None, None)
    if c.value is None:
        return [v for v in (0.0, 0.5, 1.0) if lo is None or lo <= v <= hi]
    step = c.step or (1 if c.kind == "int" else 0.02 * (abs(c.value) or 1.0))
    out = [c.value + step, c.value - step, c.value + 4 * step, c.value - 4 * step]
    out = [v for v in out if lo is None or lo <= v <= hi]
    return [int(v) for v in out] if c.kind == "int" else out


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", SHIPPED)
def test_every_population_has_controls_and_every_control_round_trips(strategy, trial, shared_data_dir, tmp_path):
    state = GateEditorState(strategy, _sample(strategy, trial, shared_data_dir))
    assert state.populations == state.strategy.population_names  # every population is fitted on its sample
    table_checked: set[tuple] = set()
    refused: list[tuple[str, str]] = []
    for name in state.populations:
        spec = state.strategy.population(name)
        controls = state.controls(name)
        assert method_controls(spec.method) is not None, (strategy, name, spec.method)
        assert controls, (strategy, name)
        assert all(c.kind in ("float", "int", "bool", "choice") for c in controls)
        assert all(c.value in c.options for c in controls if c.kind == "choice"), (name, controls)
        # every parameter the strategy sets has a control or a stated reason (none silently ignored)
        shared = {f for model, fields in SHARED_CONTROLS.items() if issubclass(GATE_METHODS[spec.method].params_model,
                                                                              model) for f, _l, _k in fields}
        covered = {_field(c) for c in controls} | set(unedited_reasons(spec.method)) | shared
        assert _leaf_names(spec.params) <= covered, (strategy, name, _leaf_names(spec.params) - covered)
        assert set(state.controls_note(name).removeprefix("set in the YAML, no control here: ").split(", ")) \
            <= set(unedited_reasons(spec.method)) | {""}
        state.select(name)
        for c in controls:
            before = state.strategy.definition
            for value in _candidates(c):
                try:
                    state.set(c.key, value)
                except CytokitError:  # invalid, or no gate can be fitted with it: refused, nothing changes
                    assert state.strategy.definition == before
                    continue
                break
            else:
                refused.append((name, c.label))
                continue
            assert state.strategy.definition != before or c.key[-1] == "mode", (name, c)
            edited = next((d for d in state.controls(name) if d.key == c.key), None)
            if edited is not None and c.kind != "float":  # the control reads back what was set
                assert edited.value == value, (name, c, edited)
            elif edited is not None and c.key[-1] != "value" and isinstance(value, float):
                assert math.isclose(edited.value, value), (name, c, edited)
            reloaded = load_strategy(state.save(tmp_path / f"{strategy}.yaml"))
            assert reloaded.definition == state.strategy.definition, (name, c.label)
            shape = (spec.method, tuple(k if isinstance(k, str) else 0 for k in c.key))
            if shape not in table_checked:  # once per method and parameter: the refit is what a fresh run gets
                table_checked.add(shape)
                _same_table(reloaded.apply(state.sample).populations, state.table())
            state.undo()
            assert state.strategy.definition == before
    assert refused == REFUSED.get(strategy, [])


def test_a_method_without_an_entry_gets_the_shared_controls_and_a_note(trial):
    assert method_controls("polygon") is None and method_controls("boolean") is None
    assert method_controls("quadrant") is METHOD_CONTROLS[GATE_METHODS["phenotype"].params_model]
    strategy = load_strategy("tmem").set_params(
        "Singlets", replace=True, method="polygon",
        vertices=[[20000, 20000], [250000, 20000], [250000, 250000], [20000, 250000]])
    state = GateEditorState(strategy, sorted((trial / "fcs").glob("*_tmem.fcs"))[0], population="Singlets")
    assert state.controls() == []
    assert "'polygon' has no editor controls" in state.controls_note()
    assert state.controls_note("CD4 T") == ""


def test_the_ellipse_redraw_control_refits(trial):
    state = GateEditorState("tmem", sorted((trial / "fcs").glob("*_tmem.fcs"))[0], population="Lymphocytes")
    controls = {c.label: c for c in state.controls()}
    redraw = controls["redraw around the reference"]
    assert redraw.kind == "bool" and redraw.value is state.params().get("redraw", False)
    state.set(redraw.key, not redraw.value)
    assert state.params()["redraw"] is (not redraw.value)
    assert {c.label: c.value for c in state.controls()}["redraw around the reference"] is (not redraw.value)


def test_widget_shows_the_note_and_a_checkbox(trial):
    ipywidgets = pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    from cytokit.notebook import GateEditor

    strategy = load_strategy("tmem").set_params(
        "Singlets", replace=True, method="polygon",
        vertices=[[20000, 20000], [250000, 20000], [250000, 250000], [20000, 250000]])
    editor = GateEditor(strategy, sorted((trial / "fcs").glob("*_tmem.fcs"))[0], population="Singlets")
    assert "has no editor controls" in editor.controls_box.children[0].value
    editor.picker.value = "Lymphocytes"
    box = {w.description: w for w in editor.controls_box.children if hasattr(w, "description")}
    assert isinstance(box["redraw around the reference"], ipywidgets.Checkbox)
