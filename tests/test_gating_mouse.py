"""Mouse strategy against the expert's per-event labels of flowsom_68983 (real data)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy


def test_mouse_strategy_matches_expert_labels(shared_data):
    base = shared_data / "flowsom_68983"
    result = load_strategy("mouse_lymphocytes").apply(read_fcs(base / "68983.fcs"))
    labels = pd.read_csv(base / "gatingResult.csv", header=None).iloc[:, 0].to_numpy()
    assert len(labels) == result.sample.n_events
    expert = {"T cells": np.isin(labels, ["CD4 T cells", "CD8 T cells", "gd T cells"]),
              "CD4 T": labels == "CD4 T cells", "CD8 T": labels == "CD8 T cells",
              "B cells": labels == "B cells", "NK cells": labels == "NK cells"}
    for name, truth in expert.items():
        m = result.masks[name]
        f1 = 2 * (m & truth).sum() / (m.sum() + truth.sum())
        assert f1 > 0.88, (name, f1)


def test_flowjo_workspace_applies_as_a_fixed_strategy(shared_data):
    base = shared_data / "flowsom_68983"
    strategy = load_strategy(base / "gating.wsp")
    result = strategy.apply(read_fcs(base / "68983.fcs"))
    flowjo = pd.read_csv(base / "gating_wsp_flowjo_counts.csv").set_index("gate_name")["flowjo_count"]
    by = result.populations.set_index("population")
    for name in ("Singlets", "T cells", "CD4 T cells", "CD8 T cells", "B cells", "NK cells"):
        assert abs(by.loc[name, "count"] - flowjo[name]) <= max(3, 0.002 * flowjo[name]), name
    assert (result.populations.method.isin(["fixed", "boolean"])).all()
