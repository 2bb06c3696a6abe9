"""A valley above a dim mode is no negative boundary (``dim_mode_tail``): when a mode of the unmerged density
lies between the chosen valley and the mode below it, the valley separates dim from bright positives and the
tail above the lower mode is used instead (flag ``dim_mode_below_valley``)."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cytokit.gating.methods.density import ThresholdParams, find_peaks, fit_threshold
from cytokit.gating.methods.peak_shape import dim_mode_below
from cytokit.gating.methods.kde import kde_1d

#: CD25+ CD4's rule as shipped in gating/tmem.yaml, without and with the dim-mode check
RULE = dict(valley="first", max_valley_ratio=0.5, tail_sd=1.75, tail_widen=1.25, bounds=(0.2, 0.5))


def three_modes(seed: int, dim_n: int = 1000, dim_at: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """(all events, the negatives): negatives 0.22 (SD 0.035), a dim mode merged into their shoulder, bright
    positives 0.6 behind a deep valley (transformed scale)."""
    r = np.random.default_rng(seed)
    neg = r.normal(0.22, 0.035, 8000)
    return np.r_[neg, r.normal(dim_at, 0.03, dim_n), r.normal(0.6, 0.05, 1000)], neg


def pct(x: np.ndarray, t: float) -> float:
    return 100.0 * float(np.mean(x >= t))


@pytest.mark.parametrize("seed", range(6))
def test_valley_above_a_dim_mode_gives_way_to_the_tail(seed: int):
    x, neg = three_modes(seed)
    fmo = pct(x, float(np.quantile(neg, 0.995)))  # what a gate set on the negatives alone reports (~19.5 %)
    plain = fit_threshold(x, ThresholdParams(**RULE))
    fit = fit_threshold(x, ThresholdParams(**RULE, dim_mode_tail=0.05))
    assert plain.info["method"] == "valley"
    assert fmo - pct(x, plain.value) > 8.0  # the valley leaves the dim mode out
    assert fit.info["method"] == "tail" and "dim_mode_below_valley" in fit.flags
    assert fit.info["dim_mode_valley"] == pytest.approx(plain.value, abs=1e-4)
    assert abs(pct(x, fit.value) - fmo) < 5.0
    assert fit.value < plain.value


def test_clean_bimodal_valley_is_kept():
    r = np.random.default_rng(1)
    x = np.r_[r.normal(0.22, 0.035, 8000), r.normal(0.6, 0.05, 2000)]
    plain = fit_threshold(x, ThresholdParams(**RULE))
    fit = fit_threshold(x, ThresholdParams(**RULE, dim_mode_tail=0.05))
    assert fit.info["method"] == "valley" and "dim_mode_below_valley" not in fit.flags
    assert fit.value == plain.value


def test_dim_mode_lower_than_the_limit_keeps_the_valley():
    x, _ = three_modes(2)
    d = kde_1d(x)
    raw = find_peaks(d, 0.01)
    low, high = int(raw[0]), int(raw[-1])
    valley = low + int(np.argmin(d.density[low:high + 1]))
    inner = [int(i) for i in raw if low < i < valley]
    assert inner, "the dim mode is a local maximum of the unmerged density"
    height = float(d.density[inner[0]] / d.density[low])
    kept = np.array([low, high])
    assert dim_mode_below(d, raw, kept, valley, height * 0.9)
    assert not dim_mode_below(d, raw, kept, valley, height * 1.1)


def test_default_never_checks_and_limit_is_a_fraction():
    assert ThresholdParams().dim_mode_tail is None
    with pytest.raises(ValidationError):
        ThresholdParams(dim_mode_tail=1.5)
