"""The estimated error of a population (``est_error_pp``) and the review flags built on it: what the number
measures (arrays generated here), and that it reaches the result tables and the pipeline's tables as the
flags do (a small simulated trial)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods import REVIEW_FLAGS, fit_gate, fit_threshold, needs_review
from cytokit.gating.methods.confidence import (COUNT_MODEL_SD_PP, DISAGREEMENT_SDS, MISFIT_SDS, MODE_EDGE_FRACTION,
                                               SHALLOW_VALLEY_RATIO, TAIL_SD_UNCERTAINTY, UNCERTAIN_PP, VALLEY_LOCAL_PP,
                                               SecondEstimate,
                                               ThresholdUncertainty, combined_error, estimated_error,
                                               negative_model_estimate, own_negative_share, tail_estimate)
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
    # a fixed cut: its value -/+ the scale's tolerance (docs/gating.md, "An activation smear with a stated cut");
    # with no tolerance nothing is measured
    fixed = fit_threshold(r.normal(0.2, 0.04, 100), ThresholdParams(mode="fixed", value=0.4))
    assert ThresholdUncertainty.from_fit(fixed.value, fixed.info).alternatives == pytest.approx((0.38, 0.42))
    exact = fit_threshold(r.normal(0.2, 0.04, 100), ThresholdParams(mode="fixed", value=0.4, fixed_tolerance=0))
    assert ThresholdUncertainty.from_fit(exact.value, exact.info).alternatives == ()
    fit = fit_gate("threshold", r.normal(0.2, 0.04, (500, 1)), {"threshold": {"mode": "fixed", "value": 0.4}})
    assert fit.info["est_error_pp"] == 0.0 and "uncertain" not in fit.flags
    fit = fit_gate("threshold", r.normal(0.2, 0.04, (500, 1)),
                   {"threshold": {"mode": "fixed", "value": 0.4, "fixed_tolerance": 0}})
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
    # measured for threshold-type gates, (other event classes inside, .scatter_overlap) gmm_ellipse gates and
    # (where the band's edges could lie, .scatter.band_error_pp) singlet bands
    by_method = pops.groupby("method")["est_error_pp"].apply(lambda s: s.notna().mean())
    assert by_method["threshold"] == 1.0 and by_method["quadrant"] == 1.0 and by_method["gmm_ellipse"] == 1.0
    assert by_method["singlets"] == 1.0
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


def test_combined_error_weighs_the_two_estimates():
    # agreement: below both the spread and the second estimate's SD
    assert combined_error(2.0, 0.0, 2.0) == pytest.approx(math.sqrt(2.0))
    # grows with the disagreement, towards it
    errs = [combined_error(2.0, d, 2.0) for d in (0.0, 2.0, 4.0, 8.0)]
    assert all(a < b for a, b in zip(errs, errs[1:])) and errs[-1] < 8.0
    # a threshold with no spread keeps 0 unless the disagreement is beyond DISAGREEMENT_SDS SDs
    assert combined_error(0.0, 2.0 * DISAGREEMENT_SDS, 2.0) == 0.0
    assert combined_error(0.0, 15.0, 2.0) == pytest.approx(15.0 - DISAGREEMENT_SDS * 2.0)
    assert combined_error(0.1, 15.0, 2.0) == pytest.approx(15.0 - DISAGREEMENT_SDS * 2.0)


def _dim_continuum_under_a_deep_valley(r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CD4 T cells on CD25 (logicle-like 0..1): 60 % negatives, 25 % a dim continuum from the negatives'
    edge up to 0.5, 15 % bright positives beyond an empty valley; and a CD25-negative reference."""
    x = np.r_[r.normal(0.2, 0.035, 6000), r.uniform(0.27, 0.5, 2500), r.normal(0.75, 0.03, 1500)]
    return x, r.normal(0.2, 0.035, 5000)


