"""Acquisition on one of the lab's instruments: optics, photon statistics, gains, clogs and the time channel.

A detector collects the photoelectrons of every dye through the lab's spillover (:data:`.lab.SPILL_REFERENCE`)
plus the cell's autofluorescence; the count is Poisson, so after compensation the negatives of a channel that
receives spill from a bright dye are broader (spreading error). Each file has its own detector gains
(log-normal around the instrument's nominal ones); its ``$SPILLOVER`` is the matrix a lab would measure with
its single-stain controls at those gains, with a few % measurement error. A clog is an interval during which
events arrive at a fraction of the rate and are dimmer (the stream is partly blocked).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cells import Cells
from .lab import AUTOFLUORESCENCE_PE, ELECTRONIC_NOISE, FLUOROCHROMES, INSTRUMENTS, SPILL_REFERENCE

GAIN_SD = 0.12  # log-sd of a file's detector gain around the nominal
SPILL_ERROR_SD = 0.03  # log-sd of the measured spillover around the true one
CLOG_RATE, CLOG_SIGNAL = 0.2, 0.7


@dataclass
class Acquired:
    """Linear detector values as written to the FCS file, plus what the truth needs."""

    fluorescence: np.ndarray  # (n, 7) FLUOROCHROMES order
    scatter: np.ndarray  # (n, 4): FSC-A, FSC-H, SSC-A, SSC-H
    time: np.ndarray  # seconds since start
    clog: np.ndarray  # bool per event: acquired during a clog
    gains: np.ndarray  # per FLUOROCHROMES detector
    spillover_written: np.ndarray  # (7, 7) rows = dyes, columns = detectors, FLUOROCHROMES order
    duration_s: float


def _times(n: int, rate: float, clog: tuple[float, float] | None, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (s) of ``n`` events at ``rate``/s, slowed to CLOG_RATE x during ``clog`` = (start, length)
    as fractions of the run; returns (sorted times, in-clog flags)."""
    if clog is None:
        t = np.sort(rng.uniform(0.0, n / rate, n))
        return t, np.zeros(n, dtype=bool)
    start, length = clog
    share = CLOG_RATE * length / (1.0 - length + CLOG_RATE * length)  # of the events, by time-weighted rate
    n_clog = int(rng.binomial(n, share))
    duration = (n - n_clog) / rate / (1.0 - length)
    t0, t1 = start * duration, (start + length) * duration
    normal = rng.uniform(0.0, duration - (t1 - t0), n - n_clog)
    normal = np.where(normal >= t0, normal + (t1 - t0), normal)
    t = np.concatenate([normal, rng.uniform(t0, t1, n_clog)])
    in_clog = np.concatenate([np.zeros(n - n_clog, bool), np.ones(n_clog, bool)])
    order = np.argsort(t, kind="stable")
    return t[order], in_clog[order]


def acquire(cells: Cells, instrument: str, rng: np.random.Generator, *, clog: tuple[float, float] | None = None
            ) -> tuple[Acquired, np.ndarray]:
    """Acquire ``cells`` in a random order on ``instrument`` ("A" or "B"); returns the acquisition and the
    order (event k of the file is cell ``order[k]``)."""
    inst = INSTRUMENTS[instrument]
    n = cells.levels.shape[0]
    order = rng.permutation(n)
    rate = rng.uniform(800.0, 2500.0)
    t, in_clog = _times(n, rate, clog, rng)
    dim = np.where(in_clog, CLOG_SIGNAL, 1.0)
    levels = cells.levels[order] * dim[:, None]
    af = (cells.af[order][:, None] * AUTOFLUORESCENCE_PE[None, :]
          * np.exp(0.2 * rng.standard_normal((n, len(FLUOROCHROMES))))) * dim[:, None]
    pe = levels @ SPILL_REFERENCE + af
    gains = np.asarray(inst.nominal_gain) * np.exp(GAIN_SD * rng.standard_normal(len(FLUOROCHROMES)))
    fl = rng.poisson(pe) * (gains * inst.units_per_pe)[None, :]
    fl = fl + ELECTRONIC_NOISE[instrument] * rng.standard_normal(fl.shape)
    fl = np.minimum(fl, inst.range)
    scatter_gain = inst.scatter_scale * np.exp(0.08 * rng.standard_normal())
    sc = np.column_stack([cells.fsc_a[order], cells.fsc_h[order], cells.ssc_a[order] * 0.9,
                          cells.ssc_h[order] * 0.9]) * scatter_gain * dim[:, None]
    sc = sc * np.exp(0.02 * rng.standard_normal(sc.shape)) + ELECTRONIC_NOISE[instrument] * rng.standard_normal(sc.shape)
    sc = np.clip(sc, 0.0, inst.range)
    effective = SPILL_REFERENCE * gains[None, :] / gains[:, None]
    measured = effective * np.exp(SPILL_ERROR_SD * rng.standard_normal(effective.shape))
    np.fill_diagonal(measured, 1.0)
    measured[SPILL_REFERENCE == 0] = 0.0
    return Acquired(fluorescence=fl, scatter=sc, time=t, clog=in_clog, gains=gains,
                    spillover_written=measured, duration_s=float(t[-1]) if n else 0.0), order
