"""Time QC against the simulator's acquisition-anomaly families (clogs, interruptions, bursts, drifts)
in every tube, with per-event truth; a small version of ``benchmarks/qc_accuracy.py`` on its own seeds."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.qc import QCParams, run_qc
from cytokit.simulate import simulate_file
from cytokit.simulate.acquisition import FAMILIES, AnomalyConfig, draw_acquisition
from cytokit.simulate.channels import TUBES

TIME_FLAGS = {"flow_rate_anomaly", "signal_shift", "flow_rate_drift", "signal_drift"}


def _qc(tmp_path, tube: str, family: str, seed: int, n: int = 20_000):
    path = tmp_path / f"{tube}_{family}_{seed}.fcs"
    sim = simulate_file(path, n, tube, "attune" if seed % 2 else "bd", seed=50_000 + seed, anomaly=family)
    sample = read_fcs(path)
    res = run_qc(sample)
    timeless = run_qc(sample, QCParams(time_checks=False))
    return sim, res, timeless.keep & ~res.keep


def test_draw_acquisition_shapes_the_event_stream():
    rng = np.random.default_rng(3)
    cfg = AnomalyConfig(wander=0.0)
    clean = draw_acquisition(50_000, 1000.0, cfg, rng, family="none")
    assert clean.family is None and not clean.truth.any()
    assert np.all(np.diff(clean.times) >= 0) and abs(clean.duration_s - 50.0) < 1e-6
    gap = draw_acquisition(50_000, 1000.0, cfg, rng, family="interruption")
    a, b = gap.window_s
    stop = gap.info["gap_fraction"] * gap.duration_s
    tol = 0.002 * gap.duration_s  # rate-profile grid and rounding of the recorded fraction
    assert not ((gap.times > a + tol) & (gap.times < a + stop - tol)).any()  # no event while flow stopped
    assert gap.truth.any() and (gap.times[gap.truth] >= a + stop - tol).all()  # truth = the recovery
    clog = draw_acquisition(50_000, 1000.0, cfg, rng, family="clog")
    inside = clog.truth
    rate_in = inside.sum() / (clog.window_s[1] - clog.window_s[0])
    assert rate_in < 0.7 * 1000.0 and clog.fluorescence_factor[inside].min() < 0.95
    with pytest.raises(ValueError, match="unknown anomaly family"):
        draw_acquisition(100, 1000.0, cfg, rng, family="bubble")


@pytest.mark.parametrize("tube", list(TUBES))
def test_every_family_is_detected_in_every_tube_and_clean_files_pass(tmp_path, tube):
    for family in FAMILIES:
        for seed in range(3):
            sim, res, removed = _qc(tmp_path, tube, family, seed)
            truth = (sim.flags & 1) > 0
            assert sim.anomaly == family and truth.any()
            assert TIME_FLAGS & set(res.flags), (tube, family, seed, res.flags)
            assert removed[~truth].mean() < 0.05, (tube, family, seed)
            if family in ("clog", "interruption", "burst"):
                assert removed[truth].mean() >= 0.5, (tube, family, seed)
    for seed in range(4):
        sim, res, removed = _qc(tmp_path, tube, "none", seed)
        assert not TIME_FLAGS & set(res.flags), (tube, seed, res.flags)
        assert removed.mean() < 0.01


def test_long_drift_is_flagged_but_kept(tmp_path):
    """A drift over much of the run is flagged (signal_drift / flow_rate_drift) without removing
    half of the file; the real flowsom_68983 file (PE-A rises slowly) is handled the same way."""
    sim, res, removed = _qc(tmp_path, "tmem", "drift", 11)
    assert {"signal_drift", "flow_rate_drift"} & set(res.flags)
    assert res.removed_fraction < 0.3


def test_legacy_clog_model_is_unchanged_without_anomalies(tmp_path):
    """No anomalies block: the single-clog model draws the same files as before (sample_data stays)."""
    a = simulate_file(tmp_path / "a.fcs", 5000, "tmem", "bd", seed=4)
    b = simulate_file(tmp_path / "b.fcs", 5000, "tmem", "bd", seed=4)
    assert a.anomaly is None and np.array_equal(a.events, b.events)