def test_second_estimate_applies_above_the_negative_mode_with_a_reference():
    r = np.random.default_rng(11)
    x, ref = _dim_continuum_under_a_deep_valley(r)
    neg = {"negative_reference": {"mode": 0.2, "half_sd": 0.035, "negative_max": 0.27}}
    valley = {"method": "valley", "peaks": [0.2, 0.75], **neg}
    s = negative_model_estimate(x, ref, 0.62, valley)
    assert s is not None and 0.2 < s.position < 0.35 and 0.0 < s.sd_fraction < 0.03
    # the model counts ~40 % positives: the position holds that share of x
    assert np.mean(x >= s.position) == pytest.approx(0.40, abs=0.04)
    assert negative_model_estimate(x, None, 0.62, valley) is None  # no reference: no second estimate
    assert negative_model_estimate(x, ref, 0.62, {**valley, "method": "excess"}) is None
    assert negative_model_estimate(x, ref, 0.62, {"method": "valley", "peaks": [0.2, 0.75]}) is None  # not recorded
    # a threshold between two positive modes does not separate the negatives, nor one above a lowest mode
    # that lies beyond the reference's negatives (e.g. CD56dim/bright with hardly any CD56- NK cells)
    assert negative_model_estimate(x, ref, 0.62, {**valley, "peaks": [0.1, 0.4, 0.75]}) is None
    assert negative_model_estimate(x, ref, 0.62, {**valley, "peaks": [0.4, 0.75]}) is None
    tail = {"method": "tail", "peaks": [0.2], "tail_side": "upper", "reference_peak": 0.2, **neg}
    assert negative_model_estimate(x, ref, 0.26, tail) is not None
    assert negative_model_estimate(x, ref, 0.26, {**tail, "tail_side": "lower"}) is None


def test_a_gate_built_to_be_wrong_is_flagged_and_a_clean_bimodal_one_is_not():
    r = np.random.default_rng(12)
    params = {"sign": "+", "threshold": {"valley": "first", "max_valley_ratio": 0.5, "bounds": [0.2, 0.7]}}
    # a deep valley above a dim continuum: the gate holds the bright 15 %, the truth is 40 %
    x, ref = _dim_continuum_under_a_deep_valley(r)
    fit = fit_gate("threshold", x[:, None], params, dims=("CD25",), reference=ref[:, None])
    assert fit.info["threshold"] > 0.5 and np.mean(x >= fit.info["threshold"]) < 0.2
    assert fit.info["est_error_pp"] > 10 and "uncertain" in fit.flags
    # without the reference nothing tells: the valley is empty
    alone = fit_gate("threshold", x[:, None], params, dims=("CD25",))
    assert alone.info["est_error_pp"] < UNCERTAIN_PP and "uncertain" not in alone.flags
    # clean bimodal: negatives and a separate positive mode, the same reference: not flagged
    clean = np.r_[r.normal(0.2, 0.035, 7000), r.normal(0.6, 0.04, 3000)]
    fit = fit_gate("threshold", clean[:, None], params, dims=("CD25",), reference=ref[:, None])
    assert fit.info["est_error_pp"] < UNCERTAIN_PP and "uncertain" not in fit.flags
    assert np.mean(clean >= fit.info["threshold"]) == pytest.approx(0.3, abs=0.01)


def test_estimated_error_falls_when_the_second_estimate_agrees_and_grows_with_the_disagreement():
    # events spread evenly over 0..1: moving the threshold by d moves d x 100 pp of the parent
    x = np.random.default_rng(13).uniform(0.0, 1.0, 20000)[:, None]
    spread_only = estimated_error(x, [ThresholdUncertainty(0.5, (0.48, 0.52))], above)
    assert spread_only == pytest.approx(2.0, abs=0.2)
    ests = [estimated_error(x, [ThresholdUncertainty(0.5, (0.48, 0.52), SecondEstimate(0.5 - gap, 0.02))], above)
            for gap in (0.0, 0.02, 0.05, 0.1, 0.2)]
    assert ests[0] < spread_only and all(a < b for a, b in zip(ests, ests[1:])), ests
    assert ests[-1] == pytest.approx(20.0 - DISAGREEMENT_SDS * 2.0, abs=0.5)  # far beyond 3 SDs: the excess


def test_the_counts_sd_includes_the_references_own_sampling_noise():
    from cytokit.gating.methods.negative_model import CLEAN_LEVELS, negative_model

    r = np.random.default_rng(21)
    x = np.r_[r.normal(0.2, 0.035, 6000), r.normal(0.5, 0.05, 2000)]
    small = negative_model(x, reference=r.normal(0.2, 0.035, 500))
    large = negative_model(x, reference=r.normal(0.2, 0.035, 200000))
    assert small is not None and large is not None
    # with a huge reference only x's counting noise is left: sqrt(f(1-f)/n)/top at f = top x negative share
    top = float(CLEAN_LEVELS[-1])
    f = top * large.negative_fraction
    assert large.sd_fraction == pytest.approx(np.sqrt(f * (1 - f) / x.size) / top, rel=0.05)
    assert small.sd_fraction > 1.5 * large.sd_fraction
    # and the SD describes the estimate's scatter over repeated samples and references (x's counting noise
    # alone is under half of it here)
    est, sds = [], []
    for _ in range(200):
        xi = np.r_[r.normal(0.2, 0.035, 6000), r.normal(0.5, 0.05, 2000)]
        m = negative_model(xi, reference=r.normal(0.2, 0.035, 500))
        est.append(m.positive_fraction)
        sds.append(m.sd_fraction)
    assert 0.6 < np.mean(sds) / np.std(est) < 1.4  # (an approximation: one level's noise for all 25)
    assert np.std(est) > 2.5 * large.sd_fraction


