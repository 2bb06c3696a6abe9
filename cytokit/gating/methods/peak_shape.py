"""The shape of a peak of a 1-D density (:class:`.kde.Density1D`, transformed scale): its core width, the
knee of its flank, and a dim mode merged away below a valley (used by the threshold method, :mod:`.density`)."""
from __future__ import annotations

import numpy as np

from .kde import Density1D

#: ``tail_knee``: the knee of a peak's flank is searched up to this many SDs (outer half) from its mode
KNEE_MAX_SD = 3.5


def dim_mode_below(d: Density1D, raw_peaks: np.ndarray, peaks: np.ndarray, valley: int, min_height: float) -> bool:
    """True when a mode of the unmerged density (``raw_peaks``, merged away as shallow) lies between the valley
    at grid index ``valley`` and the kept mode right below it, at least ``min_height`` x that mode's height:
    the events under the valley rise again after the lower mode falls (a dim mode or the dim end of a
    continuum), so the valley separates dim from bright positives, not the negatives from the positives."""
    below = [int(i) for i in peaks if i < valley]
    if not below:
        return False
    low = below[-1]
    floor = min_height * float(d.density[low])
    return any(low < int(i) < valley and float(d.density[i]) >= floor for i in raw_peaks)


def flank_knee(d: Density1D, i: int, direction: int, fraction: float, max_distance: float) -> float | None:
    """Where the flank of the peak at grid index ``i`` (``direction`` +1: above it, -1: below) stops falling
    steeply: the first point past the steepest descent at which the descent has slowed to ``fraction`` of
    the steepest, searched up to ``max_distance`` from the peak (same scale as ``d.grid``; the far end when it
    never slows that much). A peak alone (Gaussian) has it at about 2.3 SDs for ``fraction`` 0.3; events
    of another population under the flank (a plateau or a shoulder of positives) make the descent slow
    where they take over, which is where the peak's own events end. None when the flank does not fall."""
    g, y = d.grid, d.density
    stop = float(g[i]) + direction * max_distance
    idx = np.arange(i, y.size) if direction > 0 else np.arange(i, -1, -1)
    idx = idx[(g[idx] <= stop) if direction > 0 else (g[idx] >= stop)]
    if idx.size < 4:
        return None
    slope = np.gradient(y[idx], np.abs(g[idx] - g[i]))  # change of density with distance from the peak
    s = int(np.argmin(slope))
    if slope[s] >= 0:
        return None
    later = np.flatnonzero(slope[s:] >= fraction * slope[s])
    k = s + int(later[0]) if later.size else idx.size - 1
    return float(g[idx[k]])


def core_sd(d: Density1D, i: int, level: float, direction: int) -> float:
    """The SD a Gaussian peak at grid index ``i`` would have, given how far (transformed scale) the density
    ``d`` stays above ``level`` x its height on one side (``direction`` +1: above the peak, -1: below):
    half-width at ``level`` / sqrt(-2 ln level), interpolated between grid points. Only the peak's core is
    read, so a tail of other events far from the peak does not change it."""
    y, top = d.density, d.density[i]
    j = i
    while 0 <= j + direction < y.size and y[j] >= level * top:
        j += direction
    if y[j] >= level * top:  # the grid ends before the density falls to the level
        return abs(float(d.grid[j] - d.grid[i])) / float(np.sqrt(-2.0 * np.log(level)))
    y0, y1 = y[j - direction], y[j]
    f = (y0 - level * top) / max(y0 - y1, 1e-300)
    g = d.grid[j - direction] + f * (d.grid[j] - d.grid[j - direction])
    return abs(float(g - d.grid[i])) / float(np.sqrt(-2.0 * np.log(level)))
