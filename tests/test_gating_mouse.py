"""Mouse strategy against the expert's per-event labels of flowsom_68983 (real data), and its debris and
viability gates on the same file with dead cells / debris added."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy

EXPERT = {"T cells": ["CD4 T cells", "CD8 T cells", "gd T cells"], "CD4 T": ["CD4 T cells"],
          "CD8 T": ["CD8 T cells"], "gd T": ["gd T cells"], "B cells": ["B cells"], "NK cells": ["NK cells"],
          "NKT cells": ["NK T cells"]}


def f1(mask: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (mask & truth).sum() / max(mask.sum() + truth.sum(), 1))


@pytest.fixture(scope="module")
def mouse(shared_data):
    base = shared_data / "flowsom_68983"
    sample = read_fcs(base / "68983.fcs")
    labels = pd.read_csv(base / "gatingResult.csv", header=None).iloc[:, 0].to_numpy()
    return sample, labels, load_strategy("mouse_lymphocytes")


def test_mouse_strategy_matches_expert_labels(mouse):
    """Per-event F1 >= 0.95 for every expert population (measured: T 0.965, CD4 T 0.982, CD8 T 0.980,
    gd T 0.981, B 0.971, NK 0.978, NKT 0.958)."""
    sample, labels, strategy = mouse
    result = strategy.apply(sample, qc=False)  # per-event labels of every event
    assert len(labels) == result.sample.n_events
    scores = {name: f1(result.masks[name], np.isin(labels, labs)) for name, labs in EXPERT.items()}
    assert min(scores.values()) >= 0.95, scores
    # no dead-cell population in this file: the viability gate keeps every event and says why
    by = result.populations.set_index("population")
    assert by.loc["Live", "count"] == by.loc["Singlets", "count"]
    assert "fell_back:expected" in by.loc["Live", "flags"]


def test_dead_cells_and_debris_are_gated_out(mouse):
    """10% of the cells made dead (viability dye 30-100x brighter) and 15% debris events added: the
    Live gate removes the dead cells, the Cells gate the debris, and the expert populations stay."""
    sample, labels, strategy = mouse
    rng = np.random.default_rng(7)
    ev = sample.events.copy()
    n = len(ev)
    ld = sample.channel_index("AmCyan-A")
    dead = rng.random(n) < 0.10
    ev[dead, ld] = np.abs(ev[dead, ld]) * rng.uniform(30, 100, dead.sum()) + rng.uniform(2e4, 6e4, dead.sum())
    k = int(0.15 * n)
    debris = ev[rng.choice(n, k)].copy()
    fsc_a, fsc_h = sample.channel_index("FSC-A"), sample.channel_index("FSC-H")
    ssc_a = sample.channel_index("SSC-A")
    debris[:, fsc_a] = rng.uniform(3000, 25000, k)
    debris[:, fsc_h] = debris[:, fsc_a] * rng.uniform(0.6, 1.0, k)
    debris[:, ssc_a] = rng.uniform(1000, 12000, k)
    # qc=False: masks are compared event for event with the labels (QC would drop the appended events)
    result = strategy.apply(sample.replace(events=np.vstack([ev, debris]).astype(np.float32)), qc=False)
    is_debris = np.r_[np.zeros(n, bool), np.ones(k, bool)]
    is_dead = np.r_[dead, np.zeros(k, bool)]
    cells, live = result.masks["Cells"], result.masks["Live"]
    assert (~cells[is_debris]).mean() >= 0.95
    assert cells[~is_debris].mean() >= 0.99
    singlets = result.masks["Singlets"]
    assert (~live[is_dead & singlets]).mean() >= 0.95
    assert live[~is_dead & singlets].mean() >= 0.98
    assert not result.populations.set_index("population").loc["Live", "flags"]
    truth_labels = np.r_[labels, np.full(k, "debris")]
    alive = ~is_dead & ~is_debris
    for name, labs in EXPERT.items():  # live expert populations are still found
        assert f1(result.masks[name] & alive, np.isin(truth_labels, labs) & alive) >= 0.93, name


def test_flowjo_workspace_applies_as_a_fixed_strategy(shared_data):
    base = shared_data / "flowsom_68983"
    strategy = load_strategy(base / "gating.wsp")
    result = strategy.apply(read_fcs(base / "68983.fcs"))
    flowjo = pd.read_csv(base / "gating_wsp_flowjo_counts.csv").set_index("gate_name")["flowjo_count"]
    by = result.populations.set_index("population")
    for name in ("Singlets", "T cells", "CD4 T cells", "CD8 T cells", "B cells", "NK cells"):
        assert abs(by.loc[name, "count"] - flowjo[name]) <= max(3, 0.002 * flowjo[name]), name
    assert (result.populations.method.isin(["fixed", "boolean"])).all()
