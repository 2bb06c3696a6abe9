"""Threshold placement decided by each file's data, and the confidence flags (arrays generated here)."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.gating.methods import REVIEW_FLAGS, fit_gate, fit_threshold, needs_review
from cytokit.gating.methods.confidence import UNCERTAIN_PP, threshold_sensitivity
from cytokit.gating.methods.density import ThresholdParams, find_peaks, kde_1d, merge_shallow


def rng(seed: int = 11) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_all_positive_population_threshold_goes_below_the_mode():
    # 99% positive around 0.6 (the CD28+ CD4 case): the threshold must not sit above the only peak
    r = rng()
    x = np.r_[r.normal(0.6, 0.05, 19800), r.normal(0.22, 0.03, 200)]
    t = fit_threshold(x, ThresholdParams(bounds=(0.2, 0.65)))
    assert t.value < 0.6, t
    assert (x >= t.value).mean() > 0.95
    # the same with no negative cells at all: a lone positive mode
    lone = r.normal(0.6, 0.05, 20000)
    t = fit_threshold(lone, ThresholdParams(bounds=(0.2, 0.65)))
    assert "all_positive" in t.flags and t.info["tail_side"] == "lower"
    assert t.value < 0.6 - 0.05 and (lone >= t.value).mean() > 0.95


def test_all_negative_population_threshold_goes_above_the_mode():
    # a lower-side (CD127lo-style) gate on a population without any positive mode
    x = rng(2).normal(0.2, 0.04, 20000)
    t = fit_threshold(x, ThresholdParams(tail_side="lower", reference_peak="highest", bounds=(0.1, 0.6)))
    assert t.value > 0.2 and "all_negative" in t.flags
    assert (x < t.value).mean() > 0.95


def test_bimodal_with_broad_negative_uses_the_valley_not_the_tail():
    # broad negative (70%) + clear positive mode: the tail rule would cut into the negative peak
    r = rng(3)
    neg, pos = r.normal(0.25, 0.07, 14000), r.normal(0.62, 0.05, 6000)
    x = np.r_[neg, pos]
    t = fit_threshold(x, ThresholdParams(valley="first", tail_sd=1.75, bounds=(0.2, 0.5)))
    assert t.info["method"] == "valley" and not t.flags
    pct = 100 * (x >= t.value).mean()
    assert abs(pct - 30.0) < 1.0
    tail = fit_threshold(x, ThresholdParams(mode="tail", tail_sd=1.75, bounds=(0.2, 0.5)))
    assert 100 * (x >= tail.value).mean() - 30.0 > 1.5  # the old rule's overestimate


def test_unimodal_marker_uses_the_tail_and_says_so():
    x = rng(4).normal(0.22, 0.05, 20000)
    t = fit_threshold(x, ThresholdParams(bounds=(0.2, 0.65)))
    assert t.info["method"] == "tail" and "no_valley" in t.flags and "fell_back:tail" in t.flags
    assert t.value == pytest.approx(0.22 + 2.5 * 0.05, abs=0.02)


def test_noise_bumps_are_merged_into_one_mode():
    # a lumpy negative (three close sub-populations) + a positive mode: two modes, one valley
    r = rng(5)
    x = np.r_[r.normal(0.15, 0.03, 5000), r.normal(0.2, 0.03, 5000), r.normal(0.24, 0.03, 5000),
              r.normal(0.6, 0.05, 5000)]
    d = kde_1d(x, adjust=0.4)
    raw = find_peaks(d, 0.01)
    merged = merge_shallow(d, raw, 0.8)
    assert len(merged) == 2 and len(raw) >= len(merged)
    t = fit_threshold(x, ThresholdParams(adjust=0.4, bounds=(0.2, 0.55)))
    assert 0.33 < t.value < 0.5


@pytest.mark.parametrize("dim_level", [0.3, 0.45, 0.55])
def test_cd56dim_splits_follow_the_dominant_mode(dim_level):
    # NK CD56: few negatives, a dominant dim mode (wherever the stain puts it) and a bright minority
    r = rng(6)
    x = np.r_[r.normal(0.12, 0.03, 600), r.normal(dim_level, 0.05, 17000), r.normal(dim_level + 0.25, 0.04, 2400)]
    fit = fit_gate("interval", x[:, None], {
        "lower": {"valley": "below_dominant", "bounds": [0.15, 0.55], "negative_max": 0.3, "min_peak_fraction": 0.02},
        "upper": {"valley": "above_dominant", "bounds": [0.35, 0.9], "min_peak_fraction": 0.02}}, dims=("CD56",))
    lo, hi = fit.gate.lower[0], fit.gate.upper[0]
    assert lo < dim_level < hi < dim_level + 0.25
    pct = 100 * ((x >= lo) & (x < hi)).mean()
    assert abs(pct - 85.0) < 2.0


CD56_LOWER = {"valley": "deepest", "separates": "negative", "negative_max": 0.3, "bounds": [0.15, 0.6],
              "min_peak_fraction": 0.02}
CD56_UPPER = {"valley": "last", "separates": "positive", "negative_max": 0.3, "reference_peak": "last",
              "bounds": [0.35, 0.9], "min_peak_fraction": 0.02}


@pytest.mark.parametrize("neg, dim, bright", [(600, 17000, 2400), (0, 17000, 2400), (600, 10000, 9400),
                                              (600, 19400, 0)])
def test_cd56dim_split_by_what_the_valleys_separate(neg, dim, bright):
    # shipped nkb rule: CD56-/dim = deepest valley above a negative mode; dim/bright = last valley between
    # positive modes; without one, below the lowest positive mode / above the brightest mode
    r = rng(8)
    x = np.r_[r.normal(0.12, 0.03, neg), r.normal(0.45, 0.05, dim), r.normal(0.7, 0.04, bright)]
    fit = fit_gate("interval", x[:, None], {"lower": CD56_LOWER, "upper": CD56_UPPER}, dims=("CD56",))
    lo, hi = fit.gate.lower[0], fit.gate.upper[0]
    pct = 100 * ((x >= lo) & (x < hi)).mean()
    assert abs(pct - 100 * dim / len(x)) < 1.5, (lo, hi, fit.flags)


def test_sensitivity_is_low_in_a_valley_and_high_in_a_shoulder():
    r = rng(7)
    x = np.r_[r.normal(0.2, 0.04, 14000), r.normal(0.65, 0.05, 6000)]
    member = lambda Z, v: Z[:, 0] >= v[0]  # noqa: E731
    assert threshold_sensitivity(x[:, None], [0.42], member) < 0.5
    assert threshold_sensitivity(x[:, None], [0.22], member) > 5
    # the threshold gate records it; only the dense case is flagged (by its estimated error)
    good = fit_gate("threshold", x[:, None], {"sign": "+", "threshold": {"bounds": [0.3, 0.55]}}, dims=("CD3",))
    assert good.info["sensitivity_pp"] < 0.5 and good.info["est_error_pp"] < UNCERTAIN_PP
    assert not needs_review(good.flags)
    flat = r.uniform(0.0, 1.0, 20000)
    bad = fit_gate("threshold", flat[:, None], {"sign": "+", "threshold": {"bounds": [0.2, 0.8]}}, dims=("CD25",))
    assert bad.info["sensitivity_pp"] > 1.5 and bad.info["est_error_pp"] > UNCERTAIN_PP
    assert "uncertain" in bad.flags and needs_review(bad.flags)


def test_review_flags_parse_prefixed_and_joined_words():
    assert needs_review("CD4:no_valley;uncertain")
    assert needs_review(["lower:ambiguous_mode"])
    assert not needs_review("CD16:valley_out_of_bounds;CD16:fell_back:tail")
    assert not needs_review("")
    assert {"uncertain", "ambiguous_mode"} <= REVIEW_FLAGS


def _broad_negative_with_dim_continuum(r: np.random.Generator, n: int, pos: float) -> np.ndarray:
    """CD25-like: a broad negative peak with a longer lower tail, and a positive continuum that starts
    inside it (no valley)."""
    n_pos = int(pos * n)
    neg = 0.3 + 0.06 * r.normal(size=n - n_pos) - 0.03 * r.exponential(size=n - n_pos) + 0.03
    return np.r_[neg, r.uniform(0.3, 0.7, n_pos)]


def test_excess_fallback_counts_a_dim_continuum_the_tail_misses():
    r = rng(21)
    x = _broad_negative_with_dim_continuum(r, 20000, 0.3)
    ref = _broad_negative_with_dim_continuum(r, 20000, 0.0)  # same channel, same file, negatives only
    p = ThresholdParams(valley="first", max_valley_ratio=0.5, tail_sd=1.75, bounds=(0.2, 0.5))
    tail = fit_threshold(x, p, reference=ref)
    excess = fit_threshold(x, p.model_copy(update={"fallback": "excess"}), reference=ref)
    assert "fell_back:tail" in tail.flags and "fell_back:excess" in excess.flags
    pct = lambda t: 100 * float(np.mean(x >= t.value))  # noqa: E731
    assert abs(pct(tail) - 30) > 3  # the tail rule misses the dim positives
    # within 3 pp: positives that start right at the negative mode partly sit below the reference's 80th
    # percentile, up to which the negative model is fitted, and bias the count low (here by ~2.5 pp)
    assert abs(pct(excess) - 30) < 3 and abs(pct(excess) - 30) < abs(pct(tail) - 30) - 2, excess.info
    nm = excess.info["negative_model"]
    assert nm["positive_pct"] == pytest.approx(pct(excess), abs=0.1) and 0.2 < nm["sd_pp"] < 1.5
    lo, hi = nm["alternatives"]
    assert lo < excess.value < hi and excess.info["stability_thresholds"] == [lo, hi]


def test_excess_fallback_needs_a_reference_and_keeps_a_clear_valley():
    r = rng(22)
    x = _broad_negative_with_dim_continuum(r, 4000, 0.3)
    p = ThresholdParams(fallback="excess", tail_sd=1.75, bounds=(0.2, 0.5))
    t = fit_threshold(x, p)  # no reference: the tail, said so
    assert t.info["method"] == "tail" and "no_negative_reference" in t.flags and "fell_back:tail" in t.flags
    bimodal = np.r_[r.normal(0.25, 0.04, 3000), r.normal(0.65, 0.05, 1000)]
    t = fit_threshold(bimodal, p, reference=r.normal(0.25, 0.04, 3000))
    assert t.info["method"] == "valley" and 0.35 < t.value < 0.55


def test_excess_threshold_follows_the_count_outside_bounds():
    # 90 % positive continuum over a negative at 0.15: the count-holding threshold lies near 0.17, below the
    # strategy's plausible range; it is not clipped (that would report ~80 %), only noted
    r = rng(23)
    x = np.r_[r.normal(0.15, 0.03, 400), r.uniform(0.17, 0.7, 3600)]
    ref = r.normal(0.15, 0.03, 3000)
    p = ThresholdParams(fallback="excess", bounds=(0.2, 0.5), max_valley_ratio=0.5, valley="first")
    t = fit_threshold(x, p, reference=ref)
    assert t.info["method"] == "excess" and abs(100 * np.mean(x >= t.value) - 90) < 3, t.info
    assert t.value < 0.2 and "excess_out_of_bounds" in t.flags and "clipped" not in t.flags


def test_a_valley_that_disagrees_with_the_excess_count_is_replaced():
    # a wide continuum (35 %) whose dimmest part lies below a deep dip: the valley cuts inside the positives
    r = rng(24)
    neg = r.normal(0.25, 0.035, 6500)
    pos = np.r_[r.uniform(0.3, 0.4, 700), r.normal(0.6, 0.05, 2800)]
    x = np.r_[neg, pos]
    ref = r.normal(0.25, 0.035, 5000)
    valley = fit_threshold(x, ThresholdParams(valley="last", max_valley_ratio=0.5, bounds=(0.2, 0.55)))
    assert valley.info["method"] == "valley" and 100 * np.mean(x >= valley.value) < 32
    t = fit_threshold(x, ThresholdParams(valley="last", max_valley_ratio=0.5, bounds=(0.2, 0.55),
                                         fallback="excess"), reference=ref)
    assert "valley_disagrees" in t.flags and t.info["method"] == "excess", t.info
    assert t.info["valley_vs_excess_pp"] > 4 and abs(100 * np.mean(x >= t.value) - 35) < 2


def test_a_reference_that_does_not_model_the_negatives_is_not_used():
    # the reference's negatives sit lower than the population's (e.g. less spillover spreading into the
    # channel): its quantiles would call most negatives positive; the misfit is detected -> the tail
    r = rng(25)
    x = np.r_[r.normal(0.32, 0.04, 3200), r.uniform(0.4, 0.7, 800)]  # 20 % positive
    ref = r.normal(0.25, 0.03, 4000)
    t = fit_threshold(x, ThresholdParams(fallback="excess", tail_sd=1.75, bounds=(0.2, 0.5)), reference=ref)
    assert "negative_model_misfit" in t.flags and t.info["method"] == "tail", t.info
    assert "fell_back:tail" in t.flags and "fell_back:excess" not in t.flags
    assert t.info["negative_model"]["valid"] is False
