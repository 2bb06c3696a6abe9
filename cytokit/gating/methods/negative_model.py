"""The negative population of one marker modelled from its uncontaminated side (Overton-style subtraction).

When positives leave a negative peak as a dim continuum there is no valley to cut at, and a tail gate
(negative mode + k SD) misses the positives that overlap the negative peak. The classic cytometry answer
(Overton 1988, cumulative histogram subtraction) is to model the negative component and count the excess
of the data over it. Here the negative component is fitted on the side of the negative peak that positives
do not reach (below it for a ``+`` marker) and the rest of the events are the estimated positives:

* **with a reference** (events that are negative for the marker, measured in the same file on the same
  channel, e.g. the CD4-negative single lymphocytes for CD25 on CD4 T cells): the reference's distribution
  *is* the negative model, unshifted (same tube, same detector, same autofluorescence). Its weight ``w``
  (the negative fraction of ``x``) is the least-squares fit of ``w x level`` to the empirical CDF of ``x`` at
  the reference's quantiles :data:`CLEAN_LEVELS` (2-80 %: the part of the negative peak where positives of
  ``x`` are rare, as long as they start above most negatives).
  A reference that itself holds a share ``c`` of positives inflates ``w`` by about 1 / (1 - c), so it must
  be a population that is essentially negative (the parent population itself is not).
* **without**: the lower half of ``x`` about its (smoothed) KDE mode is mirrored (negative fraction = 2 x
  share of events below the mode). This assumes a negative peak symmetric on the transformed scale, which
  logicle-transformed autofluorescence plus detector noise is not (longer lower tail), and the top of a
  peak is flat, so the mode moves with noise: it is a rough estimate.

How good is it? On the CD4 T cells of the simulated tuning trials (seeds 101, 404, 505, 606; about
2,000-4,500 CD4 T cells per file; ``benchmarks/gating_accuracy.py``) the CD25+ fraction estimated with
the CD4-negative single lymphocytes as reference and levels up to 0.5 was off by a median 1.65 pp, p95
4.5 pp, max 7.6 pp (608 files; up to 0.7: 1.29 / 3.3 / 5.4 pp); the mirror by a median 8.8 pp (seed 606).
The noise is mostly binomial: at n = 2,000 events the share below the top level has an SD of about
1 pp, i.e. 1.3-2 pp on the fraction (``sd_fraction``). So, on its own, it is an **independent second
estimate** (never catastrophically wrong where a gate can be, e.g. on the wrong side of a lone mode); the
placement rule uses it only where a valley cannot be used (``fallback: excess`` of
:func:`~.density.fit_threshold`, not used by the shipped strategies).

The reference must share the population's spillover: on an independent generator that models spillover
spreading (CD25 under bright CD4-PE spill), the CD8 T cells' CD25 negatives were narrower than the CD4 T
cells' and the estimate was off by up to 59 pp; ``misfit`` catches the gross cases (the estimate is then
``valid`` False), not the moderate ones (docs/gating.md, "Counting the excess instead of the tail").
A reference must also be negative for the marker: one whose main mode has a real mode below it (Singlets or T
cells for CD28: the main mode is the CD28+ T cells) or a large mode above it (half of it positive) gives a
count tens of pp off that ``misfit`` does not always catch, so such a count is not ``valid`` either
(:func:`main_mode_is_lowest`).

Units: ``x``, ``reference`` and every position or spread are on the gate's **transformed** scale (e.g.
logicle 0..1); fractions are **fractions 0..1 of the events** (not %).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .kde import kde_1d

#: fewer finite events (in ``x`` or the reference) than this: no estimate
MIN_EVENTS = 50
#: reference quantile levels at which the negative model is matched to the data: up to the reference's 80th
#: percentile. Positives of ``x`` below that level bias the negative fraction up; a shorter range counts
#: fewer events (more binomial noise). Chosen on the tuning draws of ``benchmarks/gating_accuracy.py`` (CD25
#: on CD4 T cells, CD8 T cells as reference, 608 files): top level 0.5 / 0.6 / 0.7 / 0.8 gave CD25+ CD4
#: p95 3.94 / 3.52 / 3.19 / 2.97 pp with the excess placement (``fallback: excess``).
CLEAN_LEVELS = np.linspace(0.02, 0.8, 25)
#: reference levels whose implied negative fractions are compared (``misfit``)
LOW_LEVELS = np.linspace(0.05, 0.3, 10)
HIGH_LEVELS = np.linspace(0.5, 0.8, 10)
#: the two may differ by this share of the larger; on the simulated tuning draws (CD25 on CD4 T cells, CD8 T
#: reference, 608 files) they differed by at most 0.15; a reference shifted by two negative SDs gives ~0.6
MAX_MISFIT = 0.25
#: KDE bandwidth multiplier for the mirror's mode (a smoother density: the top of a peak is flat and noisy)
MIRROR_ADJUST = 2.0
#: a reference is negative for the marker only if its main (highest-density) mode is its lowest: a mode below
#: it at least this fraction of the main mode's height, with a dip between them to at most
#: :data:`LOWER_MODE_DIP` of that lower mode's height (the valley rule's merge limit), means the main mode
#: is a positive population (Singlets or T cells for CD28: the CD28+ T cells above the CD28- cells)
LOWER_MODE_FRACTION = 0.05
LOWER_MODE_DIP = 0.8
#: nor a mode above the main one (beyond a dip as above) of at least this fraction of its height: the reference
#: then holds a large positive population (Singlets for CD28 where the CD28- cells are the main mode: about
#: half of them CD28+ T cells), which inflates the count's negatives by about 1 / (1 - that share). Smaller
#: upper modes (Singlets' CD25+ cells: median 0.04, 90th percentile 0.17-0.20 of the CD25- mode's height on both
#: generators) are left to ``misfit``
UPPER_MODE_FRACTION = 0.25


@dataclass(frozen=True)
class NegativeModel:
    """The negative component of one marker's values (see the module docstring).

    ``location``: where the negative component sits (mirror: the mode of ``x``; reference fit: the
    reference's median), ``spread``: RMS distance from ``location`` of the clean side's events (both on the
    transformed scale); ``negative_fraction`` / ``positive_fraction``: fractions 0..1 of ``n_events``
    (clipped to [0, 1], summing to 1); ``sd_fraction``: their counting (binomial) standard error, fraction
    0..1 (with a reference, the reference's own sampling noise included); ``method``: "mirror" or
    "reference"; ``side``: where the positives lie ("upper": above the negatives)."""

    location: float
    spread: float
    negative_fraction: float
    positive_fraction: float
    n_events: int
    method: Literal["mirror", "reference"]
    #: binomial standard error of ``positive_fraction`` (fraction 0..1): the counting noise of the share of
    #: events below the matched levels, scaled as the estimate scales it (with a reference: plus the
    #: reference's own sampling noise at those levels)
    sd_fraction: float
    #: reference fit only: how much the negative fractions implied by the reference's lowest levels
    #: (:data:`LOW_LEVELS`) and by its upper levels (:data:`HIGH_LEVELS`) disagree, relative to the larger
    #: (0 = the data's clean side is a scaled copy of the reference); above :data:`MAX_MISFIT` the reference
    #: does not have the negatives' position or shape (e.g. spillover spreads this population's negatives
    #: more) and the estimate is not valid (``valid`` False). NaN for the mirror.
    misfit: float = float("nan")
    side: Literal["upper", "lower"] = "upper"
    #: reference fit only: whether the reference looks negative for the marker (:func:`main_mode_is_lowest`:
    #: its main mode is its lowest and no large mode lies above it); False: the reference holds a dimmer
    #: population below its main mode (so that mode is not its negatives) or many positives, and the count is
    #: not valid
    reference_negative: bool = True

    @property
    def valid(self) -> bool:
        """False when the reference is not negative for the marker (its main mode has another mode below it)
        or does not fit the data's clean side (``misfit`` > :data:`MAX_MISFIT`)."""
        return self.reference_negative and not self.misfit > MAX_MISFIT

    @property
    def positive_pct(self) -> float:
        """The estimated positives as % (0..100) of ``n_events``."""
        return 100.0 * self.positive_fraction

    def threshold_for_count(self, x: np.ndarray) -> float:
        """The threshold at which a gate on the positive side (``x >= t`` for side "upper", ``x < t`` for
        "lower") holds the estimated positive fraction of ``x`` (same transformed scale)."""
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x)]
        q = 1.0 - self.positive_fraction if self.side == "upper" else self.positive_fraction
        return float(np.quantile(x, min(max(q, 0.0), 1.0)))


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def main_mode_is_lowest(r: np.ndarray) -> bool:
    """Whether ``r`` (a reference's values, transformed scale, positives above) looks negative for the marker:
    its main (highest-density) mode is its lowest real mode -- no local maximum below it of at least
    :data:`LOWER_MODE_FRACTION` of its height with a dip between them down to :data:`LOWER_MODE_DIP` of that
    maximum's height -- and no such maximum above it reaches :data:`UPPER_MODE_FRACTION` of its height."""
    if r.size < MIN_EVENTS:
        return True
    y = kde_1d(r).density
    top = int(np.argmax(y))
    for i in range(1, y.size - 1):
        if i == top or not (y[i] > y[i - 1] and y[i] >= y[i + 1]):
            continue
        lo, hi = sorted((i, top))
        dip = float(y[lo:hi + 1].min()) <= LOWER_MODE_DIP * float(y[i])
        if dip and y[i] >= (LOWER_MODE_FRACTION if i < top else UPPER_MODE_FRACTION) * y[top]:
            return False
    return True