def test_a_count_over_a_reference_of_another_shape_is_flagged_by_the_tail_rule():
    # CD4 T cells: negatives at 0.25 and a dim continuum without a valley; the reference's negatives sit
    # lower (another cell type, e.g. under another spillover): the count reads nearly all cells positive
    r = np.random.default_rng(31)
    x = np.r_[r.normal(0.25, 0.04, 7500), r.uniform(0.3, 0.55, 2500)]
    params = {"sign": "+", "threshold": {"valley": "first", "max_valley_ratio": 0.5, "fallback": "excess",
                                         "tail_sd": 1.75, "bounds": [0.1, 0.6]}}
    shifted = fit_gate("threshold", x[:, None], params, dims=("CD25",), reference=r.normal(0.15, 0.035, 5000)[:, None])
    # the negative model's misfit check sees that the reference is not shaped like these negatives: no count,
    # the tail rule instead, and (the reference also misplaces negative_max) a fit that needs review
    assert shifted.info["CD25"]["method"] == "tail" and "negative_model_misfit" in shifted.flags
    assert needs_review(shifted.flags)
    # the same count over a reference of the right shape: the tail rule's lower reading is no alarm of its own
    right = fit_gate("threshold", x[:, None], params, dims=("CD25",), reference=r.normal(0.25, 0.04, 5000)[:, None])
    assert right.info["CD25"]["method"] == "excess"
    assert np.mean(x >= right.info["threshold"]) == pytest.approx(0.25, abs=0.03)
    assert right.info["est_error_pp"] < 5
    u = tail_estimate(x, right.info["threshold"], right.info["CD25"], 1.75)
    assert u is not None and tail_estimate(x, 0.4, {"method": "valley", "peaks": [0.25]}, 1.75) is None


def test_an_agreeing_second_estimate_clears_an_uncertain_threshold_and_a_disagreeing_one_does_not():
    # events spread evenly over 0..1 (1 pp of the parent per 0.01): the threshold could lie 0.015 either way
    # (1.5 pp, `uncertain` on its own); the second estimate's SD is 0.5 pp
    x = np.random.default_rng(17).uniform(0.0, 1.0, 20000)[:, None]
    alts = (0.485, 0.515)
    alone = estimated_error(x, [ThresholdUncertainty(0.5, alts)], above)
    assert alone > UNCERTAIN_PP
    # right: the independent count puts the threshold where the gate is -> the combined error is below the limit
    agree = SecondEstimate(0.5, 0.005, misfit_sds_above=MISFIT_SDS)
    assert estimated_error(x, [ThresholdUncertainty(0.5, alts, agree)], above) < UNCERTAIN_PP
    # wrong by 3 pp (6 SDs of the count): more positives than the gate holds -> flagged, by about the disagreement
    below = SecondEstimate(0.47, 0.005, misfit_sds_above=MISFIT_SDS)
    wrong = estimated_error(x, [ThresholdUncertainty(0.5, alts, below)], above)
    assert wrong > max(alone, 2.0), wrong


def test_a_count_far_above_a_valley_is_set_aside_and_one_below_it_weighs():
    x = np.random.default_rng(19).uniform(0.0, 1.0, 20000)[:, None]
    alts = (0.495, 0.505)  # a clean valley: 0.5 pp
    parts: dict[str, float] = {}
    far_above = SecondEstimate(0.55, 0.005, misfit_sds_above=MISFIT_SDS)  # 5 pp fewer positives, 10 SDs
    est = estimated_error(x, [ThresholdUncertainty(0.5, alts, far_above)], above, parts=parts)
    assert est == pytest.approx(estimated_error(x, [ThresholdUncertainty(0.5, alts)], above))
    assert parts["set_aside"] == 1 and parts["second_shift_pp"] == pytest.approx(-5.0, abs=0.3)
    # the same count without the rule (a tail threshold), or as far below (more positives), weighs in full
    for second in (SecondEstimate(0.55, 0.005), SecondEstimate(0.45, 0.005, misfit_sds_above=MISFIT_SDS)):
        parts = {}
        assert estimated_error(x, [ThresholdUncertainty(0.5, alts, second)], above, parts=parts) > 2.0
        assert parts["set_aside"] == 0
    # and inside MISFIT_SDS above, agreement still counts: lower than the spread alone
    near = SecondEstimate(0.5 + 0.005 * MISFIT_SDS * 0.5, 0.005, misfit_sds_above=MISFIT_SDS)
    assert estimated_error(x, [ThresholdUncertainty(0.5, (0.485, 0.515), near)], above) < \
        estimated_error(x, [ThresholdUncertainty(0.5, (0.485, 0.515))], above)


