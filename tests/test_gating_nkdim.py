"""CD56dim / CD56bright NK splits when a dim CD56 reagent lot brings the dim mode to the negative reference's
upper limit (``negative_max``): right or flagged, never silently wrong (arrays generated here)."""
from __future__ import annotations

import numpy as np

from cytokit.gating.methods import fit_gate, needs_review
from cytokit.gating.methods.confidence import ThresholdUncertainty, estimated_error
from cytokit.gating.methods.density import (MODE_MARGIN, OVERLAP_MIN_RATIO, ThresholdParams, classify_modes,
                                         reference_negative)

#: the shipped nkb strategy's CD56 bounds (gating/nkb.yaml)
LOWER = {"valley": "deepest", "separates": "negative", "negative_max": 0.3, "bounds": [0.15, 0.6],
         "min_peak_fraction": 0.02}
UPPER = {"valley": "last", "separates": "positive", "negative_max": 0.3, "reference_peak": "last",
         "bounds": [0.35, 0.9], "min_peak_fraction": 0.02}


def nk_cd56(seed: int, *, dim_mode: float, neg_share: float = 0.05, bright_share: float = 0.15,
            n: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NK cells' CD56 (logicle-like 0..1): CD56- / dim / bright, and the labels (0, 1, 2)."""
    r = np.random.default_rng(seed)
    k = r.choice(3, size=n, p=[neg_share, 1 - neg_share - bright_share, bright_share])
    x = np.where(k == 0, r.normal(0.30, 0.05, n), np.where(k == 1, r.normal(dim_mode, 0.04, n),
                                                              r.normal(dim_mode + 0.21, 0.035, n)))
    return x, k, r.normal(0.30, 0.094, 9000)  # T cells as negative reference: mode 0.30, negative_max ~0.49


def test_reference_puts_negative_max_at_the_dim_mode():
    _, _, ref = nk_cd56(1, dim_mode=0.486)
    neg = reference_negative(ref, ThresholdParams())
    assert neg is not None and abs(neg["negative_max"] - 0.488) < 0.02


def test_classify_modes_decides_a_mode_at_negative_max_by_the_modes_around_it():
    # within the margin: positive when a lower mode holds the negatives, unresolved when it is the lowest
    assert classify_modes([0.31, 0.486, 0.70], 0.4868) == ([False, True, True], [False, False, False])
    assert classify_modes([0.486, 0.70], 0.4868) == ([False, True], [True, False])
    assert classify_modes([0.49, 0.70], 0.4868) == ([True, True], [True, False])
    # outside the margin the position alone decides
    assert classify_modes([0.31, 0.486 - MODE_MARGIN - 0.01], 0.4868) == ([False, False], [False, False])
    assert classify_modes([0.31, 0.4868 + MODE_MARGIN + 0.01], 0.4868) == ([False, True], [False, False])


def _split(x: np.ndarray, ref: np.ndarray) -> tuple[float, float, str, str]:
    X, R = x[:, None], ref[:, None]
    dim = fit_gate("interval", X, {"lower": LOWER, "upper": UPPER}, dims=("CD56",), reference=R)
    bright = fit_gate("threshold", X, {"sign": "+", "threshold": UPPER}, dims=("CD56",), reference=R)
    return (100 * dim.gate.contains(X).mean(), 100 * bright.gate.contains(X).mean(),
            ";".join(dim.flags), ";".join(bright.flags))


def test_dim_mode_at_negative_max_is_split_at_the_dim_bright_valley():
    # a CD56- mode below the dim one: the dim mode (within the margin of negative_max) is positive
    for dim_mode in (0.486, 0.50):  # just below and just above negative_max (0.493 here)
        x, k, ref = nk_cd56(7, dim_mode=dim_mode)
        dim_pct, bright_pct, dim_flags, bright_flags = _split(x, ref)
        assert abs(dim_pct - 100 * (k == 1).mean()) < 1.0, (dim_mode, dim_pct, dim_flags)
        assert abs(bright_pct - 100 * (k == 2).mean()) < 1.0, (dim_mode, bright_pct, bright_flags)


def test_dim_mode_near_negative_max_is_right_or_flagged():
    for seed in range(3):
        for dim_mode in (0.44, 0.46, 0.47, 0.486, 0.50, 0.52):
            x, k, ref = nk_cd56(seed, dim_mode=dim_mode)
            dim_pct, bright_pct, dim_flags, bright_flags = _split(x, ref)
            assert abs(dim_pct - 100 * (k == 1).mean()) < 2.0 or needs_review(dim_flags), (
                seed, dim_mode, dim_pct, dim_flags)
            assert abs(bright_pct - 100 * (k == 2).mean()) < 2.0 or needs_review(bright_flags), (
                seed, dim_mode, bright_pct, bright_flags)


def test_dim_mode_at_negative_max_without_cd56_negative_cells_is_flagged():
    # no CD56- mode below the dim one: whether the dim mode is negative cannot be read from the data
    x, k, ref = nk_cd56(8, dim_mode=0.486, neg_share=0.0)
    dim_pct, bright_pct, dim_flags, bright_flags = _split(x, ref)
    right_dim = abs(dim_pct - 100 * (k == 1).mean()) < 1.0
    right_bright = abs(bright_pct - 100 * (k == 2).mean()) < 1.0
    assert right_dim or needs_review(dim_flags), (dim_pct, dim_flags)
    assert right_bright or needs_review(bright_flags), (bright_pct, bright_flags)


def test_bright_dim_lot_unaffected():
    # the usual stain: dim mode well above negative_max, same split as before
    x, k, ref = nk_cd56(9, dim_mode=0.58)
    dim_pct, bright_pct, dim_flags, bright_flags = _split(x, ref)
    assert abs(dim_pct - 100 * (k == 1).mean()) < 1.0 and not needs_review(dim_flags)
    assert abs(bright_pct - 100 * (k == 2).mean()) < 1.0 and not needs_review(bright_flags)


def test_refits_of_a_tail_fallback_count_as_alternatives_wherever_they_lie():
    # the L06_V1_nkb upper bound before the mode rule: a tail clipped at 0.9 above the bright mode, while the
    # less smoothed refit found the dim/bright valley at 0.617 -> est_error_pp must see the 15 % between them
    info = {"method": "tail", "peaks": [0.313, 0.486, 0.699], "half_sd": 0.2195, "threshold": 0.9,
            "stability_thresholds": [0.617, 0.9]}
    unc = ThresholdUncertainty.from_fit(0.9, info)
    assert 0.617 in unc.alternatives
    x, k, _ = nk_cd56(3, dim_mode=0.486)
    X = x[:, None]

    def member(Z: np.ndarray, v) -> np.ndarray:
        return (Z[:, 0] >= 0.372) & (Z[:, 0] < v[0])

    assert estimated_error(X, [unc], member) > 100 * (k == 2).mean() - 2.0
    # a valley-placed threshold keeps its window: a refit beyond the next mode is another valley, not an
    # uncertainty of this one
    valley = {**info, "method": "valley", "threshold": 0.6, "stability_thresholds": [0.61, 0.2]}
    assert ThresholdUncertainty.from_fit(0.6, valley).alternatives == (0.61,)


def test_valley_between_overlapping_modes_carries_their_overlap_in_est_error():
    # a dim CD28+ mode close to the negatives, whose upper tail reaches under it: the valley lets ~6 % of the
    # parent's negatives in; est_error_pp must see it. The same modes far apart (a clean valley) stay ~0.
    r = np.random.default_rng(5)
    neg = np.r_[r.normal(0.30, 0.045, 3500), 0.30 + np.abs(r.normal(0, 0.08, 2000))]
    dim = r.normal(0.46, 0.04, 4500)
    x = np.r_[neg, dim][:, None]
    params = {"sign": "+", "threshold": {"bounds": [0.2, 0.65]}}
    fit = fit_gate("threshold", x, params, dims=("CD28",))
    assert 100 * fit.gate.contains(x).mean() - 45.0 > 3.0  # the valley's error this test is about
    assert fit.info["CD28"]["valley_ratio"] >= OVERLAP_MIN_RATIO and needs_review(fit.flags)
    info = fit.info["CD28"]
    assert info["overlap_threshold"] in ThresholdUncertainty.from_fit(info["threshold"], info).alternatives
    alone = ThresholdUncertainty(info["threshold"], (info["overlap_threshold"],))  # what the overlap alone says
    assert estimated_error(x, [alone], lambda Z, v: Z[:, 0] >= v[0]) > 1.0  # (true error 6 pp: a lower bound)
    clean = np.r_[r.normal(0.25, 0.04, 5500), r.normal(0.60, 0.05, 4500)][:, None]
    fit = fit_gate("threshold", clean, params, dims=("CD28",))
    assert "overlap_threshold" not in fit.info["CD28"] and fit.info["est_error_pp"] < 0.5
