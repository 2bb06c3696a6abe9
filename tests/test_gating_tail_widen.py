"""The tail rule's widening (``tail_widen``): a negative peak skewed towards the positives gets a wider tail,
a symmetric one (or one whose outer side is the wider) keeps ``tail_sd`` SDs of its outer half."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cytokit.gating.methods.density import ThresholdParams, fit_threshold
from cytokit.gating.methods.peak_shape import core_sd
from cytokit.gating.methods.kde import kde_1d

#: the tail rule as CD25+ CD4 uses it when its valley rule finds no valley
PARAMS = dict(mode="tail", tail_sd=1.75)


def split_normal(r: np.random.Generator, n: int, mode: float, sd_low: float, sd_high: float) -> np.ndarray:
    """A peak at ``mode`` with SD ``sd_low`` below it and ``sd_high`` above it (transformed scale)."""
    z = np.abs(r.normal(size=n))
    up = r.random(n) < sd_high / (sd_low + sd_high)  # continuous density at the mode
    return np.where(up, mode + sd_high * z, mode - sd_low * z)


def fit(x: np.ndarray, widen: float):
    return fit_threshold(x, ThresholdParams(**PARAMS, tail_widen=widen), check_stability=False)


def test_core_sd_of_a_gaussian_is_about_its_sd():
    # the half-width is read from the density's maximum, whose position on a flat top is noisy: each side's
    # core SD is within ~20 % of the SD, and the two sides average to it
    sides = []
    for seed in range(10):
        d = kde_1d(np.random.default_rng(seed).normal(0.3, 0.05, 20000))
        i = int(np.argmax(d.density))
        sides.append([core_sd(d, i, 0.75, direction) for direction in (1, -1)])
    a = np.array(sides)
    assert np.all(np.abs(a / 0.05 - 1) < 0.35), a
    assert a.mean() == pytest.approx(0.05, rel=0.05)


def pct_shift(x: np.ndarray) -> float:
    """Percentage points of ``x`` the widening takes out of the gate (>= 0)."""
    plain, wide = fit(x, 1.0), fit(x, 1.25)
    assert wide.value >= plain.value
    assert wide.value <= wide.info["reference_peak"] + 1.75 * 1.25 * wide.info["half_sd"] + 1e-12
    return 100.0 * float(np.mean((x >= plain.value) & (x < wide.value)))


def test_symmetric_negative_peak_mostly_keeps_the_plain_tail():
    # symmetric negatives + 10 % positives well above: the core's half-width above the noisy maximum exceeds
    # the lower half's SD only by chance, so most draws keep the plain tail and the average shift is small;
    # a rule that always widened by 1.25 would move every draw by ~2.5 pp
    shifts = []
    for seed in range(30):
        r = np.random.default_rng(seed)
        shifts.append(pct_shift(np.r_[r.normal(0.25, 0.05, 3600), r.uniform(0.45, 0.8, 400)]))
    s = np.array(shifts)
    assert np.median(s) == 0.0, s
    assert s.mean() < 1.25, s


def test_negative_peak_skewed_towards_the_positives_is_widened_in_most_draws():
    shifts = []
    for seed in range(30):
        r = np.random.default_rng(seed)
        shifts.append(pct_shift(np.r_[split_normal(r, 3600, 0.22, 0.045, 0.07), r.uniform(0.45, 0.8, 400)]))
    s = np.array(shifts)
    assert np.median(s) > 3.0, s
    assert np.mean(s > 0) > 0.8, s


def test_negative_peak_with_the_longer_outer_tail_keeps_the_plain_tail():
    r = np.random.default_rng(3)
    x = split_normal(r, 10000, 0.25, 0.07, 0.045)  # logicle-like: longer lower tail
    assert fit(x, 1.25).value == fit(x, 1.0).value


def test_negative_peak_skewed_towards_the_positives_is_cut_closer_to_its_fmo_position():
    r = np.random.default_rng(4)
    neg = split_normal(r, 9000, 0.22, 0.045, 0.07)  # spread upwards (spillover spreading)
    pos = r.uniform(0.35, 0.8, 1000)
    x = np.r_[neg, pos]
    truth_pct = 10.0
    fmo = float(np.quantile(neg, 0.995))  # an ideal FMO gate
    fmo_pct = 100.0 * float(np.mean(x >= fmo))
    plain, wide = fit(x, 1.0), fit(x, 1.25)
    assert wide.info["core_ratio"] > 1.25  # the skew is seen in the core
    assert wide.value == pytest.approx(wide.info["reference_peak"] + 1.75 * 1.25 * wide.info["half_sd"])
    assert abs(wide.value - fmo) < abs(plain.value - fmo)
    pct = {k: 100.0 * float(np.mean(x >= t.value)) for k, t in (("plain", plain), ("wide", wide))}
    assert abs(pct["wide"] - fmo_pct) < abs(pct["plain"] - fmo_pct) - 2.0, pct
    assert abs(pct["wide"] - truth_pct) < abs(pct["plain"] - truth_pct), pct


def test_positives_far_from_the_peak_do_not_move_the_widened_tail():
    r = np.random.default_rng(5)
    neg = split_normal(r, 9000, 0.22, 0.045, 0.06)
    alone = fit(neg, 1.25)
    with_pos = fit(np.r_[neg, r.normal(0.7, 0.05, 2000)], 1.25)
    assert with_pos.value == pytest.approx(alone.value, abs=0.006)
    assert with_pos.info["core_ratio"] == pytest.approx(alone.info["core_ratio"], abs=0.1)


def test_tail_widen_below_one_is_rejected():
    with pytest.raises(ValidationError):
        ThresholdParams(tail_widen=0.9)
