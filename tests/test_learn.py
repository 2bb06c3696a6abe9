"""Learning a strategy from expert gates, and comparing gates with an expert's (cytokit.learn, CLI)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main
from cytokit.errors import ConfigError
from cytokit.fcs import read_fcs
from cytokit.flowjo import write_workspace
from cytokit.gating import Strategy, load_strategy
from cytokit.gatingml import read_gatingml
from cytokit.learn import compare_gates, f1_score, learn_strategy
from cytokit.learn.agreement import agreement_rows
from cytokit.learn.search import best_cut
from cytokit.simulate import SimulationConfig, simulate_trial

#: the "lab": CD25+ at the negative peak + 3.2 SD (the shipped strategy uses 1.75), CD4/CD8 at the valley
LAB = {"CD25+ CD4": {"sign": "+", "threshold": {"mode": "tail", "tail_sd": 3.2}}}
MAPPING = {"CD4 T": "CD4 T", "CD25+ CD4": "CD25+ CD4"}


def _lab_strategy() -> Strategy:
    data = load_strategy("tmem").definition.model_dump()
    for p in data["populations"]:
        if p["name"] in LAB:
            p["params"] = LAB[p["name"]]
    return Strategy(type(load_strategy("tmem").definition).model_validate(data))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Four small simulated tmem files, gated by the lab's rules and saved as a FlowJo workspace."""
    out = tmp_path_factory.mktemp("learn")
    simulate_trial(out / "trial", SimulationConfig(patients_per_arm=1, visits=["W0", "W24"], tubes=["tmem"],
                                                   events=6000, seed=5))
    files = sorted((out / "trial" / "fcs").glob("*.fcs"))
    lab = _lab_strategy()
    entries = []
    for f in files:
        sample = read_fcs(f)
        entries.append((sample, read_gatingml(lab.apply(sample).to_gatingml().encode())))
    write_workspace(out / "expert.wsp", entries)
    mapping = out / "mapping.yaml"
    mapping.write_text("".join(f"{k}: {v}\n" for k, v in MAPPING.items()))
    return out, files, mapping


def test_best_cut_finds_the_separating_threshold():
    x = np.r_[np.linspace(0, 1, 50), np.linspace(2, 3, 50)]
    expert = x >= 2
    t = best_cut(x, expert, int(expert.sum()), positive=True)
    assert 1 < t < 2
    t = best_cut(x, ~expert, int((~expert).sum()), positive=False)
    assert 1 < t < 2
    assert best_cut(x[:5], expert[:5], 1, True) is None  # too few events


