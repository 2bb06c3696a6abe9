"""The drift (changepoint) checks of time QC: an abrupt sustained change removes the changed events, a
gradual one is flagged and kept, and real acquisitions that are not faults (a sorter's bead run with a
few far events per bin, a buffer-only sample whose scatter wanders) lose no events to them."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs, write_fcs
from cytokit.qc import QCParams, run_qc

NAMES = ["FSC-A", "SSC-A", "FITC-A", "PE-A", "Time"]
#: the rule before drift levels were trimmed, the noise read at several lags and slow drifts kept
PREVIOUS = QCParams(drift_trim=0.0, drift_noise_lag=1, drift_min_abrupt=0.0)


def _file(tmp_path, factor: np.ndarray, seed: int = 5):
    """40,000 events at a steady rate whose fluorescence is multiplied per event by ``factor``."""
    rng = np.random.default_rng(seed)
    n = factor.size
    pos = rng.random((n, 2)) < 0.4
    fl = np.where(pos, rng.lognormal(np.log(9000), 0.45, (n, 2)), rng.normal(200, 150, (n, 2))) * factor[:, None]
    ev = np.column_stack([rng.normal(60000, 7000, n), rng.normal(20000, 4000, n), fl,
                          np.sort(rng.uniform(0, 10_000, n))]).astype(np.float32)
    return read_fcs(write_fcs(tmp_path / f"drift_{seed}.fcs", ev, NAMES, metadata={"$TIMESTEP": "0.01"}))


def _time_removed(sample, params: QCParams = QCParams()) -> float:
    on, off = run_qc(sample, params), run_qc(sample, params.model_copy(update={"time_checks": False}))
    return float((off.keep & ~on.keep).mean())


def test_abrupt_sustained_step_is_removed(tmp_path):
    n = 40_000
    factor = np.where(np.arange(n) >= int(0.85 * n), 0.6, 1.0)  # the last 15 % 40 % dimmer from one event on
    res = run_qc(_file(tmp_path, factor))
    assert "signal_drift" in res.flags or "signal_shift" in res.flags
    assert (~res.keep[int(0.86 * n):]).mean() > 0.9  # the dim tail goes
    assert (~res.keep[:int(0.8 * n)]).mean() < 0.02  # the rest stays


def test_gradual_drift_is_flagged_and_kept(tmp_path):
    n = 40_000
    u = np.arange(n) / n
    factor = 1.0 - 0.6 * np.clip((u - 0.8) / 0.2, 0, 1)  # fades over the last 20 % to 0.4
    sample = _file(tmp_path, factor, seed=6)
    res = run_qc(sample)
    assert "signal_drift" in res.flags
    assert "gradual" in res.details["signal_shift"]
    assert _time_removed(sample) < 0.02
    # the first rule cut part of the ramp off (no cut point makes the kept events right)
    assert _time_removed(sample, PREVIOUS) > 0.05


@pytest.mark.parametrize("rel", [
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - MoFlo Astrios - log settings.fcs",
    "fcs_corpus/fcsparser/FlowCytometers/Fortessa/FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs",
])
def test_real_acquisitions_lose_no_events_to_the_drift_checks(shared_data, rel):
    """MoFlo Astrios bead run (start-up rate ramp, a few far events per 100-event bin) and a Fortessa
    buffer-only sample (FSC-W wanders over tens of bins): the first drift rule removed 20 % and 14 % of
    their events; the bead peaks and scatter are the same early and late, so none may go."""
    sample = read_fcs(shared_data / rel)
    drift_off = QCParams(drift_checks=False)
    assert _time_removed(sample, PREVIOUS) - _time_removed(sample, drift_off) > 0.1  # the case is still there
    res = run_qc(sample)
    assert "signal_drift" not in res.flags
    assert _time_removed(sample) - _time_removed(sample, drift_off) < 0.005