def test_a_count_over_a_wider_reference_is_set_aside_at_a_valley_and_noted():
    # CD25 on CD4 T cells: negatives, a dim stretch (6 %) and a positive mode; the truth is 30 % positive
    r = np.random.default_rng(41)
    x = np.r_[r.normal(0.2, 0.035, 7000), r.uniform(0.3, 0.5, 600), r.normal(0.6, 0.04, 2400)]
    params = {"sign": "+", "threshold": {"valley": "first", "max_valley_ratio": 0.5, "bounds": [0.2, 0.7]}}
    # a reference shaped like these negatives: the count says more positives than the valley -> weighed
    same = fit_gate("threshold", x[:, None], params, dims=("CD25",), reference=r.normal(0.2, 0.035, 5000)[:, None])
    p = same.info["est_error_parts"]
    assert p["second_shift_pp"] > 0 and p["set_aside"] == 0 and "count_misfit" not in same.flags
    assert same.info["est_error_pp"] > p["spread_pp"] and "uncertain" in same.flags
    # a reference whose negatives include brighter cells (Singlets: B, NK...): the count subtracts too much and
    # calls events above the valley negative -> set aside (note `count_misfit`); est_error_pp is the spread alone
    wide = np.r_[r.normal(0.2, 0.035, 5000), r.normal(0.36, 0.04, 1200)]
    fit = fit_gate("threshold", x[:, None], params, dims=("CD25",), reference=wide[:, None])
    p = fit.info["est_error_parts"]
    assert p["second_shift_pp"] < -5 and p["set_aside"] == 1 and "count_misfit" in fit.flags
    # est_error_pp is then the spread (of the alternatives above the valley: the count's side), and as the cut lies
    # where few events are (a ±0.02 move: < VALLEY_LOCAL_PP) only what that move changes -- not `uncertain`
    assert p["valley_empty"] == 1 and same.info["est_error_parts"]["valley_empty"] == 0
    assert fit.info["est_error_pp"] == pytest.approx(fit.info["sensitivity_pp"], abs=0.01)
    assert fit.info["est_error_pp"] < min(p["spread_upper_pp"], VALLEY_LOCAL_PP)
    assert "uncertain" not in fit.flags
    assert not needs_review(["count_misfit"])


def test_a_refit_beyond_a_barely_there_dip_is_an_alternative():
    # a small bright population (40 of 740 events) whose mode the less smoothed density splits by a dip of
    # depth ratio 0.8: the fit took that dip (0.781), the smoother refit the valley below the bright mode (0.696)
    r = np.random.default_rng(11)
    x = np.r_[r.normal(0.55, 0.05, 700), r.normal(0.77, 0.03, 40)][:, None]
    info = {"method": "valley", "peaks": [0.55, 0.754, 0.798], "valley_ratio": 0.796,
            "stability_thresholds": [0.779, 0.696]}
    shallow = ThresholdUncertainty.from_fit(0.781, info)
    assert SHALLOW_VALLEY_RATIO <= 0.796
    assert 0.696 in shallow.alternatives and shallow.set_apart == ()
    # the same refit beyond a mode next to a real valley chose another valley: set apart, recorded, not counted
    deep = ThresholdUncertainty.from_fit(0.781, {**info, "valley_ratio": 0.1})
    assert 0.696 not in deep.alternatives and deep.set_apart == (0.696,)
    parts: dict[str, float] = {}
    est_deep = estimated_error(x, [deep], above, parts=parts)
    est_shallow = estimated_error(x, [shallow], above)
    assert est_deep < UNCERTAIN_PP < est_shallow
    assert parts["set_apart_pp"] == pytest.approx(est_shallow, abs=0.01)  # what the set-apart refit would cost


