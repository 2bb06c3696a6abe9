"""The threshold methods' histogram smoothing equals scipy.ndimage's Gaussian filter bit for bit, so
replacing it (to keep scipy.ndimage out of `cytokit gate`) cannot move a threshold."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.gating.methods.smoothing import gaussian_kernel, gaussian_smooth_1d


def test_equals_scipy_gaussian_filter1d_bit_for_bit():
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(3, 2000))
        sigma = float(rng.uniform(0.3, 200))
        y = rng.exponential(size=n) * rng.integers(0, 2, size=n) * 1000  # sparse, like a histogram's tails
        expected = gaussian_filter1d(y, sigma, mode="constant")
        assert np.array_equal(gaussian_smooth_1d(y, sigma), expected), (n, sigma)


def test_smoothing_keeps_mass_away_from_the_ends_and_rejects_bad_sigma():
    y = np.zeros(101)
    y[50] = 1.0
    out = gaussian_smooth_1d(y, 3.0)
    assert out.sum() == pytest.approx(1.0) and int(np.argmax(out)) == 50
    assert gaussian_kernel(3.0).size == 2 * int(4 * 3.0 + 0.5) + 1
    with pytest.raises(ValueError):
        gaussian_smooth_1d(y, 0.0)