def test_agreement_rows_f1_and_delta_percent():
    e = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    a = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    parent = np.ones(8, bool)
    (row,) = agreement_rows("s", {"P": a}, {"P": e}, {"P": parent}, {"P": parent})
    assert row["f1"] == pytest.approx(2 * 2 / (3 + 3))
    assert row["precision"] == pytest.approx(2 / 3) and row["recall"] == pytest.approx(2 / 3)
    assert row["abs_delta_pct"] == pytest.approx(0.0)
    assert f1_score(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_learning_recovers_the_lab_rule_on_held_out_samples(study, tmp_path):
    out, files, mapping = study
    train = [files[0].stem, files[2].stem]  # one visit of each patient
    result = learn_strategy(out / "expert.wsp", files, strategy="tmem", mapping=mapping, train=train)
    a = result.agreement
    assert set(a.role) == {"untuned", "loso", "train", "holdout"}
    hold = a[(a.role == "holdout") & (a.population == "CD25+ CD4")].set_index("sample")
    base = a[(a.role == "untuned") & (a.population == "CD25+ CD4")].set_index("sample").loc[hold.index]
    assert len(hold) == 2
    assert (hold.f1 >= base.f1 - 1e-9).all(), (hold.f1, base.f1)
    assert hold.f1.min() >= 0.95, hold.f1
    assert base.f1.min() < 0.95  # the shipped strategy does not know the lab's rule
    tuned = result.strategy.population("CD25+ CD4").params["threshold"]
    assert tuned != load_strategy("tmem").population("CD25+ CD4").params["threshold"]
    assert any(c["population"] == "CD25+ CD4" for c in result.changes)
    # the saved YAML is an ordinary strategy: it loads and gates a new file identically
    paths = result.save(tmp_path / "learned")
    reloaded = load_strategy(paths["strategy"])
    assert reloaded.definition == result.strategy.definition
    sample = read_fcs(files[1])
    assert (reloaded.apply(sample).masks["CD25+ CD4"] == result.strategy.apply(sample).masks["CD25+ CD4"]).all()
    csv = pd.read_csv(paths["agreement"])
    assert {"sample", "population", "f1", "abs_delta_pct", "role"} <= set(csv.columns)
    html = paths["html"].read_text()
    assert "leave-one-sample-out" in html and "CD25+ CD4" in html
    with pytest.raises(ConfigError, match="exists"):
        result.save(tmp_path / "learned")


def test_compare_gates_orders_worst_first(study):
    out, files, mapping = study
    table = compare_gates(out / "expert.wsp", files, "tmem", mapping=mapping)
    assert list(table.f1) == sorted(table.f1)
    assert set(table.population) == {"CD4 T", "CD25+ CD4"}
    assert table.iloc[0].population == "CD25+ CD4"  # the lab's rule differs from the shipped one there
    same = compare_gates(out / "expert.wsp", files, _lab_strategy(), mapping=mapping)
    assert same.f1.min() > 0.999  # the lab's own rules reproduce its gates


def test_cli_learn_and_compare_gates(study, tmp_path, capsys):
    out, files, mapping = study
    rc = main(["learn", str(out / "expert.wsp"), *map(str, files[:2]), "--strategy", "tmem", "--mapping", str(mapping),
               "--out", str(tmp_path / "o")])
    assert rc == 0
    assert (tmp_path / "o" / "tmem.yaml").exists() and (tmp_path / "o" / "agreement.html").exists()
    assert "CD25+ CD4" in capsys.readouterr().out
    assert main(["learn", str(out / "expert.wsp"), str(files[0]), "--out", str(tmp_path / "o"),
                 "--strategy", "tmem", "--mapping", str(mapping)]) == 2  # outputs exist, no --force
    rc = main(["compare-gates", str(out / "expert.wsp"), *map(str, files), "--gates", "tmem", "--mapping",
               str(mapping), "--table", str(tmp_path / "cmp.csv")])
    assert rc == 0
    assert len(pd.read_csv(tmp_path / "cmp.csv")) == 2 * len(files)
    bad = tmp_path / "bad.yaml"
    bad.write_text("No such population: CD4 T\n")
    assert main(["compare-gates", str(out / "expert.wsp"), str(files[0]), "--gates", "tmem", "--mapping", str(bad)]) == 2
    assert "No such population" in capsys.readouterr().err


def test_expert_files_must_match_the_workspace(study, tmp_path):
    out, files, mapping = study
    other = tmp_path / "other.fcs"
    other.write_bytes(files[0].read_bytes())
    other2 = tmp_path / "other2.fcs"
    other2.write_bytes(files[0].read_bytes())
    with pytest.raises(ConfigError, match="none of the workspace's gated samples"):
        learn_strategy(out / "expert.wsp", [other, other2], strategy="tmem", mapping=mapping)


def test_flowsom_learning_from_its_own_expert_gates(shared_data):
    base = shared_data / "flowsom_68983"
    mapping = {"NK1_1+": "NK1.1+", "NK cells": "NK cells", "NK T cells": "NKT cells", "B cells": "B cells"}
    result = learn_strategy(base / "gating.wsp", [base / "68983.fcs"], strategy="mouse_lymphocytes", mapping=mapping)
    a = result.agreement.set_index(["role", "population"])
    for pop in ("NK1.1+", "NK cells", "NKT cells", "B cells"):
        assert a.loc[("train", pop), "f1"] >= 0.97, pop
        assert a.loc[("train", pop), "f1"] >= a.loc[("untuned", pop), "f1"] - 1e-9, pop
    assert a.loc[("untuned", "NKT cells"), "f1"] < 0.965  # untuned: the learning did the work


def test_flowsom_strategy_derived_from_the_workspace(shared_data):
    """No base strategy: the expert's gate tree becomes adaptive gates of the matching kinds."""
    from cytokit.learn.derive import derive_strategy
    from cytokit.flowjo import read_workspace

    base = shared_data / "flowsom_68983"
    doc = read_workspace(base / "gating.wsp").samples[0].document
    strategy = derive_strategy(doc, base / "68983.fcs")
    methods = {p.name: p.method for p in strategy.definition.populations}
    assert methods["Lymphocytes"] == "gmm_ellipse"
    assert methods["CD4 T cells"] == "quadrant" and methods["Singlets"] == "threshold"
    specs = {p.name: p for p in strategy.definition.populations}
    assert specs["CD4 T cells"].params["signs"] == ["+", "-"]
    assert specs["CD4 T cells"].dims == ("PE-Texas Red-A", "Pacific Blue-A")
    # NK T cells: a box whose upper CD3 edge only trims stray events (<= 2.5 %): a CD3+ threshold gate,
    # not an ellipse approximating the box
    nkt = specs["NK T cells"]
    assert nkt.method in ("threshold", "quadrant") and nkt.dims[0] == "PE-Cy7-A"
    assert (nkt.params.get("signs") or [nkt.params.get("sign")])[0] == "+"


def test_compare_gates_with_a_finished_run(study, tmp_path):
    """A run's stored per-sample gates (samples/<id>/gates.xml) against the expert, per event."""
    out, files, mapping = study
    folder = tmp_path / "in"
    folder.mkdir()
    for f in files[:2]:
        (folder / f.name).write_bytes(f.read_bytes())
    assert main(["-q", "run", "--input", str(folder), "--panel", "il2_trial", "--strategy", "tmem", "--tube", "tmem",
                 "--out", str(tmp_path / "run")]) == 0
    table = compare_gates(out / "expert.wsp", sorted(folder.glob("*.fcs")), tmp_path / "run", mapping=mapping)
    assert set(table["sample"]) == {f.stem for f in files[:2]}
    assert set(table.population) == {"CD4 T", "CD25+ CD4"}
    by = table.set_index(["sample", "population"])
    direct = compare_gates(out / "expert.wsp", sorted(folder.glob("*.fcs")), "tmem", mapping=mapping)
    direct = direct.set_index(["sample", "population"])
    for key in by.index:  # the run's stored gates and the strategy applied here agree with the expert alike
        assert abs(by.loc[key, "f1"] - direct.loc[key, "f1"]) < 0.01, key
    assert list(table.f1) == sorted(table.f1)
