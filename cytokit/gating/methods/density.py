"""1-D density threshold: the valley between modes of a kernel density estimate, with fallbacks.

Works on one marker's values of the parent population on the gate's (transformed) scale. Strategy:

1. ``mode="valley"`` (default): binned Gaussian KDE on a grid; peaks below ``min_peak_fraction`` of the
   highest are ignored and neighbouring peaks whose dip is shallower than ``max_valley_ratio`` (density at
   the dip / the smaller peak) are merged (:func:`merge_shallow`), so the remaining modes are separated by
   real dips. Each pair of neighbouring modes gives a valley. Only valleys inside ``bounds`` (the
   plausible range of the threshold) and of the kind ``separates`` asks for are candidates; ``valley``
   picks the deepest / first / last / deepest below or above the dominant mode. Otherwise:

   * a valley exists but lies outside ``bounds`` (the classic "valley on the wrong side", e.g. between
     two positive subsets) -> flag ``valley_out_of_bounds`` and fall back;
   * no valley (unimodal data, or none of the requested kind) -> flag ``no_valley`` and fall back.

   A valley fit is repeated with less and more smoothing; when those refits move more than
   :data:`UNSTABLE_PCT` % of the events across the threshold it is flagged ``unstable``.

2. ``mode="tail"`` (also the default fallback): the reference peak's mode (``reference_peak``: the lowest
   = negative population by default) plus ``tail_sd`` standard deviations measured on its *outer* half
   (left half for ``tail_side="upper"``; mirror-image estimate, insensitive to how many events lie on the
   other side). ``tail_side="lower"`` with ``reference_peak="highest"`` places a threshold below a
   dominant positive mode (CD127lo under CD127+). With ``tail_widen`` > 1 the SD is widened (up to that
   factor) where the peak's core on the threshold side is wider than the outer half's SD says (half-width at
   :data:`CORE_LEVEL` of the peak's height, :func:`core_sd`): a negative peak skewed towards the positives
   (spillover spreading, lognormal autofluorescence) gets a wider tail; a symmetric one, or one whose outer
   side is the wider, keeps ``tail_sd`` SDs (``info["core_ratio"]``, ``info["tail_width"]``). Tail gates drift with the spread of the negative
   population: when the result is further than ``drift_tolerance`` from ``expected`` (or outside
   ``bounds``) it is flagged ``tail_drift``.

   **A lone mode is not always negative.** When the valley rule falls back because the data have no
   usable valley, the side of the threshold is decided by where the dominant mode lies: above
   ``negative_max`` (default: the middle of ``bounds``) it is a positive population and the threshold
   goes *below* it (mode - ``tail_sd`` SDs of its lower half; flag ``all_positive``); otherwise it is a
   negative population and the threshold goes above it (flag ``all_negative`` when ``tail_side`` asked
   for the lower side). So a positive threshold is never placed above the only mode of an all-positive
   population, nor below the only mode of an all-negative one.

   ``fallback="excess"`` (needs ``reference``, a negative-reference population's values on the same
   channel; without one it behaves as ``tail`` and notes ``no_negative_reference``): where the valley rule
   finds no usable valley, or its valley moves with the smoothing (``unstable``), the positives are counted
   as the excess of the data over the reference's distribution (:func:`~.negative_model.negative_model`,
   Overton-style) and the threshold is placed so that the gate holds that count (flag ``fell_back:excess``;
   ``info["negative_model"]``). A dim continuum that starts inside a broad negative peak is thus counted,
   not cut at "mode + k SD". A valley whose gate differs from that count by more than
   :data:`VALLEY_EXCESS_PP` percentage points is replaced the same way (``valley_disagrees``: the valley does
   not separate negatives from positives, e.g. the dimmest part of a continuum lies below it). The count
   decides the position, so an excess threshold is not clipped to ``bounds`` (``excess_out_of_bounds``).

   ``fallback="crossing"`` (needs ``reference`` likewise): where the valley rule finds no usable valley the
   threshold is where the negatives, modelled by the reference's density at the data's negative count,
   stop dominating the data (:mod:`.negative_crossing`; flag ``fell_back:crossing``, ``info["crossing"]``;
   ``no_crossing`` and the tail when the data have no mode above the reference's). A valley whose modes
   overlap (depth ratio >= :data:`OVERLAP_MIN_RATIO`) lying below that point -- inside the negatives' tail, as
   the density minimum between a few negatives and many positives does -- is raised to it
   (``raised_to_crossing``). The CD56-/CD56dim boundary under a dim CD56 reagent lot is the case.

   ``overlap="reference"`` (needs ``reference``, a population negative for the marker over its whole range):
   a valley between overlapping modes (depth ratio >= :data:`OVERLAP_MIN_RATIO`) whose lower mode lies where
   the reference's negatives are (at or below ``negative_max``) and whose upper mode above it is moved to the
   position that holds the count corrected for the overlap (:func:`overlap_threshold`): the negatives above
   the valley counted by the reference's shape at the negative model's weight, the positives below it by the
   upper mode's upper half mirrored (flag ``overlap_corrected``, ``info["overlap_corrected"]``: the valley and
   the corrected position). A density minimum between a broad negative peak and a narrower positive mode lies
   where the narrow mode's flank has died out, inside the broad one's tail: a dim CD28+ mode (SD ~0.03)
   beside CD28- cells (SD ~0.055-0.06, skewed upwards) lets 0.3-3.4 % of the parent's negatives above the
   valley, and the row reads that much high whatever the two modes' sizes. Only where the negative model is
   ``valid`` (the reference's shape fits these negatives); the smoothing refits are corrected alike.

3. ``mode="quantile"``: the ``quantile`` of the values (fraction 0..1 of events below the threshold).

4. ``mode="fixed"``: ``value`` (a cut the strategy states, e.g. a lab's HLA-DR+ convention on an activation
   smear). Its recorded alternatives (``info["stability_thresholds"]``) are ``value`` -/+ ``fixed_tolerance``:
   the scale of this file may differ from the one the value was stated on, which moves a cut through a
   continuum's events (and so ``est_error_pp``) and one in an empty valley hardly at all.

``at_least`` (a floor; the engine sets it from a population's ``threshold_floor``, the same file's threshold
of another gate on this marker): a result below it is raised to it (``raised_to_floor``; the fit's own value
in ``info["below_floor"]``); the smoothing refits are floored alike.

Any result outside ``bounds`` is clipped to them and flagged ``clipped`` (except an excess count, see 2). A
tail fallback that had to be clipped although the density has a valley inside ``bounds`` (one that
``separates`` or ``valley`` rejected) is also flagged ``skipped_valley`` (a review flag): the tail was
measured from a mode the threshold should have stayed below or above, e.g. CD56dim taking in the CD56bright
mode when the dim mode was read as negative. A clipped upper tail fallback (above its mode) of a valley fit
whose density has no such valley is re-read with the density smoothed less (the stability refit's ``adjust`` x 0.6): a valley there,
within ``bounds``, beyond the mode the tail was measured from and with at least :data:`SHARPER_MODE_EVENTS`
events beyond it, is used instead (``valley_less_smoothed``). The bandwidth grows as events get fewer
(Silverman's rule), so a parent of ~100 events can have two modes the default smoothing merges: CD56dim and
CD56bright NK of a 3,000-event file, whose tail from the merged mode was clipped at the upper bound (0 %
CD56bright for 29-38 %).

**Noise peaks where negatives may lie.** For ``separates``, peaks at or below ``negative_max`` +
:data:`MODE_MARGIN` whose valley is not :data:`MIN_MODE_SDS` SDs of the KDE's sampling noise deep are merged
into one mode at the median of its events (:func:`merge_sparse`; the highest peak's valleys and peaks above are
left alone): a few dozen sparse CD56- NK cells make noise peaks with dips of 0.5-0.8, and one of them near
``negative_max`` above another read as a positive mode hid the empty valley above all of them.

**Modes at negative_max.** For ``separates``, a mode within :data:`MODE_MARGIN` of ``negative_max`` is
decided by the modes around it (:func:`classify_modes`): with a lower mode below it it is positive (the
lower one holds the negatives); as the lowest mode its position decides, and the fit is flagged
``ambiguous_mode`` when reading it the other way would have chosen another valley, or a valley where this
reading found none (a clean valley is always a candidate boundary; a reading that leaves none is not a rival).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from pydantic import Field, model_validator

from .base import MethodParams
from .kde import Density1D, kde_1d
from .peak_shape import KNEE_MAX_SD, core_sd, dim_mode_below, flank_knee
from .lone_mode import lone_mode_side, negative_mode
from .negative_crossing import negative_crossing
from .negative_model import MIN_EVENTS as NEGATIVE_MODEL_MIN_EVENTS
from .negative_model import negative_model

#: bandwidth multipliers of the stability refits, and the share of events (%) between fits that flags a threshold
STABILITY_ADJUST = (0.6, 1.6)
UNSTABLE_PCT = 1.5
#: a lone mode this close to ``negative_max`` (gate units) could be negative or positive: ``ambiguous_mode``
MODE_MARGIN = 0.05
#: with a negative reference, ``negative_max`` = the reference's main mode + this many SDs of its lower half
REFERENCE_SD = 2.0
#: a valley at least this deep (depth ratio, density at the valley / the smaller mode) lies between modes that
#: overlap, and its overlap-corrected position (:func:`overlap_threshold`) is recorded for ``est_error_pp``;
#: below it the mirrored tails beyond a clean valley measure the modes' skew, not their overlap (dim CD28+
#: valleys of an independent generator: 0.29-0.41; clean CD56dim/bright valleys: <= 0.1)
OVERLAP_MIN_RATIO = 0.2
#: ``overlap: reference`` moves a valley only where the correction (events) exceeds this many of its counting SDs
#: (the square root of the events both tails are estimated to hold): a sparse valley's one or two events are noise
#: (a simulated CD4 T parent of 862 events: 2.6 modelled negatives above its valley and 2 mirrored positives below
#: moved the threshold across the empty valley to the next event, 0.02 higher)
OVERLAP_CORRECTION_SDS = 2.0
#: with ``separates``, two peaks where negatives may lie are two modes only where the valley between them lies at
#: least this many SDs of the KDE's sampling noise below the smaller one (:func:`merge_sparse`,
#: :func:`valley_noise_sds`: the Poisson noise of the events under the kernel at the peak and at the valley). Two
#: SDs, the usual significance level, not fitted: an empty gap beside more than 4 events under the kernel counts,
#: a dip of 0.5 between clumps of 3-5 sparse CD56- NK cells does not (docs/gating.md, "Noise peaks among few
#: CD56- cells")
MIN_MODE_SDS = 2.0
#: fewer finite reference events than this: the reference is not used (flag ``no_negative_reference``)
MIN_REFERENCE_EVENTS = 200
#: with ``fallback="excess"``: a valley whose gate holds more than this many percentage points more or fewer
#: events than the excess count (:mod:`.negative_model`, counting SD ~1-2 pp) does not separate negatives from
#: positives and is replaced by the excess placement (flag ``valley_disagrees``); chosen on the tuning draws
VALLEY_EXCESS_PP = 4.0
#: ``mode: fixed``: how far a file's scale may lie from the scale the fixed value was stated on, by default (gate
#: coordinates; 0.02 on the logicle scale is a signal x1.2, a detector-gain difference between files or days
#: of one instrument). The fixed threshold moved by -/+ this much is its plausible range for ``est_error_pp``:
#: a stated cut through a continuum (an activation smear) moves the population with the gain, one in an empty
#: valley does not. Measured on lab B's HLA-DR smear (docs/gating.md, "An activation smear with a stated cut")
FIXED_TOLERANCE = 0.02
#: height (fraction of the reference peak's density) at which the peak's core half-widths are read for
#: ``tail_widen``: high enough that a continuum of positives rising from the peak barely widens it, low enough
#: for a half-width a few grid steps wide; chosen (with ``tail_widen`` 1.25 for CD25+ CD4) on the simulated
#: tuning draws of ``benchmarks/gating_accuracy.py`` (0.7-0.85 within 0.6 pp of each other at p95)
CORE_LEVEL = 0.75


class ThresholdParams(MethodParams):
    """How to place one threshold on one dimension (values on the gate's transformed scale)."""

    mode: Literal["valley", "tail", "quantile", "fixed"] = "valley"
    fallback: Literal["tail", "excess", "crossing", "quantile", "expected", "none"] = "tail"
    bounds: tuple[float, float] | None = Field(
        None, description="plausible range of the threshold; valleys outside are rejected, results clipped")
    expected: float | None = Field(None, description="where the threshold usually lies (drift reference)")
    drift_tolerance: float = Field(0.1, gt=0)
    valley: Literal["deepest", "first", "last", "below_dominant", "above_dominant"] = Field(
        "deepest", description="which valley: deepest, first/last (lowest/highest position), or the deepest "
                               "just below/above the dominant (highest) peak, e.g. CD56dim within NK cells")
    reference_peak: Literal["first", "highest", "last"] = Field(
        "first", description="peak a tail gate is measured from: 'first' = the lowest (the negative population, "
                             "for '+' gates); 'highest' = the dominant one (e.g. CD127+ when gating CD127lo); "
                             "'last' = the brightest (e.g. above CD56dim when there is no CD56bright mode)")
    separates: Literal["any", "negative", "positive"] = Field(
        "any", description="which valleys count: 'negative' = only one right above a negative mode (at or "
                           "below negative_max), 'positive' = only one between two positive modes (CD56dim/bright)")
    negative_max: float | None = Field(
        None, description="highest position of a negative population's mode on this scale; a lone mode "
                          "above it is taken as all-positive (default: the middle of 'bounds')")
    min_peak_fraction: float = Field(0.01, ge=0, lt=1)
    min_mode_sds: float | None = Field(
        MIN_MODE_SDS, gt=0,
        description="with 'separates': two neighbouring peaks at or below negative_max + MODE_MARGIN (neither the "
                    "highest) whose valley lies fewer than this many SDs of the KDE's sampling noise (Poisson, of "
                    "the events under the kernel) below the smaller peak are one mode, before the modes are "
                    "classified; None = never")
    max_valley_ratio: float = Field(0.8, gt=0, le=1)
    adjust: float = Field(1.0, gt=0, description="bandwidth multiplier (Silverman's rule x adjust)")
    tail_sd: float = Field(2.5, gt=0)
    tail_side: Literal["upper", "lower"] = Field(
        "upper", description="upper: threshold above the reference peak; lower: below it")
    dim_mode_tail: float | None = Field(
        None, gt=0, lt=1,
        description="a chosen valley with a mode of the unmerged density (a dip shallower than max_valley_ratio) "
                    "between it and the mode below it, at least this fraction of that mode's height, lies above "
                    "dim positives, not above the negatives: the tail is used instead (flag dim_mode_below_valley); "
                    "None = never")
    tail_widen: float = Field(
        1.0, ge=1, description="the tail's SD (of the peak's outer half) is widened up to this factor where "
                               "the peak's core on the threshold side is wider than that SD says (a negative "
                               "peak skewed towards the positives, e.g. by spillover spreading); 1 = never")
    tail_knee: float | None = Field(
        None, gt=0, lt=1,
        description="a tail threshold is raised (moved away from its mode) to the knee of the peak's flank: where "
                    "the density's descent, past its steepest point, has slowed to this fraction of the steepest "
                    "(within KNEE_MAX_SD SDs of the mode), i.e. where the peak's events stop dominating; None = never")
    quantile: float = Field(0.5, gt=0, lt=1)
    value: float | None = None
    fixed_tolerance: float = Field(
        FIXED_TOLERANCE, ge=0,
        description="mode 'fixed': how far this file's scale may lie from the one 'value' was stated on (a "
                    "detector gain or setup difference, gate coordinates); the threshold moved by -/+ this much "
                    "is its est_error_pp, so a stated cut through a continuum is not silent; 0 = exact")
    at_least: float | None = Field(
        None, description="the threshold is never placed below this value (same scale): a result below it is "
                          "raised to it (flag raised_to_floor; info['below_floor'] holds the fit's own value). Set "
                          "by the engine from a population's threshold_floor (e.g. Treg's CD25hi cut at least the "
                          "CD25+ cut of the same file); None = no floor")
    overlap: Literal["valley", "reference"] = Field(
        "valley", description="where a valley lies between overlapping modes (depth ratio >= OVERLAP_MIN_RATIO) right "
                              "above the negative mode: 'valley' = at the density minimum; 'reference' = moved to hold "
                              "the count corrected for the overlap, the negatives above the valley counted by the "
                              "negative reference's shape (a population negative for the marker over its whole range, "
                              "e.g. the CD3- lymphocytes for CD28) and the positives below it by their mode's upper "
                              "half mirrored (flag overlap_corrected); needs the gate's negative_reference")
    max_events: int = Field(20000, ge=100)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "ThresholdParams":
        if self.mode == "fixed" and self.value is None:
            raise ValueError("mode 'fixed' needs 'value'")
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError("bounds must be [low, high] with low < high")
        if self.fallback == "expected" and self.expected is None:
            raise ValueError("fallback 'expected' needs 'expected'")
        return self


@dataclass(frozen=True)
class Threshold:
    """A fitted threshold with the flags and numbers that justify it."""

    value: float
    flags: tuple[str, ...]
    info: dict


def find_peaks(d: Density1D, min_fraction: float) -> np.ndarray:
    """Indices of local maxima whose height is at least ``min_fraction`` of the highest."""
    y = d.density
    if y.size < 3:
        return np.array([int(np.argmax(y))])
    left = np.r_[-np.inf, y[:-1]]
    right = np.r_[y[1:], -np.inf]
    idx = np.flatnonzero((y > left) & (y >= right) & (y >= min_fraction * y.max()))
    return idx if idx.size else np.array([int(np.argmax(y))])


def merge_shallow(d: Density1D, peaks: np.ndarray, max_ratio: float) -> np.ndarray:
    """Peaks left after merging neighbours whose valley is shallower than ``max_ratio`` (depth ratio as
    in :func:`find_valleys`): the lower of the two is dropped, repeatedly, shallowest valley first. What
    remains are modes separated by real dips, so "one peak" means unimodal and "the first peak" is not a
    noise bump on the shoulder of the negative population."""
    kept = [int(i) for i in peaks]
    while len(kept) > 1:
        valleys = find_valleys(d, np.array(kept))
        k = int(np.argmax([r for _, r in valleys]))
        if valleys[k][1] <= max_ratio:
            break
        a, b = kept[k], kept[k + 1]
        kept.remove(a if d.density[a] < d.density[b] else b)
    return np.array(kept, dtype=int)


def valley_noise_sds(d: Density1D, peaks: np.ndarray, n_events: int) -> np.ndarray:
    """How far each valley between neighbouring ``peaks`` lies below the smaller of its two peaks, in standard
    deviations of the KDE's sampling noise. A Gaussian KDE of ``n_events`` with bandwidth h estimates the density
    at a point from about c = 2 sqrt(pi) n h f events (the kernel's effective count; Var f = f / (2 sqrt(pi) n h)),
    a count with Poisson noise sqrt(c). A dip from c_peak to c_valley is (c_peak - c_valley) /
    sqrt(c_peak + c_valley) SDs: an empty gap beside a mode of k events under the kernel ~sqrt(k); a dip of 0.5
    between clumps of 3-5 sparse events ~0.6. One entry per valley (``len(peaks) - 1``)."""
    scale = 2.0 * np.sqrt(np.pi) * n_events * d.bandwidth
    out = []
    for v, _ in find_valleys(d, peaks):
        k = int(np.searchsorted(peaks, v))  # valley v lies between peaks k-1 and k
        c_peak = scale * float(min(d.density[peaks[k - 1]], d.density[peaks[k]]))
        c_valley = scale * float(d.density[v])
        out.append((c_peak - c_valley) / np.sqrt(c_peak + c_valley) if c_peak + c_valley > 0 else 0.0)
    return np.array(out)


#: note on a chosen valley that lies fewer than :data:`MIN_MODE_SDS` noise SDs below the smaller of its two peaks
#: where neither peak is the parent's main (highest) mode (:func:`valley_noise`): a dip between two bumps of a
#: sparse smear, which another legitimate reading of the same events (the noise bumps merged) puts elsewhere. What
#: that reading moves the population enters ``est_error_pp`` (:mod:`.confidence`), which flags the row for review
#: when it matters (docs/gating.md, "A valley between noise bumps on a one-mode parent")
NOISE_VALLEY_FLAG = "noise_valley"


class ValleyNoise(NamedTuple):
    """A chosen valley's distinctness (:func:`valley_noise`)."""

    #: depth below the smaller of its two neighbouring peaks, in SDs of the KDE's sampling noise
    sds: float
    #: its lower / upper neighbouring peak is the highest peak (the parent's main mode)
    lower_is_main: bool
    upper_is_main: bool

    @property
    def beside_main(self) -> bool:
        """One of its two peaks is the main mode: a boundary of the parent's main population."""
        return self.lower_is_main or self.upper_is_main

    @property
    def isolated_noise(self) -> bool:
        """Fewer than :data:`MIN_MODE_SDS` noise SDs deep and beside no main mode (flag :data:`NOISE_VALLEY_FLAG`)."""
        return self.sds < MIN_MODE_SDS and not self.beside_main


def valley_noise(d: Density1D, peaks: np.ndarray, valley: int, n_events: int) -> ValleyNoise:
    """The valley of ``d`` nearest grid index ``valley`` among those between neighbouring ``peaks`` (grid indices,
    ascending): its depth in SDs of the KDE's sampling noise (:func:`valley_noise_sds`; ``n_events`` = the events
    the density was estimated from) and whether its lower / upper peak is the highest of ``peaks``. The one
    computation behind the flag :data:`NOISE_VALLEY_FLAG` and ``benchmarks/noise_valley.py``."""
    valleys = find_valleys(d, peaks)
    if not valleys:
        raise ValueError("valley_noise needs at least two peaks with a valley between them")
    k = int(np.argmin([abs(int(v) - int(valley)) for v, _ in valleys]))
    sds = valley_noise_sds(d, peaks, int(n_events))
    main = int(np.argmax(d.density[peaks]))
    return ValleyNoise(float(sds[k]), main == k, main == k + 1)


def merge_sparse(d: Density1D, peaks: np.ndarray, x: np.ndarray, min_sds: float, up_to: float) -> np.ndarray:
    """Peaks left after merging, among the peaks at or below ``up_to`` (same scale as ``x``: where negatives may
    lie), the two around every valley that lies fewer than ``min_sds`` standard deviations of the KDE's sampling
    noise below the smaller of them (:func:`valley_noise_sds`; ``x`` = the events the density was estimated
    from), the least distinct first, repeatedly. A dip of 0.5 between two clumps of 3-5 sparse CD56- NK cells is
    sampling noise, however deep it looks; a valley below a few hundred CD56- cells is not. Peaks above ``up_to``
    are left as they are (a CD56bright mode of a few events is a population even where its dip is shallow), and so
    are the valleys of the highest peak (the parent's main population: whether a few CD56- cells beside a CD56dim
    mode that lies below ``up_to`` are a population of their own is the valley rule's question, not noise). A
    mode made of merged peaks lies at the median of the events between its valleys (grid index), not at
    whichever of its noise peaks happened to be highest: its position is what classifies it."""
    groups = [[int(i)] for i in peaks]
    while len(groups) > 1:
        kept = np.array([max(g, key=lambda i: d.density[i]) for g in groups])
        sds = valley_noise_sds(d, kept, int(x.size))
        sds[d.grid[kept[1:]] > up_to] = np.inf  # only valleys between two peaks where negatives may lie
        top = int(np.argmax(d.density[kept]))  # the main mode is a population: its valleys are left as they are
        sds[[k for k in (top - 1, top) if 0 <= k < sds.size]] = np.inf
        k = int(np.argmin(sds))
        if sds[k] >= min_sds:
            break
        groups[k:k + 2] = [groups[k] + groups[k + 1]]
    kept = np.array([max(g, key=lambda i: d.density[i]) for g in groups])
    if len(groups) == len(peaks):
        return kept
    valleys = [int(v) for v, _ in find_valleys(d, kept)]
    out = []
    for k, g in enumerate(groups):
        if len(g) == 1:
            out.append(g[0])
            continue
        lo = d.grid[valleys[k - 1]] if k > 0 else -np.inf
        hi = d.grid[valleys[k]] if k < len(valleys) else np.inf
        inside = x[(x > lo) & (x < hi)]
        out.append(int(np.argmin(np.abs(d.grid - np.median(inside)))) if inside.size else int(kept[k]))
    return np.array(out, dtype=int)


def find_valleys(d: Density1D, peaks: np.ndarray) -> list[tuple[int, float]]:
    """(grid index, depth ratio) of the density minimum between each pair of neighbouring peaks.

    The depth ratio is density at the valley / density of the smaller neighbouring peak (0 = empty gap,
    1 = no dip at all).
    """
    out = []
    for a, b in zip(peaks[:-1], peaks[1:]):
        seg = d.density[a:b + 1]
        v = a + int(np.argmin(seg))
        ratio = float(d.density[v] / max(min(d.density[a], d.density[b]), 1e-300))
        out.append((v, ratio))
    return out


def outer_half_sd(x: np.ndarray, mode: float, side: str = "upper") -> float | None:
    """SD of a mode's outer half (root mean square distance from ``mode`` of the events below it for
    ``side="upper"`` -- a threshold above the mode -- or above it for ``"lower"``), so events on the threshold
    side do not count; same scale as ``x``. None with fewer than 10 such events."""
    half = x[x <= mode] - mode if side == "upper" else x[x >= mode] - mode
    return float(np.sqrt(np.mean(half ** 2))) if half.size >= 10 else None


def landmarks(x: np.ndarray, d: Density1D, peaks: np.ndarray) -> dict:
    """The file's own landmarks on this dimension (same scale as ``x``), independent of where the threshold
    went: ``low_mode`` = the lowest mode of the density (for a ``+`` marker, its negative population),
    ``low_sd`` = the SD of that mode's lower half (root mean square distance below the mode, so the events
    above it do not count), ``high_mode`` = the highest mode (equal to ``low_mode`` for one mode). A
    threshold expressed as ``(t - low_mode) / low_sd`` does not move when a file's detector gain or
    negative spread shifts and stretches its distribution (used by :mod:`cytokit.gating.cohort`)."""
    if len(peaks) == 0:
        return {}
    lo, hi = float(d.grid[peaks[0]]), float(d.grid[peaks[-1]])
    sd = outer_half_sd(x, lo)
    sd = float(np.std(x)) if sd is None else sd
    return {"low_mode": round(lo, 5), "low_sd": round(sd, 5), "high_mode": round(hi, 5)}


def reference_negative(xr: np.ndarray, p: ThresholdParams) -> dict | None:
    """The negative population of a reference (events known to be mostly negative for the marker, in the
    same file, on the same scale): its main (highest-density) mode and the SD of that mode's lower half, and
    ``negative_max`` = mode + :data:`REFERENCE_SD` SDs. None with fewer than :data:`MIN_REFERENCE_EVENTS`
    finite values. The lower half is used because the upper one holds whatever positives the reference has."""
    xr = np.asarray(xr, dtype=np.float64).ravel()
    xr = xr[np.isfinite(xr)]
    if xr.size < MIN_REFERENCE_EVENTS:
        return None
    if xr.size > p.max_events:
        xr = xr[np.random.default_rng(p.seed).choice(xr.size, size=p.max_events, replace=False)]
    d = kde_1d(xr, adjust=p.adjust)
    mode = float(d.grid[int(np.argmax(d.density))])
    sd = outer_half_sd(xr, mode)
    sd = float(np.std(xr)) if sd is None else sd
    return {"mode": round(mode, 5), "half_sd": round(sd, 5), "negative_max": round(mode + REFERENCE_SD * sd, 5),
            "n_events": int(xr.size), "share_below_mode": round(float(np.mean(xr <= mode)), 5)}


def classify_modes(modes: list[float], negative_max: float) -> tuple[list[bool], list[bool]]:
    """Which of the density's modes (ascending positions, each pair separated by a real valley) are
    positive, for ``separates``: a mode more than :data:`MODE_MARGIN` above ``negative_max`` is positive,
    one more than that below it negative. A mode within the margin could be either and is decided by the
    valleys around it: with a lower mode below it (and so a valley between them) it is positive -- the lower
    one holds the negatives; as the lowest mode its position decides, but it is left *unresolved*.
    Returns (positive, unresolved), one entry per mode."""
    positive, unresolved = [], []
    for k, m in enumerate(modes):
        if abs(m - negative_max) < MODE_MARGIN:
            positive.append(k > 0 or m > negative_max)
            unresolved.append(k == 0)
        else:
            positive.append(m > negative_max)
            unresolved.append(False)
    return positive, unresolved


@dataclass(frozen=True)
class OverlapNegatives:
    """The negatives of a valley's lower mode as the negative reference models them: ``reference`` (that
    population's finite values, same scale as the data) scaled to ``fraction`` (0..1) of the data's events, the
    negative model's weight (:func:`~.negative_model.negative_model`)."""

    reference: np.ndarray
    fraction: float

    def above(self, t: float) -> float:
        """The modelled negatives at or above ``t``, as a fraction (0..1) of the data's events."""
        return self.fraction * float(np.mean(self.reference >= t))


def overlap_threshold(x: np.ndarray, d: Density1D, peaks: np.ndarray, valleys: list[tuple[int, float]],
                      v: int, negatives: OverlapNegatives | None = None) -> float:
    """Where a valley threshold (grid index ``v``) would lie if it held the count corrected for the overlap of
    the two modes around it (same scale as ``x``).

    The events of the lower mode that lie above the valley are estimated by those at least as far *below*
    the lower mode (its outer half mirrored, counted down to the next valley below, so a third mode is not
    included) or, with ``negatives`` (a negative reference's shape at the negatives' count), by the modelled
    negatives above the valley -- the reference sees the skew of a negative peak towards the positives
    (lognormal autofluorescence, spillover spreading), which the mirror cannot; those of the upper mode below
    the valley by the events as far above the upper mode (counted up to the next valley above). A valley
    between overlapping modes (a dim CD28+ mode ~5x the negatives) holds the count minus the first plus the
    second; the position returned holds that corrected count. For a clean valley both tails are empty and it
    is the valley itself."""
    t, lower_above, upper_below = _overlap_tails(x, d, peaks, valleys, v, negatives)
    return _holding(x, t, int(np.clip(np.count_nonzero(x >= t) - lower_above + upper_below, 0, x.size)))


def _overlap_tails(x: np.ndarray, d: Density1D, peaks: np.ndarray, valleys: list[tuple[int, float]], v: int,
                   negatives: OverlapNegatives | None) -> tuple[float, int, int]:
    """(the valley's position, the lower mode's events above it, the upper mode's events below it) as
    :func:`overlap_threshold` estimates them (event counts of ``x``)."""
    t = float(d.grid[v])
    k = next(i for i, (vi, _) in enumerate(valleys) if vi == v)  # valley k lies between peaks k and k+1
    lo_mode, hi_mode = float(d.grid[peaks[k]]), float(d.grid[peaks[k + 1]])
    floor = float(d.grid[valleys[k - 1][0]]) if k > 0 else -np.inf
    ceil = float(d.grid[valleys[k + 1][0]]) if k + 1 < len(valleys) else np.inf
    if negatives is None:
        lower_above = int(np.count_nonzero((x >= floor) & (x <= 2 * lo_mode - t)))
    else:
        lower_above = int(round(negatives.above(t) * x.size))
    upper_below = int(np.count_nonzero((x <= ceil) & (x >= 2 * hi_mode - t)))
    return t, lower_above, upper_below


def _holding(x: np.ndarray, t: float, target: int) -> float:
    """The position at which ``x >= position`` holds ``target`` events (``t`` itself where it holds them)."""
    if target == np.count_nonzero(x >= t) or x.size == 0:
        return t
    xs = np.sort(x)
    return float(xs[x.size - target]) if 0 < target < x.size else float(xs[-1] if target == 0 else xs[0])


def overlap_negatives(x: np.ndarray, reference: np.ndarray | None, p: ThresholdParams) -> OverlapNegatives | None:
    """The reference-modelled negatives for ``overlap: reference`` (:class:`OverlapNegatives`), or None: another
    ``overlap`` rule, too few events, or a negative model that is not valid (the reference's shape does not fit
    the data's negatives, or the reference is not negative for the marker, :attr:`~.negative_model.NegativeModel.valid`)."""
    if p.overlap != "reference" or reference is None or not _has_reference(reference, x):
        return None
    r = np.asarray(reference, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    m = negative_model(x, reference=r)
    if m is None or m.method != "reference" or not m.valid:
        return None
    return OverlapNegatives(r, m.negative_fraction)


def _overlap_corrected(x: np.ndarray, d: Density1D, peaks: np.ndarray, valleys: list[tuple[int, float]], v: int,
                       negatives: OverlapNegatives | None, negative_max: float | None) -> float | None:
    """Where ``overlap: reference`` moves the valley at grid index ``v`` (:func:`overlap_threshold` with the
    reference-modelled ``negatives``; same scale as ``x``), or None where it does not apply: no such negatives,
    a valley whose lower mode lies above ``negative_max`` (not where the reference's negatives are) or whose
    upper mode lies at or below it (not a positive mode), a correction within :data:`OVERLAP_CORRECTION_SDS`
    of its counting noise (the square root of the events the two tails are estimated to hold: a few events in
    a sparse valley say nothing), or a corrected position outside the gap between the two modes. The lower
    mode need not be the lowest: a less smoothed density splits a broad negative peak into modes of its own
    (the reference's shape counts all of its events alike)."""
    if negatives is None or negative_max is None:
        return None
    k = next(i for i, (vi, _) in enumerate(valleys) if vi == v)  # valley k lies between peaks k and k+1
    lo, hi = float(d.grid[peaks[k]]), float(d.grid[peaks[k + 1]])
    if not lo <= negative_max < hi:
        return None
    t, lower_above, upper_below = _overlap_tails(x, d, peaks, valleys, v, negatives)
    if abs(upper_below - lower_above) <= OVERLAP_CORRECTION_SDS * np.sqrt(lower_above + upper_below):
        return None
    corrected = _holding(x, t, int(np.clip(np.count_nonzero(x >= t) - lower_above + upper_below, 0, x.size)))
    return corrected if lo < corrected < hi else None


def _pick_valley(d: Density1D, peaks: np.ndarray, ok: list[tuple[int, float]],
                 p: ThresholdParams) -> tuple[int, float] | None:
    """The valley ``p.valley`` asks for among the candidates ``ok`` ((grid index, depth ratio)), or None."""
    if p.valley in ("below_dominant", "above_dominant"):
        top = d.grid[peaks[int(np.argmax(d.density[peaks]))]]
        ok = [(v, r) for v, r in ok if (d.grid[v] < top) == (p.valley == "below_dominant")]
    if not ok:
        return None
    return ok[0] if p.valley == "first" else ok[-1] if p.valley == "last" else min(ok, key=lambda vr: vr[1])


def _negative_max(p: ThresholdParams) -> float | None:
    if p.negative_max is not None:
        return p.negative_max
    return float(np.mean(p.bounds)) if p.bounds is not None else None


def _tail(x: np.ndarray, d: Density1D, peaks: np.ndarray, p: ThresholdParams, *,
          lone_mode: bool = False, negative: dict | None = None) -> tuple[float, dict, list[str]]:
    """Tail threshold. With ``lone_mode`` (the valley rule found no usable valley) and a negative
    reference (``reference_peak`` first, or highest with ``tail_side`` lower), the side follows the data:
    a single mode (or, with ``separates``, a lowest mode) above ``negative_max`` is a positive population
    and gets the threshold *below* it (``all_positive``); a dominant mode at or below it is negative and
    gets it *above* it (``all_negative``). Without a measured reference (``negative``), a lone mode within
    :data:`MODE_MARGIN` of the fixed ``negative_max`` cannot be told apart and is flagged ``ambiguous_mode``;
    with one the decision is :func:`.lone_mode.lone_mode_side`'s (position and count of negatives)."""
    flags: list[str] = []
    side, ref_rule = p.tail_side, p.reference_peak
    neg_max = _negative_max(p)
    count_at: float | None = None
    lone_info: dict = {}
    if lone_mode and neg_max is not None:
        if ref_rule == "first" and side == "upper" and (len(peaks) == 1 or p.separates != "any"):
            mode0 = float(d.grid[peaks[0]])
            if negative is not None:
                side, count_at, lone_flags, lone_info = lone_mode_side(x, mode0, negative)
                flags.extend(lone_flags)
            else:
                if mode0 > neg_max:
                    flags.append("all_positive")
                    side = "lower"
                if abs(mode0 - neg_max) < MODE_MARGIN:
                    flags.append("ambiguous_mode")
        elif ref_rule == "highest" and side == "lower":
            top = float(d.grid[peaks[int(np.argmax(d.density[peaks]))]])
            if top <= neg_max:
                flags.append("all_negative")
                side = "upper"
            if abs(top - neg_max) < MODE_MARGIN:
                flags.append("ambiguous_mode")
    if ref_rule == "first":
        ref = peaks[0] if negative is None or side != "upper" else negative_mode(d, peaks, negative)
    elif ref_rule == "last":
        ref = peaks[-1]
    else:
        ref = peaks[int(np.argmax(d.density[peaks]))]
    mode = float(d.grid[ref])
    sd = outer_half_sd(x, mode, side)
    sd = float(np.std(x)) if sd is None else sd
    info: dict = {"reference_peak": mode, "half_sd": sd, "tail_side": side}
    width = sd
    if p.tail_widen > 1.0 and sd > 0:
        core = core_sd(d, int(ref), CORE_LEVEL, 1 if side == "upper" else -1)
        info["core_ratio"] = round(core / sd, 4)
        width = sd * min(max(core / sd, 1.0), p.tail_widen)
        info["tail_width"] = width
    value = mode + p.tail_sd * width if side == "upper" else mode - p.tail_sd * width
    if p.tail_knee is not None and side == p.tail_side and count_at is None and sd > 0:  # not a flipped side
        knee = flank_knee(d, int(ref), 1 if side == "upper" else -1, p.tail_knee, KNEE_MAX_SD * sd)
        if knee is not None:
            info["knee"] = knee
            if (knee > value) if side == "upper" else (knee < value):
                value = knee
                flags.append("tail_knee")
    if lone_info:
        info["lone_mode"] = lone_info
    if count_at is not None:  # the lone mode's lower side holds negatives too: the threshold holds the count
        value = count_at
    return value, info, flags


#: a valley read from the less smoothed density (:func:`_sharper_valley`) must have at least this many events
#: beyond it: fewer are the lone mode's own tail
SHARPER_MODE_EVENTS = 10


def _sharper_valley(x: np.ndarray, p: ThresholdParams, neg: dict | None, tail_peak: float
                    ) -> tuple[float, str] | None:
    """The valley (value, ``"valley"``) that the density smoothed less (``adjust`` x ``STABILITY_ADJUST[0]``, the
    stability refit's) finds within ``bounds`` and beyond ``tail_peak`` (the mode the clipped tail was measured
    from, on the tail's side) where the default smoothing's tail fallback had to be clipped to them; None when
    that reading has no such valley."""
    alt = fit_threshold(x, p.model_copy(update={"adjust": p.adjust * STABILITY_ADJUST[0]}), check_stability=False,
                        negative=neg)
    if alt.info.get("method") != "valley" or p.bounds is None or not p.bounds[0] <= alt.value <= p.bounds[1]:
        return None
    if not alt.value > tail_peak:  # a dip inside or below the mode itself: noise of a lone mode, not two modes
        return None
    if int(np.count_nonzero(x >= alt.value)) < SHARPER_MODE_EVENTS:  # a few events in the tail, not a mode
        return None
    return float(alt.value), "valley"


def fit_threshold(x: np.ndarray, params: ThresholdParams | None = None, *, check_stability: bool = True,
                  reference: np.ndarray | None = None, negative: dict | None = None,
                  overlap: OverlapNegatives | None = None, merge_noise: bool = False) -> Threshold:
    """Fit one threshold on the 1-D values ``x`` (transformed scale) following ``params``.

    ``reference``: values of a negative-reference population on the same channel and scale (same file).
    Its negative mode then sets ``negative_max`` (:func:`reference_negative`; recorded in
    ``info["negative_reference"]``) instead of the strategy's fixed ``negative_max`` / middle of ``bounds``,
    so whether a lone mode is negative or positive follows this file's gain and background (and the count of
    events where the reference's negatives lie, :func:`.lone_mode.lone_mode_side`). With too few reference events the
    fixed value is used and the fit is flagged ``no_negative_reference``. ``negative``: that reference's
    negative already measured (:func:`reference_negative`; the smoothing refits pass it on). ``overlap``: the
    reference-modelled negatives of ``overlap: reference`` already measured (:func:`overlap_negatives`), passed on
    to its smoothing refits by a fit that corrected its valley: a refit's valley is then corrected whatever its
    depth (the fit found the two modes overlapping; whether a refit's dip is a little shallower is smoothing).

    Returns the threshold value (same scale as ``x``), flags and the numbers behind it
    (``peaks``, ``valleys``, ``method`` actually used, ``n_events`` fitted on). With ``check_stability``
    a valley-mode fit is repeated with the density smoothed less and more (``adjust`` x
    :data:`STABILITY_ADJUST`); ``info["stability_pct"]`` is the largest share of events (%) lying between
    the threshold and one of those refits, and above :data:`UNSTABLE_PCT` the fit is flagged ``unstable``:
    whether there is a valley, and where, depends on how the density is read. A valley-placed fit records its
    valley's depth in SDs of the KDE's sampling noise and whether it borders the main mode
    (``info["valley_noise"]``, :func:`valley_noise`); one fewer than :data:`MIN_MODE_SDS` deep beside no main
    mode is noted :data:`NOISE_VALLEY_FLAG` (a dip between noise bumps of a sparse smear) and, with
    ``check_stability``, records the merged reading: the threshold the valley rule places on the same events once
    every such noise valley is merged (``merge_noise``; ``info["valley_noise"]["merged"]``, same scale as ``x``,
    None where that reading ends in neither a valley nor a tail). :mod:`.confidence` takes it as a plausible
    position of the threshold, so what it would move the population enters ``est_error_pp``.
    ``merge_noise``: merge, after the shallow dips, the two peaks around every valley fewer than
    :data:`MIN_MODE_SDS` noise SDs deep over the whole range (:func:`merge_sparse` without an upper limit; the
    main mode's valleys kept).
    """
    p = params or ThresholdParams()
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    flags: list[str] = []
    info: dict = {"n_events": int(x.size)}
    neg = negative
    if reference is not None and p.mode != "fixed" and neg is None:
        neg = reference_negative(reference, p)
        if neg is None:
            flags.append("no_negative_reference")
    if neg is not None:
        info["negative_reference"] = neg
        p = p.model_copy(update={"negative_max": neg["negative_max"]})
    if p.mode == "fixed":
        assert p.value is not None  # required by ThresholdParams' validator
        cut = _floor(float(p.value), p, info, flags)
        info.update(method="fixed", threshold=cut)
        if check_stability and p.fixed_tolerance > 0:  # the cut on a scale that may differ by the tolerance
            info["stability_thresholds"] = [cut - p.fixed_tolerance, cut + p.fixed_tolerance]
        return Threshold(cut, tuple(flags), info)
    if x.size < 20:
        flags.append("few_events")
        fallback_value = p.expected if p.expected is not None else (
            float(np.mean(p.bounds)) if p.bounds else (float(np.median(x)) if x.size else 0.0))
        return Threshold(float(fallback_value), tuple(flags + ["unreliable"]), {**info, "method": "default"})
    if x.size > p.max_events:
        rng = np.random.default_rng(p.seed)
        x = x[rng.choice(x.size, size=p.max_events, replace=False)]
    refit_of_corrected = overlap is not None
    if overlap is None and p.mode == "valley":
        overlap = overlap_negatives(x, reference, p)
    d = kde_1d(x, adjust=p.adjust)
    raw_peaks = peaks = find_peaks(d, p.min_peak_fraction)
    if p.mode == "valley":
        peaks = merge_shallow(d, peaks, p.max_valley_ratio)
        if merge_noise:  # the merged reading: no noise bump anywhere is a mode
            peaks = merge_sparse(d, peaks, x, MIN_MODE_SDS, np.inf)
        classified_max = _negative_max(p) if p.separates != "any" else None
        if classified_max is not None and p.min_mode_sds is not None:
            # the modes where negatives may lie are classified by position: noise peaks among them are not modes
            peaks = merge_sparse(d, peaks, x, p.min_mode_sds, classified_max + MODE_MARGIN)
    info["peaks"] = [round(float(d.grid[i]), 5) for i in peaks]
    info["bandwidth"] = d.bandwidth
    info["landmarks"] = landmarks(x, d, peaks)
    value: float | None = None
    method: str = p.mode
    in_bounds: list[tuple[int, float]] = []
    noise: ValleyNoise | None = None  # the chosen valley's depth in noise SDs
    if p.mode == "valley":
        valleys = find_valleys(d, peaks)
        info["valleys"] = [(round(float(d.grid[v]), 5), round(r, 3)) for v, r in valleys]
        in_bounds = [(v, r) for v, r in valleys
                     if p.bounds is None or p.bounds[0] <= d.grid[v] <= p.bounds[1]]
        ok = in_bounds  # shallow dips (noise bumps of one mode) were merged away above
        neg_max = _negative_max(p)
        if p.separates != "any" and neg_max is not None:
            positive, unresolved = classify_modes([float(d.grid[i]) for i in peaks], neg_max)
            flipped = [pos != unres for pos, unres in zip(positive, unresolved)]  # the other reading
            above = {int(v): k for k, (v, _) in enumerate(valleys)}  # valley k lies right above mode k
            want = p.separates == "positive"
            ok = [(v, r) for v, r in in_bounds if positive[above[int(v)]] == want]
            pick = _pick_valley(d, peaks, ok, p)
            other = _pick_valley(d, peaks, [(v, r) for v, r in in_bounds if flipped[above[int(v)]] == want], p)
            if other is not None and other != pick:
                flags.append("ambiguous_mode")  # the unresolved mode's reading decides which valley, if any
        if not valleys:
            flags.append("no_valley")
        elif not in_bounds:
            flags.append("valley_out_of_bounds")
        elif not ok:
            flags.append("no_valley")  # none of the kind asked for by 'separates'
        else:
            chosen = _pick_valley(d, peaks, ok, p)
            if chosen is None:
                flags.append("no_valley")
            elif p.dim_mode_tail is not None and dim_mode_below(d, raw_peaks, peaks, int(chosen[0]), p.dim_mode_tail):
                flags.append("dim_mode_below_valley")
                info["dim_mode_valley"] = round(float(d.grid[chosen[0]]), 5)
            else:
                value = float(d.grid[chosen[0]])
                info["valley_ratio"] = chosen[1]
                noise = valley_noise(d, peaks, int(chosen[0]), int(x.size))
                info["valley_noise"] = {"sds": round(noise.sds, 3), "beside_main": noise.beside_main,
                                        "isolated": noise.isolated_noise}
                if chosen[1] >= OVERLAP_MIN_RATIO or refit_of_corrected:  # modes that overlap; a clean valley's
                    # tails are shape
                    corrected = _overlap_corrected(x, d, peaks, valleys, int(chosen[0]), overlap, neg_max)
                    if corrected is None and chosen[1] >= OVERLAP_MIN_RATIO:
                        info["overlap_threshold"] = overlap_threshold(x, d, peaks, valleys, int(chosen[0]))
                    elif corrected is not None:  # the count corrected for the overlap decides; refits alike
                        info["overlap_corrected"] = {"valley": round(value, 5), "threshold": round(corrected, 5)}
                        value = corrected
                        flags.append("overlap_corrected")
        if value is None and "dim_mode_below_valley" in flags:
            method = "tail"  # the valley separates dim from bright positives; the negatives end below
        elif value is None:
            method = p.fallback
            if p.fallback in ("excess", "crossing") and not _has_reference(reference, x):
                method = "tail"  # the negative model needs the same file's negative reference
                flags.append("no_negative_reference")
            if p.fallback == "none":
                value = float(p.expected if p.expected is not None else np.median(x))
                flags.append("unreliable")
            else:
                flags.append(f"fell_back:{method}")
    if method == "excess":
        assert reference is not None  # checked above
        value = _excess(x, reference, info)
        if value is None:  # the reference is no model of these negatives: the tail, said so
            method = "tail"
            flags.remove("fell_back:excess")
            flags.extend(["negative_model_misfit", "fell_back:tail"])
    if method == "crossing":
        assert reference is not None  # checked above
        value = _crossing(x, reference, p, info)
        if value is None:  # no mode above the reference's negatives: the tail, said so
            method = "tail"
            flags.remove("fell_back:crossing")
            flags.extend(["no_crossing", "fell_back:tail"])
    elif (method == "valley" and p.fallback == "crossing" and _has_reference(reference, x)
          and info.get("valley_ratio", 0.0) >= OVERLAP_MIN_RATIO):  # a clean valley decides on its own
        assert reference is not None and value is not None
        floor = _crossing(x, reference, p, info)
        if floor is not None and floor > value:  # the valley lies where the negatives still dominate
            info["crossing"]["raised_from"] = round(value, 5)
            value, method = floor, "crossing"
            flags.append("raised_to_crossing")
    if method == "tail":
        value, tail_info, tail_flags = _tail(x, d, peaks, p, lone_mode=p.mode == "valley", negative=neg)
        info.update(tail_info)
        flags.extend(tail_flags)
        drift_ref = p.expected
        if drift_ref is not None and abs(value - drift_ref) > p.drift_tolerance:
            flags.append("tail_drift")
        elif p.bounds is not None and not p.bounds[0] <= value <= p.bounds[1]:
            flags.append("tail_drift")
    elif method == "quantile":
        value = float(np.quantile(x, p.quantile))
    elif method == "expected":
        assert p.expected is not None  # ThresholdParams' validator requires it for fallback 'expected'
        value = float(p.expected)
    assert value is not None
    if method == "excess":
        _note_bounds(value, p, flags)
    elif p.bounds is not None and not p.bounds[0] <= value <= p.bounds[1]:
        value = float(np.clip(value, *p.bounds))
        flags.append("clipped")
        if method == "tail" and p.mode == "valley" and in_bounds:
            flags.append("skipped_valley")
        elif method == "tail" and p.mode == "valley" and check_stability and info.get("tail_side") == "upper":
            sharper = _sharper_valley(x, p, neg, float(info.get("reference_peak", np.inf)))
            if sharper is not None:  # two modes the default smoothing merged (few events: a wide bandwidth)
                value, method = sharper
                flags.remove("clipped")
                flags.append("valley_less_smoothed")
    value = _floor(value, p, info, flags)
    info["method"] = method
    info["threshold"] = value
    if check_stability and method == "excess":
        info["stability_thresholds"] = info["negative_model"]["alternatives"]
    elif check_stability and method == "crossing":
        info["stability_thresholds"] = info["crossing"]["alternatives"]
    elif check_stability and p.mode == "valley":
        moved = 0.0
        alts = []
        for f in STABILITY_ADJUST:
            alt = fit_threshold(x, p.model_copy(update={"adjust": p.adjust * f}), check_stability=False,
                                negative=neg, overlap=overlap if "overlap_corrected" in info else None).value
            alts.append(alt)
            lo, hi = sorted((alt, value))
            moved = max(moved, 100.0 * float(np.mean((x >= lo) & (x < hi))))
        info["stability_pct"] = round(moved, 3)
        info["stability_thresholds"] = alts  # the refits themselves (confidence.estimated_error uses them)
        if moved > UNSTABLE_PCT:
            flags.append("unstable")
        if method == "valley" and p.fallback == "excess" and _has_reference(reference, x):
            assert reference is not None
            ex_info: dict = {}
            ex_value = _excess(x, reference, ex_info)
            diff = 0.0 if ex_value is None else 100.0 * abs(float(np.mean(x >= value)) - float(np.mean(x >= ex_value)))
            if ex_value is None:
                flags.append("negative_model_misfit")
            else:
                info["valley_vs_excess_pp"] = round(diff, 3)
            if ex_value is not None and (moved > UNSTABLE_PCT or diff > VALLEY_EXCESS_PP):
                # the valley moves with the smoothing, or it does not separate the negatives from the
                # positives (e.g. the dimmest part of a continuum lies below it): count the excess instead
                if diff > VALLEY_EXCESS_PP:
                    flags.append("valley_disagrees")
                value = _floor(ex_value, p, info, flags)
                flags.append("fell_back:excess")
                _note_bounds(value, p, flags)
                info.update(ex_info)
                info["method"] = "excess"
                info["threshold"] = value
                info["stability_thresholds"] = info["negative_model"]["alternatives"]
    if info["method"] == "valley" and noise is not None and noise.isolated_noise:
        flags.append(NOISE_VALLEY_FLAG)  # a dip between noise bumps, beside no main mode: other readings differ
        if check_stability:  # what the reading with the noise bumps merged says (confidence weighs the move)
            merged = fit_threshold(x, p, check_stability=False, negative=neg, merge_noise=True)
            info["valley_noise"]["merged"] = (round(float(merged.value), 5)
                                              if merged.info.get("method") in ("valley", "tail") else None)
    return Threshold(value, tuple(dict.fromkeys(flags)), info)


def _floor(value: float, p: ThresholdParams, info: dict, flags: list[str]) -> float:
    """``value`` raised to ``p.at_least`` when below it (flag ``raised_to_floor``, the fit's own value in
    ``info["below_floor"]``); otherwise ``value``."""
    if p.at_least is None or value >= p.at_least:
        return value
    info["below_floor"] = value
    flags.append("raised_to_floor")
    return float(p.at_least)


def _note_bounds(value: float, p: ThresholdParams, flags: list[str]) -> None:
    """An excess threshold follows the count, so it is not clipped; outside ``bounds`` it is noted."""
    if p.bounds is not None and not p.bounds[0] <= value <= p.bounds[1]:
        flags.append("excess_out_of_bounds")


def _has_reference(reference: np.ndarray | None, x: np.ndarray) -> bool:
    """Enough events for the negative model: the reference (:data:`MIN_REFERENCE_EVENTS`) and ``x``."""
    if reference is None or x.size < NEGATIVE_MODEL_MIN_EVENTS:
        return False
    r = np.asarray(reference, dtype=np.float64)
    return int(np.isfinite(r).sum()) >= MIN_REFERENCE_EVENTS


def _crossing(x: np.ndarray, reference: np.ndarray, p: ThresholdParams, info: dict) -> float | None:
    """Where the reference-shaped negatives stop dominating ``x`` (:mod:`.negative_crossing`); recorded in
    ``info["crossing"]`` with ``alternatives``: the boundary with the negatives' count -/+ its SD and with
    the density smoothed less and more (:data:`STABILITY_ADJUST`). None when there is no such boundary."""
    c = negative_crossing(x, reference, adjust=p.adjust)
    if c is None:
        return None
    refits = [negative_crossing(x, reference, adjust=p.adjust * f) for f in STABILITY_ADJUST]
    info["crossing"] = {**c.as_info(), "alternatives": [*c.alternatives, *(r.value for r in refits if r is not None)]}
    return c.value


def _excess(x: np.ndarray, reference: np.ndarray, info: dict) -> float | None:
    """Threshold holding the positives counted as the excess of ``x`` over the negative reference
    (:func:`~.negative_model.negative_model`); records the model in ``info["negative_model"]`` with
    ``alternatives``: the thresholds holding the estimate -/+ one SD (the estimate's own uncertainty).
    None when the reference does not fit the data's negative side (``misfit`` above the limit: its
    negatives sit elsewhere or spread differently, so the count would be wrong)."""
    m = negative_model(x, reference=reference)
    assert m is not None  # _has_reference checked both sizes
    if not m.valid:
        info["negative_model"] = {"method": m.method, "misfit": round(m.misfit, 3), "valid": False}
        return None
    value = m.threshold_for_count(x)
    alts = [float(np.quantile(x, min(max(1.0 - m.positive_fraction + d * m.sd_fraction, 0.0), 1.0)))
            for d in (-1.0, 1.0)]
    info["negative_model"] = {"method": m.method, "positive_pct": round(m.positive_pct, 3),
                              "sd_pp": round(100.0 * m.sd_fraction, 3), "location": round(m.location, 5),
                              "misfit": round(m.misfit, 3), "alternatives": alts}
    return value
