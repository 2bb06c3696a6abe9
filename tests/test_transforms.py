"""Transforms: Gating-ML formulas, agreement with flowutils/FlowKit, inverses, Sample application."""
from __future__ import annotations

import math

import flowutils
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytokit.errors import TransformError
from cytokit.sample import CHANNEL_COLUMNS, Sample
from cytokit.transforms import (
    TRANSFORMS, estimate_logicle, get_transform, parse_transform, transform, untransform,
)

LOGICLE_PARAMS = [(262144, 0.5, 4.5, 0.0), (262144, 1.0, 4.5, 0.5), (262144, 0.0, 4.5, 0.0),
                  (10000, 2.0, 5.0, -1.0), (1024, 0.25, 4.0, 1.0), (262144, 2.25, 4.5, 0.0)]


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([
        np.linspace(-5000, 5000, 20001), rng.lognormal(6, 3, 20000), -rng.lognormal(3, 2, 2000),
        [0.0, 1e-12, -1e-12, 262144.0, 1e7, 1e9, -1e7],
    ])


def test_registry_names():
    assert {"flin", "flog", "fasinh", "logicle", "hyperlog", "linear", "arcsinh"} <= set(TRANSFORMS)
    for name in TRANSFORMS:
        t = get_transform(name)
        assert t.name == name


@pytest.mark.parametrize("T, W, M, A", LOGICLE_PARAMS)
def test_logicle_matches_flowutils(values, T, W, M, A):
    t = get_transform("logicle", T=T, W=W, M=M, A=A)
    ref = flowutils.transforms.logicle(values, None, t=T, m=M, w=W, a=A)
    if W == 0:
        # flowutils returns -1 for 0 < |x| < ~1e-10 when W = 0; the exact answer is ~x/B'(0), i.e. ~0
        tiny = (np.abs(values) < 1e-6) & (values != 0)
        assert np.all(np.abs(t.forward(values[tiny])) < 1e-12)
        values, ref = values[~tiny], ref[~tiny]
    assert np.max(np.abs(t.forward(values) - ref)) < 1e-9
    ref_inv = flowutils.transforms.logicle_inverse(ref, None, t=T, m=M, w=W, a=A)
    inv = t.inverse(ref)
    assert np.max(np.abs(inv - ref_inv) / np.maximum(1.0, np.abs(ref_inv))) < 1e-9
    # round trip on the linear scale
    assert np.max(np.abs(t.inverse(t.forward(values)) - values) / np.maximum(1.0, np.abs(values))) < 1e-8


@pytest.mark.parametrize("T, W, M, A", [p for p in LOGICLE_PARAMS if p[1] > 0])
def test_hyperlog_matches_flowutils(values, T, W, M, A):
    t = get_transform("hyperlog", T=T, W=W, M=M, A=A)
    ref = flowutils.transforms.hyperlog(values, None, t=T, m=M, w=W, a=A)
    assert np.max(np.abs(t.forward(values) - ref)) < 1e-9
    assert np.max(np.abs(t.inverse(t.forward(values)) - values) / np.maximum(1.0, np.abs(values))) < 1e-8


def test_logicle_landmarks():
    t = get_transform("logicle", T=262144, W=0.5, M=4.5, A=0)
    assert t.forward([262144.0])[0] == pytest.approx(1.0, abs=1e-12)
    assert t.forward([0.0])[0] == pytest.approx(0.5 / 4.5, abs=1e-12)  # x1 = (A + W)/(M + A)
    assert t.inverse([1.0])[0] == pytest.approx(262144.0, rel=1e-12)
    # one decade per 1/M of the scale far above the linear region
    y = t.forward([262144.0, 262144.0 / 10])
    assert y[0] - y[1] == pytest.approx(1 / 4.5, abs=1e-3)
    assert np.isnan(t.forward([np.nan]))[0]
    assert np.all(np.diff(t.forward(np.linspace(-1e4, 1e6, 10001))) > 0)


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e8, 1e8, allow_nan=False), st.sampled_from(LOGICLE_PARAMS))
def test_logicle_property_round_trip(x, params):
    T, W, M, A = params
    t = get_transform("logicle", T=T, W=W, M=M, A=A)
    y = t.forward([x])[0]
    assert abs(t.inverse([y])[0] - x) <= 1e-8 * max(1.0, abs(x))
    if W > 0 or abs(x) > 1e-6 or x == 0:  # see test_logicle_matches_flowutils for flowutils at W = 0
        assert abs(y - flowutils.transforms.logicle(np.array([x]), None, t=T, m=M, w=W, a=A)[0]) < 1e-9


