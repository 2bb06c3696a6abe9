"""The estimated error of a population (``est_error_pp``) and the review flags built on it: what the number
measures (arrays generated here), and that it reaches the result tables and the pipeline's tables as the
flags do (a small simulated trial)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods import REVIEW_FLAGS, fit_gate, fit_threshold, needs_review
from cytokit.gating.methods.confidence import (MODE_EDGE_FRACTION, TAIL_SD_UNCERTAINTY, UNCERTAIN_PP,
                                               ThresholdUncertainty, estimated_error)
from cytokit.gating.methods.density import ThresholdParams
from cytokit.results import read_table
from test_pipeline_support import simulate_small_trial, write_pipeline


def above(Z: np.ndarray, v) -> np.ndarray:
    return Z[:, 0] >= v[0]


def test_estimated_error_is_the_density_at_the_threshold_times_its_uncertainty():
    r = np.random.default_rng(3)
    # a flat stretch of events around the threshold: moving it by d moves density x d of the events
    for share in (0.1, 0.2, 0.4):
        x = np.r_[r.uniform(0.4, 0.6, int(20000 * share)), r.normal(0.1, 0.01, int(20000 * (1 - share)))]
        density = share / 0.2  # fraction of events per gate unit in 0.4..0.6
        est = estimated_error(x[:, None], [ThresholdUncertainty(0.5, (0.48, 0.52))], above)
        assert est == pytest.approx(100 * density * 0.02, rel=0.15), (share, est)
    # two thresholds: the root sum of squares of their terms
    x = r.uniform(0.0, 1.0, 20000)[:, None]
    between = lambda Z, v: (Z[:, 0] >= v[0]) & (Z[:, 0] < v[1])  # noqa: E731
    one = estimated_error(x, [ThresholdUncertainty(0.3, (0.33,)), ThresholdUncertainty(0.7)], between)
    both = estimated_error(x, [ThresholdUncertainty(0.3, (0.33,)), ThresholdUncertainty(0.7, (0.73,))], between)
    assert one == pytest.approx(3.0, abs=0.5) and both == pytest.approx(math.sqrt(2) * one, rel=0.1)
    # nothing to measure: NaN (not 0); an empty parent: 0
    assert math.isnan(estimated_error(x, [ThresholdUncertainty(0.5)], above))
    assert estimated_error(x[:0], [ThresholdUncertainty(0.5, (0.52,))], above) == 0.0


def test_estimated_error_grows_with_the_density_at_the_fitted_threshold():
    # negatives and positives with a growing bridge of events between them (activation continuum)
    r = np.random.default_rng(5)
    ests = []
    for bridge in (0, 1500, 4000, 8000):
        x = np.r_[r.normal(0.2, 0.04, 14000 - bridge // 2), r.normal(0.65, 0.04, 6000 - bridge // 2),
                  r.uniform(0.25, 0.6, bridge)]
        fit = fit_gate("threshold", x[:, None], {"sign": "+", "threshold": {"bounds": [0.3, 0.55]}}, dims=("CD25",))
        ests.append(fit.info["est_error_pp"])
        assert ("uncertain" in fit.flags) == (fit.info["est_error_pp"] > UNCERTAIN_PP)
    assert ests[0] < 0.5 and all(a < b for a, b in zip(ests, ests[1:])), ests
    assert ests[-1] > UNCERTAIN_PP, ests


def test_threshold_alternatives_come_from_the_fit():
    r = np.random.default_rng(9)
    valley = fit_threshold(np.r_[r.normal(0.2, 0.04, 15000), r.normal(0.6, 0.05, 5000)])
    u = ThresholdUncertainty.from_fit(valley.value, valley.info)
    assert valley.info["method"] == "valley" and len(valley.info["stability_thresholds"]) == 2
    assert set(u.alternatives) <= set(valley.info["stability_thresholds"])
    tail = fit_threshold(r.normal(0.2, 0.04, 20000), ThresholdParams(mode="tail", tail_sd=2.0))
    u = ThresholdUncertainty.from_fit(tail.value, tail.info)
    d = TAIL_SD_UNCERTAINTY * tail.info["half_sd"]
    assert u.alternatives == pytest.approx((tail.value - d, tail.value + d))
    # a refit beyond one of the modes around the threshold chose another valley: not an alternative position
    u = ThresholdUncertainty.from_fit(0.5, {"method": "valley", "peaks": [0.3, 0.7],
                                            "stability_thresholds": [0.52, 0.8]})
    assert u.alternatives == (0.52,)
    fixed = fit_threshold(r.normal(0.2, 0.04, 100), ThresholdParams(mode="fixed", value=0.4))
    assert ThresholdUncertainty.from_fit(fixed.value, fixed.info).alternatives == ()
    fit = fit_gate("threshold", r.normal(0.2, 0.04, (500, 1)), {"threshold": {"mode": "fixed", "value": 0.4}})
    assert fit.info["est_error_pp"] is None and "uncertain" not in fit.flags


def test_unstable_is_a_note_and_uncertain_a_review_flag():
    assert "uncertain" in REVIEW_FLAGS and "unstable" not in REVIEW_FLAGS
    assert needs_review("CD25:no_valley;uncertain") and not needs_review("unstable;fell_back:tail")
    assert needs_review("upper:ambiguous_mode")


def _strategy_with_dense_cd25_cut(folder: Path) -> Path:
    """tmem with CD25+ CD4 cut 0.5 SD above the negative mode: a threshold inside the negative peak."""
    import yaml

    from cytokit.definitions import resolve_definition

    data = yaml.safe_load(resolve_definition("tmem", "gating").read_text())
    for pop in data["populations"]:
        if pop["name"] == "CD25+ CD4":
            pop["params"] = {"sign": "+", "threshold": {"mode": "tail", "tail_sd": 0.5}}
    path = folder / "tmem_dense_cd25.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("flags")
    trial = simulate_small_trial(base / "trial", events=5000)
    strategy = _strategy_with_dense_cd25_cut(base)
    cfg = write_pipeline(base / "cfg", trial, name="flags_trial",
                         tubes={"tmem": {"panel": "il2_trial", "strategy": str(strategy)},
                                "nkb": {"panel": "il2_trial", "strategy": "nkb"}},
                         executor={"jobs": 1, "task": "analyse"})
    from cytokit.pipeline import run

    summary = run(cfg, base / "out")
    assert summary.ok == 8, summary.failures
    return trial, strategy, base / "out"


def test_estimated_error_and_flags_reach_the_tables(dense_run):
    trial, strategy, out = dense_run
    pops = read_table(out, "populations")
    assert "est_error_pp" in pops.columns and pops["est_error_pp"].dtype == np.float64
    # measured for threshold-type gates, not for scatter gates
    by_method = pops.groupby("method")["est_error_pp"].apply(lambda s: s.notna().mean())
    assert by_method["threshold"] == 1.0 and by_method["quadrant"] == 1.0 and by_method["gmm_ellipse"] == 0.0
    # 'uncertain' in the table exactly where the estimate exceeds the limit
    flagged = pops["flags"].fillna("").str.split(";").map(lambda ws: "uncertain" in ws)
    assert (flagged == (pops["est_error_pp"] > UNCERTAIN_PP)).all()
    dense = pops[pops["population"] == "CD25+ CD4"]
    assert len(dense) == 4 and (dense["est_error_pp"] > UNCERTAIN_PP).all() and flagged[dense.index].all()
    # the same numbers as gating the file directly (one chain for every entry point; QC is off in this run)
    row = dense.iloc[0]
    direct = load_strategy(strategy).apply(read_fcs(trial / row["file"]), qc=False).populations
    direct = direct.set_index("population")
    assert direct.loc["CD25+ CD4", "pct_parent"] == pytest.approx(row["pct_parent"])
    assert direct.loc["CD25+ CD4", "est_error_pp"] == pytest.approx(row["est_error_pp"])
    assert direct.loc["CD25+ CD4", "flags"] == row["flags"]
    csv = pd.read_csv(out / "populations.csv")
    assert np.allclose(csv["est_error_pp"], pops["est_error_pp"], equal_nan=True)


def test_a_refit_inside_a_modes_body_is_not_an_alternative_position():
    # modes at 0.3 and 0.7, valley at 0.5: a refit at 0.45 moved the valley; one at 0.67 (within
    # MODE_EDGE_FRACTION of the gap next to the upper mode) split that mode
    info = {"method": "valley", "peaks": [0.3, 0.7], "stability_thresholds": [0.45, 0.67]}
    assert ThresholdUncertainty.from_fit(0.5, info).alternatives == (0.45,)
    # a valley that itself lies next to a mode keeps the refits that are no nearer to that mode than it
    info = {"method": "valley", "peaks": [0.3, 0.7], "stability_thresholds": [0.64, 0.69]}
    assert ThresholdUncertainty.from_fit(0.66, info).alternatives == (0.64,)
    # a threshold placed by the negative model's count keeps its recorded alternatives as they are
    info = {"method": "excess", "peaks": [0.3, 0.7], "stability_thresholds": [0.28, 0.35]}
    assert ThresholdUncertainty.from_fit(0.31, info).alternatives == (0.28, 0.35)
    # the estimate follows: the split-mode refit no longer moves the population
    r = np.random.default_rng(4)
    x = np.r_[r.normal(0.3, 0.04, 12000), r.normal(0.7, 0.04, 8000)][:, None]
    near_mode = estimated_error(x, [ThresholdUncertainty.from_fit(
        0.5, {"method": "valley", "peaks": [0.3, 0.7], "stability_thresholds": [0.67]})], above)
    assert math.isnan(near_mode)  # no alternative left: nothing measured
    assert 0.7 - 0.67 < MODE_EDGE_FRACTION * (0.7 - 0.3) < 0.7 - 0.5  # (the band the case above relies on)