def test_a_set_aside_count_keeps_only_the_alternatives_above_the_valley():
    x = np.random.default_rng(23).uniform(0.0, 1.0, 20000)[:, None]
    far_above = SecondEstimate(0.6, 0.005, misfit_sds_above=MISFIT_SDS)  # 10 pp fewer positives: set aside
    parts: dict[str, float] = {}
    # alternatives 3 pp below and 1 pp above: only the one above (the count's side) counts
    est = estimated_error(x, [ThresholdUncertainty(0.5, (0.47, 0.51), far_above)], above, parts=parts)
    assert parts["set_aside"] == 1
    assert est == pytest.approx(1.0, abs=0.2) and parts["spread_lower_pp"] == pytest.approx(3.0, abs=0.3)
    assert parts["spread_pp"] == pytest.approx(parts["spread_lower_pp"])
    # without the count the alternative below counts in full
    assert estimated_error(x, [ThresholdUncertainty(0.5, (0.47, 0.51))], above) == pytest.approx(3.0, abs=0.3)


def test_an_empty_valley_cut_counts_only_what_a_small_move_changes():
    # two modes and a sparse valley floor (4 % of the events over 0.3-0.7): the smoothing refits moved the valley
    # by 0.15 along the floor (~1.6 pp), but a ±0.02 move at the cut changes the population by ~0.2 pp
    r = np.random.default_rng(29)
    floor = np.r_[r.normal(0.2, 0.03, 9000), r.normal(0.8, 0.03, 9000), r.uniform(0.3, 0.7, 800)][:, None]
    alts = (0.35, 0.65)
    full = estimated_error(floor, [ThresholdUncertainty(0.5, alts)], above)
    parts: dict[str, float] = {}
    valley = estimated_error(floor, [ThresholdUncertainty(0.5, alts, placed_by="valley")], above, parts=parts)
    assert full > UNCERTAIN_PP >= VALLEY_LOCAL_PP > valley and parts["valley_empty"] == 1
    # a continuum through the cut (the same move changes the population by more): the spread counts in full
    dense = np.r_[floor, r.uniform(0.3, 0.7, 6000)[:, None]]
    assert estimated_error(dense, [ThresholdUncertainty(0.5, alts, placed_by="valley")], above) == \
        pytest.approx(estimated_error(dense, [ThresholdUncertainty(0.5, alts)], above))
    # and where the count puts the threshold lower (dim positives under the valley) the spread counts in full too
    lower = SecondEstimate(0.48, 0.02)
    assert estimated_error(floor, [ThresholdUncertainty(0.5, alts, lower, placed_by="valley")], above) == \
        pytest.approx(estimated_error(floor, [ThresholdUncertainty(0.5, alts, lower)], above))


def test_an_unstable_valley_above_the_negatives_keeps_its_refit_below_however_sparse_the_cut():
    # CD4 T cells on CD25 (sim 2222 `reference` P004_W0, docs/gating.md "The silent CD25+ CD4 rows"): negatives
    # ending at ~0.30, then a flat sparse plateau of dim positives to 0.63 under a small bright mode at 0.57. The
    # valley rule took a dip inside the plateau (0.462); the less-smoothed refit found the plateau's lower end
    # (0.338, at the reference's negative_max 0.341), ~3 pp more positives. A +-0.02 move at 0.462 changes < 1 pp,
    # so the empty-valley cap alone would drop that refit: the row would be ~3 pp off and silent
    r = np.random.default_rng(53)
    x = np.r_[r.normal(0.19, 0.04, 9000), r.uniform(0.30, 0.63, 900), r.normal(0.57, 0.02, 150)][:, None]
    info = {"method": "valley", "peaks": [0.209, 0.578], "valley_ratio": 0.39, "stability_pct": 3.3,
            "stability_thresholds": [0.338, 0.47], "negative_reference": {"negative_max": 0.341, "half_sd": 0.05}}
    u = ThresholdUncertainty.from_fit(0.462, info)
    assert u.unstable_above_negatives and 0.338 in u.alternatives
    parts: dict[str, float] = {}
    est = estimated_error(x, [u], above, parts=parts)
    below = 100.0 * float(np.mean((x[:, 0] >= 0.338) & (x[:, 0] < 0.462)))
    assert below > 2.0 and est == pytest.approx(below, rel=0.01) and est > UNCERTAIN_PP
    assert parts["valley_empty"] == 1 and parts["unstable_floor"] == 1
    # the same valley not noted unstable, or lying inside the reference's negatives (at or below negative_max:
    # a valley there is where the reference says negatives still are), is capped as an empty one
    stable = ThresholdUncertainty.from_fit(0.462, {**info, "stability_pct": 1.0})
    inside = ThresholdUncertainty.from_fit(0.462, {**info, "negative_reference": {"negative_max": 0.48}})
    no_reference = ThresholdUncertainty.from_fit(0.462, {k: v for k, v in info.items() if k != "negative_reference"})
    for capped in (stable, inside, no_reference):
        assert not capped.unstable_above_negatives
        assert estimated_error(x, [capped], above) < VALLEY_LOCAL_PP
    # the refit above the valley is not read in (only the move towards where the negatives end)
    up = ThresholdUncertainty.from_fit(0.462, {**info, "stability_thresholds": [0.47, 0.50]})
    assert up.unstable_above_negatives and estimated_error(x, [up], above) < VALLEY_LOCAL_PP


