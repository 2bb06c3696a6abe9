"""A spike of negatives (most events far narrower than the data) does not size the smoothing of the minor
populations outside it (cytokit.gating.methods.kde; docs/gating.md, "A spike of negatives")."""
from __future__ import annotations

import numpy as np

from cytokit.gating.methods.density import ThresholdParams, find_peaks, fit_threshold, merge_shallow
from cytokit.gating.methods.kde import SPIKE_SCALE, kde_1d


def _spike_and_positives(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Live lymphocytes' CD56 as on an unmixed / W = 0 file: 7,000 negatives in a spike (SD 0.005) at 0.265, 500
    B cells just above it, 1,000 CD56dim NK cells (0.42, SD 0.06) and 100 CD56bright (0.73). Returns (values,
    true NK)."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0.265, 0.005, 7000), rng.normal(0.28, 0.01, 500), rng.normal(0.42, 0.06, 1000),
             rng.normal(0.73, 0.04, 100)]
    nk = np.r_[np.zeros(7500, bool), np.ones(1100, bool)]
    return np.concatenate(parts), nk


def test_minor_populations_outside_a_spike_are_not_read_as_noise_modes() -> None:
    x, _ = _spike_and_positives()
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    assert iqr / 1.349 < SPIKE_SCALE * np.std(x)  # the case: a spike
    d = kde_1d(x)
    modes = merge_shallow(d, find_peaks(d, 0.01), 0.8)
    dim = [float(d.grid[i]) for i in modes if 0.32 < d.grid[i] < 0.6]
    # the CD56dim NK cells: one mode (the spike's bandwidth alone broke it into several with dips of 0.6-0.8)
    assert len(dim) == 1 and abs(dim[0] - 0.42) < 0.04, dim


def test_last_valley_above_a_spike_is_not_a_noise_dip_inside_the_positives() -> None:
    # `valley: last` (the NK gate's CD16) took a dip inside the NK cells' own mode: 3.7 % for 12.8 % true
    x, nk = _spike_and_positives()
    t = fit_threshold(x, ThresholdParams(valley="last", bounds=(0.25, 0.6)))
    assert t.info["method"] == "valley"
    assert 0.30 < t.value < 0.36, t.value  # between the spike (and the B cells just above it) and the NK cells
    assert abs(100 * np.mean(x >= t.value) - 100 * nk.mean()) < 1.5


def test_data_without_a_spike_are_smoothed_as_before() -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0.2, 0.05, 8000), rng.normal(0.6, 0.05, 2000)])
    d = kde_1d(x)
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    assert d.bandwidth == 0.9 * min(np.std(x), iqr / 1.349) * x.size ** -0.2
    assert len(merge_shallow(d, find_peaks(d, 0.01), 0.8)) == 2
