"""Spillover from single-stain controls plus an unstained control.

For each single-stain control (primary detector ``i``):

1. **Scatter gate** — the same cell gate for every control and the unstained: ``"auto"`` fits a robust
   ellipse (minimum covariance determinant) to the unstained control's log10 forward/side scatter after
   dropping the debris corner, plus a singlet band on FSC-H/FSC-A when both exist; or pass cytokit
   :mod:`~cytokit.gates` gates (linear scatter coordinates, e.g. an expert's polygon), a callable
   ``Sample -> bool mask``, or ``None``.
2. **Positive population** — on ``asinh(x / c)`` of the primary detector (``c`` = the unstained spread,
   99th percentile − median, linear units) the smoothed histogram's most prominent peak above the
   unstained 99.9th percentile is the positive mode; events from the valley between the negative and
   positive modes up to the control's 99.9th percentile (saturated events excluded) are positive.
   With no distinct positive peak holding at least ``min_events`` events (a dim smear, e.g. a
   viability dye), the brightest
   ``fallback_fraction`` (10 %) of the scatter-gated events are used.
3. **Row of the matrix** — ``(median_pos − median_neg) / (median_pos[i] − median_neg[i])`` per detector
   (Bagwell & Adams median method), ``median_neg`` from the gated unstained control (or, without one,
   from the control's own events below the valley).

Detectors without a control keep an identity row. The result is a :class:`SpilloverMatrix`
(spillover convention, fractions) and, from :func:`fit_spillover`, a per-control table for review.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import CompensationError, PanelError
from ..gates import Gate
from ..sample import Sample
from .matrix import SpilloverMatrix

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

ScatterGate = Any  # "auto" | None | Gate | Sequence[Gate] | Callable[[Sample], np.ndarray]


@dataclass(frozen=True)
class SpilloverEstimate:
    """The estimated matrix and one row per control (channel, file, counts, positive range, signal)."""

    matrix: SpilloverMatrix
    controls: pd.DataFrame


# ------------------------------------------------------------------------------------------------------
# scatter gate
# ------------------------------------------------------------------------------------------------------
def _scatter_names(sample: Sample) -> tuple[str | None, str | None, str | None]:
    """(FSC area-or-height, SSC area-or-height, FSC-H for singlets) $PnN, by marker/pnn."""
    names = {str(p).upper(): str(p) for p in sample.channels["pnn"]}
    markers = dict(zip(sample.channels["marker"].astype(str).str.upper(), sample.channels["pnn"].astype(str)))

    def find(*cands: str) -> str | None:
        for c in cands:
            if c in markers:
                return markers[c]
            if c in names:
                return names[c]
        return None

    fsc = find("FSC-A", "FS-A", "FSC-H", "FS-H", "FSC", "FS")
    ssc = find("SSC-A", "SS-A", "SSC-H", "SS-H", "SSC", "SS")
    fsc_h = find("FSC-H", "FS-H")
    return fsc, ssc, (fsc_h if fsc_h and fsc_h != fsc else None)


@dataclass(frozen=True)
class AutoScatterGate:
    """Robust ellipse on log10 FSC/SSC (MCD) + optional FSC-H/FSC-A singlet band, fitted on one sample.

    The ellipse lives on ``log10`` scatter: cell populations are right-skewed on linear scatter (a
    large-cell tail along the diagonal, a smear of dying cells and debris towards the origin), roughly
    symmetric on a log scale, so a robust ellipse there follows the main cluster instead of being
    stretched by the tails. ``location`` and ``precision`` are in log10 units; events with non-positive
    forward or side scatter are outside the gate.
    """

    fsc: str
    ssc: str
    fsc_h: str | None
    location: np.ndarray
    precision: np.ndarray
    cutoff: float
    debris_cut: float
    ratio_median: float = float("nan")
    ratio_mad: float = float("nan")

    @classmethod
    def fit(cls, sample: Sample, *, coverage: float = 0.95, support_fraction: float | None = None,
            max_events: int = 5000, seed: int = 0) -> "AutoScatterGate":
        """Fit on ``sample`` (normally the unstained control).

        ``support_fraction`` None is the maximum-breakdown MCD (half the events plus two); ``coverage``
        is the chi-square probability of the ellipse.
        """
        from scipy.stats import chi2  # scipy.stats and scikit-learn imported where used (slow imports)
        from sklearn.covariance import MinCovDet

        fsc, ssc, fsc_h = _scatter_names(sample)
        if fsc is None or ssc is None:
            raise CompensationError("no forward/side scatter channels for the automatic scatter gate; pass "
                                    "scatter_gate=None or explicit gates", path=sample.path or sample.name)
        X = sample.columns([fsc, ssc]).astype(np.float64)
        hi = np.quantile(X[:, 0], 0.99)
        debris_cut = max(0.1 * hi, 0.0)  # the debris corner: forward scatter below 10 % of the bright cells
        keep = (X[:, 0] > debris_cut) & (X[:, 1] > 0)
        if keep.sum() < 50:
            raise CompensationError("too few events above the debris threshold to fit a scatter gate",
                                    path=sample.path or sample.name)
        rng = np.random.default_rng(seed)
        sub = np.log10(X[keep])
        if len(sub) > max_events:
            sub = sub[rng.choice(len(sub), max_events, replace=False)]
        mcd = MinCovDet(random_state=seed, support_fraction=support_fraction).fit(sub)
        rm = rmad = float("nan")
        if fsc_h is not None:
            ratio = _ratio(sample, fsc, fsc_h)
            rm = float(np.median(ratio))
            rmad = float(1.4826 * np.median(np.abs(ratio - rm)))
        return cls(fsc=fsc, ssc=ssc, fsc_h=fsc_h, location=mcd.location_, precision=np.linalg.inv(mcd.covariance_),
                   cutoff=float(chi2.ppf(coverage, 2)), debris_cut=float(debris_cut), ratio_median=rm,
                   ratio_mad=rmad)

    def __call__(self, sample: Sample) -> np.ndarray:
        X = sample.columns([self.fsc, self.ssc]).astype(np.float64)
        positive = (X[:, 0] > self.debris_cut) & (X[:, 1] > 0)
        d = np.log10(np.where(positive[:, None], X, 1.0)) - self.location
        mask = positive & (np.einsum("ij,jk,ik->i", d, self.precision, d) <= self.cutoff)
        if self.fsc_h is not None and self.ratio_mad > 0:
            mask &= np.abs(_ratio(sample, self.fsc, self.fsc_h) - self.ratio_median) <= 4 * self.ratio_mad
        return mask


def _ratio(sample: Sample, fsc: str, fsc_h: str) -> np.ndarray:
    a = sample.column(fsc).astype(np.float64)
    h = sample.column(fsc_h).astype(np.float64)
    return h / np.maximum(np.abs(a), 1.0)


def _gate_function(scatter_gate: ScatterGate, unstained: Sample | None, first: Sample) -> Callable[[Sample], np.ndarray]:
    if scatter_gate is None:
        return lambda s: np.ones(s.n_events, dtype=bool)
    if isinstance(scatter_gate, str):
        if scatter_gate != "auto":
            raise CompensationError(f"scatter_gate must be 'auto', None, gates or a function, not {scatter_gate!r}")
        return AutoScatterGate.fit(unstained if unstained is not None else first)
    if isinstance(scatter_gate, Gate):
        scatter_gate = [scatter_gate]
    if isinstance(scatter_gate, Sequence) and all(isinstance(g, Gate) for g in scatter_gate):
        gates = list(scatter_gate)

        def apply(s: Sample) -> np.ndarray:
            mask = np.ones(s.n_events, dtype=bool)
            for g in gates:
                try:
                    mask &= g.contains(s.columns(list(g.dims)).astype(np.float64))
                except PanelError as exc:
                    raise CompensationError(f"scatter gate {g.id!r}: {exc}", path=s.path or s.name) from None
            return mask

        return apply
    if callable(scatter_gate):
        return scatter_gate
    raise CompensationError(f"cannot use {type(scatter_gate).__name__} as a scatter gate")


# ------------------------------------------------------------------------------------------------------
# positive population
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Positive:
    mask: np.ndarray
    low: float
    high: float
    how: str
    valley: float


def _positive_population(x: np.ndarray, neg_ref: np.ndarray | None, *, top: float | None, threshold_q: float,
                         upper_q: float, smooth: float, bins: int, fallback_fraction: float,
                         min_events: int = 50) -> _Positive:
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    ref = neg_ref if neg_ref is not None else x
    med = float(np.median(ref))
    cof = max(float(np.quantile(ref, 0.99)) - med, 1e-6 * max(1.0, abs(med)), 1e-9)
    t = np.arcsinh(x / cof)
    if top is not None:
        t = np.where(x >= top, np.nan, t)  # saturated events
    finite = np.isfinite(t)
    tt = t[finite]
    t_neg_med = float(np.arcsinh(med / cof))
    thr = float(np.arcsinh(np.quantile(ref, threshold_q) / cof)) if neg_ref is not None else t_neg_med
    lo_edge = min(float(np.quantile(tt, 0.001)), t_neg_med)
    hi_edge = float(np.quantile(tt, 0.999))
    upper = float(np.quantile(tt, upper_q))
    if not hi_edge > lo_edge:
        return _Positive(np.zeros_like(x, dtype=bool), np.nan, np.nan, "no signal", np.nan)
    edges = np.linspace(lo_edge, hi_edge, bins + 1)
    h, _ = np.histogram(tt, edges)
    hs = gaussian_filter1d(h.astype(np.float64), smooth)
    centres = 0.5 * (edges[1:] + edges[:-1])
    peaks, props = find_peaks(np.r_[0.0, hs, 0.0], prominence=0.0)
    peaks = peaks - 1
    prominence = props["prominences"]
    above = centres[peaks] > thr
    if neg_ref is None:  # internal negative: the positive peak is any peak right of the highest one
        main = int(np.argmax(hs))
        above &= peaks > main
    how = "brightest"
    if np.any(above):
        pk = int(peaks[above][np.argmax(prominence[above])])
        start = int(np.clip(np.searchsorted(centres, t_neg_med), 0, pk))
        seg = np.arange(start, pk + 1)
        valley = float(centres[seg[np.argmin(hs[seg])]])
        low = max(valley, thr)
        if np.count_nonzero(finite & (t >= low) & (t <= upper)) >= min_events:
            how = "peak"
    if how == "brightest":
        low = float(np.quantile(tt, 1.0 - fallback_fraction))
        valley = low
    mask = finite & (t >= low) & (t <= upper)
    return _Positive(mask, float(cof * np.sinh(low)), float(cof * np.sinh(upper)), how, float(cof * np.sinh(valley)))


def _saturation_level(x: np.ndarray, min_fraction: float = 0.001) -> float | None:
    """The value at which events pile up at the top of the scale (None when they do not)."""
    top = float(np.max(x))
    at_top = np.count_nonzero(x >= top - 1e-6 * max(abs(top), 1.0))
    return top - 1e-6 * max(abs(top), 1.0) if at_top >= max(2, min_fraction * x.size) else None


# ------------------------------------------------------------------------------------------------------
# public
# ------------------------------------------------------------------------------------------------------
def _controls_by_channel(single_stains: Any, unstained: Sample | None) -> dict[str, Sample]:
    if isinstance(single_stains, Mapping):
        out = {}
        for key, s in single_stains.items():
            try:
                pnn = str(s.channels["pnn"].iloc[s.channel_index(str(key))])
            except PanelError as exc:
                raise CompensationError(f"single-stain control for {key!r}: {exc}", path=s.path or s.name) from None
            if pnn in out:
                raise CompensationError(f"two single-stain controls for channel {pnn}", path=s.path or s.name)
            out[pnn] = s
        return out
    if unstained is None:
        raise CompensationError("controls given without channels need an unstained control to find their channel")
    out = {}
    for s in single_stains:
        pnn = detect_primary_channel(s, unstained)
        if pnn in out:
            raise CompensationError(
                f"two single-stain controls are brightest in channel {pnn} ({out[pnn].name} and {s.name}); "
                "give each control's channel explicitly", path=s.path or s.name)
        out[pnn] = s
    return out


def detect_primary_channel(control: Sample, unstained: Sample) -> str:
    """The fluorescence detector in which ``control`` is brightest relative to the unstained control."""
    fl = unstained.channels.loc[unstained.channels["kind"].astype(str) == "fluorescence", "pnn"].astype(str)
    best, score = None, -np.inf
    for p in fl:
        try:
            u = unstained.column(p).astype(np.float64)
            c = control.column(p).astype(np.float64)
        except PanelError:
            continue
        spread = max(np.quantile(u, 0.99) - np.median(u), 1e-9)
        s = (np.quantile(c, 0.99) - np.quantile(u, 0.99)) / spread
        if s > score:
            best, score = p, s
    if best is None:
        raise CompensationError("control shares no fluorescence channel with the unstained control",
                                path=control.path)
    return best


def fit_spillover(single_stains: Mapping[str, Sample] | Sequence[Sample], unstained: Sample | None = None, *,
                  channels: Sequence[str] | None = None, scatter_gate: ScatterGate = "auto",
                  threshold_q: float = 0.999, upper_q: float = 0.999, smooth: float = 5.0, bins: int = 200,
                  fallback_fraction: float = 0.1, min_events: int = 50) -> SpilloverEstimate:
    """Estimate a spillover matrix and report how each control was gated (see the module docstring).

    ``single_stains`` maps each control's primary detector (a $PnN, marker or $PnS the control resolves)
    to its Sample, or is a list of Samples whose primary detector is found from the data. ``channels``
    are the matrix detectors ($PnN; default: every fluorescence channel of the unstained control, else of
    the first control). Events are on the linear scale (uncompensated). Quantile options are fractions.
    """
    controls = _controls_by_channel(single_stains, unstained)
    if not controls:
        raise CompensationError("no single-stain controls given")
    first = next(iter(controls.values()))
    for s in [*controls.values(), *([unstained] if unstained is not None else [])]:
        if s.compensated or s.transforms:
            raise CompensationError("controls must be uncompensated, untransformed (linear) data",
                                    path=s.path or s.name)
    base = unstained if unstained is not None else first
    if channels is None:
        channels = list(base.channels.loc[base.channels["kind"].astype(str) == "fluorescence", "pnn"].astype(str))
    channels = [str(c) for c in channels]
    missing = [c for c in controls if c not in channels]
    if missing:
        raise CompensationError(f"controls for channel(s) {missing} that are not among the matrix channels {channels}")
    gate = _gate_function(scatter_gate, unstained, first)

    def gated(s: Sample) -> tuple[np.ndarray, np.ndarray]:
        try:
            ev = s.columns(channels).astype(np.float64)
        except PanelError as exc:
            raise CompensationError(f"control lacks a matrix channel: {exc}", path=s.path or s.name) from None
        m = np.asarray(gate(s), dtype=bool)
        if m.sum() < min_events:
            raise CompensationError(f"only {int(m.sum())} events pass the scatter gate (need {min_events})",
                                    path=s.path or s.name)
        return ev[m], m

    neg_ev = None
    if unstained is not None:
        neg_ev, _ = gated(unstained)
    values = np.eye(len(channels))
    rows = []
    for pnn, s in controls.items():
        i = channels.index(pnn)
        ev, m = gated(s)
        top = _saturation_level(ev[:, i])
        pos = _positive_population(ev[:, i], None if neg_ev is None else neg_ev[:, i], top=top,
                                   threshold_q=threshold_q, upper_q=upper_q, smooth=smooth, bins=bins,
                                   fallback_fraction=fallback_fraction, min_events=min_events)
        n_pos = int(pos.mask.sum())
        if n_pos < min_events:
            raise CompensationError(
                f"control for {pnn}: only {n_pos} positive events ({pos.how}); need {min_events}. Is this the "
                "right channel, and is the stain bright enough?", path=s.path or s.name)
        if neg_ev is not None:
            neg_med = np.median(neg_ev, axis=0)
        else:
            neg_mask = np.isfinite(ev[:, i]) & (ev[:, i] < pos.valley)
            if neg_mask.sum() < min_events:
                raise CompensationError(f"control for {pnn}: too few negative events for an internal reference",
                                        path=s.path or s.name)
            neg_med = np.median(ev[neg_mask], axis=0)
        signal = np.median(ev[pos.mask], axis=0) - neg_med
        if not signal[i] > 0:
            raise CompensationError(f"control for {pnn}: positive events are not brighter than the negatives",
                                    path=s.path or s.name)
        values[i] = signal / signal[i]
        values[i, i] = 1.0
        rows.append({"channel": pnn, "file": s.name, "events": s.n_events, "scatter_gated": int(m.sum()),
                     "positive": n_pos, "positive_low": pos.low, "positive_high": pos.high, "method": pos.how,
                     "signal": float(signal[i])})
        log.info("%s: %s control, %d positive events (%s, %.4g..%.4g)", s.name, pnn, n_pos, pos.how, pos.low,
                 pos.high)
    uncontrolled = [c for c in channels if c not in controls]
    if uncontrolled:
        log.warning("%d of %d matrix detector(s) have no single-stain control and keep identity rows (their dye "
                    "is assumed to spill into no other detector): %s; pass channels= to limit the matrix to "
                    "the controlled detectors", len(uncontrolled), len(channels), ", ".join(uncontrolled))
    source = "estimated from single-stain controls " + ", ".join(str(r["file"]) for r in rows)
    matrix = SpilloverMatrix(tuple(channels), values, source=source)
    import pandas as pd

    return SpilloverEstimate(matrix=matrix, controls=pd.DataFrame(rows))


def estimate_spillover(single_stains: Mapping[str, Sample] | Sequence[Sample], unstained: Sample | None = None,
                       **options: Any) -> SpilloverMatrix:
    """The spillover matrix from :func:`fit_spillover` (same arguments)."""
    return fit_spillover(single_stains, unstained, **options).matrix
