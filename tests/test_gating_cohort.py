"""Cohort-aware gating: gate positions compared with the cohort, outliers flagged and re-fitted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.cohort import cohort_outliers, gate_positions, refit_within
from cytokit.gates import QuadrantGate, RectangleGate


def test_positions_of_threshold_gates_and_robust_outliers():
    records = {}
    for i, t in enumerate([0.40, 0.41, 0.39, 0.42, 0.40, 0.38, 0.62]):
        records[f"s{i}"] = [
            {"population": "T cells", "gate": RectangleGate(id="T cells", dims=("CD3",), lower=(t,), upper=(None,)).to_dict()},
            {"population": "CD4 T", "gate": QuadrantGate(id="CD4 T", dims=("CD4", "CD8"), dividers=(0.5, 0.45),
                                                          signs=(1, -1)).to_dict()},
            {"population": "Lymphocytes", "gate": RectangleGate(id="Lymphocytes", dims=("FSC-A",), lower=(1.0,),
                                                                 upper=(2.0,)).to_dict()},
        ]
    methods = {"T cells": "threshold", "CD4 T": "quadrant", "Lymphocytes": "gmm_ellipse"}
    pos = gate_positions(records, methods)
    assert set(pos["population"]) == {"T cells", "CD4 T"}  # only threshold-type methods
    assert len(pos[pos["population"] == "CD4 T"]) == 14  # two dividers x 7 files
    table = cohort_outliers(pos, k=3.0, min_shift=0.05)
    t = table[table["population"] == "T cells"].set_index("sample_id")
    assert t["outlier"].tolist() == [False] * 6 + [True]
    assert t.loc["s6", "median"] == pytest.approx(0.40)
    assert t.loc["s6", "range_low"] < 0.40 < t.loc["s6", "range_high"] < 0.62
    assert not table[table["population"] == "CD4 T"]["outlier"].any()  # identical dividers: spread floor
    # too small a cohort: never an outlier
    assert not cohort_outliers(pos[pos["sample_id"].isin(["s0", "s1", "s6"])], min_samples=5)["outlier"].any()


def test_refit_within_the_cohort_range_keeps_both_fits(repo_root):
    path = repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    strategy = load_strategy("tmem")
    own_bounds = list(strategy.population("CD25+ CD4").params["threshold"]["bounds"])
    result = strategy.apply(read_fcs(path))
    before = result.gates["CD25+ CD4"].lower[0]
    low, high = before + 0.04, before + 0.08  # a range the file's own fit lies outside of
    tuned, refit = refit_within(strategy, result, "CD25+ CD4", {"CD25": (low, high)})
    used = tuned.population("CD25+ CD4").params["threshold"]["bounds"]
    assert low - 1e-9 <= used[0] < used[1] <= high + 1e-9  # the cohort range (within the strategy's bounds)
    after = refit.gates["CD25+ CD4"].lower[0]
    assert used[0] - 1e-9 <= after <= used[1] + 1e-9
    assert result.gates["CD25+ CD4"].lower[0] == before  # the original result is unchanged
    assert strategy.population("CD25+ CD4").params["threshold"]["bounds"] == own_bounds  # strategy unchanged
    counts, new = result.counts(), refit.counts()
    assert new["CD25+ CD4"] < counts["CD25+ CD4"]
    assert all(new[p] == counts[p] for p in ("Lymphocytes", "T cells", "CD4 T", "Treg", "CD28+ CD8"))
    assert np.array_equal(refit.masks["CD4 T"], result.masks["CD4 T"])