def test_gatingml_closed_forms(values):
    T, M, A = 262144.0, 4.5, 1.0
    x = values
    np.testing.assert_allclose(get_transform("flin", T=1000, A=100).forward(x), (x + 100) / 1100)
    pos = x[x > 0]
    np.testing.assert_allclose(get_transform("flog", T=T, M=M).forward(pos), np.log10(pos / T) / M + 1)
    assert np.isnan(get_transform("flog").forward([-1.0, 0.0])).all()
    expected = (np.arcsinh(x * math.sinh(M * math.log(10)) / T) + A * math.log(10)) / ((M + A) * math.log(10))
    fas = get_transform("fasinh", T=T, M=M, A=A)
    np.testing.assert_allclose(fas.forward(x), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fas.forward(x), flowutils.transforms.asinh(x, None, t=T, m=M, a=A), atol=1e-12)
    np.testing.assert_allclose(get_transform("arcsinh", cofactor=150).forward(x), np.arcsinh(x / 150))
    np.testing.assert_allclose(get_transform("linear", slope=2, intercept=1).forward(x), 2 * x + 1)


@pytest.mark.parametrize("spec", ["flin(T=1000, A=100)", "flog(T=262144, M=4.5)", "fasinh(T=262144, M=4.5, A=1)",
                                  "logicle(T=262144, W=0.5, M=4.5, A=0)", "hyperlog(T=262144, W=1, M=4.5, A=0)",
                                  "linear(slope=0.001, intercept=-1)", "arcsinh(cofactor=5)"])
def test_every_transform_inverts_and_describes_itself(spec):
    t = parse_transform(spec)
    assert parse_transform(t.describe()) == t
    x = np.array([1.0, 10.0, 250.0, 5000.0, 200000.0])
    np.testing.assert_allclose(t.inverse(t.forward(x)), x, rtol=1e-9)


@pytest.mark.parametrize("name, params, match", [
    ("logicle", {"W": 3.0}, "W must be in"),
    ("logicle", {"T": -1}, "T must be > 0"),
    ("logicle", {"A": -1.0}, "A must be in"),
    ("hyperlog", {"W": 0}, "W must be > 0"),
    ("flog", {"M": 0}, "M must be > 0"),
    ("arcsinh", {"cofactor": "abc"}, "must be a number"),
    ("logicle", {"w": 0.5}, "unknown parameter"),
    ("biexp", {}, "unknown transform 'biexp'"),
])
def test_bad_parameters_raise_transform_error(name, params, match):
    with pytest.raises(TransformError, match=match):
        get_transform(name, **params)


def test_parse_errors():
    with pytest.raises(TransformError, match="cannot parse"):
        parse_transform("logicle(T=__import__('os'))")
    with pytest.raises(TransformError, match="cannot parse"):
        parse_transform("logicle T=1")


def _sample(events: np.ndarray, names: list[tuple[str, str, str]]) -> Sample:
    rows = [dict(pnn=n, pns="", marker=m, fluorochrome="", range=262144.0, gain=1.0, log_decades=0.0,
                 log_offset=0.0, bits=32, kind=k) for n, m, k in names]
    return Sample(np.ascontiguousarray(events, dtype=np.float32), pd.DataFrame(rows, columns=list(CHANNEL_COLUMNS)))


def test_transform_sample_records_and_undoes():
    rng = np.random.default_rng(3)
    ev = np.column_stack([rng.uniform(0, 2e5, 500), rng.lognormal(7, 1.5, 500), rng.normal(0, 200, 500),
                          np.arange(500.0)])
    s = _sample(ev, [("FSC-A", "FSC-A", "scatter"), ("PE-Cy7-A", "CD4", "fluorescence"),
                     ("APC-A", "CD28", "fluorescence"), ("Time", "Time", "time")])
    out = transform(s, {"@fluorescence": "logicle", "CD28": {"name": "arcsinh", "cofactor": 150},
                        "FSC-A": "linear(slope=3.814697265625e-06)"})
    assert out.transforms == {"FSC-A": "linear(slope=3.814697265625e-06, intercept=0)",
                              "PE-Cy7-A": "logicle(T=262144, W=0.5, M=4.5, A=0)",
                              "APC-A": "arcsinh(cofactor=150)"}
    np.testing.assert_allclose(out.column("CD4"), get_transform("logicle").forward(s.column("CD4")), atol=1e-6)
    np.testing.assert_array_equal(out.column("Time"), s.column("Time"))
    assert s.transforms == {} and out.events.dtype == np.float32  # input untouched
    with pytest.raises(TransformError, match="already transformed"):
        transform(out, {"CD4": "arcsinh"})
    back = untransform(out)
    assert back.transforms == {}
    np.testing.assert_allclose(back.events, s.events, rtol=1e-4, atol=1e-2)
    with pytest.raises(TransformError, match="no channel named 'CD99'"):
        transform(s, {"CD99": "logicle"})