def _mirror(x: np.ndarray, side: str) -> NegativeModel:
    d = kde_1d(x, adjust=MIRROR_ADJUST)
    m = float(d.grid[int(np.argmax(d.density))])
    clean = x[x < m] - m if side == "upper" else x[x > m] - m
    q = clean.size / x.size
    neg = min(1.0, 2.0 * q)
    spread = float(np.sqrt(np.mean(clean ** 2))) if clean.size else 0.0
    return NegativeModel(location=m, spread=spread, negative_fraction=neg, positive_fraction=1.0 - neg,
                         n_events=int(x.size), method="mirror", sd_fraction=2.0 * float(np.sqrt(q * (1 - q) / x.size)),
                         side=side)  # type: ignore[arg-type]


def _reference_fit(x: np.ndarray, r: np.ndarray, side: str) -> NegativeModel:
    sign = 1.0 if side == "upper" else -1.0
    xs = np.sort(sign * x)  # for side "lower" work on the mirrored axis: positives above, clean side below
    rs = sign * r
    fx = np.searchsorted(xs, np.quantile(rs, CLEAN_LEVELS)) / xs.size
    neg = min(max(float(fx @ CLEAN_LEVELS / (CLEAN_LEVELS @ CLEAN_LEVELS)), 0.0), 1.0)
    # does the data's clean side look like the scaled reference? The negative fraction implied by the
    # reference's lowest levels and by its upper levels must agree; a reference whose negatives sit higher or
    # lower, or spread less or more, than this population's gives a strong trend between the two
    w_lo, w_hi = (float(np.searchsorted(xs, np.quantile(rs, lv)).mean() / xs.size / lv.mean())
                  for lv in (LOW_LEVELS, HIGH_LEVELS))
    misfit = abs(w_hi - w_lo) / max(w_hi, w_lo, 1e-9)
    med = float(np.median(rs))
    clean = rs[rs < med] - med
    spread = float(np.sqrt(np.mean(clean ** 2))) if clean.size else 0.0
    top = float(CLEAN_LEVELS[-1])
    f = min(max(neg * top, 0.0), 1.0)
    # counting noise of the share of x below the reference's top level, plus the reference's own sampling
    # noise (its quantile at that level moves; x's share there moves with the negative fraction)
    sd = float(np.sqrt(f * (1.0 - f) / xs.size + neg * neg * top * (1.0 - top) / rs.size)) / top
    return NegativeModel(location=sign * med, spread=spread, negative_fraction=neg, positive_fraction=1.0 - neg,
                         n_events=int(x.size), method="reference", sd_fraction=sd, misfit=misfit,
                         side=side, reference_negative=main_mode_is_lowest(rs))  # type: ignore[arg-type]


def negative_model(x: np.ndarray, *, reference: np.ndarray | None = None,
                   side: Literal["upper", "lower"] = "upper") -> NegativeModel | None:
    """Model the negative component of ``x`` (one marker's values, transformed scale) from the side of the
    negative peak that positives do not reach (``side``: where the positives are; "upper" for a ``+``
    marker), and estimate the positive fraction as the excess of the data over it.

    ``reference``: values of a population that is mostly negative for the marker, same file and scale;
    its shape is the negative model (see the module docstring). Without one (or with fewer than
    :data:`MIN_EVENTS` finite reference values) the lower half of ``x`` is mirrored about its mode.
    Returns None when ``x`` has fewer than :data:`MIN_EVENTS` finite values. Fractions are 0..1."""
    x = _finite(x)
    if x.size < MIN_EVENTS:
        return None
    if reference is not None:
        r = _finite(reference)
        if r.size >= MIN_EVENTS:
            return _reference_fit(x, r, side)
    return _mirror(x, side)
