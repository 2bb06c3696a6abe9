"""``overlap: reference``: a valley between overlapping modes holds the count corrected for their overlap, the
negatives above it counted by the negative reference's shape (arrays generated here, logicle-like 0..1)."""
from __future__ import annotations

import numpy as np

from cytokit.gating.methods import fit_gate, needs_review
from cytokit.gating.methods.density import OVERLAP_MIN_RATIO, ThresholdParams, fit_threshold

#: the shipped tmem strategy's CD28 threshold (gating/tmem.yaml)
CD28 = {"sign": "+", "threshold": {"bounds": [0.2, 0.65], "overlap": "reference"}}


def skewed_negatives(r: np.random.Generator, n: int) -> np.ndarray:
    """CD28- events: a peak at 0.22 whose upper side is wider than its lower (lognormal autofluorescence)."""
    z = r.normal(0.0, 1.0, n)
    return 0.22 + np.where(z < 0, 0.05 * z, 0.075 * z)


def cd8_cd28(seed: int, positive_share: float, n: int = 6000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CD8 T cells' CD28 (skewed negatives and a narrow dim CD28+ mode at 0.41), their labels, and a reference
    of CD3- cells with the negatives' shape."""
    r = np.random.default_rng(seed)
    pos = r.random(n) < positive_share
    x = np.where(pos, r.normal(0.41, 0.03, n), skewed_negatives(r, n))
    return x, pos, skewed_negatives(r, 8000)


def test_overlapping_valley_is_moved_to_the_corrected_count():
    # the density minimum between a broad skewed negative peak and a narrow dim positive mode lies inside the
    # negatives' upper tail: the valley reads the positives high. The reference's shape counts the negatives
    # above it, so the corrected gate holds the true share, and says so
    for seed, share in ((1, 0.56), (2, 0.47), (3, 0.62)):
        x, pos, ref = cd8_cd28(seed, share)
        truth = 100 * pos.mean()
        plain = fit_threshold(x, ThresholdParams(bounds=(0.2, 0.65)), reference=ref)
        assert plain.info["valley_ratio"] >= OVERLAP_MIN_RATIO
        assert 100 * (x >= plain.value).mean() - truth > 1.5  # the bias this rule is about
        fit = fit_gate("threshold", x[:, None], CD28, dims=("CD28",), reference=ref[:, None])
        info = fit.info["CD28"]
        assert "overlap_corrected" in fit.flags and not needs_review(fit.flags)
        assert info["overlap_corrected"]["valley"] < info["threshold"]
        assert abs(100 * fit.gate.contains(x[:, None]).mean() - truth) < 0.8
        # the smoothing refits are corrected alike: the corrected position does not hang on the bandwidth
        assert all(abs(a - info["threshold"]) < 0.01 for a in info["stability_thresholds"])


def test_clean_valley_and_default_rule_stay_at_the_valley():
    x, _, ref = cd8_cd28(4, 0.56)
    # without overlap: reference the valley is where it was
    plain = fit_threshold(x, ThresholdParams(bounds=(0.2, 0.65)), reference=ref)
    assert "overlap_corrected" not in plain.flags and plain.info["method"] == "valley"
    # a clean valley (modes far apart): nothing to correct
    r = np.random.default_rng(4)
    clean = np.r_[skewed_negatives(r, 3000), r.normal(0.62, 0.03, 3000)]
    t = fit_threshold(clean, ThresholdParams(bounds=(0.2, 0.65), overlap="reference"), reference=ref)
    assert t.info["valley_ratio"] < OVERLAP_MIN_RATIO and "overlap_corrected" not in t.flags


def test_reference_that_does_not_fit_the_negatives_corrects_nothing():
    # a reference twice as wide as these negatives (another cell type's spread): the negative model is not
    # valid, so its tail says nothing of these negatives' and the valley stays
    x, _, _ = cd8_cd28(5, 0.56)
    wide = np.random.default_rng(6).normal(0.22, 0.12, 8000)
    t = fit_threshold(x, ThresholdParams(bounds=(0.2, 0.65), overlap="reference"), reference=wide)
    assert "overlap_corrected" not in t.flags and "overlap_corrected" not in t.info
    # nor does a gate without a reference
    t = fit_threshold(x, ThresholdParams(bounds=(0.2, 0.65), overlap="reference"))
    assert "overlap_corrected" not in t.flags