def test_a_crossing_where_few_events_are_counts_only_what_a_small_move_changes():
    # the CD56-/CD56dim boundary of the negatives' crossing (raised from a valley or without one): its alternatives
    # (the negatives' count -/+ its SD, the smoothing refits) slid along a sparse stretch; as for a valley cut, the
    # population's error is what a ±0.02 move there changes -- not `uncertain` (rule LOCAL_CAP_METHODS)
    r = np.random.default_rng(29)
    floor = np.r_[r.normal(0.2, 0.03, 9000), r.normal(0.8, 0.03, 9000), r.uniform(0.3, 0.7, 800)][:, None]
    info = {"method": "crossing", "peaks": [0.2, 0.8], "stability_thresholds": [0.35, 0.65]}
    u = ThresholdUncertainty.from_fit(0.5, info)
    assert u.placed_by == "crossing" and set(u.alternatives) == {0.35, 0.65}
    parts: dict[str, float] = {}
    capped = estimated_error(floor, [u], above, parts=parts)
    assert estimated_error(floor, [dataclasses.replace(u, placed_by="tail")], above) > UNCERTAIN_PP > capped
    assert parts["valley_empty"] == 1
    # through a continuum the crossing's spread counts in full, as a valley's does
    dense = np.r_[floor, r.uniform(0.3, 0.7, 6000)[:, None]]
    full = estimated_error(dense, [dataclasses.replace(u, placed_by="tail")], above)
    assert estimated_error(dense, [u], above) == pytest.approx(full) and full > UNCERTAIN_PP


def test_a_barely_there_dip_keeps_its_refits_whatever_the_density_at_the_cut():
    # the shallow dip of the first test above: the empty-cut rule does not apply to it (its refit beyond the
    # bright mode is another reading of the data, not the breadth of a valley floor)
    r = np.random.default_rng(11)
    x = np.r_[r.normal(0.55, 0.05, 700), r.normal(0.77, 0.03, 40)][:, None]
    info = {"method": "valley", "peaks": [0.55, 0.754, 0.798], "valley_ratio": 0.796,
            "stability_thresholds": [0.779, 0.696]}
    u = ThresholdUncertainty.from_fit(0.781, info)
    assert u.shallow and u.placed_by == "valley"
    parts: dict[str, float] = {}
    assert estimated_error(x, [u], above, parts=parts) > UNCERTAIN_PP and parts["valley_empty"] == 0
    assert not ThresholdUncertainty.from_fit(0.781, {**info, "valley_ratio": 0.3}).shallow


def _negatives_and_a_clean_positive_mode(r: np.random.Generator) -> np.ndarray:
    """CD4 T cells on CD25: 75 % negatives (SD 0.05) and 25 % positives beyond an empty valley (truth 25 %)."""
    return np.r_[r.normal(0.2, 0.05, 7500), r.normal(0.62, 0.04, 2500)]


def test_own_negative_share_mirrors_the_lowest_mode_with_the_references_asymmetry():
    r = np.random.default_rng(47)
    x = _negatives_and_a_clean_positive_mode(r)
    assert own_negative_share(x, 0.2, 0.5) == pytest.approx(0.75, abs=0.02)
    # a reference with a longer lower side (60 % below its mode) scales the mirrored half accordingly
    skewed = 0.2 + np.r_[-np.abs(r.normal(0.0, 0.05, 4500)), np.abs(r.normal(0.0, 0.035, 3000))]  # 60 % below 0.2
    assert own_negative_share(skewed, 0.2, 0.6) == pytest.approx(1.0, abs=0.03)
    assert own_negative_share(skewed, 0.2, 0.5) == 1.0  # (clipped: 2 x 60 %)
    # dim positives under the negative peak's upper half are counted as positives
    x, _ = _dim_continuum_under_a_deep_valley(r)
    assert 1.0 - own_negative_share(x, 0.2, 0.5) == pytest.approx(0.40, abs=0.03)
    assert own_negative_share(x[:10], 0.2, 0.5) is None and own_negative_share(x, 0.2, 0.95) is None


