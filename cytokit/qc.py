"""Quality control of one sample before gating: margin events and time anomalies.

Contract
--------
:func:`run_qc` takes a :class:`~cytokit.sample.Sample` on the **linear scale** (as read, compensated or
not; not transformed) and :class:`QCParams`, and returns a :class:`QCResult` with a boolean ``keep``
mask over the sample's events, events removed per check, flags, and a small report table. The sample is
not modified; ``result.apply(sample)`` returns the kept events as a new Sample. Checks:

* ``nonfinite`` — events with NaN/infinite values (the FCS reader keeps them and warns).
* ``margin`` — events at or above the top of a scatter/fluorescence channel's range (``$PnR - 1``
  decoded to the linear scale, i.e. divided by $PnG or through $PnE) and, for floating-point data, events
  piled up on the channel's observed maximum.
* ``negative`` — events below ``-negative_fraction × top of range`` (negative extremes).
* ``flow_rate`` — the acquisition time is cut into equal time bins; bins whose event count deviates from
  the median count by more than ``rate_mad_threshold`` robust SDs (1.4826 × MAD) *and* by more than
  ``rate_min_relative`` (fraction of the median) are removed (clogs, bubbles, bursts), in the spirit
  of flowAI's flow-rate check. A lone bin (neither neighbour flagged) needs ``rate_lone_bin_threshold``
  robust SDs.
* ``signal_shift`` — events (in acquisition order) are cut into bins of ``events_per_bin``; per bin the
  signal level of each scatter/fluorescence channel is the mean of ``asinh(x / signal_cofactor)`` over a
  systematic subsample of ``signal_sample_per_bin`` events (a mean on a compressed scale, because a
  median jumps between modes on channels that are ~50% positive); bins whose level deviates from the
  median level by more than ``signal_mad_threshold`` robust SDs *and* ``signal_min_shift`` asinh units
  on any channel are removed, in the spirit of PeacoQC.
  Good runs shorter than ``min_good_run`` bins between removed bins are removed too.
  A time channel that resets a few times (a wrapping or restarted clock: at most
  ``max(3, n_events / 5000)`` decreases) is continued across the resets for the flow-rate check (flag
  ``time_not_monotonic``); with more decreases the flow-rate check is skipped.
* sustained changes (``drift_checks``) — a changepoint test on the per-bin event rate and on each
  channel's per-bin signal level (for this test a mean trimmed by ``drift_trim`` at each end, so a few
  far events per bin do not move it; per-bin outliers set to the median first): the best single split's
  difference of segment means, in units of the bin noise (robust SD of lag-1..``drift_noise_lag``
  differences, the largest, so a level that wanders over several bins is noise), must exceed
  ``drift_z`` *and* the change must exceed ``drift_min_rate_change`` (fraction of the rate) or
  ``drift_min_shift`` (asinh units). The file is flagged ``flow_rate_drift`` / ``signal_drift``. A rate
  drift removes nothing (the signal is what biases populations). A signal drift removes events only when
  it is abrupt (at least ``drift_min_abrupt`` of the change within ``drift_abrupt_bins`` of the split):
  then the bins of the shorter side that are off the longer side by ``drift_min_shift`` go, when they are
  at most ``drift_max_remove`` of the run. A gradual or long drift leaves no segment that is "the" bad
  one, so its events are kept and the flag asks for review.

Percentages in the report table are percent of the sample's events (0–100). The minimum-events rule
(e.g. ≥ 2,500 lymphocytes) needs gating, so it is a separate helper, :func:`min_events_flag`, that the
pipeline applies after gating.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .errors import QCError
from .sample import Sample

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = ("nonfinite", "margin", "negative", "flow_rate", "signal_shift")
Kind = Literal["scatter", "fluorescence", "time", "other"]


class QCParams(BaseModel):
    """Parameters of :func:`run_qc` (the ``qc:`` block of a pipeline YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remove_nonfinite: bool = True
    margins: bool = Field(True, description="remove events at the top of the range")
    margin_kinds: tuple[Kind, ...] = ("scatter", "fluorescence")
    pileup_min_events: int = Field(10, ge=2, description="float data: events tied at the observed max "
                                                         "that count as a pile-up")
    negatives: bool = True
    negative_fraction: float = Field(0.1, gt=0, description="negative extreme = below -fraction x top")
    time_checks: bool = True
    time_channel: str | None = Field(None, description="default: the first channel of kind 'time'")
    events_per_bin: int | None = Field(None, ge=50, description="default: n_events / 100, within 100..1000")
    min_bins: int = Field(8, ge=3, description="fewer bins than this: time checks are skipped")
    rate_mad_threshold: float = Field(4.0, gt=0)
    rate_min_relative: float = Field(0.25, ge=0, description="fraction of the median bin count")
    rate_lone_bin_threshold: float = Field(6.0, gt=0, description="robust SDs for a bin with no flagged "
                                                                   "neighbour")
    signal_mad_threshold: float = Field(6.0, gt=0)
    signal_min_shift: float = Field(0.15, ge=0, description="asinh units (~15% on a log scale)")
    signal_cofactor: float = Field(150.0, gt=0)
    signal_sample_per_bin: int = Field(250, ge=50, description="events per bin used for the levels")
    signal_channels: tuple[str, ...] | None = Field(None, description="default: scatter + fluorescence")
    drift_checks: bool = Field(True, description="changepoint test for sustained rate/signal changes")
    drift_z: float = Field(8.0, gt=0, description="changepoint statistic (robust SDs of the bin noise)")
    drift_min_rate_change: float = Field(0.3, ge=0, description="fraction of the reference rate")
    drift_min_shift: float = Field(0.08, ge=0, description="asinh units, on any channel")
    drift_max_remove: float = Field(0.25, gt=0, le=1, description="a sustained change spanning more of the run "
                                                                  "is flagged but its events are kept")
    drift_trim: float = Field(0.2, ge=0, lt=0.5, description="fraction trimmed from each end of a bin's sample "
                                                             "for the drift levels (rare events ignored)")
    drift_noise_lag: int = Field(4, ge=1, description="bins; the bin noise is the largest of the lag-1..lag "
                                                      "difference spreads (slow wander is noise, not a change)")
    drift_min_abrupt: float = Field(0.5, ge=0, le=1, description="a signal drift removes events only when this "
                                                                 "fraction of its change happens within "
                                                                 "drift_abrupt_bins of the split")
    drift_abrupt_bins: int = Field(3, ge=1, description="bins each side of the split for the abruptness")
    min_good_run: int = Field(3, ge=0, description="bins")
    flag_removed_fraction: float = Field(0.2, gt=0, le=1, description="flag the sample above this")
    flag_margin_fraction: float = Field(0.05, gt=0, le=1)


@dataclass(frozen=True)
class QCResult:
    """Outcome of :func:`run_qc`; ``removed`` counts events flagged by each check (they may overlap)."""

    keep: np.ndarray
    removed: dict[str, int]
    flags: tuple[str, ...]
    params: QCParams
    details: dict[str, str] = field(default_factory=dict)
    signal_bins: Mapping[str, np.ndarray] = field(default_factory=dict)
    rules: "QCRules | None" = None

    @property
    def bins(self) -> "pd.DataFrame":
        """The signal-shift check's event bins: ``first_event`` and ``removed_signal_shift`` (bool), one
        row per bin (empty when that check did not run)."""
        import pandas as pd

        return pd.DataFrame(dict(self.signal_bins))

    @property
    def n_events(self) -> int:
        return int(self.keep.size)

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    @property
    def removed_fraction(self) -> float:
        """Fraction (0–1) of events removed by any check."""
        return 1.0 - self.n_kept / self.n_events if self.n_events else 0.0

    def table(self) -> "pd.DataFrame":
        """One row per check plus ``total``: events removed, percent of events (0–100), detail."""
        import pandas as pd

        n = max(self.n_events, 1)
        rows = [{"check": c, "events_removed": self.removed.get(c, 0),
                 "pct_removed": 100.0 * self.removed.get(c, 0) / n, "detail": self.details.get(c, "")}
                for c in CHECKS]
        removed = self.n_events - self.n_kept
        rows.append({"check": "total", "events_removed": removed, "pct_removed": 100.0 * removed / n,
                     "detail": ";".join(self.flags)})
        return pd.DataFrame(rows)

    def to_gates(self, name: str = "QC pass", *, taken: tuple[str, ...] = ()) -> list:
        """The keep mask as Gating-ML gate nodes on the raw scale (see :meth:`QCRules.to_nodes`); check
        ``rules.exact`` for whether they reproduce ``keep`` event for event."""
        if self.rules is None:
            raise QCError("this QC result carries no rules (it was not made by run_qc)")
        return self.rules.to_nodes(name, taken=taken)

    def apply(self, sample: Sample) -> Sample:
        """The kept events as a new Sample (provenance records the QC)."""
        return sample.subset(self.keep, note=f"QC kept {self.n_kept}/{self.n_events} events "
                                             f"({';'.join(self.flags) or 'no flags'})")


#: lowest finite float32: as a lower limit it keeps every finite event and drops -inf and NaN
FINITE_LOWER = float(-np.finfo(np.float32).max)


@dataclass(frozen=True)
class QCRules:
    """The keep decision of :func:`run_qc` as ordinary gate rules on the raw scale QC saw (linear, as
    read, uncompensated).

    An event is kept when, on every channel (PnN) of ``ranges``, ``lower <= x < upper`` (``None`` = open
    side, compared with ±inf, so NaN and +inf are in no range), and its ``time_channel`` value lies in
    none of the half-open ``removed_time`` intervals ``[start, end)`` (raw time units of the file;
    ``None`` = open end). Every limit is a float32 value, so comparisons in float32 or float64 agree.
    ``exact`` says whether the rules reproduce ``QCResult.keep`` event for event; it is False when a
    removed run of event-order bins starts or ends between events with equal time, when time is not
    monotonic, or when non-finite values are kept (``remove_nonfinite: false``); ``note`` says why.
    """

    ranges: dict[str, tuple[float | None, float | None]]
    time_channel: str | None = None
    removed_time: tuple[tuple[float | None, float | None], ...] = ()
    exact: bool = True
    note: str = ""

    def _time_channel(self) -> str:
        if self.time_channel is None:
            raise QCError("QC rules remove time intervals but name no time channel")
        return self.time_channel

    def keep(self, sample: Sample) -> np.ndarray:
        """The rules evaluated on ``sample`` (a boolean mask; equals ``QCResult.keep`` when ``exact``)."""
        ok = np.ones(sample.n_events, dtype=bool)
        for pnn, (lo, hi) in self.ranges.items():
            x = sample.events[:, sample.channel_index(pnn)]
            ok &= (x >= (-np.inf if lo is None else lo)) & (x < (np.inf if hi is None else hi))
        if self.removed_time:
            t = sample.events[:, sample.channel_index(self._time_channel())]
            for lo, hi in self.removed_time:
                ok &= ~((t >= (-np.inf if lo is None else lo)) & (t < (np.inf if hi is None else hi)))
        return ok

    def to_nodes(self, name: str = "QC pass", *, taken: tuple[str, ...] = ()) -> list:
        """Gating-ML gate nodes (:class:`cytokit.gatingml.GateNode`) for the rules: one root range gate
        per channel (``QC <PnN>``), one root range gate per removed time interval (``QC removed time k``)
        and the root boolean gate ``name`` = AND of the ranges and NOT of each removed interval. Empty
        when there is nothing to express. Node ids avoid ``taken``; the last node is ``name``'s."""
        from .gates import BooleanGate, RectangleGate
        from .gatingml.model import DimensionSpec, GateNode

        used = set(taken)

        def fresh(base: str) -> str:
            nid, k = base, 2
            while nid in used:
                nid, k = f"{base} ({k})", k + 1
            used.add(nid)
            return nid

        nodes, operands = [], []
        for pnn, (lo, hi) in self.ranges.items():
            nid = fresh(f"QC {pnn}")
            nodes.append(GateNode(nid, None, RectangleGate(nid, (pnn,), lower=(lo,), upper=(hi,)),
                                  (DimensionSpec(pnn),)))
            operands.append((nid, False))
        for k, (lo, hi) in enumerate(self.removed_time, start=1):
            nid = fresh(f"QC removed time {k}")
            time_channel = self._time_channel()
            nodes.append(GateNode(nid, None, RectangleGate(nid, (time_channel,), lower=(lo,), upper=(hi,)),
                                  (DimensionSpec(time_channel),)))
            operands.append((nid, True))
        if not operands:
            return []
        root = fresh(name)
        nodes.append(GateNode(name, None, BooleanGate(root, (), op="and", operands=tuple(operands))))
        return nodes


def _rules(sample: Sample, params: QCParams, limits: dict[int, list], all_finite: bool, time_bad: np.ndarray,
           tidx: int | None) -> QCRules:
    """:class:`QCRules` for the decisions :func:`run_qc` made (``limits`` from :func:`_margin_masks`,
    ``time_bad`` = events removed by the time checks)."""
    ev = sample.events
    names = sample.channel_table.texts("pnn")
    bounds = {j: list(v) for j, v in limits.items()}
    exact, notes = True, []
    if not all_finite:
        nonfinite = ~np.isfinite(_column_reduce(np.abs(ev), np.maximum))  # NaN propagates through maximum
        if params.remove_nonfinite:
            for j in np.flatnonzero(nonfinite):
                lo_hi = bounds.setdefault(int(j), [None, None])
                lo_hi[0] = FINITE_LOWER if lo_hi[0] is None else lo_hi[0]
        elif any(nonfinite[j] for j in bounds):
            exact = False
            notes.append("non-finite values are kept on gated channels")
    ranges = {names[j]: (lo, hi) for j, (lo, hi) in sorted(bounds.items())}
    intervals: list[tuple[float | None, float | None]] = []
    if time_bad.any():
        t = ev[:, tidx].astype(np.float64)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], time_bad.view(np.int8), [0]))))
        monotonic = bool(np.isfinite(t).all() and not (t[1:] < t[:-1]).any())
        if not monotonic:
            exact = False
            notes.append("time is not monotonic")
        for i, j in zip(edges[::2], edges[1::2]):
            if (i > 0 and not t[i - 1] < t[i]) or (j < t.size and not t[j - 1] < t[j]):
                exact = False
                notes.append(f"removed events {i}-{j - 1} share a time value with kept events")
            intervals.append((float(t[i]) if i > 0 else None, float(t[j]) if j < t.size else None))
    return QCRules(ranges=ranges, time_channel=names[tidx] if tidx is not None else None,
                   removed_time=tuple(intervals), exact=exact, note="; ".join(notes))


