"""Gating engine end to end on a small simulated trial (both instrument styles), plus YAML validation,
tuning (refit/save), plots, Gating-ML export and the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import ConfigError, GatingError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.simulate import SimulationConfig, simulate_trial, truth_masks


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial")
    simulate_trial(out, SimulationConfig(seed=11, patients_per_arm=1, visits=["W0", "W24"], events=20000))
    return out


@pytest.fixture(scope="module")
def gated(trial):
    # qc=False: masks are compared event for event with the simulator's truth and raw-file evaluations
    man = pd.read_csv(trial / "manifest.csv")
    results = {}
    for row in man.itertuples():
        results[row.file] = (row, read_fcs(trial / row.file), None)
        results[row.file] = (row, results[row.file][1], load_strategy(row.tube).apply(results[row.file][1], qc=False))
    return results


def f1(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_populations_table_schema_and_percentages(gated):
    row, sample, result = next(v for v in gated.values() if v[0].tube == "tmem")
    df = result.populations
    assert list(df.columns[:12]) == ["population", "parent", "count", "parent_count", "pct_parent",
                                     "pct_lymphocytes", "method", "flags", "review", "review_flags", "notes", "dims"]
    assert df.population.tolist()[:5] == ["Lymphocytes", "Singlets", "T cells", "CD4 T", "CD8 T"]
    by = df.set_index("population")
    assert by.loc["Singlets", "pct_lymphocytes"] == pytest.approx(100.0)
    assert by.loc["CD4 T", "parent_count"] == by.loc["T cells", "count"]
    assert by.loc["CD4 T", "pct_parent"] == pytest.approx(100 * by.loc["CD4 T", "count"] / by.loc["T cells", "count"])
    # masks nest: a population is inside its parent
    for spec in result.definition.populations:
        if spec.parent:
            assert not (result.masks[spec.name] & ~result.masks[spec.parent]).any()
    assert result.sample.compensated and result.transforms


def test_accuracy_against_truth_on_both_instruments(trial, gated):
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    errors, f1s = [], {}
    instruments = set()
    for file, (row, _, result) in gated.items():
        instruments.add(row.instrument)
        t = truth[truth.file == file].set_index("population")
        for r in result.populations.itertuples():
            if r.population in t.index:
                errors.append(abs(r.pct_parent - t.loc[r.population, "pct_parent"]))
        masks = truth_masks(trial, file)
        for pop in ("Lymphocytes", "T cells", "CD4 T", "CD8 T"):
            if pop in result.masks:
                f1s.setdefault(pop, []).append(f1(result.masks[pop], masks[pop]))
    assert len(instruments) == 2
    assert np.median(errors) < 1.0
    assert np.quantile(errors, 0.95) < 5.0
    for pop, vals in f1s.items():
        assert min(vals) > 0.93, (pop, vals)


def test_lymphosum_on_nkb(gated):
    for row, _, result in gated.values():
        if row.tube != "nkb":
            continue
        by = result.populations.set_index("population")
        lymphosum = by.loc[["T cells", "NK cells", "B cells"], "pct_lymphocytes"].sum()
        assert 90 < lymphosum <= 100.5
        assert by.loc["CD56bright NK", "count"] + by.loc["CD56dim NK", "count"] <= by.loc["NK cells", "count"]
        assert np.isnan(by.loc["Beads", "pct_lymphocytes"]) and by.loc["Beads", "count"] > 0


def test_refit_touches_only_the_population_and_its_children(gated):
    _, _, result = next(v for v in gated.values() if v[0].tube == "tmem")
    strategy = load_strategy("tmem")
    before = result.populations.set_index("population")
    new = strategy.refit(result, "CD4 T", thresholds=[{"mode": "fixed", "value": 0.05},
                                                      {"mode": "fixed", "value": 0.95}])
    after = new.populations.set_index("population")
    assert new.gates["CD4 T"].dividers == (0.05, 0.95)
    assert after.loc["CD4 T", "count"] > before.loc["CD4 T", "count"]
    assert after.loc["Naive CD4", "parent_count"] == after.loc["CD4 T", "count"]
    for untouched in ("Lymphocytes", "Singlets", "T cells", "CD8 T", "CD28+ CD8"):
        assert after.loc[untouched, "count"] == before.loc[untouched, "count"]
        assert new.gates[untouched] is result.gates[untouched]
    assert result.populations.set_index("population").loc["CD4 T", "count"] == before.loc["CD4 T", "count"]
    with pytest.raises(ConfigError, match="CD4 T"):
        strategy.set_params("CD4 T", signs=["+"])
    with pytest.raises(GatingError, match="no population 'CD5 T'"):
        strategy.refit(result, "CD5 T")


def test_save_round_trips_and_reproduces_counts(gated, tmp_path):
    _, sample, result = next(v for v in gated.values() if v[0].tube == "nkb")
    s = load_strategy("nkb").set_params("T cells", threshold={"bounds": [0.35, 0.6]})
    path = s.save(tmp_path / "tuned.yaml")
    again = load_strategy(path)
    assert again.definition == s.definition
    assert again.population("T cells").params["threshold"]["bounds"] == [0.35, 0.6]
    assert again.apply(sample).counts() == s.apply(sample).counts()


def test_plots(gated, tmp_path):
    _, _, result = next(v for v in gated.values() if v[0].tube == "nkb")
    for name in ("Lymphocytes", "Singlets", "NK cells", "CD56dim NK", "B cells"):
        fig = result.plot(name)
        ax = fig.axes[0]
        assert name in ax.get_title()
        assert ax.patches or ax.lines  # the gate is drawn
    png = tmp_path / "gates.png"
    result.plot_all(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gatingml_export_reproduces_masks_from_the_raw_file(gated):
    from cytokit.gatingml import evaluate_document, read_gatingml
    from cytokit.gating.export import xml_id
    from cytokit.panel import load_panel

    row, sample, result = next(v for v in gated.values() if v[0].tube == "nkb" and "Attune" in v[0].instrument)
    doc = read_gatingml(result.to_gatingml().encode())
    raw = load_panel("il2_trial").resolve(sample, tube="nkb")
    masks = evaluate_document(doc, raw)
    for name, mask in result.masks.items():
        assert (masks[xml_id(name)] == mask).mean() > 0.9999, name


def test_strategy_yaml_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\npopulations:\n"
        "  - name: Lymphocytes\n    dims: [FSC-A, SSC-A]\n    method: gmm_ellipse\n    params: {coverage: 2}\n"
        "  - name: Singlets\n    parent: Lymphocytes\n    dims: [FSC-A, FSC-H]\n    method: singlets\n")
    with pytest.raises(ConfigError) as exc:
        load_strategy(bad)
    msg = str(exc.value)
    assert "bad.yaml:3" in msg and "params.coverage" in msg
    bad.write_text("name: bad\npopulations:\n  - name: A\n    parent: Nope\n    dims: [CD3]\n    method: threshold\n")
    with pytest.raises(ConfigError, match="parent 'Nope' must be defined above"):
        load_strategy(bad)
    bad.write_text("name: bad\npopulations:\n  - name: A\n    dims: [CD3]\n    method: magic\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:5: populations.0.method.*unknown gate method 'magic'"):
        load_strategy(bad)
    with pytest.raises(ConfigError, match="no gating definition named 'nosuch'"):
        load_strategy("nosuch")


def test_missing_marker_is_a_clear_error(gated):
    from cytokit.errors import PanelError

    _, sample, _ = next(v for v in gated.values() if v[0].tube == "nkb")
    with pytest.raises(PanelError, match="CD45RA"):
        load_strategy("tmem").apply(sample)


def test_imported_gatingml_runs_as_a_fixed_strategy(shared_data):
    base = shared_data / "flowkit" / "gate_ref"
    strategy = load_strategy(base / "gml" / "gml_all_gates.xml")
    result = strategy.apply(read_fcs(base / "data1.fcs"), qc=False)
    for gid in ("Polygon1", "Ellipse1", "And1", "ParAnd2", "ScaleRange1"):
        truth = np.loadtxt(base / "truth" / f"Results_{gid}.txt", dtype=int).astype(bool)
        assert (result.masks[gid] == truth).all(), gid
    assert set(result.populations.method) == {"fixed", "boolean"}
    with pytest.raises(ConfigError, match="nothing to refit"):
        strategy.refit(result, "Polygon1")


def test_cli_gate_prints_table_and_writes_plot(trial, tmp_path, capsys):
    from cytokit.cli.main import main

    png, csv = tmp_path / "g.png", tmp_path / "g.csv"
    code = main(["gate", str(trial / "fcs" / "P001_W0_tmem.fcs"), "--strategy", "tmem", "--plot", str(png),
                 "--table", str(csv)])
    out = capsys.readouterr().out
    assert code == 0
    assert "CD4 T" in out and "Naive CD4" in out
    assert png.stat().st_size > 10000
    assert "Treg" in pd.read_csv(csv).population.tolist()
    assert main(["gate", str(tmp_path / "missing.fcs"), "--strategy", "tmem"]) == 2
    # existing outputs are not overwritten without --force
    before = png.read_bytes()
    args = ["gate", str(trial / "fcs" / "P001_W0_tmem.fcs"), "--strategy", "tmem", "--plot", str(png)]
    assert main(args) == 2
    assert "use --force" in capsys.readouterr().err and png.read_bytes() == before
    assert main(args + ["--force"]) == 0


def test_every_builtin_strategy_loads_and_uses_architecture_names():
    from cytokit.definitions import list_builtins

    names = list_builtins("gating")
    assert {"tmem", "nkb", "il2_trial_4colour_naive", "il2_trial_4colour_activation", "il2_trial_4colour_nkb",
            "mouse_lymphocytes"} <= set(names)
    for n in names:
        assert load_strategy(n).definition.populations
    assert load_strategy("tmem").population_names == [
        "Lymphocytes", "Singlets", "T cells", "CD4 T", "CD8 T", "Naive CD4", "Memory CD4", "CM CD4", "EM CD4",
        "TEMRA CD4", "CD28+ CD4", "CD25+ CD4", "Treg", "CD28+ CD8"]
    assert load_strategy("nkb").population_names == [
        "Lymphocytes", "Singlets", "T cells", "NK cells", "CD56bright NK", "CD56dim NK", "B cells", "Beads"]


def test_imported_strategy_exports_its_own_document(shared_data, tmp_path):
    from cytokit.gatingml import evaluate_document, read_gatingml

    base = shared_data / "flowkit" / "gate_ref"
    sample = read_fcs(base / "data1.fcs")
    result = load_strategy(base / "gml" / "gml_all_gates.xml").apply(sample, qc=False)
    out = tmp_path / "again.xml"
    result.to_gatingml(out)
    masks = evaluate_document(read_gatingml(out), sample)
    assert all((masks[k] == m).all() for k, m in result.masks.items())


def test_too_few_events_is_a_clear_error_naming_file_and_population(gated):
    _, sample, _ = next(v for v in gated.values() if v[0].tube == "tmem")
    tiny = sample.subset(slice(0, 30))
    with pytest.raises(GatingError, match=r"P00\d_W\d+_tmem.fcs.*'Lymphocytes'.*too few"):
        load_strategy("tmem").apply(tiny)


def test_gatingml_export_keeps_transforms_of_dims_named_by_pnn(gated, tmp_path):
    # dims named by $PnN (no panel) used to be exported without their logicle transform
    from cytokit.gatingml import evaluate_document, read_gatingml
    from cytokit.gating.export import xml_id

    row, sample, _ = next(v for v in gated.values() if v[0].tube == "tmem")
    ch = sample.channels
    pnn = next(str(n) for n, s in zip(ch["pnn"], ch["pns"]) if str(s).split()[:1] == ["CD4"])
    path = tmp_path / "pnn_dims.yaml"
    path.write_text(
        "name: pnn_dims\ncompensation: file\n"
        "transforms: {scatter: {name: linear}, fluorescence: {name: logicle, W: estimate, M: 4.5, A: 0}}\n"
        "lymphocytes: Cells\npopulations:\n"
        "  - {name: Cells, dims: [FSC-A], method: rectangle, params: {lower: [1000], upper: [null]}}\n"
        f"  - {{name: CD4 hi, parent: Cells, dims: ['{pnn}'], method: rectangle, "
        "params: {lower: [0.5], upper: [null]}}\n")
    result = load_strategy(path).apply(sample, qc=False)
    doc = read_gatingml(result.to_gatingml().encode())
    assert doc.node(xml_id("CD4 hi")).dims[0].transform is not None
    masks = evaluate_document(doc, sample)
    for name, mask in result.masks.items():
        assert (masks[xml_id(name)] == mask).mean() > 0.9999, name


def test_builtin_phenotype_texts_name_the_scatter_channels_gated_on():
    # reports show the phenotype text: tmem/nkb said "FSC-A/SSC-A lymphocytes" for an FSC-H x SSC-A gate
    import re

    from cytokit.definitions import list_builtins

    for n in list_builtins("gating"):
        for p in load_strategy(n).definition.populations:
            named = set(re.findall(r"\b(?:FSC|SSC)-[AHW]\b", p.phenotype or ""))
            assert named <= set(p.dims), (n, p.name, p.phenotype, p.dims)


def test_plots_of_populations_under_an_empty_parent(gated, tmp_path):
    # np.quantile on the empty parent used to raise, so `cytokit gate --plot` failed for such samples
    row, sample, _ = next(iter(gated.values()))
    path = tmp_path / "empty.yaml"
    path.write_text(
        "name: empty_parent\ncompensation: none\n"
        "transforms: {scatter: {name: linear}, fluorescence: {name: linear}}\nlymphocytes: Cells\npopulations:\n"
        "  - {name: Cells, dims: [FSC-A], method: rectangle, params: {lower: [1.0e+12], upper: [null]}}\n"
        "  - {name: Big, parent: Cells, dims: [FSC-A, SSC-A], method: polygon,\n"
        "     params: {vertices: [[0, 0], [1.0e+6, 0], [0, 1.0e+6]]}}\n"
        "  - {name: Hi, parent: Cells, dims: [SSC-A], method: threshold, params: {sign: '+'}}\n")
    result = load_strategy(path).apply(sample)
    assert result.populations["count"].tolist() == [0, 0, 0]
    result.plot_all(tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_cli_gate_shows_names_with_brackets_verbatim(trial, tmp_path, capsys):
    # names were read as rich markup: "[low]" vanished from the table and "[/x]" crashed the command
    from cytokit.cli.main import main

    path = tmp_path / "brackets.yaml"
    path.write_text(
        "name: brackets\ncompensation: none\n"
        "transforms: {scatter: {name: linear}, fluorescence: {name: linear}}\nlymphocytes: 'Cells [low]'\n"
        "populations:\n"
        "  - {name: 'Cells [low]', dims: [FSC-A], method: rectangle, params: {lower: [1000], upper: [null]}}\n"
        "  - {name: 'Big [/x]', parent: 'Cells [low]', dims: [SSC-A], method: rectangle,\n"
        "     params: {lower: [1000], upper: [null]}}\n")
    code = main(["gate", str(trial / "fcs" / "P001_W0_tmem.fcs"), "--strategy", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Cells [low]" in out and "Big [/x]" in out


def test_imported_gates_that_cannot_form_a_strategy_raise_config_error(shared_data, tmp_path):
    # a FlowJo population without a name (or an unknown lymphocytes=) used to leak pydantic's ValidationError
    text = (shared_data / "flowkit" / "simple_line_example" / "simple_poly_and_rect.wsp").read_text()
    k = text.index('<Population name="poly1"', text.index("<SampleNode"))
    bad = tmp_path / "noname.wsp"
    bad.write_text(text[:k] + text[k:].replace('name="poly1"', 'name=""', 1))
    with pytest.raises(ConfigError, match="cannot use the gates as a strategy") as info:
        load_strategy(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="lymphocytes"):
        load_strategy(shared_data / "flowkit" / "simple_line_example" / "simple_poly_and_rect.wsp",
                      lymphocytes="Nope")


def test_flowjo_imported_strategy_exports_gatingml(shared_data, tmp_path):
    # FlowJo transform ids ("flin:channel_A") are no XML ids: the export used to refuse the document
    from cytokit.gatingml import evaluate_document, read_gatingml

    folder = shared_data / "flowkit" / "simple_line_example"
    strategy = load_strategy(folder / "simple_poly_and_rect.wsp")
    sample = read_fcs(folder / "data_set_simple_line_100.fcs")
    result = strategy.apply(sample, qc=False)
    out = tmp_path / "gates.xml"
    result.to_gatingml(out)
    doc = read_gatingml(out)
    assert all(":" not in t for t in doc.transforms)
    masks = evaluate_document(doc, sample)
    by_name = {doc.node(k).name: v for k, v in masks.items()}
    assert by_name.keys() == result.masks.keys()
    for name, mask in result.masks.items():
        assert np.array_equal(by_name[name], mask), name
    # the pipeline writes result.document itself (with QC gates in front)
    from cytokit.gatingml import gatingml_bytes

    assert read_gatingml(gatingml_bytes(result.document)).ids == doc.ids


def test_imported_gates_are_plotted_over_events_on_their_own_scale(shared_data):
    # the raw (linear) events were drawn under gates on the workspace's transformed scale
    folder = shared_data / "flowkit" / "simple_line_example"
    result = load_strategy(folder / "simple_poly_and_rect.wsp").apply(read_fcs(folder / "data_set_simple_line_100.fcs"))
    ax = result.plot("rect1").axes[0]
    gate = result.gates["rect1"]
    assert ax.get_xlim()[1] < 2.0 and gate.upper[0] < 2.0  # both on the flin scale (0..1)


def test_valid_gatingml_transform_ids_are_kept_on_import(shared_data):
    doc = load_strategy(shared_data / "flowkit" / "8_color_data_set" / "8_color_ICS.xml").document
    assert "logicle-default" in doc.transforms


def test_gatingml_export_of_names_with_the_same_xml_id(gated, tmp_path):
    # "CD4 T" and "CD4_T" both became the XML id "CD4_T": the export failed with a duplicate gate id
    from cytokit.gatingml import evaluate_document, read_gatingml

    row, sample, _ = next(iter(gated.values()))
    path = tmp_path / "same_id.yaml"
    path.write_text(
        "name: same_id\ncompensation: none\n"
        "transforms: {scatter: {name: linear}, fluorescence: {name: linear}}\nlymphocytes: Cells\npopulations:\n"
        "  - {name: Cells, dims: [FSC-A], method: rectangle, params: {lower: [1000], upper: [null]}}\n"
        "  - {name: CD4 T, parent: Cells, dims: [SSC-A], method: rectangle, params: {lower: [1000], upper: [null]}}\n"
        "  - {name: CD4_T, parent: Cells, dims: [SSC-A], method: rectangle, params: {lower: [5000], upper: [null]}}\n")
    result = load_strategy(path).apply(sample, qc=False)
    doc = read_gatingml(result.to_gatingml().encode())
    masks = evaluate_document(doc, sample)
    by_name = {doc.node(k).name: v for k, v in masks.items()}
    for name, mask in result.masks.items():
        assert np.array_equal(by_name[name], mask), name


def test_tuning_returns_new_objects_and_leaves_the_strategy_unchanged(gated):
    # scikit-learn clone/set_params semantics: nothing changes behind a returned object
    _, _, result = next(v for v in gated.values() if v[0].tube == "tmem")
    strategy = load_strategy("tmem")
    original = strategy.definition.model_copy(deep=True)
    tuned_strategy = strategy.set_params("CD25+ CD4", threshold={"tail_sd": 1.0})
    assert tuned_strategy is not strategy and strategy.definition == original
    assert tuned_strategy.population("CD25+ CD4").params["threshold"]["tail_sd"] == 1.0
    tuned = strategy.refit(result, "CD25+ CD4", threshold={"tail_sd": 1.0})
    assert strategy.definition == original  # refit with params did not tune the strategy in place
    assert tuned.definition == tuned_strategy.definition != result.definition
    again = tuned_strategy.refit(result, "CD25+ CD4")
    assert again.counts() == tuned.counts()
    clone = strategy.clone()
    assert clone.definition == strategy.definition and clone.definition is not strategy.definition