def test_a_count_over_a_narrower_reference_is_set_aside_when_the_own_negatives_agree_with_the_valley():
    # the reference's negatives sit lower and spread less than these (another cell type): the count calls the
    # upper flank of the negative peak positive, ~10 pp more than the clean valley holds
    r = np.random.default_rng(53)
    x = _negatives_and_a_clean_positive_mode(r)
    narrow = r.normal(0.18, 0.04, 5000)
    neg = {"negative_reference": {"mode": 0.18, "half_sd": 0.04, "negative_max": 0.27, "share_below_mode": 0.5}}
    valley = {"method": "valley", "peaks": [0.2, 0.62], **neg}
    s = negative_model_estimate(x, narrow, 0.45, valley)
    assert s is not None and s.position < 0.45 and np.mean(x >= s.position) > 0.3
    assert s.contradicted  # the own negative peak (mirrored) says ~25 %: the valley's share, not the count's
    alts = (0.44, 0.46)
    parts: dict[str, float] = {}
    est = estimated_error(x[:, None], [ThresholdUncertainty(0.45, alts, s, placed_by="valley")], above, parts=parts)
    assert parts["set_aside"] == 1 and parts["second_shift_pp"] > 5 and est < UNCERTAIN_PP
    # the same count not contradicted weighs in full: an error of at least its excess
    weighed = dataclasses.replace(s, contradicted=False)
    assert estimated_error(x[:, None], [ThresholdUncertainty(0.45, alts, weighed, placed_by="valley")], above) > 5
    # dim positives under a deep valley (the case the count is there for): the own negatives agree with the count
    x, ref = _dim_continuum_under_a_deep_valley(r)
    deep = negative_model_estimate(x, ref, 0.62, {"method": "valley", "peaks": [0.2, 0.75], **neg})
    assert deep is not None and not deep.contradicted
    fit = fit_gate("threshold", x[:, None], {"sign": "+", "threshold": {"valley": "first", "max_valley_ratio": 0.5,
                                                                        "bounds": [0.2, 0.7]}},
                   dims=("CD25",), reference=ref[:, None])
    assert "uncertain" in fit.flags and "count_misfit" not in fit.flags


def test_a_count_against_a_tail_is_set_aside_only_when_the_own_negatives_side_with_the_tail():
    r = np.random.default_rng(59)
    above_ = lambda Z, v: Z[:, 0] >= v[0]  # noqa: E731
    # negatives (SD 0.04) and a dim continuum from inside the negative peak (20 %): the tail (mode + 1.75 SD, 0.27)
    # holds ~21 %; a reference whose negatives sit 0.01 higher counts ~8 % -- the own negative peak says ~21 %
    x = np.r_[r.normal(0.2, 0.04, 8000), r.uniform(0.24, 0.5, 2000)]
    shifted = r.normal(0.21, 0.04, 5000)
    neg = {"negative_reference": {"mode": 0.21, "half_sd": 0.04, "negative_max": 0.3, "share_below_mode": 0.5}}
    tail = {"method": "tail", "peaks": [0.2], "tail_side": "upper", "reference_peak": 0.2, **neg}
    s = negative_model_estimate(x, shifted, 0.27, tail)
    assert s is not None and s.position > 0.27 and s.contradicted
    alts = (0.268, 0.272)
    parts: dict[str, float] = {}
    est = estimated_error(x[:, None], [ThresholdUncertainty(0.27, alts, s, placed_by="tail")], above_, parts=parts)
    assert parts["set_aside"] == 1 and parts["second_shift_pp"] < -5
    assert est == pytest.approx(estimated_error(x[:, None], [ThresholdUncertainty(0.27, alts)], above_))
    # the same count weighed (neither contradicted nor tested for misfit) would flag it
    assert est < UNCERTAIN_PP < estimated_error(
        x[:, None], [ThresholdUncertainty(0.27, alts, dataclasses.replace(s, contradicted=False,
                                                                          misfit_sds_above=None))], above_)
    # positives that start above the tail (the tail also holds the negatives' upper 4 %): the count of fewer
    # positives is right and the own negatives side with it -- not contradicted; more than MISFIT_SDS above the
    # tail it is set aside all the same (below), and the tail's own spread flags it: a tail inside the
    # negatives' flank cuts where they are dense (±TAIL_SD_UNCERTAINTY half-SDs move it by > UNCERTAIN_PP)
    x = np.r_[r.normal(0.2, 0.04, 8000), r.uniform(0.3, 0.55, 2000)]
    same = r.normal(0.2, 0.04, 5000)
    s = negative_model_estimate(x, same, 0.27, {**tail, **{"negative_reference": {**neg["negative_reference"],
                                                                                   "mode": 0.2}}})
    assert s is not None and s.position > 0.27 and not s.contradicted and s.misfit_sds_above == MISFIT_SDS
    u = ThresholdUncertainty.from_fit(0.27, {**tail, "half_sd": 0.04})
    parts = {}
    assert estimated_error(x[:, None], [dataclasses.replace(u, second=s)], above_, parts=parts) > UNCERTAIN_PP
    assert parts["set_aside"] == 1 and parts["spread_pp"] > UNCERTAIN_PP


