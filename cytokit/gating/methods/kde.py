"""Binned Gaussian kernel density estimate of one marker's values (the density the gating rules read).

The bandwidth is Silverman's robust rule, ``0.9 min(SD, IQR/1.349) n^-1/5``. Where most events form a **spike**
(a population far narrower than the data: the interquartile range's scale below :data:`SPIKE_SCALE` x the SD,
e.g. negatives compressed near zero by a logicle transform with W = 0 on unmixed or over-compensated data), that
rule sizes the kernel for the spike, and the minor populations outside it are read from a nearly raw histogram:
their density breaks into noise modes with dips of 0.6-0.8, which pass as valleys (a CD16 ``valley: last``
inside the NK cells' own mode, a CD56 ``valley: first`` inside the negatives). There the events outside the
spike's Tukey fences (quartiles -/+ 1.5 IQR) are smoothed with the robust bandwidth of their own values and
added to the spike's density, which keeps its own bandwidth (both partitions' counts sum to the histogram, so
the density still integrates to one). Never the case on ``cytokit.simulate``'s or independent lab A's files
(their robust scale is >= 0.19 x the SD; docs/gating.md, "A spike of negatives").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .smoothing import gaussian_smooth_1d

GRID_POINTS = 512
#: the robust scale (IQR / 1.349) below this fraction of the SD marks a spike that the bandwidth would be sized for
SPIKE_SCALE = 0.15
#: Tukey fences of the spike: its quartiles -/+ this many IQRs
SPIKE_FENCE = 1.5


@dataclass(frozen=True)
class Density1D:
    """A binned, smoothed density on an even grid."""

    grid: np.ndarray
    density: np.ndarray
    bandwidth: float


def kde_1d(x: np.ndarray, *, adjust: float = 1.0, grid_points: int = GRID_POINTS) -> Density1D:
    """Gaussian KDE by binning and smoothing (linear time); bandwidth by Silverman's robust rule."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    lo, hi = np.quantile(x, [0.0005, 0.9995]) if x.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    sd = np.std(x) if x.size > 1 else 1.0
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25])) if x.size > 1 else 0.0
    scale = min(sd, iqr / 1.349) if iqr > 0 else sd
    if scale <= 0:
        scale = span / 10 or 1.0
    bw = 0.9 * scale * max(x.size, 2) ** (-0.2) * adjust
    counts, edges = np.histogram(x, bins=grid_points, range=(lo, hi))
    step = edges[1] - edges[0]
    rest = _outside_spike(x, sd, iqr)
    if rest is None:
        dens = gaussian_smooth_1d(counts.astype(np.float64), sigma=max(bw / step, 0.5))
    else:  # the spike keeps its bandwidth; the events outside it are smoothed by their own
        rest_counts = np.histogram(rest, bins=grid_points, range=(lo, hi))[0].astype(np.float64)
        rest_bw = _robust_bandwidth(rest) * adjust
        dens = (gaussian_smooth_1d(counts - rest_counts, sigma=max(bw / step, 0.5))
                + gaussian_smooth_1d(rest_counts, sigma=max(max(rest_bw, bw) / step, 0.5)))
    dens /= max(dens.sum() * step, 1e-300)
    return Density1D(grid=(edges[:-1] + edges[1:]) / 2, density=dens, bandwidth=float(bw))


def _robust_bandwidth(x: np.ndarray) -> float:
    """Silverman's robust bandwidth of ``x`` (same scale), without ``adjust``."""
    sd = float(np.std(x)) if x.size > 1 else 0.0
    iqr = float(np.subtract(*np.quantile(x, [0.75, 0.25]))) if x.size > 1 else 0.0
    scale = min(sd, iqr / 1.349) if iqr > 0 else sd
    return 0.9 * scale * max(x.size, 2) ** (-0.2)


def _outside_spike(x: np.ndarray, sd: float, iqr: float) -> np.ndarray | None:
    """The events of ``x`` outside the Tukey fences of a spike (:data:`SPIKE_SCALE`), or None when the data
    have no spike (or fewer than 2 events outside it)."""
    if x.size < 2 or not iqr > 0 or not iqr / 1.349 < SPIKE_SCALE * sd:
        return None
    q1, q3 = np.quantile(x, [0.25, 0.75])
    rest = x[(x < q1 - SPIKE_FENCE * iqr) | (x > q3 + SPIKE_FENCE * iqr)]
    return rest if rest.size >= 2 else None