def test_estimate_logicle_follows_flowcore_rule():
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.lognormal(8, 1, 5000), rng.normal(0, 300, 5000)])
    t = estimate_logicle(x, T=262144, M=4.5)
    r = abs(np.quantile(x[x < 0], 0.05))
    assert t.W == pytest.approx((4.5 - math.log10(262144 / r)) / 2, rel=1e-6)
    assert 0 < t.W < 2.25
    # wider negatives need a wider linear region
    wider = estimate_logicle(np.concatenate([x, rng.normal(0, 3000, 5000)]), T=262144)
    assert wider.W > t.W
    assert estimate_logicle(np.abs(x) + 1, T=262144).W == 0.0
    s = _sample(np.column_stack([x]), [("PE-A", "CD4", "fluorescence")])
    out = transform(s, {"CD4": {"name": "logicle", "estimate": True}})
    applied = parse_transform(out.transforms["PE-A"])
    assert applied.name == "logicle" and applied.W == pytest.approx(t.W, rel=1e-5)  # float32 events


def test_float32_input_and_chunking_do_not_change_results(values):
    from cytokit.transforms._kernels import lookup

    for name in ("logicle", "hyperlog"):
        t = get_transform(name, W=0.75)
        x32 = values.astype(np.float32)
        y = t.forward(x32)
        assert y.dtype == np.float64 and y.shape == x32.shape
        np.testing.assert_allclose(y, t.forward(x32.astype(np.float64)), atol=1e-12)
        # the kernel works in chunks: any chunk size (incl. ones that split the input unevenly) is identical
        whole, beyond = lookup(values, *t._table.args(), chunk=values.size + 1)
        for chunk in (1, 7, 4096):
            part, beyond_part = lookup(values, *t._table.args(), chunk=chunk)
            np.testing.assert_array_equal(part, whole)
            assert beyond_part == beyond
        y = t.forward(values)
        np.testing.assert_allclose(t.inverse(t.forward(values)), values, rtol=1e-8, atol=1e-6)
    grid = np.linspace(-1e4, 1e5, 12).reshape(3, 4)  # shape is kept
    assert get_transform("logicle").forward(grid).shape == (3, 4)


def test_estimated_logicle_top_of_scale_follows_decoding():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.lognormal(5, 1, 3000), rng.normal(0, 5, 1000)])
    s = _sample(np.column_stack([x, x]), [("FL1-H", "CD4", "fluorescence"), ("FL2-A", "CD8", "fluorescence")])
    ch = s.channels.copy()
    ch.loc[0, ["range", "log_decades", "log_offset"]] = [1024.0, 4.0, 1.0]  # log amplifier: 1..10^4
    ch.loc[1, ["range", "gain"]] = [262144.0, 2.0]                          # linear with $PnG = 2
    out = transform(s.replace(channels=ch), {"@fluorescence": {"name": "logicle", "estimate": True}})
    assert parse_transform(out.transforms["FL1-H"]).T == 10000.0
    assert parse_transform(out.transforms["FL2-A"]).T == 131072.0


@pytest.mark.parametrize("name", ["logicle", "hyperlog"])
def test_biex_infinities_map_to_infinities_without_warnings(name):
    import warnings

    t = get_transform(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from Newton steps on inf
        y = t.forward([np.inf, -np.inf, np.nan, 1e9])
    assert y[0] == np.inf and y[1] == -np.inf and np.isnan(y[2])
    assert y[3] == pytest.approx(t.forward([1e9])[0]) and np.isfinite(y[3])


def test_logicle_inverse_of_a_scalar():
    """A 0-d input (a gate limit) goes through the Taylor branch without item assignment on a scalar."""
    from cytokit.transforms import get_transform

    t = get_transform("logicle", T=262144, W=0.5, M=4.5, A=0)
    y = 0.1  # near the zero point: the Taylor series is used
    assert np.isclose(float(t.inverse(y)), float(t.inverse(np.array([y]))[0]))
    assert np.isclose(float(t.forward(t.inverse(y))), y)
