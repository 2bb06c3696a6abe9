"""The negative-component model (Overton-style excess) on mixtures with a known positive fraction."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.gating.methods.negative_model import MIN_EVENTS, negative_model


def skewed_negative(r: np.random.Generator, n: int, loc: float = 0.25) -> np.ndarray:
    """A negative peak with a longer lower tail (as logicle-transformed autofluorescence + noise has)."""
    return loc + 0.04 * r.normal(size=n) - 0.03 * r.exponential(size=n) + 0.03


@pytest.mark.parametrize("pos_fraction", [0.0, 0.1, 0.3])
def test_reference_fit_recovers_a_dim_continuum_without_a_valley(pos_fraction):
    # positives: a continuum starting inside the negative peak (no valley); reference: other cells of the
    # same file on the same channel, negatives only
    r = np.random.default_rng(7)
    n = 20000
    n_pos = int(pos_fraction * n)
    x = np.r_[skewed_negative(r, n - n_pos), r.uniform(0.28, 0.65, n_pos)]
    ref = skewed_negative(r, 8000)
    m = negative_model(x, reference=ref)
    assert m is not None and m.method == "reference"
    assert abs(m.positive_fraction - pos_fraction) < 0.02, m
    assert m.positive_fraction + m.negative_fraction == pytest.approx(1.0)
    assert m.positive_pct == pytest.approx(100 * m.positive_fraction)
    # the count-holding threshold keeps the estimated share
    t = m.threshold_for_count(x)
    assert np.mean(x >= t) == pytest.approx(m.positive_fraction, abs=0.002)


def test_a_reference_with_positives_inflates_the_negatives_as_documented():
    # a reference holding a share c of positives: negative fraction about (1 - p) / (1 - c)
    r = np.random.default_rng(8)
    x = np.r_[skewed_negative(r, 16000), r.uniform(0.3, 0.7, 4000)]  # 20 % positive
    clean = negative_model(x, reference=skewed_negative(r, 8000))
    mixed = negative_model(x, reference=np.r_[skewed_negative(r, 7200), r.uniform(0.4, 0.7, 800)])
    assert clean is not None and mixed is not None
    assert abs(clean.positive_fraction - 0.2) < 0.02
    assert mixed.negative_fraction == pytest.approx(min(1.0, 0.8 / 0.9), abs=0.03)


def test_mirror_is_about_zero_for_a_pure_symmetric_negative_and_sees_a_bright_tail():
    r = np.random.default_rng(9)
    neg = r.normal(0.25, 0.05, 20000)
    m = negative_model(neg)
    assert m is not None and m.method == "mirror"
    assert m.positive_fraction < 0.02 and abs(m.location - 0.25) < 0.01
    mixed = np.r_[r.normal(0.25, 0.05, 15000), r.normal(0.55, 0.06, 5000)]
    m = negative_model(mixed)
    assert m is not None and abs(m.positive_fraction - 0.25) < 0.03, m


def test_lower_side_models_the_negatives_from_above():
    # positives below the negatives (a "-" marker such as CD127lo): mirrored axis
    r = np.random.default_rng(10)
    x = np.r_[r.normal(0.6, 0.05, 17000), r.normal(0.3, 0.05, 3000)]
    ref = r.normal(0.6, 0.05, 10000)
    for m, tol in ((negative_model(x, side="lower"), 0.03), (negative_model(x, reference=ref, side="lower"), 0.02)):
        assert m is not None and abs(m.positive_fraction - 0.15) < tol, m
        assert np.mean(x < m.threshold_for_count(x)) == pytest.approx(m.positive_fraction, abs=0.002)


def test_too_few_events():
    r = np.random.default_rng(11)
    assert negative_model(r.normal(size=MIN_EVENTS - 1)) is None
    # a reference that is too small falls back to the mirror
    m = negative_model(r.normal(size=500), reference=r.normal(size=10))
    assert m is not None and m.method == "mirror"
    assert negative_model(np.full(100, np.nan)) is None
