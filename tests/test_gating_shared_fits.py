"""Sibling gates share equal threshold fits while one sample is gated (gating/methods/shared_fits.py): the
results are identical to fitting every gate on its own, each gate gets its own copy, and nothing is kept
between samples."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import engine, load_strategy
from cytokit.gating.methods import density, shared_fits
from cytokit.gating.methods.density import ThresholdParams, fit_threshold
from cytokit.gating.preprocess import prepare

FILES = ("P001_W0_tmem.fcs", "P002_W24_nkb.fcs", "P003_W74_tmem.fcs")


def _same(a, b, where: str = "") -> None:
    """Deep equality (numpy arrays element for element, NaN equal to NaN)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float):
        assert a == b or (np.isnan(a) and np.isnan(b)), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def prepared(repo_root) -> dict[str, tuple]:
    folder = repo_root / "sample_data" / "fcs"
    if not folder.is_dir():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    out = {}
    for name in FILES:
        strategy = load_strategy("tmem" if "tmem" in name else "nkb")
        out[name] = (strategy.definition, prepare(read_fcs(folder / name), strategy.definition).sample)
    return out


def _fit(definition, sample, monkeypatch, *, shared: bool):
    with monkeypatch.context() as m:
        if not shared:
            m.setattr(engine, "shared_threshold_fits", contextlib.nullcontext)
        return engine.fit_all(definition, sample)


def _counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = shared_fits.fit_threshold

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(shared_fits, "fit_threshold", counted)
    return calls


@pytest.mark.parametrize("name", FILES)
def test_shared_fits_give_the_results_of_independent_fits(prepared, monkeypatch, name):
    definition, sample = prepared[name]
    calls = _counting(monkeypatch)
    alone = _fit(definition, sample, monkeypatch, shared=False)
    n_alone = len(calls)
    shared = _fit(definition, sample, monkeypatch, shared=True)
    assert len(calls) - n_alone < n_alone  # siblings did share fits
    assert alone.masks.keys() == shared.masks.keys() and alone.skipped == shared.skipped
    for pop, mask in alone.masks.items():
        np.testing.assert_array_equal(mask, shared.masks[pop], err_msg=pop)
        a, b = alone.fits[pop], shared.fits[pop]
        assert a.gate.to_dict() == b.gate.to_dict(), pop
        assert a.flags == b.flags, pop
        _same(a.info, b.info, pop)


def test_quadrant_signs_do_not_change_the_per_dimension_fit(prepared, monkeypatch):
    definition, sample = prepared["P001_W0_tmem.fcs"]
    state = _fit(definition, sample, monkeypatch, shared=False)
    cd4, cd8 = state.fits["CD4 T"].info, state.fits["CD8 T"].info
    assert cd4["thresholds"] == cd8["thresholds"]  # fitted apart, same dividers: the sign is not an input
    _same(cd4["CD4"], cd8["CD4"])
    quads = [state.fits[p].info for p in ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")]
    assert all(q["thresholds"] == quads[0]["thresholds"] for q in quads)
    # ... while what the signs select differs, and so does the estimated error of each quadrant
    assert len({state.masks[p].sum() for p in ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")}) == 4


def test_each_caller_gets_its_own_copy_and_nothing_outlives_the_block():
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.2, 0.03, 4000), rng.normal(0.6, 0.05, 2000)]
    p = ThresholdParams(bounds=(0.2, 0.7))
    with shared_fits.shared_threshold_fits():
        a = shared_fits.fit_threshold_shared(x, p)
        b = shared_fits.fit_threshold_shared(x.copy(), ThresholdParams(bounds=[0.2, 0.7]))
        a.info["n_events"] = -1
        assert b.info["n_events"] == x.size and b.value == a.value
        c = shared_fits.fit_threshold_shared(x.astype(np.float32), p)  # other bytes: its own fit
        assert c.info["n_events"] == x.size
        q = ThresholdParams(mode="quantile", quantile=0.9)  # other parameters: their own fit
        d = shared_fits.fit_threshold_shared(x, q)
        assert d.value == fit_threshold(x, q).value != b.value
        ref = rng.normal(0.25, 0.03, 3000)  # a negative reference: its own fit
        e = shared_fits.fit_threshold_shared(x, p, reference=ref)
        assert e.info == fit_threshold(x, p, reference=ref).info != b.info
    assert shared_fits._STORE.get() is None
    fresh = fit_threshold(x, p)
    assert fresh.value == b.value and fresh.flags == b.flags


def test_the_store_does_not_leak_between_samples(prepared, monkeypatch):
    calls = _counting(monkeypatch)
    (def_a, sample_a), (def_b, sample_b) = prepared["P001_W0_tmem.fcs"], prepared["P003_W74_tmem.fcs"]
    first = engine.fit_all(def_a, sample_a)
    n_first = len(calls)
    again = engine.fit_all(def_a, sample_a)  # a new fit_all makes its fits again
    assert len(calls) == 2 * n_first
    for pop in first.masks:
        np.testing.assert_array_equal(first.masks[pop], again.masks[pop])
    after_a = engine.fit_all(def_b, sample_b)
    alone_b = _fit(def_b, sample_b, monkeypatch, shared=False)
    for pop in alone_b.masks:
        np.testing.assert_array_equal(after_a.masks[pop], alone_b.masks[pop], err_msg=pop)
        _same(after_a.fits[pop].info, alone_b.fits[pop].info, pop)
    assert density.fit_threshold is fit_threshold  # the real function was never replaced module-wide
