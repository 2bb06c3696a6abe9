"""QC before gating on synthetic events with known injected problems (saturation, negative extremes,
clogs with shifted signal, rate bursts, NaN), and on clean data (loses < 2%)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from cytokit.errors import ConfigError, QCError
from cytokit.fcs import read_fcs, write_fcs
from cytokit.qc import QCParams, min_events_flag, require_min_events, run_qc
from cytokit.yamlio import load_model

TOP = 262143.0  # $PnR - 1 for the default $PnR of write_fcs
NAMES = ["FSC-A", "SSC-A", "FITC-A", "PE-A", "APC-A", "Time"]


def _acquisition(n: int, rng, *, seconds: float = 100.0, clog=None, burst=None):
    """Event times (s) of a Poisson acquisition; ``clog``/``burst`` = (t0, t1, rate factor)."""
    base_rate = n / seconds
    t, out = 0.0, []
    # piecewise-constant rate: draw the events of each 0.1 s slice
    for start in np.arange(0, seconds, 0.1):
        factor = 1.0
        for seg in (clog, burst):
            if seg and seg[0] <= start < seg[1]:
                factor = seg[2]
        k = rng.poisson(base_rate * 0.1 * factor)
        out.append(np.sort(rng.uniform(start, start + 0.1, k)))
    return np.concatenate(out)


def _events(times: np.ndarray, rng, shifted: np.ndarray | None = None, shift: float = 0.6) -> np.ndarray:
    n = len(times)
    lymph = rng.random(n) < 0.7
    fsc = np.where(lymph, rng.normal(60000, 7000, n), rng.normal(95000, 12000, n))
    ssc = np.where(lymph, rng.normal(15000, 3000, n), rng.normal(45000, 9000, n))
    fl = []
    for frac_pos, pos in ((0.5, 8000), (0.3, 20000), (0.2, 3000)):
        is_pos = rng.random(n) < frac_pos
        fl.append(np.where(is_pos, rng.lognormal(np.log(pos), 0.5, n), rng.normal(150, 120, n)))
    ev = np.column_stack([fsc, ssc, *fl, times * 100.0]).astype(np.float32)  # Time in 10 ms ticks
    if shifted is not None:
        ev[shifted, :5] *= shift
    ev[:, :5] = np.clip(ev[:, :5], -5000, TOP - 1)  # clean data never reach the top of the range
    return ev


def _sample(tmp_path: Path, ev: np.ndarray, name: str = "s.fcs", **meta):
    return read_fcs(write_fcs(tmp_path / name, ev, NAMES, metadata={"$TIMESTEP": "0.01", **meta},
                              allow_nonfinite=True))


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(42)


def test_clean_data_loses_under_two_percent(tmp_path, rng):
    for seed in range(3):
        r = np.random.default_rng(seed)
        s = _sample(tmp_path, _events(_acquisition(150_000, r), r), f"c{seed}.fcs")
        res = run_qc(s)
        assert res.removed_fraction < 0.02, res.table()
        assert "flow_rate_anomaly" not in res.flags and "signal_shift" not in res.flags


def test_saturated_events_detected(tmp_path, rng):
    times = _acquisition(50_000, rng)
    ev = _events(times, rng)
    n = len(ev)
    sat = rng.choice(n, size=n // 100, replace=False)
    ev[sat[: len(sat) // 2], 0] = TOP            # FSC-A at $PnR - 1
    ev[sat[len(sat) // 2:], 3] = TOP + 50        # PE-A above it
    res = run_qc(_sample(tmp_path, ev))
    assert not res.keep[sat].any()               # every injected saturated event is removed
    assert res.removed["margin"] == len(sat)     # and nothing else by this check
    assert "FSC-A:" in res.details["margin"] and "PE-A:" in res.details["margin"]


def test_float_pileup_at_observed_maximum(tmp_path, rng):
    ev = _events(_acquisition(30_000, rng), rng)
    pile = rng.choice(len(ev), size=300, replace=False)
    ev[pile, 2] = 200_000.0                     # detector saturates below $PnR
    s = _sample(tmp_path, ev, "pile.fcs", **{"$P3R": "1048576"})
    res = run_qc(s)
    assert not res.keep[pile].any()
    assert res.removed["margin"] == 300


def test_gain_scales_the_margin(tmp_path, rng):
    ev = _events(_acquisition(20_000, rng), rng)
    ev[:50, 0] = TOP                            # raw top; $P1G = 2 halves it on the linear scale
    s = _sample(tmp_path, ev, "g.fcs", **{"$P1G": "2"})
    assert s.events[:50, 0].max() == pytest.approx(TOP / 2)
    res = run_qc(s)
    assert not res.keep[:50].any() and res.removed["margin"] == 50


def test_negative_extremes(tmp_path, rng):
    ev = _events(_acquisition(20_000, rng), rng)
    ev[100:180, 4] = -60_000                    # below -10% of the range
    res = run_qc(_sample(tmp_path, ev))
    assert res.removed["negative"] == 80 and not res.keep[100:180].any()
    loose = run_qc(_sample(tmp_path, ev, "n2.fcs"), QCParams(negatives=False))
    assert loose.removed["negative"] == 0


def test_clog_with_shifted_signal_is_removed(tmp_path, rng):
    clog = (40.0, 50.0, 0.2)                    # flow drops to 20% for 10 s and signals fall to 60%
    times = _acquisition(200_000, rng, clog=clog)
    in_clog = (times >= clog[0]) & (times < clog[1])
    ev = _events(times, rng, shifted=in_clog)
    res = run_qc(_sample(tmp_path, ev))
    detected = 1 - res.keep[in_clog].mean()
    false_removal = 1 - res.keep[~in_clog].mean()
    assert detected >= 0.9, res.table()
    assert false_removal < 0.02, res.table()
    assert "flow_rate_anomaly" in res.flags and "signal_shift" in res.flags
    table = res.table()
    assert list(table["check"]) == ["nonfinite", "margin", "negative", "flow_rate", "signal_shift", "total"]
    assert table.set_index("check").loc["total", "events_removed"] == res.n_events - res.n_kept
    assert 0 < table.set_index("check").loc["total", "pct_removed"] < 100


def test_signal_shift_without_rate_change(tmp_path, rng):
    times = _acquisition(150_000, rng)
    seg = (times >= 70) & (times < 76)
    ev = _events(times, rng, shifted=seg, shift=0.5)
    res = run_qc(_sample(tmp_path, ev))
    assert res.removed["flow_rate"] == 0
    assert 1 - res.keep[seg].mean() >= 0.9
    assert 1 - res.keep[~seg].mean() < 0.02
    assert "FSC-A" in res.details["signal_shift"]


def test_flow_rate_burst(tmp_path, rng):
    burst = (20.0, 24.0, 3.0)
    times = _acquisition(150_000, rng, burst=burst)
    in_burst = (times >= burst[0]) & (times < burst[1])
    res = run_qc(_sample(tmp_path, _events(times, rng)))
    assert 1 - res.keep[in_burst].mean() >= 0.9
    assert 1 - res.keep[~in_burst].mean() < 0.02


def test_nonfinite_events_removed(tmp_path, rng):
    ev = _events(_acquisition(20_000, rng), rng)
    ev[10, 2] = np.nan
    ev[11, 3] = np.inf
    res = run_qc(_sample(tmp_path, ev))
    assert res.removed["nonfinite"] == 2 and not res.keep[[10, 11]].any()
    assert "nonfinite_events" in res.flags


def test_no_time_channel_and_small_samples(tmp_path, rng):
    ev = _events(_acquisition(20_000, rng), rng)
    s = read_fcs(write_fcs(tmp_path / "nt.fcs", ev[:, :5], NAMES[:5]))
    res = run_qc(s)
    assert "no_time_channel" in res.flags and res.removed["flow_rate"] == 0
    tiny = run_qc(_sample(tmp_path, ev[:500], "tiny.fcs"))
    assert "skipped" in tiny.details["flow_rate"]


def test_apply_returns_kept_events(tmp_path, rng):
    ev = _events(_acquisition(20_000, rng), rng)
    ev[:30, 0] = TOP
    s = _sample(tmp_path, ev)
    res = run_qc(s)
    kept = res.apply(s)
    assert kept.n_events == res.n_kept == s.n_events - 30
    assert "QC kept" in kept.provenance[-1]
    assert s.n_events == len(ev)  # input unchanged


def test_params_validate_and_load_from_yaml(tmp_path):
    with pytest.raises(ValidationError):
        QCParams(events_per_bin=10)
    with pytest.raises(ValidationError):
        QCParams(unknown_option=1)
    y = tmp_path / "qc.yaml"
    y.write_text("events_per_bin: 500\nrate_mad_threshold: 5\nmargin_kinds: [scatter]\n")
    p = load_model(y, QCParams)
    assert p.events_per_bin == 500 and p.margin_kinds == ("scatter",)
    y.write_text("events_per_bin: 500\nbogus: 1\n")
    with pytest.raises(ConfigError, match="qc.yaml:2: bogus"):
        load_model(y, QCParams)


def test_min_events_helpers():
    assert min_events_flag(3000) is None
    assert min_events_flag(1200, 2500) == "too_few_Lymphocytes(1200<2500)"
    assert min_events_flag(10, 100, population="CD4 T") == "too_few_CD4_T(10<100)"
    with pytest.raises(QCError, match="x.fcs: only 10 events in Lymphocytes"):
        require_min_events(10, path="x.fcs")


def test_real_file_qc_runs(shared_data):
    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    res = run_qc(s)
    assert res.keep.shape == (s.n_events,)
    assert res.removed_fraction < 0.2, res.table()


def test_non_monotonic_time_skips_flow_rate(tmp_path, rng):
    ev = _events(_acquisition(30_000, rng), rng)
    ev[15_000:, 5] -= ev[15_000, 5]  # the clock restarts mid-acquisition
    res = run_qc(_sample(tmp_path, ev))
    assert "time_not_monotonic" in res.flags and res.removed["flow_rate"] == 0
    assert "not monotonic" in res.details["flow_rate"] and "unwrapped" in res.details["flow_rate"]
    # a clog after the restart is still found on the continued clock
    own = np.random.default_rng(11)  # not the module's generator: later tests keep their draws
    ev2 = _events(_acquisition(30_000, own, clog=(60.0, 70.0, 0.2)), own)
    ev2[15_000:, 5] -= ev2[15_000, 5]
    res2 = run_qc(_sample(tmp_path, ev2, "r.fcs"))
    assert "flow_rate_anomaly" in res2.flags and res2.removed["flow_rate"] > 0
    # a time channel that is not a clock at all (decreasing everywhere): the rate check is skipped
    ev3 = ev.copy()
    ev3[:, 5] = ev3[::-1, 5]
    res3 = run_qc(_sample(tmp_path, ev3, "d.fcs"))
    assert "skipped: time channel is not monotonic" == res3.details["flow_rate"]


def test_automatic_bin_size(tmp_path, rng):
    ev = _events(_acquisition(30_000, rng), rng)
    auto = run_qc(_sample(tmp_path, ev))
    assert auto.details["flow_rate"].endswith("/100 time bins")  # 30k events -> 300 per bin
    fixed = run_qc(_sample(tmp_path, ev, "f.fcs"), QCParams(events_per_bin=1000))
    assert fixed.details["flow_rate"].endswith("/30 time bins")
