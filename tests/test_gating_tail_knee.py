"""The tail raised to the knee of the negative peak's flank (``tail_knee``): where the density's descent has
slowed to a fraction of its steepest, the peak's own events stop dominating."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cytokit.gating.methods.density import ThresholdParams, fit_threshold
from cytokit.gating.methods.peak_shape import flank_knee
from cytokit.gating.methods.kde import kde_1d

#: CD25+ CD4's tail as shipped in gating/tmem.yaml (without and with the knee)
TAIL = dict(mode="tail", tail_sd=1.75, tail_widen=1.25)


def pct(x: np.ndarray, t: float) -> float:
    return 100.0 * float(np.mean(x >= t))


def test_knee_of_a_gaussian_lies_near_its_slope_fraction():
    # a Gaussian's descent x exp(-x^2/2) slows to 0.3 of its steepest (at 1 SD) at ~2.24 SDs; the density's
    # slope that far out is noisy, so each draw lies within ~0.4 SD of it and their average close to it
    ks = []
    for seed in range(6):
        d = kde_1d(np.random.default_rng(seed).normal(0.3, 0.05, 40000))
        i = int(np.argmax(d.density))
        for direction in (1, -1):
            knee = flank_knee(d, i, direction, 0.3, 3.5 * 0.05)
            assert knee is not None
            ks.append(direction * (knee - d.grid[i]) / 0.05)
    assert np.all(np.abs(np.array(ks) - 2.24) < 0.4), ks
    assert np.mean(ks) == pytest.approx(2.24, abs=0.15)


def test_flank_that_does_not_fall_has_no_knee():
    d = kde_1d(np.random.default_rng(1).uniform(0.0, 1.0, 5000))
    assert flank_knee(d, 0, -1, 0.3, 0.2) is None  # nothing below the grid's first point


@pytest.mark.parametrize("seed", range(5))
def test_negatives_with_a_long_upper_tail_under_a_flat_continuum_are_cut_near_their_end(seed: int):
    # negatives skewed upwards (spillover spreading: a lognormal-like upper tail), positives a flat continuum
    r = np.random.default_rng(seed)
    z = r.normal(size=9000)
    neg = 0.2 + 0.05 * np.where(z > 0, z * (1 + 0.35 * z), z)
    pos = r.uniform(0.3, 0.75, 1000)
    x = np.r_[neg, pos]
    fmo = pct(x, float(np.quantile(neg, 0.995)))
    plain = fit_threshold(x, ThresholdParams(**TAIL), check_stability=False)
    knee = fit_threshold(x, ThresholdParams(**TAIL, tail_knee=0.3), check_stability=False)
    assert pct(x, plain.value) - fmo > 2.0  # the tail cuts into the negatives' upper tail
    assert "tail_knee" in knee.flags and knee.value > plain.value
    assert knee.info["knee"] == pytest.approx(knee.value)
    assert abs(pct(x, knee.value) - fmo) < abs(pct(x, plain.value) - fmo) - 1.0


def test_knee_below_the_tail_leaves_it_and_flipped_side_ignores_it():
    r = np.random.default_rng(2)
    x = np.r_[r.normal(0.2, 0.04, 8000), r.normal(0.45, 0.1, 2000)]  # a wide positive shoulder
    plain = fit_threshold(x, ThresholdParams(**TAIL), check_stability=False)
    knee = fit_threshold(x, ThresholdParams(**TAIL, tail_knee=0.9), check_stability=False)  # knee right past the steepest point
    assert knee.value == plain.value and "tail_knee" not in knee.flags
    assert knee.info["knee"] < plain.value
    # a lone mode read as all-positive gets a threshold below it; the knee (of the upper side) is not used
    y = r.normal(0.6, 0.04, 5000)
    p = dict(mode="valley", tail_sd=1.75, bounds=(0.2, 0.5))
    flipped = fit_threshold(y, ThresholdParams(**p, tail_knee=0.3), check_stability=False)
    assert "all_positive" in flipped.flags and "tail_knee" not in flipped.flags
    assert flipped.value == fit_threshold(y, ThresholdParams(**p), check_stability=False).value


def test_default_never_raises_and_fraction_is_checked():
    assert ThresholdParams().tail_knee is None
    with pytest.raises(ValidationError):
        ThresholdParams(tail_knee=0.0)
