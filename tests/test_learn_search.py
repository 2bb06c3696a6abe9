"""The learner's safeguards: expert gate kinds mapped to adaptive gates, and tuning adopted only when it
generalises across the training samples (leave-one-out)."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.flowjo import write_workspace
from cytokit.gates import RectangleGate
from cytokit.gating import Strategy, load_strategy
from cytokit.gatingml import read_gatingml
from cytokit.learn import learn_strategy
from cytokit.learn.derive import LOOSE_FRACTION, _sides
from cytokit.simulate import SimulationConfig, simulate_trial


def _cloud(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    neg = rng.normal([0.2, 0.5], 0.04, size=(3000, 2))
    pos = rng.normal([0.6, 0.5], 0.04, size=(1000, 2))
    return np.vstack([neg, pos])


def test_a_loosely_drawn_edge_counts_as_open():
    X = _cloud()
    n_pos = 1000
    # lower side between the clouds; upper side trims a handful of the positive cloud's brightest events
    hi = float(np.quantile(X[3000:, 0], 1 - 0.5 * LOOSE_FRACTION))
    loose = RectangleGate("g", ("a", "b"), (0.4, None), (hi, None))
    assert _sides(loose, X) == ["+", None]
    # an upper side cutting well into the positive cloud is a real second side
    tight = RectangleGate("g", ("a", "b"), (0.4, None), (0.6, None))
    assert _sides(tight, X) == ["both", None]
    # an upper side beyond the events is open whatever the lower side does
    assert _sides(RectangleGate("g", ("a", "b"), (0.4, None), (5.0, None)), X) == ["+", None]
    # the second dimension cut on one side only
    assert _sides(RectangleGate("g", ("a", "b"), (0.4, 0.45), (hi, None)), X)[1] == "+"
    assert n_pos * LOOSE_FRACTION > np.sum(X[3000:, 0] >= hi)


def _expert_doc(strategy: Strategy, path, cd25_shift: float):
    sample = read_fcs(path)
    result = strategy.apply(sample)
    data = strategy.definition.model_dump()
    if cd25_shift:
        t = result.fits["CD25+ CD4"].gate
        value = (t.dividers[0] if hasattr(t, "dividers") else t.lower[0]) + cd25_shift
        for p in data["populations"]:
            if p["name"] == "CD25+ CD4":
                p["params"]["threshold"] = {"mode": "fixed", "value": float(value)}
    lab = Strategy(type(strategy.definition).model_validate(data))
    return sample, read_gatingml(lab.apply(sample).to_gatingml().encode())


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn_loo")
    simulate_trial(out / "trial", SimulationConfig(patients_per_arm=1, visits=["W0"], tubes=["tmem"],
                                                   events=6000, seed=7))
    return out, sorted((out / "trial" / "fcs").glob("*.fcs"))


def test_tuning_that_does_not_generalise_is_not_adopted(two_files, tmp_path):
    """The expert gates one training sample as the shipped strategy does and the other far above it: no
    parameters reproduce both, a compromise tuned on one loses on the other, so the base is kept."""
    out, files = two_files
    tmem = load_strategy("tmem")
    wsp = out / "inconsistent.wsp"
    write_workspace(wsp, [_expert_doc(tmem, files[0], 0.0), _expert_doc(tmem, files[1], 0.2)])
    mapping = {"CD4 T": "CD4 T", "CD25+ CD4": "CD25+ CD4"}
    result = learn_strategy(wsp, files, strategy="tmem", mapping=mapping, loso=False)
    assert not any(c["population"] == "CD25+ CD4" for c in result.changes), result.changes
    a = result.agreement
    train = a[(a.role == "train") & (a.population == "CD25+ CD4")].set_index("sample").f1
    untuned = a[(a.role == "untuned") & (a.population == "CD25+ CD4")].set_index("sample").f1
    assert (train == untuned.loc[train.index]).all()
    assert untuned.min() < 0.95  # the second sample's expert gate really differs
    # the rejected tuning is reported, with the loss it showed on a left-out sample
    (rejected,) = [d for d in result.not_adopted if d["population"] == "CD25+ CD4"]
    assert rejected["score_after"] > rejected["score_before"] and min(rejected["loo_gains"]) < 0
    html = result.save(tmp_path / "out")["html"].read_text()
    assert "Tuning not adopted" in html and "CD25+ CD4" in html


def test_consistent_shift_is_learned_and_adopted(two_files):
    """The same expert rule (shipped placement + 0.1 on both samples' CD25) passes the leave-one-out check."""
    out, files = two_files
    tmem = load_strategy("tmem")
    wsp = out / "consistent.wsp"
    write_workspace(wsp, [_expert_doc(tmem, f, 0.1) for f in files])
    mapping = {"CD4 T": "CD4 T", "CD25+ CD4": "CD25+ CD4"}
    result = learn_strategy(wsp, files, strategy="tmem", mapping=mapping, loso=False)
    assert any(c["population"] == "CD25+ CD4" for c in result.changes)
    a = result.agreement
    train = a[(a.role == "train") & (a.population == "CD25+ CD4")].set_index("sample").f1
    untuned = a[(a.role == "untuned") & (a.population == "CD25+ CD4")].set_index("sample").f1
    assert (train > untuned.loc[train.index]).all()
    assert not result.not_adopted