def test_a_count_far_above_a_tail_is_set_aside_and_the_tail_keeps_its_own_spread():
    # a tail beyond the negatives (few events at the cut: its alternatives move the population by 0.8 pp below and
    # 0.4 pp above) and a count 5 pp lower (10 of its counting SDs above the tail: a reference whose negatives are
    # wider than these). The count is set aside (as above a valley) and the term is the tail's own spread, both
    # sides -- not `uncertain`; weighed, the count's disagreement flagged it
    x = np.random.default_rng(67).uniform(0.0, 1.0, 20000)[:, None]
    far_above = SecondEstimate(0.55, 0.005, misfit_sds_above=MISFIT_SDS, model_sd_pp=COUNT_MODEL_SD_PP)
    tail = ThresholdUncertainty(0.5, (0.492, 0.504), far_above, placed_by="tail")
    parts: dict[str, float] = {}
    est = estimated_error(x, [tail], above, parts=parts)
    alone = estimated_error(x, [dataclasses.replace(tail, second=None)], above)
    assert parts["set_aside"] == 1 and parts["second_shift_pp"] == pytest.approx(-5.0, abs=0.3)
    assert est == pytest.approx(alone) and est == pytest.approx(0.8, abs=0.2) and est < UNCERTAIN_PP
    weighed = estimated_error(x, [dataclasses.replace(tail, second=dataclasses.replace(far_above,
                                                                                        misfit_sds_above=None))], above)
    assert weighed > UNCERTAIN_PP
    # a valley keeps only the alternatives above it (the count's side) where the tail keeps both
    valley = estimated_error(x, [dataclasses.replace(tail, placed_by=None)], above)
    assert valley == pytest.approx(0.4, abs=0.15) and valley < est
    # within MISFIT_SDS above the tail (1.6 SDs) and far below it (more positives) the count weighs
    for position in (0.508, 0.45):
        parts = {}
        near = dataclasses.replace(tail, second=dataclasses.replace(far_above, position=position))
        estimated_error(x, [near], above, parts=parts)
        assert parts["set_aside"] == 0
    assert estimated_error(x, [dataclasses.replace(tail, second=dataclasses.replace(far_above, position=0.45))],
                           above) > UNCERTAIN_PP


def test_an_agreeing_count_clears_a_spread_only_as_far_as_its_own_error_beyond_counting_noise():
    # a tail with 3.5 pp of spread and a count that agrees exactly (counting SD ~0.9 pp): both can be wrong the same
    # way (the count's reference shape), so the agreement does not take the estimate below the limit
    x = np.random.default_rng(61).uniform(0.0, 1.0, 20000)[:, None]
    alts = (0.465, 0.535)
    counting_only = SecondEstimate(0.5, 0.009)
    with_model = dataclasses.replace(counting_only, model_sd_pp=COUNT_MODEL_SD_PP)
    alone = estimated_error(x, [ThresholdUncertainty(0.5, alts)], above)
    old = estimated_error(x, [ThresholdUncertainty(0.5, alts, counting_only)], above)
    new = estimated_error(x, [ThresholdUncertainty(0.5, alts, with_model)], above)
    assert old < UNCERTAIN_PP < new < alone
    assert new == pytest.approx(100 * combined_error(alone / 100, 0.0, float(np.hypot(0.009, COUNT_MODEL_SD_PP / 100))),
                                rel=0.05)
    # the misfit test keeps the counting SD: 2.5 pp above a valley is 2.8 counting SDs (set aside), 1.9 total SDs
    parts: dict[str, float] = {}
    far = dataclasses.replace(with_model, position=0.525, misfit_sds_above=MISFIT_SDS)
    estimated_error(x, [ThresholdUncertainty(0.5, (0.495, 0.505), far)], above, parts=parts)
    assert parts["set_aside"] == 1
    # the count carries it
    r = np.random.default_rng(11)
    xs, ref = _dim_continuum_under_a_deep_valley(r)
    neg = {"negative_reference": {"mode": 0.2, "half_sd": 0.035, "negative_max": 0.27}}
    s = negative_model_estimate(xs, ref, 0.62, {"method": "valley", "peaks": [0.2, 0.75], **neg})
    assert s is not None and s.model_sd_pp == COUNT_MODEL_SD_PP