# -- margins -------------------------------------------------------------------------------------------
def channel_top(row) -> float:
    """Top of a channel's range on the linear scale: ``$PnR - 1`` through $PnE/$PnG; NaN if unknown."""
    rng = float(row.range)
    if not np.isfinite(rng) or rng <= 0:
        return float("nan")
    if row.log_decades > 0:
        return float(row.log_offset * 10.0 ** (row.log_decades * (rng - 1) / rng))
    return (rng - 1) / float(row.gain or 1.0)


_WIDE = 64  # rows folded into one wide row for fast column reductions
_COUNT_BLOCK_ROWS = 1024 * _WIDE  # rows compared at a time by _column_counts_equal


def _column_reduce(ev: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """``ufunc.reduce(ev, axis=0)`` computed on ``_WIDE`` rows folded together (one contiguous pass;
    numpy's axis-0 reduction of a narrow C-ordered matrix is ~30x slower)."""
    n, c = ev.shape
    m = n // _WIDE * _WIDE
    if not m:
        return ufunc.reduce(ev, axis=0)
    out = ufunc.reduce(ufunc.reduce(ev[:m].reshape(-1, _WIDE * c), axis=0).reshape(_WIDE, c), axis=0)
    if m < n:
        out = ufunc(out, ufunc.reduce(ev[m:], axis=0))
    return out


def _column_counts_equal(ev: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per column, how many events equal ``values[column]`` (one contiguous pass)."""
    n, c = ev.shape
    m = n // _WIDE * _WIDE
    counts = np.zeros(c, dtype=np.int64)
    wide = np.tile(values.astype(ev.dtype), _WIDE)
    for r0 in range(0, m, _COUNT_BLOCK_ROWS):  # blocks: the comparison's temporary stays small and in cache
        hit = ev[r0:min(m, r0 + _COUNT_BLOCK_ROWS)].reshape(-1, _WIDE * c) == wide
        counts += np.add.reduce(hit, axis=0, dtype=np.int64).reshape(_WIDE, c).sum(axis=0)
    if m < n:
        counts += (ev[m:] == values.astype(ev.dtype)).sum(axis=0)
    return counts


def _margin_masks(sample: Sample, params: QCParams, is_float: bool, all_finite: bool,
                  limits: dict[int, list] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(high-margin events, negative-extreme events, per-channel notes).

    Column maxima/minima (one fast pass each) decide which channels can have margin events at all, so
    only those columns are compared event by event. ``limits``, when given, receives the limit of every
    checked channel, ``{column: [lower or None, upper or None]}`` (float32 values: kept events have
    ``lower <= x < upper``)."""
    ev = sample.events
    n = ev.shape[0]
    high = np.zeros(n, dtype=bool)
    low = np.zeros(n, dtype=bool)
    notes: list[str] = []
    if not n:
        return high, low, notes
    chans = sample.channel_table
    sel = np.array([k in params.margin_kinds for k in chans.column("kind")], dtype=bool)
    tops = np.array([channel_top(r) for r in chans.rows()], dtype=np.float64)
    colmax = _column_reduce(ev, np.fmax)  # fmax/fmin ignore NaN
    colmin = _column_reduce(ev, np.fmin)
    if params.margins:
        below_top = sel & np.isfinite(colmax) & ~(colmax >= tops)
        ties = _column_counts_equal(ev, np.where(below_top, colmax, np.nan)) if is_float and below_top.any() \
            else np.zeros(len(tops), dtype=np.int64)
        for j in np.flatnonzero(sel):
            thr = tops[j]
            if below_top[j] and ties[j] >= params.pileup_min_events:
                thr = float(colmax[j])  # pile-up on the observed maximum: the detector's real top
            if limits is not None and np.isfinite(thr):
                limits.setdefault(int(j), [None, None])[1] = float(np.float32(thr))
            if np.isfinite(thr) and colmax[j] >= np.float32(thr):
                hit = ev[:, j] >= np.float32(thr)
                notes.append(f"{chans.column('pnn')[j]}:{int(hit.sum())}")
                high |= hit
    if params.negatives:
        linear = (np.array(chans.column("log_decades")) == 0) & sel & np.isfinite(tops)
        for j in np.flatnonzero(linear):
            limit = np.float32(-params.negative_fraction * tops[j])
            if limits is not None:
                limits.setdefault(int(j), [None, None])[0] = float(limit)
            if colmin[j] < limit:
                low |= ev[:, j] < limit
    return high, low, notes


# -- time anomalies ------------------------------------------------------------------------------------
def _robust_z(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(robust z, absolute deviation) of values against their median along ``axis``."""
    med = np.median(values, axis=axis, keepdims=True)
    dev = values - med
    mad = 1.4826 * np.median(np.abs(dev), axis=axis, keepdims=True)
    floor = np.maximum(1e-9, 1e-6 * np.abs(med))
    return dev / np.maximum(mad, floor), dev


def _close_short_runs(bad: np.ndarray, min_good_run: int) -> np.ndarray:
    """Also flag runs of good bins shorter than ``min_good_run`` that lie between flagged bins."""
    if min_good_run <= 0 or bad.sum() < 2:
        return bad
    out = bad.copy()
    idx = np.flatnonzero(bad)
    gaps = np.diff(idx) - 1
    for start, gap in zip(idx[:-1], gaps):
        if 0 < gap < min_good_run:
            out[start + 1:start + 1 + gap] = True
    return out


def _time_index(sample: Sample, params: QCParams) -> int | None:
    if params.time_channel:
        return sample.channel_index(params.time_channel)
    kinds = sample.channel_table.column("kind")
    names = [n.casefold() for n in sample.channel_table.texts("pnn")]
    candidates = [i for i, k in enumerate(kinds) if k == "time"]
    if not len(candidates):
        return None
    exact = [i for i in candidates if names[i] == "time"]
    return int(exact[0] if exact else candidates[0])


def _unwrap_time(t: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """Time continued across clock resets/wrap-arounds (``resets``: indices i with t[i+1] < t[i]): after
    each reset the clock resumes at the last value plus the median step between events."""
    steps = np.diff(t)
    step = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
    jump = np.zeros(t.size)
    jump[resets + 1] = t[resets] - t[resets + 1] + step
    return t + np.cumsum(jump)


def _flow_rate(t: np.ndarray, n_bins: int, params: QCParams
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(per-event bad mask, per-bin counts, per-bin bad, sustained rate change found) over equal time
    bins."""
    t0, t1 = float(t[0]), float(t[-1])
    which = np.minimum(((t - t0) * (n_bins / (t1 - t0))).astype(np.int64), n_bins - 1)
    counts = np.bincount(which, minlength=n_bins).astype(float)
    z, dev = _robust_z(counts)
    med = np.median(counts)
    bad = (np.abs(z) > params.rate_mad_threshold) & (np.abs(dev) > params.rate_min_relative * med)
    # a lone bin (no flagged neighbour) must be more extreme: among 100 Poisson bins one passes
    # 4 robust SDs by chance in about 1 clean file in 40
    lone = bad & ~np.r_[False, bad[:-1]] & ~np.r_[bad[1:], False]
    bad &= ~lone | (np.abs(z) > params.rate_lone_bin_threshold)
    if params.drift_checks and med > 0:
        # a sustained change of rate (drift, slowly building clog) that the per-bin rule misses
        rel = np.where(bad, 1.0, counts / med)  # per-bin outliers set to the median (see _signal_shift)
        split, zc, change = _changepoint(rel, max(2, params.min_bins // 2), params.drift_noise_lag)
        # flagged only: a slower or faster stream with an unchanged signal does not bias the populations
        drift = bool(zc[0] > params.drift_z and abs(change[0]) > params.drift_min_rate_change)
    else:
        drift = False
    bad = _close_short_runs(bad, params.min_good_run)
    return bad[which], counts, bad, drift


def _changepoint(series: np.ndarray, min_segment: int, max_lag: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
    """Best single change in the mean of each column of ``series`` (bins × columns).

    For every split ``k`` the difference of the segment means is standardised by the bin noise and
    √(1/k + 1/(n−k)). The noise σ is the largest over lags L = 1, 2, 4, … ≤ ``max_lag`` of 1.4826 × MAD
    of the lag-L differences / √2: for independent bins every lag gives the same σ, a step or a slow
    trend hardly inflates it, but a level that wanders up and down over several bins (real acquisitions
    of mixed or sparse samples) is noise at the longer lags and not a change. Returns (split index shared by the columns with the largest statistic, per-column
    statistic at their own best split, per-column mean difference later − earlier at that split)."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    ks = np.arange(min_segment, n - min_segment + 1)
    if not len(ks):
        return 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    sigma = np.zeros(x.shape[1])
    lag = 1
    while lag <= max(1, max_lag) and lag < n:
        d = x[lag:] - x[:-lag]
        sigma = np.maximum(sigma, 1.4826 * np.median(np.abs(d - np.median(d, axis=0)), axis=0) / np.sqrt(2))
        lag *= 2
    sigma = np.maximum(sigma, 1e-9 + 1e-6 * np.abs(np.median(x, axis=0)))
    csum = np.cumsum(x, axis=0)
    total = csum[-1]
    left = csum[ks - 1] / ks[:, None]
    right = (total - csum[ks - 1]) / (n - ks)[:, None]
    diff = right - left
    z = \
        np.abs(diff) / (sigma[None, :] * np.sqrt(1.0 / ks + 1.0 / (n - ks))[:, None])
    best = np.argmax(z, axis=0)
    cols = np.arange(x.shape[1])
    k_all = int(ks[np.unravel_index(np.argmax(z), z.shape)[0]])
    return k_all, z[best, cols], diff[best, cols]


def _step_bins(levels: np.ndarray, split: int, min_change: float, max_fraction: float) -> np.ndarray:
    """Bins on the shorter side of an abrupt sustained change at ``split`` (the longer side is the run's
    normal condition; on a tie the later side is the changed one) whose level differs from the longer
    side's median by more than ``min_change`` on any column of ``levels``; none when they would be more
    than ``max_fraction`` of the bins (a long change: the file is flagged, no side is "the" bad one)."""
    n = levels.shape[0]
    ref, changed = (slice(split, n), slice(0, split)) if split < n - split else (slice(0, split), slice(split, n))
    bad = np.zeros(n, dtype=bool)
    bad[changed] = (np.abs(levels[changed] - np.median(levels[ref], axis=0)) > min_change).any(axis=1)
    if bad.mean() > max_fraction:
        bad[:] = False
    return bad


def _signal_shift(events: np.ndarray, valid: np.ndarray, names: list[str], cols: list[int], n_bins: int,
                  params: QCParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str], bool]:
    """(per-event bad mask, bin starts, per-bin bad, channels that shifted, channels that drifted, whether
    the drift removed bins) over event-order bins.

    Levels use only ``valid`` events (not already removed as margin/negative/non-finite)."""
    n = events.shape[0]
    size = n // n_bins
    starts = np.arange(n_bins) * size
    stride = max(1, size // params.signal_sample_per_bin)  # a systematic subsample per bin is enough
    c = np.float32(params.signal_cofactor)
    cut = size * (n_bins - 1)
    w_body = valid[:cut].reshape(n_bins - 1, size)[:, ::stride].astype(np.float32)
    w_last = valid[starts[-1]::stride].astype(np.float32)
    n_body = np.maximum(w_body.sum(axis=1), 1.0)
    n_last = max(float(w_last.sum()), 1.0)
    level = np.empty((n_bins, len(cols)))
    # drift levels: trimmed means of the same subsample (robust to a few far events per bin)
    trimmed = _TrimmedLevels(valid, starts, size, stride, params.drift_trim) \
        if params.drift_checks and params.drift_trim > 0 else None
    dlevel = np.zeros((n_bins, len(cols))) if trimmed is not None else level
    for k, j in enumerate(cols):
        sub = events[:cut, j].reshape(n_bins - 1, size)[:, ::stride]
        body, last = np.arcsinh(sub / c), np.arcsinh(events[starts[-1]::stride, j] / c)
        level[:-1, k] = (body * w_body).sum(axis=1) / n_body
        level[-1, k] = float((last * w_last).sum()) / n_last
        if trimmed is not None:
            dlevel[:, k] = trimmed.levels(body, last)
    z, dev = _robust_z(level)
    hits = (np.abs(z) > params.signal_mad_threshold) & (np.abs(dev) > params.signal_min_shift)
    bad = hits.any(axis=1)
    drifted: list[str] = []
    removed_drift = False
    if params.drift_checks:
        # levels robust to a few far events per bin (debris, doublets, a sparse second population);
        # bins the per-bin rule already removed are set to the median so a short excursion is not
        # read as a sustained change
        steady = np.where(bad[:, None], np.median(dlevel, axis=0), dlevel)
        split, zc, change = _changepoint(steady, max(2, params.min_bins // 2), params.drift_noise_lag)
        drift = (zc > params.drift_z) & (np.abs(change) > params.drift_min_shift)
        if drift.any():
            drifted = [names[cols[k]] for k in np.flatnonzero(drift)]
            # only an abrupt sustained change (a step: a clog that stays, a bubble, a changed setting)
            # separates events acquired under other conditions; a gradual drift has no cut point
            # that makes the kept events right, so it is flagged and its events kept
            abrupt = drift & (_abruptness(steady, split, params.drift_abrupt_bins) >= params.drift_min_abrupt)
            if abrupt.any():
                step = _step_bins(steady[:, abrupt], split, params.drift_min_shift, params.drift_max_remove)
                removed_drift = bool(step.any())
                bad |= step
    bad = _close_short_runs(bad, params.min_good_run)
    shifted = [names[cols[k]] for k in np.flatnonzero(hits.any(axis=0))]
    per_event = np.repeat(bad, np.diff(np.append(starts, n)))
    return per_event, starts, bad, shifted, drifted, removed_drift


class _TrimmedLevels:
    """Per bin, the mean of ``asinh(x / cofactor)`` over the bin's systematic subsample of ``valid`` events
    after dropping the lowest and highest ``trim`` fraction (bins of ``size`` events from ``starts``, every
    ``stride``-th event; the last bin runs to the end). Which subsample entries count and how many are
    trimmed is the same for every channel, so it is worked out once; :meth:`levels` takes one channel's
    ``asinh`` values of the subsample, as the per-bin levels compute them."""

    def __init__(self, valid: np.ndarray, starts: np.ndarray, size: int, stride: int, trim: float) -> None:
        n = valid.shape[0]
        body = starts[:-1, None] + np.arange(0, size, stride)[None, :]
        last = np.arange(starts[-1], n, stride)
        idx = np.full((len(starts), max(body.shape[1], last.size)), -1, dtype=np.int64)
        idx[:-1, :body.shape[1]] = body
        idx[-1, :last.size] = last
        ok = idx >= 0
        ok[ok] = valid[idx[ok]]
        count = ok.sum(axis=1)
        self._ok = ok
        self._lo = np.floor(trim * count).astype(np.int64)
        self._hi = count - self._lo
        self._rows = np.arange(len(starts))

    def levels(self, body: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Trimmed mean per bin of one channel: ``body`` (bins but the last x subsample) and ``last`` (the
        last bin's subsample) are the ``asinh(x / cofactor)`` values; entries of removed events (and the
        padding of unequal bins) are set to inf, sorted last and left out."""
        x = np.full(self._ok.shape, np.inf, dtype=np.result_type(body, last, np.float32))
        x[:-1, :body.shape[1]] = body
        x[-1, :last.size] = last
        x[~self._ok] = np.inf
        x.sort(axis=1)  # invalid (inf) last
        cs = np.concatenate([np.zeros((len(self._rows), 1)),
                             np.cumsum(np.where(np.isinf(x), 0.0, x), axis=1)], axis=1)
        lo, hi = self._lo, self._hi
        return (cs[self._rows, hi] - cs[self._rows, lo]) / np.maximum(hi - lo, 1)


def _abruptness(levels: np.ndarray, split: int, width: int) -> np.ndarray:
    """Per column, how much of the change at ``split`` happens within ``width`` bins of it: the
    difference of the medians of the ``width`` bins after and before the split over the difference of
    the segment means (1 for a step, near 0 for a slow ramp; 0 when the two disagree in sign)."""
    n = levels.shape[0]
    w = max(1, min(width, split, n - split))
    local = np.median(levels[split:split + w], axis=0) - np.median(levels[split - w:split], axis=0)
    total = levels[split:].mean(axis=0) - levels[:split].mean(axis=0)
    ratio = local / np.where(np.abs(total) > 1e-12, total, np.inf)
    return np.clip(ratio, 0.0, None)


def run_qc(sample: Sample, params: QCParams | None = None) -> QCResult:
    """Run the QC checks of the module contract on ``sample``; returns a :class:`QCResult`."""
    params = params or QCParams()
    n = sample.n_events
    removed: dict[str, int] = {}
    details: dict[str, str] = {}
    flags: list[str] = []
    keep = np.ones(n, dtype=bool)
    ev = sample.events

    all_finite = n == 0 or bool(np.isfinite(ev.min()) and np.isfinite(ev.max()))  # no temporary mask
    finite = keep.copy() if all_finite else np.isfinite(ev).all(axis=1)
    if params.remove_nonfinite:
        removed["nonfinite"] = int(n - finite.sum())
        keep &= finite
        if removed["nonfinite"]:
            flags.append("nonfinite_events")

    is_float = str(sample.metadata.get("datatype", "F")).strip().upper() in ("F", "D")
    limits: dict[int, list] = {}
    high, low, notes = _margin_masks(sample, params, is_float, all_finite, limits)
    removed["margin"] = int(high.sum())
    removed["negative"] = int(low.sum())
    details["margin"] = ", ".join(notes)
    keep &= ~high & ~low
    if n and removed["margin"] > params.flag_margin_fraction * n:
        flags.append("margin_events")
    if n and removed["negative"] > params.flag_margin_fraction * n:
        flags.append("negative_events")

    bins: dict[str, np.ndarray] = {}
    time_bad = np.zeros(n, dtype=bool)  # events removed by the time checks (for the rules)
    removed["flow_rate"] = removed["signal_shift"] = 0
    per_bin = params.events_per_bin or int(np.clip(n // 100, 100, 1000))
    n_bins = n // per_bin
    tidx = _time_index(sample, params) if params.time_checks else None
    if params.time_checks and tidx is None:
        flags.append("no_time_channel")
        details["flow_rate"] = details["signal_shift"] = "skipped: no time channel"
    elif params.time_checks and n_bins < params.min_bins:
        details["flow_rate"] = details["signal_shift"] = (
            f"skipped: {n} events < {params.min_bins} bins x {per_bin}")
    elif params.time_checks:
        t = ev[:, tidx].astype(np.float64)
        unwrapped = ""
        finite_t = bool(np.isfinite(t.min()) and np.isfinite(t.max()))
        backwards = t[1:] < t[:-1] if finite_t else None
        resets = np.flatnonzero(backwards) if backwards is not None else np.array([], dtype=np.int64)
        if finite_t and 0 < len(resets) <= max(3, n // 5000):
            # a clock that wraps or restarts a few times: continue it from where it stopped
            t = _unwrap_time(t, resets)
            flags.append("time_not_monotonic")
            unwrapped = f"; time channel is not monotonic ({len(resets)} reset(s)), unwrapped"
        if unwrapped:  # the clock was continued: look again
            backwards = t[1:] < t[:-1]
        if backwards is None or bool(backwards.any()):
            flags.append("time_not_monotonic")
            details["flow_rate"] = "skipped: time channel is not monotonic"
        elif t[-1] <= t[0]:
            details["flow_rate"] = "skipped: time channel is constant"
        else:
            rate_bad, counts, rate_bins_bad, rate_drift = _flow_rate(t, n_bins, params)
            removed["flow_rate"] = int(rate_bad.sum())
            details["flow_rate"] = f"{int(rate_bins_bad.sum())}/{n_bins} time bins" + unwrapped
            keep &= ~rate_bad
            time_bad |= rate_bad
            if rate_bins_bad.any():
                flags.append("flow_rate_anomaly")
            if rate_drift:
                flags.append("flow_rate_drift")
                details["flow_rate"] += "; sustained rate change"
        if params.signal_channels is not None:
            cols = [sample.channel_index(c) for c in params.signal_channels]
        else:
            cols = [j for j, k in enumerate(sample.channel_table.column("kind")) if k in ("scatter", "fluorescence")]
        if cols:
            sig_events = ev if all_finite else np.where(np.isfinite(ev), ev, np.float32(0))
            sig_bad, starts, sig_bins_bad, shifted, drifted, drift_removed = _signal_shift(
                sig_events, finite & ~high & ~low, sample.channel_table.texts("pnn"), cols, n_bins,
                params)
            removed["signal_shift"] = int(sig_bad.sum())
            details["signal_shift"] = (f"{int(sig_bins_bad.sum())}/{n_bins} event bins"
                                       + (f" ({', '.join(shifted)})" if shifted else ""))
            keep &= ~sig_bad
            time_bad |= sig_bad
            if sig_bins_bad.any():
                flags.append("signal_shift")
            if drifted:
                flags.append("signal_drift")
                details["signal_shift"] += (f"; sustained change in {', '.join(drifted)}"
                                            + ("" if drift_removed else " (gradual or long: flagged, events kept)"))
            bins = {"first_event": starts, "removed_signal_shift": sig_bins_bad}
    if n and 1.0 - keep.sum() / n > params.flag_removed_fraction:
        flags.append("qc_removed_many")
    rules = _rules(sample, params, limits, all_finite, time_bad, tidx)
    result = QCResult(keep=keep, removed=removed, flags=tuple(flags), params=params, details=details,
                      signal_bins=bins, rules=rules)
    log.info("%s: QC kept %d/%d events (%s)", sample.name, result.n_kept, n, ";".join(flags) or "no flags")
    return result


def data_flags(sample: Sample) -> list[str]:
    """Sample-level flags about the data themselves that go with the QC flags (``qc_flags`` in the
    tables, reports and ``cytokit gate``): ``markers_from_detector_names`` when the panel assigned a
    marker from its detector alone ($PnS empty; :func:`cytokit.panel.panel_flags`),
    ``overcompensated`` when the compensation check failed and the note ``compensation_unchecked`` when it
    could not decide (no informative detector pair; :func:`cytokit.compensation.compensation_flags`), the note
    ``compensation_suspect`` when the negatives of bright events lean below zero (a matrix too strong?)
    and ``<marker>:logicle_w_clipped`` per channel whose estimated logicle W was clipped into range (W < 0
    estimated, W = 0 used; :func:`cytokit.transforms.estimate.clipped_flags`, on the transformed Sample).
    ``sample`` is the resolved (and compensated, or transformed) Sample."""
    from .compensation.check import compensation_flags
    from .panel import panel_flags
    from .transforms.estimate import clipped_flags

    return [*panel_flags(sample), *compensation_flags(sample), *clipped_flags(sample)]


def min_events_flag(count: int, minimum: int = 2500, *, population: str = "Lymphocytes") -> str | None:
    """A flag such as ``"too_few_Lymphocytes(1200<2500)"`` when ``count < minimum``, else None."""
    if count < minimum:
        return f"too_few_{population.replace(' ', '_')}({count}<{minimum})"
    return None


def require_min_events(count: int, minimum: int = 2500, *, population: str = "Lymphocytes",
                       path: str | None = None) -> None:
    """Raise :class:`QCError` (naming the file) when ``count < minimum`` events are in ``population``."""
    if count < minimum:
        raise QCError(f"only {count} events in {population}; at least {minimum} are needed for analysis",
                      path=path)
