"""How far off a threshold gate's population may be: the estimated error (pp) and threshold sensitivity.

Contract
--------
A fitted threshold can be off for reasons no density rule sees (a shoulder read as a mode, a valley
inside a continuum, a negative population whose tail is not where the tail rule assumes). What that
costs depends on how many events lie where the threshold could plausibly be, so both are measured on
the parent's events (gate coordinates: logicle 0..1 for fluorescence):

* :func:`estimated_error` -> ``est_error_pp``: the error of the population's **% of parent** (percentage
  points) that the uncertainty of its own thresholds implies. Each threshold's plausible alternatives
  are (a) the same rule re-run on the density smoothed less and more (the refits
  ``info["stability_thresholds"]`` of :func:`~.density.fit_threshold`: where a valley is depends on how the
  density is read), as far as they stay in the middle of the gap between the two modes around the
  threshold (a refit beyond a mode chose another valley altogether, and one within
  :data:`MODE_EDGE_FRACTION` of the gap next to a mode found a dip inside that mode's body -- the less
  smoothed density splits a broad mode in two: neither is an uncertainty of this threshold's position, they
  are the note ``unstable``) and (b) for a tail-placed threshold, the tail moved by ±:data:`TAIL_SD_UNCERTAINTY`
  half-SDs of its reference peak (how many SDs "above the negatives" is a convention, not a measurement);
  likewise (c) a threshold placed by the crossing because no valley was found (``fell_back:crossing``,
  :func:`fell_back_to_crossing`), moved by ±:data:`TAIL_SD_UNCERTAINTY` half-SDs of the negative reference's peak
  (where reference-shaped negatives stop dominating rests on these negatives having the reference's width);
  and (d) for a valley between two noise bumps beside no main mode (note ``noise_valley``), the merged reading:
  where the valley rule puts the threshold once the noise bumps are merged (``info["valley_noise"]["merged"]``).
  Each alternative moves the population by some pp; a threshold's term is the largest such move and
  ``est_error_pp`` is the root sum of squares of the terms of all thresholds. It grows with the density
  of events at the threshold (times how far the threshold could move): ~0 for a threshold in an empty
  valley, large for one cutting through a continuum or a dense peak. One exception keeps a refit's move
  whatever capped it: a valley noted ``unstable`` that lies above the negative reference's ``negative_max``
  takes at least the move of its alternatives below it as its term (:attr:`ThresholdUncertainty.unstable_above_negatives`).
* :func:`threshold_sensitivity` -> ``sensitivity_pp``: the largest change in % of parent when any one
  threshold moves by a fixed ±:data:`SHIFT` (recorded for reference; not a flag).

A population whose ``est_error_pp`` exceeds :data:`UNCERTAIN_PP` is flagged ``uncertain`` (a review flag).
The limit and :data:`TAIL_SD_UNCERTAINTY` were chosen on the tuning scenario families of
``benchmarks/gating_accuracy.py``, which prints, per split, the observed error per band of
``est_error_pp`` and the flag's recall and precision on held-out families.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .base import subsample
from .density import UNSTABLE_PCT, outer_half_sd
from .negative_model import negative_model

#: threshold shift (gate coordinates) used by :func:`threshold_sensitivity`: ~1.2x in linear signal
SHIFT = 0.02
#: a tail-placed threshold may plausibly lie this many half-SDs of its reference peak higher or lower
TAIL_SD_UNCERTAINTY = 0.25
#: a population whose ``est_error_pp`` exceeds this (percentage points) is flagged ``uncertain``; chosen on the
#: tuning draws 101 and 404 (1.5), then 505 (1.0: 1.5 caught 24 of its 32 estimates > 2 pp off). Kept at 1.0
#: with the negative model's count: on the draws 101, 404, 505 and 606 (3,997 estimates) 0.6-1.0 catch the same
#: 46 of 51, 1.25 catches 44 and 1.5 only 21 (the count's est_error_pp of excess-placed CD25 lies at 1-2 pp)
UNCERTAIN_PP = 1.0
#: a smoothing refit within this fraction of the gap between the two modes around a valley threshold, next
#: to one of them, split that mode rather than moved the valley: not an alternative position. Chosen on the
#: tuning draws (101, 404, 505, 606): 0.15-0.25 keep every estimate > 2 pp off that 0 keeps flagged and
#: drop most false alarms (CD56dim/bright refits inside the bright mode); 0.33 loses a fifth of the recall
MODE_EDGE_FRACTION = 0.2
#: a valley whose density is at least this share of the smaller of the two modes around it (``valley_ratio``)
#: is barely a dip: whether those two modes are distinct at all is what the smoothing decides, so a smoothing
#: refit beyond one of them (another valley) is another reading of the same data and counts as an alternative
#: (docs/gating.md, "A barely-there valley"; chosen on the tuning draws 101-808, checked on 909, 1010 and the
#: independent lab)
SHALLOW_VALLEY_RATIO = 0.5
#: a valley-placed threshold whose fixed move by ±:data:`SHIFT` changes the population by less than this (pp)
#: cuts where hardly any events are: its spread counts only as far as that move (unless the valley is barely a
#: dip or the count puts the threshold lower). Equal to UNCERTAIN_PP: such a cut alone is never ``uncertain``;
#: chosen on the tuning draws 404/505/606/808 (0.5-1.0 keep the same estimates > 2 pp off flagged, 1.0 drops
#: the most flagged within 1 pp; docs/gating.md, "Three rules measured")
VALLEY_LOCAL_PP = 1.0
#: the rules whose thresholds :data:`VALLEY_LOCAL_PP` caps: a valley, and the equal-density boundary of the negatives
#: (``crossing``, :mod:`.negative_crossing`), whose alternatives (the negatives' count -/+ its SD, the smoothing
#: refits) slide it along a sparse stretch as a valley's refits slide along its floor (docs/gating.md, "A crossing
#: where few events are")
LOCAL_CAP_METHODS = ("valley", "crossing")
#: a disagreement with the second estimate beyond this many of its standard errors counts as an error even
#: where the threshold's own spread is ~0 (2-4 flag the same estimates of the tuning draws)
DISAGREEMENT_SDS = 3.0
#: the negative model's count is off by more than its counting noise (the reference's shape is not exactly these
#: negatives'): its SD is widened by this (pp of % of parent, root sum of squares) where it is weighed against the
#: threshold's spread. Measured on the tuning draws 404/909 (CD25+ CD4, counts kept): count - truth has a robust SD
#: of 1.89 pp against a median counting SD of 1.56 pp, i.e. 1.07 pp beyond it (docs/gating.md, "The count's
#: own error"); the misfit and contradiction tests keep the counting SD alone
COUNT_MODEL_SD_PP = 1.0
#: a negative-model count that puts a valley- or tail-placed threshold more than this many of its (counting) SDs
#: higher (fewer positives than the threshold holds) is set aside: the reference's negatives are wider than these,
#: the count subtracts too much (docs/gating.md, "When the count is set aside"; chosen for valleys on the tuning
#: draws 101/404/505/606; extended to tails on the draws 1313/1414 and lab A 7070, "A count far above a tail")
MISFIT_SDS = 2.0
#: rows used for the probes (a random subsample beyond this)
MAX_EVENTS = 20000

Member = Callable[[np.ndarray, Sequence[float | None]], np.ndarray]


@dataclass(frozen=True)
class SecondEstimate:
    """An independent estimate of the share of events on the positive side of one threshold, expressed as
    the ``position`` (gate coordinates) at which the threshold would hold that share of the parent's events,
    with the estimate's standard error ``sd_fraction`` (fraction 0..1 of the parent's events); ``column``:
    the gate dimension the threshold is on (an interval's two thresholds share one)."""

    position: float
    sd_fraction: float
    column: int = 0
    #: a second estimate more than this many of its SDs **above** the threshold (fewer events above it) is taken
    #: to have failed (its model does not fit these data) and is set aside; None: it always weighs
    #: (see :func:`estimated_error`)
    misfit_sds_above: float | None = None
    #: the estimate's error beyond ``sd_fraction`` (pp of % of parent), added in quadrature where it is weighed
    #: (:func:`combined_error`), not where it is tested for misfit: :data:`COUNT_MODEL_SD_PP` for the count
    model_sd_pp: float = 0.0
    #: the population's own negatives (its lowest mode mirrored, :func:`own_negative_share`) put the threshold
    #: nearer where it is than where this estimate puts it -- judged where the estimate says more positives, and
    #: on either side of a tail threshold: a count over a reference of another width or position than these
    #: negatives. Such an estimate more than ``misfit_sds_above`` (or :data:`MISFIT_SDS`) of its SDs away is set
    #: aside like one above a valley (see :func:`estimated_error`)
    contradicted: bool = False


@dataclass(frozen=True)
class ThresholdUncertainty:
    """Where one fitted threshold could plausibly lie instead: ``alternatives`` (gate coordinates), and
    an independent estimate of where it belongs (``second``, or None)."""

    value: float | None
    alternatives: tuple[float, ...] = ()
    second: SecondEstimate | None = None
    #: smoothing refits left out of ``alternatives`` for lying beyond a mode next to the threshold or in the
    #: outer :data:`MODE_EDGE_FRACTION` of the gap next to one (recorded: ``est_error_parts["set_apart_pp"]``)
    set_apart: tuple[float, ...] = ()
    #: the rule that placed the threshold (``info["method"]``: valley, tail, excess...), None if not known
    placed_by: str | None = None
    #: a valley of depth ratio >= :data:`SHALLOW_VALLEY_RATIO` (barely a dip): every smoothing refit counts
    shallow: bool = False
    #: a valley noted ``unstable`` (a smoothing refit moved it across more than :data:`~.density.UNSTABLE_PCT` % of
    #: the events) that lies above the negative reference's ``negative_max`` (gate coordinates): the valley may be
    #: a dip inside a sparse plateau of dim positives rather than where the negatives end, and the refit below it
    #: the plateau's lower end. Its term is at least the move of its alternatives below it, whatever capped it
    #: (the empty-valley cap, a count set aside above it, an agreeing count); docs/gating.md, "The silent CD25+
    #: CD4 rows"
    unstable_above_negatives: bool = False
    #: a valley fewer than :data:`~.density.MIN_MODE_SDS` noise SDs deep beside no main mode (note
    #: ``noise_valley``): its alternatives include the merged reading (the valley rule with the noise bumps merged)
    #: and are not capped as an empty valley's: that reading is another reading of the same events, not a slide
    #: along the valley's floor (docs/gating.md, "A valley between noise bumps on a one-mode parent")
    noise_valley: bool = False

    @classmethod
    def from_fit(cls, value: float | None, info: Mapping[str, Any] | None) -> "ThresholdUncertainty":
        """Alternatives of a threshold fitted by :func:`~.density.fit_threshold` (``info`` = its info):
        the smoothing refits that lie between the fit's modes on either side of ``value`` (``info["peaks"]``),
        outside the outer :data:`MODE_EDGE_FRACTION` of the gap next to each mode when there are modes on
        both sides (unless ``value`` itself lies there); for a threshold placed by the negative model's count
        (method ``excess``) its recorded alternatives (the count -/+ its SD) as they are; and for a
        tail-placed threshold every smoothing refit (a tail has no valley whose gap would bound them: a refit
        that found a valley where the fit found none is where the rule itself would have put the threshold,
        e.g. 0.617 instead of a tail clipped at 0.9) and the tail moved by ±TAIL_SD_UNCERTAINTY SDs; for a
        crossing the valley rule fell back to (:func:`fell_back_to_crossing`) its recorded alternatives and the
        crossing moved by ±TAIL_SD_UNCERTAINTY half-SDs of the negative reference's peak; for a
        valley threshold also ``info["overlap_threshold"]`` (:func:`~.density.overlap_threshold`: where the
        count corrected for the overlap of the two modes around the valley would put it; not recorded where
        ``overlap: reference`` placed the threshold there already, ``info["overlap_corrected"]``). A valley of depth
        ratio ``info["valley_ratio"]`` >= :data:`SHALLOW_VALLEY_RATIO` is not a bound either: every smoothing
        refit is an alternative. Refits left out are kept in ``set_apart``. A valley whose ``info["stability_pct"]``
        exceeds :data:`~.density.UNSTABLE_PCT` (noted ``unstable``) above ``info["negative_reference"]["negative_max"]``
        is marked ``unstable_above_negatives``. A noise valley (``info["valley_noise"]["isolated"]``, note
        ``noise_valley``) is marked ``noise_valley`` and its merged reading (``info["valley_noise"]["merged"]``) is
        an alternative wherever it lies."""
        if value is None or not info:
            return cls(value)
        peaks = [float(p) for p in info.get("peaks", ())]
        lo = max((p for p in peaks if p < value), default=-np.inf)
        hi = min((p for p in peaks if p > value), default=np.inf)
        shallow = info.get("method") == "valley" and float(info.get("valley_ratio") or 0.0) >= SHALLOW_VALLEY_RATIO
        if info.get("method") in ("excess", "tail") or shallow:  # no valley whose gap would bound the alternatives
            lo, hi = -np.inf, np.inf
        elif np.isfinite(lo) and np.isfinite(hi):  # (never narrower than where the fit itself lies)
            edge = MODE_EDGE_FRACTION * (hi - lo)
            lo, hi = min(lo + edge, value), max(hi - edge, value)
        refits = [float(a) for a in info.get("stability_thresholds", ()) if a is not None and np.isfinite(a)]
        alts = [a for a in refits if lo < a < hi]
        apart = tuple(a for a in refits if not lo < a < hi and a != value)
        if info.get("overlap_threshold") is not None and np.isfinite(info["overlap_threshold"]):
            alts.append(float(info["overlap_threshold"]))  # the count corrected for the modes' overlap
        noise = info.get("valley_noise") or {}
        noise_valley = info.get("method") == "valley" and bool(noise.get("isolated"))
        if noise_valley and noise.get("merged") is not None:
            alts.append(float(noise["merged"]))  # the reading with the noise bumps merged
        if info.get("method") == "tail" and info.get("half_sd"):
            d = TAIL_SD_UNCERTAINTY * float(info["half_sd"])
            alts += [value - d, value + d]
        elif fell_back_to_crossing(info):
            d = TAIL_SD_UNCERTAINTY * float(info["negative_reference"]["half_sd"])
            alts += [value - d, value + d]
        negative_max = (info.get("negative_reference") or {}).get("negative_max")
        unstable_above = (info.get("method") == "valley" and float(info.get("stability_pct") or 0.0) > UNSTABLE_PCT
                          and negative_max is not None and value > float(negative_max))
        return cls(value, tuple(a for a in alts if a != value), set_apart=apart, placed_by=info.get("method"),
                   shallow=shallow, unstable_above_negatives=unstable_above, noise_valley=noise_valley)


def fell_back_to_crossing(info: Mapping[str, Any]) -> bool:
    """True for a threshold placed by the crossing (:mod:`.negative_crossing`) because the valley rule found no
    usable valley (flag ``fell_back:crossing``), with the negative reference's half-SD recorded; False for one
    that raised a valley to the crossing (``raised_to_crossing``: ``info["crossing"]["raised_from"]``) and for
    any other rule. Such a threshold is where reference-shaped negatives stop dominating: nothing in the density
    marks it, so how wide these negatives are is a convention as a tail's SD count is
    (:meth:`ThresholdUncertainty.from_fit` gives it the tail's ±:data:`TAIL_SD_UNCERTAINTY` half-SDs)."""
    crossing = info.get("crossing")
    return (info.get("method") == "crossing" and isinstance(crossing, Mapping) and "raised_from" not in crossing
            and bool((info.get("negative_reference") or {}).get("half_sd")))


def negative_model_estimate(x: np.ndarray, reference: np.ndarray | None, value: float | None,
                            info: Mapping[str, Any] | None, *, column: int = 0) -> SecondEstimate | None:
    """The negative model's count as an independent second estimate for one threshold (or None).

    It applies where the strategy names a negative reference for the gate (``reference``: that population's
    events on this dimension, same file and scale; ``info["negative_reference"]`` recorded by the fit) and
    the threshold separates the negative mode -- the lowest of ``info["peaks"]``, at most the reference's
    ``negative_max`` -- from the events above it, placed by the valley or the tail rule (a
    threshold placed by the count itself, method ``excess``, has no independent second estimate). The
    positives are counted as the excess of ``x`` over the reference-shaped negative component
    (:func:`~.negative_model.negative_model`); ``position`` is where the threshold holds that count, with the
    count's SD (counting noise of ``x`` and the reference's own sampling noise). A count more than
    :data:`MISFIT_SDS` of those SDs above the threshold (valley or tail) is set aside by :func:`estimated_error`
    (``misfit_sds_above``). ``x`` is the parent's events on gate dimension ``column``.
    """
    if reference is None or value is None or not info or not info.get("negative_reference"):
        return None
    peaks = [float(p) for p in info.get("peaks", ())]
    if not peaks or not np.isfinite(value) or peaks[0] > float(info["negative_reference"]["negative_max"]):
        return None  # (the lowest mode is not where the reference's negatives are: no negative mode here)
    method = info.get("method")
    if method == "valley":
        if not (peaks[0] < value and (len(peaks) == 1 or value < peaks[1])):
            return None
    elif method == "tail":
        if info.get("tail_side") != "upper" or abs(float(info.get("reference_peak", np.nan)) - peaks[0]) > 1e-3:
            return None
    else:
        return None
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    m = negative_model(x, reference=ref)
    if m is None or m.method != "reference" or not m.valid:
        return None  # (no count, or a reference whose shape does not fit these negatives: no second estimate)
    # a valley is direct evidence of where the negatives end: a count that calls many events above it negative
    # says that the reference's negatives are wider than these (a count below it -- dim positives under the
    # valley, the valley rule's blind spot -- weighs unless the population's own negatives contradict it). A tail
    # is the population's own negatives read directly (its lowest mode + tail_sd SDs of that mode's lower half):
    # a count more than MISFIT_SDS above it is set aside likewise (on the simulator's draws 1313/1414 such counts
    # pointed the wrong way on 8 of the 14 tails > 2 pp off, and all 14 carried a spread > 1.6 pp of their own;
    # docs/gating.md, "A count far above a tail"); a count below a tail, or within MISFIT_SDS above it, weighs
    # unless the population's own negatives contradict it
    position = m.threshold_for_count(x)
    contradicted = False
    if position < value or method == "tail":
        own = own_negative_share(x, peaks[0], info["negative_reference"].get("share_below_mode"))
        if own is not None:
            xs = x[np.isfinite(x)]
            at_fit, at_count = float(np.mean(xs >= value)), float(np.mean(xs >= position))
            contradicted = abs((1.0 - own) - at_fit) < abs((1.0 - own) - at_count)
    return SecondEstimate(position, m.sd_fraction, column, MISFIT_SDS, contradicted=contradicted,
                          model_sd_pp=COUNT_MODEL_SD_PP)


def own_negative_share(x: np.ndarray, mode: float, share_below_mode: float | None) -> float | None:
    """The share (fraction 0..1) of ``x`` that is negative by the population's own negative peak: the events
    below its lowest mode ``mode`` (gate coordinates), divided by the share of a negative population that lies
    below its mode (``share_below_mode``, measured on the negative reference: its asymmetry; 0.5 if not
    recorded). It does not depend on the reference's width, only on the negative peak being as asymmetric as
    the reference's; positives dim enough to sit under the negative peak's upper half are counted as positives
    (the excess over the mirrored lower half). None for fewer than 50 finite events or a share outside 0.2-0.8."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    s = 0.5 if share_below_mode is None else float(share_below_mode)
    if x.size < 50 or not 0.2 <= s <= 0.8:
        return None
    return min(1.0, float(np.mean(x < mode)) / s)


def tail_estimate(x: np.ndarray, value: float | None, info: Mapping[str, Any] | None, tail_sd: float | None, *,
                  column: int = 0) -> SecondEstimate | None:
    """The tail rule as a second estimate for a threshold placed by the negative model's count (method
    ``excess``), or None for any other threshold.

    The count rests on the reference having the shape of this population's negatives; a reference that
    does not (other cells' negatives shifted by spillover or autofluorescence) moves the count by any amount
    with a small SD. The tail rule reads the negatives from this population alone: its lowest mode (the
    first of ``info["peaks"]``) plus ``tail_sd`` SDs of that mode's lower half. ``sd_fraction`` is what
    moving it by ±:data:`TAIL_SD_UNCERTAINTY` half-SDs changes (half of it), at least the share's counting
    noise. The tail rule misses dim positives inside a broad negative peak (why the count places the
    threshold), so only a large disagreement weighs (:func:`combined_error`).
    """
    if value is None or tail_sd is None or not info or info.get("method") != "excess":
        return None
    peaks = [float(p) for p in info.get("peaks", ())]
    x = np.asarray(x, dtype=np.float64)
    if not peaks or x.size == 0:
        return None
    mode = peaks[0]
    sd = outer_half_sd(x, mode)
    if sd is None:
        return None
    pos, d = mode + tail_sd * sd, TAIL_SD_UNCERTAINTY * sd
    share = float(np.mean(x >= pos))
    spread = abs(float(np.mean(x >= pos - d)) - float(np.mean(x >= pos + d))) / 2
    return SecondEstimate(pos, max(spread, float(np.sqrt(share * (1 - share) / x.size))), column)


def estimated_error(X: np.ndarray, thresholds: Sequence[ThresholdUncertainty], member: Member, *,
                    seed: int = 0, parts: dict[str, float] | None = None) -> float:
    """Estimated error (percentage points of % of parent) implied by the thresholds' plausible positions.

    ``member(X, values)`` returns the boolean membership of the rows of ``X`` (the parent's events in the
    gate's dimensions) for threshold values ``values`` (one per entry of ``thresholds``; ``None`` = an
    open side). For each threshold: the largest |change in % of parent| when it alone is moved to one of
    its ``alternatives``; the result is the root sum of squares over thresholds. NaN when no threshold has
    alternatives (fixed or quantile thresholds: nothing measured), 0.0 for an empty parent.

    A valley- or crossing-placed threshold (``placed_by`` in :data:`LOCAL_CAP_METHODS`, not ``shallow`` nor a
    ``noise_valley``) whose
    move by ±:data:`SHIFT` changes the population by less than :data:`VALLEY_LOCAL_PP` counts its spread only as
    far as that move, unless its second estimate lies below it. A threshold with a second estimate (:class:`SecondEstimate`) takes
    :func:`combined_error` of its spread and the second estimate's disagreement as its term -- unless the
    second estimate lies above the threshold by more than its ``misfit_sds_above`` SDs: then it is set aside
    and the term is the spread of the alternatives above the threshold (for a tail, ``placed_by == "tail"``: its
    own spread, both sides); or it lies more than that many SDs
    away (:data:`MISFIT_SDS` for a tail) and is ``contradicted`` by the population's own negative peak: then it
    is set aside and the term is the threshold's own spread (a contradicted count does not keep a valley from
    being capped either). Last, a threshold marked ``unstable_above_negatives`` (a valley noted ``unstable`` above
    the negative reference's ``negative_max``) takes as its term at least the spread of its alternatives below it.

    ``parts`` (optional, filled in place; pp of % of parent, root sum of squares over thresholds):
    ``spread_pp`` (the alternatives alone), ``second_gap_pp`` (how far the second estimates would move the
    population), ``second_sd_pp`` (their standard errors in the same units), ``n_second`` (thresholds with
    one), ``second_shift_pp`` (signed: the change of % of parent when the threshold
    with the largest such move is put where its second estimate says, set aside or not), ``set_aside``
    (how many second estimates were set aside), ``set_apart_pp`` (what the refits left out of the
    alternatives would move), ``spread_lower_pp`` / ``spread_upper_pp`` (the spread of the alternatives below /
    above each threshold), ``valley_empty`` (how many valley thresholds were capped by the ±SHIFT move) and
    ``unstable_floor`` (how many terms the spread below an ``unstable_above_negatives`` valley raised).
    """
    if not any(t.alternatives or t.second for t in thresholds):
        return float("nan")
    if X.shape[0] == 0:
        return 0.0
    X = subsample(X, MAX_EVENTS, seed)
    values = [t.value for t in thresholds]
    inside = member(X, values)
    base = float(inside.mean())

    def shift(i: int, position: float) -> float:
        moved = list(values)
        moved[i] = position
        return float(member(X, moved).mean()) - base

    def moved_to(i: int, position: float) -> float:
        return abs(shift(i, position))

    total = 0.0
    acc = {"spread_pp": 0.0, "second_gap_pp": 0.0, "second_sd_pp": 0.0, "n_second": 0.0, "second_shift_pp": 0.0,
           "set_aside": 0.0, "set_apart_pp": 0.0, "spread_lower_pp": 0.0, "spread_upper_pp": 0.0,
           "valley_empty": 0.0, "unstable_floor": 0.0}
    for i, t in enumerate(thresholds):
        moves = {alt: moved_to(i, alt) for alt in t.alternatives}
        worst = max(moves.values(), default=0.0)
        acc["spread_pp"] += worst * worst
        apart = max((moved_to(i, alt) for alt in t.set_apart), default=0.0)
        acc["set_apart_pp"] += apart * apart
        # the spread of the alternatives below and above the threshold (marker scale), apart
        lower = max((m for a, m in moves.items() if t.value is not None and a < t.value), default=0.0)
        upper = max((m for a, m in moves.items() if t.value is not None and a > t.value), default=0.0)
        acc["spread_lower_pp"] += lower * lower
        acc["spread_upper_pp"] += upper * upper
        # a valley cut where hardly any events are: the refits measure how broad the valley floor is -- unless the
        # count says the positives start lower (dim positives spread under the valley, the valley rule's blind spot)
        # and the population's own negatives do not contradict it
        count_lower = (t.second is not None and t.value is not None and t.second.position < t.value
                       and not t.second.contradicted)
        if (t.placed_by in LOCAL_CAP_METHODS and not t.shallow and not t.noise_valley and t.value is not None
                and worst > 0 and not count_lower):
            local = max(moved_to(i, t.value - SHIFT), moved_to(i, t.value + SHIFT))
            if 100.0 * local < VALLEY_LOCAL_PP:
                worst = min(worst, local)
                acc["valley_empty"] += 1
        if t.second is not None and t.value is not None:
            signed = shift(i, t.second.position)
            gap = abs(signed)
            if gap >= abs(acc["second_shift_pp"]) / 100.0:
                acc["second_shift_pp"] = 100.0 * signed
            x = X[:, t.second.column]
            between = abs(float(np.mean(x >= t.second.position)) - float(np.mean(x >= t.value)))
            # the second estimate's SD in the population's units: the population moves by `gap` when
            # the marker's positive share moves by `between`
            sd = t.second.sd_fraction * (gap / between if between > 0 else 1.0)
            acc["second_gap_pp"] += gap * gap
            acc["second_sd_pp"] += sd * sd
            acc["n_second"] += 1
            above = t.second.position > t.value
            limit = (t.second.misfit_sds_above if t.second.misfit_sds_above is not None else MISFIT_SDS) * sd
            if t.second.misfit_sds_above is not None and above and gap > t.second.misfit_sds_above * sd:
                # the count failed as a number. Above a valley it still puts the threshold higher, as the valley does
                # against the alternatives below it: the term is the spread of the alternatives above the threshold.
                # Above a tail it says nothing of the tail's side (a convention either way): the term is the
                # threshold's own spread, both sides
                acc["set_aside"] += 1
                if t.placed_by != "tail":
                    worst = min(worst, upper)
            elif t.second.contradicted and gap > limit:
                # the population's own negative peak says the fit is nearer than the count (below a valley or a tail:
                # a reference narrower or lower than these negatives; either side of a tail: one of another shape);
                # the term is the threshold's own spread
                acc["set_aside"] += 1
            else:
                worst = combined_error(worst, gap, float(np.hypot(sd, t.second.model_sd_pp / 100.0)))
        if t.unstable_above_negatives and lower > worst:
            # a valley that moves with the smoothing, above where the reference's negatives end: a dip inside a
            # sparse plateau of dim positives looks like an empty valley at +-SHIFT over the whole plateau, so the
            # refit that found the plateau's lower end is kept as a plausible position
            worst = lower
            acc["unstable_floor"] += 1
        total += worst * worst
    if parts is not None:
        counts = ("n_second", "second_shift_pp", "set_aside", "valley_empty", "unstable_floor")
        parts.update({k: round(v, 3) if k in counts else round(100.0 * float(np.sqrt(v)), 3) for k, v in acc.items()})
    return 100.0 * float(np.sqrt(total))


def with_error(est_pp: float, extra_pp: float) -> float:
    """Two independent errors (pp) combined: their root sum of squares; a part that was not measured (NaN) is
    left out, NaN when neither was. Used for the parts added to ``est_error_pp`` after the fit (scatter
    dilution and cut, parent edge, doublets) and for the counting SD (:mod:`..count_error`)."""
    if math.isnan(extra_pp):
        return est_pp
    return extra_pp if math.isnan(est_pp) else math.hypot(est_pp, extra_pp)


def combined_error(spread: float, disagreement: float, second_sd: float) -> float:
    """Expected error of an estimate whose own plausible error is ``spread`` given an independent second
    estimate ``disagreement`` away from it with standard error ``second_sd`` (all in the same units).

    Both are treated as normal: the best estimate of the truth weights them by their inverse variances,
    so it lies ``disagreement x spread^2 / (spread^2 + second_sd^2)`` from the first, with an SD of
    ``spread x second_sd / sqrt(spread^2 + second_sd^2)``; the result is the root sum of squares of the
    two. Agreement shrinks the error below both inputs; a disagreement raises it towards the disagreement
    when ``spread`` is comparable to ``second_sd``. That weighting trusts a first estimate with little
    spread (an empty valley) even against a far-off second one, but such a spread only measures where the
    rule could have put the threshold, not whether the rule was right: a disagreement beyond
    :data:`DISAGREEMENT_SDS` standard errors of the second estimate is an error of at least the excess
    (``disagreement - DISAGREEMENT_SDS x second_sd``) whatever the spread.
    """
    excess = max(0.0, float(disagreement) - DISAGREEMENT_SDS * second_sd)
    if spread <= 0 or second_sd <= 0:
        return max(excess, float(disagreement) if spread > 0 else 0.0)
    w = spread * spread / (spread * spread + second_sd * second_sd)
    return max(excess, float(np.hypot(w * disagreement, spread * second_sd / np.hypot(spread, second_sd))))


def threshold_sensitivity(X: np.ndarray, values: Sequence[float | None], member: Member, *,
                          shift: float = SHIFT, seed: int = 0) -> float:
    """Largest |change in % of parent| (pp) when any one of ``values`` moves by ``±shift``.

    ``member(X, values)`` returns the boolean membership of the rows of ``X`` for thresholds ``values``
    (``None`` entries are open sides and are not moved).
    """
    if X.shape[0] == 0:
        return 0.0
    X = subsample(X, MAX_EVENTS, seed)
    base = float(member(X, values).mean())
    worst = 0.0
    for i, v in enumerate(values):
        if v is None:
            continue
        for d in (-shift, shift):
            moved = list(values)
            moved[i] = v + d
            worst = max(worst, abs(float(member(X, moved).mean()) - base))
    return 100.0 * worst
