"""Fit a strategy's adaptive parameters to expert gates: a top-down search, one population at a time.

Contract
--------
:func:`tune_definition` walks the strategy's populations in order. For each population that has expert
gates and a tunable method (:data:`TUNERS`), it tries candidate parameter sets on every training sample
(the population re-fitted from its parent as already tuned) and keeps the one whose per-event F1 against
the expert is best (score = mean of the samples' mean and worst F1, so one sample cannot carry a choice).
The current parameters are always a candidate, so tuning never lowers the training score of a population.
With two or more training samples a population's tuning is adopted only if it passes a leave-one-out check
(:func:`_validated`): tuned without each training sample in turn, it must not score worse than the base
parameters on the sample left out, and must score better on average; and its training score must gain
at least :data:`MIN_GAIN` (F1 units) over the base parameters (on the samples it is tuned on in the
leave-one-out check too). Parameters that only reproduce the
samples they were fitted on (an expert's choice among several valleys that changes from sample to sample)
are thus not adopted, and the population keeps its base (shipped) parameters.

Threshold gates are tuned dimension by dimension (coordinate descent, two rounds). For each dimension
the *expert's placement* is measured on the strategy's own scale: the cut that best reproduces the expert
mask among the parent's events that pass the other dimensions. Candidates are first the *rules*
(:func:`rule_candidates`): the current valley rule with as few of its choices changed as possible
(which valley, the method's default valley depth instead of the current one, no bounds), fewest changes
first; then the valley choices with other bandwidths, tail widths and quantiles *implied* by the
placement on each sample, and bounds around the placements (not around a single one among near ties:
there they would hold the gate nearly fixed, which the minimal-change rule favours). Candidates within
:data:`RULE_TIE` of the best training score count as equally good, and of those the minimal change is kept (:func:`_least_change`): the base
parameters if among them, else the candidate whose gates on the study's unlabelled samples differ least
from the base parameters' gates, else the first (simplest) — so a rule choice the training samples do not
show keeps its current value, and a value they do not fix (a valley depth cut-off bounded from one side,
:func:`_with_depths`) is the one that moves the fewest gates away from the shipped strategy's. A rule change carries no fitted number; it is adopted when it reproduces the
expert on every training sample at least as well as the base rule and loses on no left-out sample (it
needs no average left-out gain: a training sample on which the lab's rule and the shipped one agree
cannot show one, but it does show that the new rule keeps that placement). Scatter gates try the expert population's robust-normalised centre as the target,
numbers of mixture components and coverages (ellipse), MAD widths (singlets) or contour levels (polygon).
All values are on the gate's scale (logicle 0..1 for fluorescence, linear scatter).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import CytokitError
from ..gates import QuadrantGate, RectangleGate
from ..gating.engine import fit_population
from ..gating.fit_state import FitState
from ..gating.methods.density import ThresholdParams, fit_threshold
from ..gating.model import PopulationSpec, StrategyDefinition
from ..sample import Sample
from .agreement import f1_score
from .fallback import fallback_candidates, without_fallback
from .slots import DEPTH_GRID, Slot, get_param, rule_candidates, set_param, threshold_slots

log = logging.getLogger(__name__)


@dataclass
class TrainingSample:
    """A prepared (compensated, transformed) sample with the expert's masks per strategy population."""

    name: str
    prepared: Sample
    plan: tuple
    expert: dict[str, np.ndarray]
    expert_parents: dict[str, np.ndarray | None] = field(default_factory=dict)


@dataclass
class _Ctx:
    spec: PopulationSpec
    samples: list[TrainingSample]
    states: list[FitState]
    definition: StrategyDefinition | None = None
    below: tuple[str, ...] = ()  # populations below ``spec`` re-fitted with each candidate (scored if mapped)
    tie: float = 1e-6  # threshold candidates within this of the best training score are equally good
    #: the study's other samples (no expert gates used) and their fit states: ties are broken towards the
    #: candidate whose gates on them differ least from the base parameters' (:meth:`change`)
    unlabelled: list[TrainingSample] = field(default_factory=list)
    unlabelled_states: list[FitState] = field(default_factory=list)
    _base_masks: dict[int, dict[str, np.ndarray | None]] = field(default_factory=dict)
    #: when not None, receives per threshold dimension the unlabelled samples that the equally fitting
    #: candidates gate differently (:func:`_undetermined`); the final tuning only (it costs fits)
    record: dict[str, list[dict[str, Any]]] | None = None

    def parent_rows(self, i: int) -> np.ndarray:
        st, s = self.states[i], self.samples[i]
        if self.spec.parent is None:
            return np.arange(s.prepared.n_events)
        m = st.masks.get(self.spec.parent)
        return np.flatnonzero(m) if m is not None else np.empty(0, dtype=int)

    def fit(self, params: dict[str, Any], i: int, *, below: bool = False) -> FitState | None:
        return self._fit_on(params, self.samples[i], self.states[i], below=below)

    def _fit_on(self, params: dict[str, Any], sample: TrainingSample, st: FitState, *,
                below: bool = False) -> FitState | None:
        cand = self.spec.model_copy(update={"params": params})
        tmp = FitState(masks=dict(st.masks), fits=dict(st.fits), skipped={})
        try:
            fit_population(cand, sample.prepared, tmp)
        except CytokitError:
            return None
        if self.spec.name not in tmp.masks:
            return None
        if below and self.definition is not None:
            for spec in self.definition.populations:
                if spec.name in self.below:
                    tmp.masks.pop(spec.name, None)
                    try:
                        fit_population(spec, sample.prepared, tmp)
                    except CytokitError:
                        pass
        return tmp

    def scored_names(self) -> list[str]:
        """This population, then the expert-gated populations below it (those :meth:`scores` scores)."""
        return [self.spec.name] + [b for b in self.below if all(b in s.expert for s in self.samples)]

    def change(self, params: dict[str, Any]) -> float:
        """How much ``params`` change the base parameters' gating of the unlabelled samples: mean over them
        (and over the scored populations) of 1 - per-event F1 between the two gatings (0 = the same events;
        F1 units). The parents are gated as tuned so far; no expert gate is read."""
        names = self.scored_names()
        below = len(names) > 1
        out = []
        for i, (s, st) in enumerate(zip(self.unlabelled, self.unlabelled_states)):
            if i not in self._base_masks:
                ref = self._fit_on(self.spec.params, s, st, below=below)
                self._base_masks[i] = {n: None if ref is None else ref.masks.get(n) for n in names}
            tmp = self._fit_on(params, s, st, below=below)
            for n in names:
                a, b = None if tmp is None else tmp.masks.get(n), self._base_masks[i][n]
                if a is None or b is None:
                    out.append(0.0 if a is None and b is None else 1.0)
                elif not a.any() and not b.any():
                    out.append(0.0)
                else:
                    out.append(1.0 - f1_score(a, b))
        return float(np.mean(out)) if out else 0.0

    def scores(self, params: dict[str, Any]) -> dict[str, list[float]]:
        """Per scored population (this one, then mapped ones below it): F1 on each training sample."""
        names = self.scored_names()
        out: dict[str, list[float]] = {n: [] for n in names}
        for i, s in enumerate(self.samples):
            tmp = self.fit(params, i, below=len(names) > 1)
            for n in names:
                m = None if tmp is None else tmp.masks.get(n)
                out[n].append(0.0 if m is None else f1_score(m, s.expert[n]))
        return out

    def score(self, params: dict[str, Any]) -> float:
        """Mean over the scored populations of (mean + worst sample F1) / 2: a population's gate is chosen
        for its own agreement and for that of the expert-gated populations below it (fitted as they are)."""
        per = [0.5 * (float(np.mean(f)) + float(np.min(f))) for f in self.scores(params).values() if f]
        return float(np.mean(per)) if per else 0.0


def _tied(ctx: _Ctx, current: dict[str, Any], candidates: Iterable[dict[str, Any]], *,
          tie: float = 1e-6) -> list[tuple[dict[str, Any], float]]:
    """The candidates (with their training scores) within ``tie`` (F1 units) of the best, in the order
    given: the current parameters first."""
    scored = [(current, ctx.score(current))]
    seen = {repr(current)}
    for cand in candidates:
        key = repr(cand)
        if key in seen:
            continue
        seen.add(key)
        scored.append((cand, ctx.score(cand)))
    best = max(sc for _, sc in scored)
    return [(c, sc) for c, sc in scored if sc >= best - tie]


def _best(ctx: _Ctx, current: dict[str, Any], candidates: Iterable[dict[str, Any]], *,
          tie: float = 1e-6) -> tuple[dict[str, Any], float]:
    """The best-scoring candidate. Candidates scoring within ``tie`` (F1 units) of the best count as
    equally good, and of those the one that changes the base parameters' behaviour least wins
    (:func:`_least_change`)."""
    return _least_change(ctx, _tied(ctx, current, candidates, tie=tie))


def _least_change(ctx: _Ctx, tied: list[tuple[dict[str, Any], float]]) -> tuple[dict[str, Any], float]:
    """Of candidates the training samples cannot tell apart, the minimal change: the base parameters
    themselves if among them; else, with unlabelled samples, the candidate whose gates on them differ least
    from the base parameters' (:meth:`_Ctx.change`); else (or among equal changes) the earliest (the
    current parameters, then the order given: simpler rules, values closer to the base first)."""
    if len(tied) == 1:
        return tied[0]
    for c, sc in tied:
        if c == ctx.spec.params:
            return c, sc
    if not ctx.unlabelled:
        return tied[0]
    changes = [ctx.change(c) for c, _ in tied]
    least = min(changes)
    k = next(i for i, ch in enumerate(changes) if ch <= least + 1e-9)
    if k:
        log.info("%s: %d candidates fit the training samples equally; the one changing the base gates least on "
                 "%d unlabelled samples kept (1 - F1 vs base %.4f; first candidate %.4f)", ctx.spec.name,
                 len(tied), len(ctx.unlabelled), changes[k], changes[0])
    return tied[k]


# -- threshold slots ---------------------------------------------------------------------------------
def best_cut(x: np.ndarray, expert: np.ndarray, n_expert: int, positive: bool) -> float | None:
    """The cut ``t`` maximising per-event F1 of ``x >= t`` (``positive``) or ``x < t`` against ``expert``
    (``expert`` flags the same events as ``x``; ``n_expert`` counts all expert events, also those not in
    ``x``, which are misses whatever the cut)."""
    ok = np.isfinite(x)
    x, e = x[ok], expert[ok]
    if x.size < 10 or n_expert == 0:
        return None
    order = np.argsort(x, kind="stable")
    xs, es = x[order], e[order].astype(np.int64)
    n = xs.size
    if positive:  # keep xs[k:], k = 0..n
        tp = np.r_[np.cumsum(es[::-1])[::-1], 0]
        kept = n - np.arange(n + 1)
    else:  # keep xs[:k]
        tp = np.r_[0, np.cumsum(es)]
        kept = np.arange(n + 1)
    f1 = 2.0 * tp / (kept + n_expert)
    k = int(np.argmax(f1))
    if k == 0:
        return float(xs[0] - 1e-6)
    if k == n:
        return float(xs[-1] + 1e-6)
    return float(0.5 * (xs[k - 1] + xs[k]))


def _other_conditions(gate: Any, dim_name: str, X: np.ndarray, dims: tuple[str, ...]) -> np.ndarray | None:
    """Rows of ``X`` (parent events, columns ``dims``) that pass ``gate`` on every dimension but
    ``dim_name``; None when the gate is not a plain quadrant/range (e.g. OR-ed markers)."""
    keep = np.ones(X.shape[0], dtype=bool)
    if isinstance(gate, QuadrantGate):
        for d, t, s in zip(gate.dims, gate.dividers, gate.signs):
            if d != dim_name:
                col = X[:, dims.index(d)]
                keep &= (col >= t) if s > 0 else (col < t)
        return keep
    if isinstance(gate, RectangleGate):
        return keep
    return None


def _placements(ctx: _Ctx, params: dict, slot: Slot, slots: list[Slot]) -> list[float | None]:
    """Per training sample: the expert's cut on this slot's dimension (strategy scale), or None."""
    out: list[float | None] = []
    name, dims = ctx.spec.name, ctx.spec.dims
    for i, s in enumerate(ctx.samples):
        tmp = ctx.fit(params, i)
        rows = ctx.parent_rows(i)
        if tmp is None or rows.size < 10:
            out.append(None)
            continue
        X = s.prepared.columns(dims)[rows]
        gate = tmp.fits[name].gate
        keep = _other_conditions(gate, dims[slot.dim], X, dims)
        if keep is None:
            out.append(None)
            continue
        if ctx.spec.method == "interval" and isinstance(gate, RectangleGate):  # the interval's other side
            g = gate
            other = g.upper[0] if slot.positive else g.lower[0]
            if other is not None:
                keep &= (X[:, 0] < other) if slot.positive else (X[:, 0] >= other)
        e = s.expert[name]
        out.append(best_cut(X[keep, slot.dim], e[rows][keep], int(e.sum()), slot.positive))
    return out


#: near-ties when tuning thresholds on two or more samples: candidates within this many F1 units of the
#: best training score reproduce the expert equally well (a KDE grid step moves F1 by about this much),
#: and the simplest of them (:func:`rule_candidates` order) is kept. The leave-one-out re-tunings use the
#: same value. With one training sample (nothing to generalise from, a ceiling check) the best score wins.
RULE_TIE = 0.002


def _threshold_candidates(ctx: _Ctx, cur: dict[str, Any], cuts: list[float | None],
                          slot: Slot) -> list[dict[str, Any]]:
    """Candidate ThresholdParams dicts for one slot (see module docstring): the rule candidates first
    (:func:`rule_candidates`), then parameters implied by the expert's placements."""
    ts = [t for t in cuts if t is not None]
    bounds_opts: list[Any] = [cur.get("bounds")]
    # bounds around the expert's placements: a range needs two placements, or one training sample and no near
    # ties (the best score decides: ceiling check, the editor's Make adaptive). Around one placement, among near
    # ties, it is that sample's gate held nearly fixed (every candidate reproduces the sample, and clipped to
    # +-0.04 of its placement a quantile or a tail moves the shipped gates of other samples least: the
    # minimal-change rule would choose it for being fixed, not for being the lab's rule)
    if len(ts) >= 2 or (ts and ctx.tie <= 1e-6):
        lo, hi = min(ts), max(ts)
        m = max(0.04, 0.5 * (hi - lo))
        bounds_opts.append([round(lo - m, 4), round(hi + m, 4)])
    base = {k: v for k, v in cur.items() if k not in ("mode", "valley", "adjust", "tail_sd", "quantile",
                                                      "reference_peak", "tail_side", "bounds", "value",
                                                      "min_peak_fraction", "expected")}
    out: list[dict[str, Any]] = rule_candidates(cur)
    # tails keep the base's widening of a skewed peak (``tail_widen``) or use the plain lower-half SD: a lab
    # may set its cut from either
    widen_default = ThresholdParams.model_fields["tail_widen"].default
    widens = tuple(dict.fromkeys((cur.get("tail_widen", widen_default), widen_default)))
    # likewise with the base's raising of a tail to its peak's knee (``tail_knee``) or without it
    knees = tuple(dict.fromkeys((cur.get("tail_knee"), None)))
    plain = {k: v for k, v in base.items() if k not in ("tail_widen", "tail_knee")}
    expected = {"expected": round(float(np.mean(ts)), 4)} if ts else {}
    for b in bounds_opts:
        bb = {"bounds": b} if b is not None else {}
        for valley in ("deepest", "first", "last"):
            for adjust in (0.5, 0.75, 1.0, 1.5):
                out.append({**base, **bb, "mode": "valley", "valley": valley, "adjust": adjust})
        # tails and quantiles implied by the expert's cut on each sample
        tails: list[tuple[str, str, float, float, float]] = []
        quants: list[float] = []
        for i, t in enumerate(cuts):
            if t is None:
                continue
            rows = ctx.parent_rows(i)
            x = ctx.samples[i].prepared.columns(ctx.spec.dims)[rows][:, slot.dim]
            x = x[np.isfinite(x)]
            if x.size < 20:
                continue
            quants.append(float(np.mean(x < t)))
            for ref in ("first", "highest"):
                for side in ("upper", "lower"):
                    for mpf in dict.fromkeys((cur.get("min_peak_fraction", 0.01), 0.05, 0.2)):
                        for widen in widens:
                            # the width the candidate will use (its tail widening too), so that the implied
                            # width reproduces the expert's cut on this sample
                            tp = ThresholdParams(mode="tail", reference_peak=ref, tail_side=side,
                                                 adjust=cur.get("adjust", 1.0), min_peak_fraction=mpf,
                                                 tail_widen=widen)
                            info = fit_threshold(x, tp).info
                            sd, mode = info.get("tail_width", info.get("half_sd")), info.get("reference_peak")
                            if not sd or mode is None:
                                continue
                            k = (t - mode) / sd if side == "upper" else (mode - t) / sd
                            if 0.05 < k < 8:
                                tails.append((ref, side, mpf, widen, k))
        groups: dict[tuple[str, str, float, float], list[float]] = {}
        for ref, side, mpf, widen, k in tails:
            groups.setdefault((ref, side, mpf, widen), []).append(k)
        for (ref, side, mpf, widen), ks in groups.items():
            ww = {"tail_widen": widen} if widen != widen_default else {}
            for knee in knees:
                kk = {"tail_knee": knee} if knee is not None else {}
                for k in sorted({*ks, float(np.mean(ks))}):
                    out.append({**plain, **ww, **kk, **bb, **expected, "mode": "tail", "reference_peak": ref,
                                "tail_side": side, "min_peak_fraction": mpf, "tail_sd": round(k, 3)})
        if not groups and slot.positive:
            for k in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
                out.append({**base, **bb, "mode": "tail", "tail_sd": k})
        for q in sorted({*quants, float(np.mean(quants))} if quants else set()):
            if 0.001 < q < 0.999:
                out.append({**base, **bb, **expected, "mode": "quantile", "quantile": round(q, 4)})
    return out


def _with_depths(ctx: _Ctx, tied: list[tuple[dict[str, Any], float]], slot: Slot,
                 tie: float) -> list[tuple[dict[str, Any], float]]:
    """``tied`` with each valley rule that changes the depth cut-off (``max_valley_ratio``) of ``slot`` from
    the base parameters' replaced by its variants on :data:`DEPTH_GRID` that fit the training samples as
    well (within ``tie`` of the best), closest to the base value first. A depth cut-off is a number the
    samples bound, often from one side only (a dip the expert took, none it declined): where they do not
    fix it, :func:`_least_change` chooses among the values they allow."""
    default = ThresholdParams.model_fields["max_valley_ratio"].default
    base, _ = threshold_slots(ctx.spec)
    was = (get_param(base, slot.path) or {}).get("max_valley_ratio", default)
    out: list[tuple[dict[str, Any], float]] = []
    seen = {repr(c) for c, _ in tied}
    for c, sc in tied:
        q = get_param(c, slot.path) if _has(c, slot.path) else {}
        if q.get("mode", "valley") != "valley" or q.get("max_valley_ratio", default) == was:
            out.append((c, sc))
            continue
        variants = []
        for r in sorted(dict.fromkeys((*DEPTH_GRID, q.get("max_valley_ratio", default))),
                        key=lambda r: (abs(r - was), r)):
            v = set_param(c, slot.path, {**q, "max_valley_ratio": r})
            if r == q.get("max_valley_ratio", default):
                variants.append((c, sc))
            elif r != was and repr(v) not in seen:
                seen.add(repr(v))
                variants.append((v, ctx.score(v)))
        out += variants
    top = max(sc for _, sc in out)
    return [(c, sc) for c, sc in out if sc >= top - tie]


def _joined(ctx: _Ctx, tied: list[tuple[dict[str, Any], float]], extra: list[dict[str, Any]],
            tie: float) -> list[tuple[dict[str, Any], float]]:
    """``tied`` with the ``extra`` candidates scored and added; those within ``tie`` of the best of all kept."""
    seen = {repr(c) for c, _ in tied}
    out = list(tied)
    for c in extra:
        if repr(c) not in seen:
            seen.add(repr(c))
            out.append((c, ctx.score(c)))
    top = max(sc for _, sc in out)
    return [(c, sc) for c, sc in out if sc >= top - tie]


def fitted_numbers(spec: PopulationSpec, params: dict[str, Any]) -> int:
    """How many kinds of number fitted to the training samples ``params`` carry against ``spec``'s:
    0 for the base parameters and rule changes (:func:`is_rule_change`), 1 for a rule change with a
    fallback width fitted where the rule falls back, 2 for anything else (implied tail widths, quantiles,
    ranges around the placements, other smoothings)."""
    if params == spec.params or is_rule_change(spec, params):
        return 0
    return 1 if is_rule_change(spec, params, fallback_width=True) else 2


def _fewest_fitted(ctx: _Ctx, tied: list[tuple[dict[str, Any], float]]) -> list[tuple[dict[str, Any], float]]:
    """Of equally fitting candidates, those carrying the fewest numbers fitted to the training samples
    (:func:`fitted_numbers`): where a rule reproduces the expert as well as a fitted value, the rule is
    what the samples show, and only a rule (with at most its fallback's width) can pass the leave-one-out
    check on a sample that is the only one to show it (:func:`_validated`)."""
    if len(tied) < 2:
        return tied
    n = [fitted_numbers(ctx.spec, c) for c, _ in tied]
    return [t for t, k in zip(tied, n) if k == min(n)]


#: an unlabelled sample is named as undetermined by the training samples when two equally fitting
#: candidates gate it with per-event F1 below this between them (the learner's F1 target)
UNDETERMINED_F1 = 0.95
def _rules_among(ctx: _Ctx, tied: list[tuple[dict[str, Any], float]], slot: Slot) -> list[dict[str, Any]]:
    """The base parameters and the rule candidates (:func:`rule_candidates`, any depth on
    :data:`DEPTH_GRID`) among ``tied``: of each valley choice with or without bounds, the lowest and the
    highest equally fitting depth cut-off (a cut-off in between gates no sample outside their range)."""
    base, _ = threshold_slots(ctx.spec)
    b = get_param(base, slot.path) or {}
    rules = rule_candidates(b, DEPTH_GRID)
    default = ThresholdParams.model_fields["max_valley_ratio"].default
    groups: dict[tuple[Any, bool, bool], list[dict[str, Any]]] = {}
    out = []
    for c, _ in tied:
        q = get_param(c, slot.path) if _has(c, slot.path) else {}
        if c == ctx.spec.params:
            out.append(c)
        elif q in rules:
            groups.setdefault((q.get("valley"), "bounds" in q, "dim_mode_tail" in q), []).append(c)
    for members in groups.values():
        depth = [(get_param(c, slot.path).get("max_valley_ratio", default), k) for k, c in enumerate(members)]
        out += [members[min(depth)[1]]] + ([members[max(depth)[1]]] if len(members) > 1 else [])
    return out


def _undetermined(ctx: _Ctx, chosen: dict[str, Any], tied: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unlabelled samples on which rules that reproduce the training samples equally (``tied``) gate
    this population differently from ``chosen`` (per-event F1 between the two gatings below
    :data:`UNDETERMINED_F1`): rows ``sample``, ``f1`` (the lowest), ``alternative`` (that candidate's
    params). The training samples carry no evidence for either gating of these samples; an expert gate on
    one of them would decide. Expert gates of the unlabelled samples are not read."""
    if len(tied) < 2 or not ctx.unlabelled:
        return []
    out = []
    for s, st in zip(ctx.unlabelled, ctx.unlabelled_states):
        ref = ctx._fit_on(chosen, s, st)
        a = None if ref is None else ref.masks.get(ctx.spec.name)
        if a is None:
            continue
        worst, alt = 1.0, None
        for c in tied:
            if c == chosen:
                continue
            tmp = ctx._fit_on(c, s, st)
            b = None if tmp is None else tmp.masks.get(ctx.spec.name)
            if b is None or (not a.any() and not b.any()):
                continue
            f = f1_score(a, b)
            if f < worst:
                worst, alt = f, c
        if worst < UNDETERMINED_F1:
            out.append({"sample": s.name, "f1": worst, "alternative": alt})
    return out


def tune_thresholds(ctx: _Ctx) -> dict[str, Any]:
    """Coordinate descent over the population's threshold slots (two rounds)."""
    params, slots = threshold_slots(ctx.spec)
    for _round in range(2 if len(slots) > 1 else 1):
        changed = False
        for slot in slots:
            cuts = _placements(ctx, params, slot, slots)
            cur = get_param(params, slot.path) or {}
            cands = [set_param(params, slot.path, c) for c in _threshold_candidates(ctx, cur, cuts, slot)]
            tied = _tied(ctx, params, cands, tie=ctx.tie)
            if all(c != ctx.spec.params for c, _ in tied):  # else the base reproduces the samples as well as any
                tied = _joined(ctx, tied, fallback_candidates(ctx, params, slot, cuts), ctx.tie)
            if ctx.record is not None or all(c != ctx.spec.params for c, _ in tied):  # else the base wins anyway
                tied = _with_depths(ctx, tied, slot, ctx.tie)
            tied = _fewest_fitted(ctx, tied)
            new, _ = _least_change(ctx, tied)
            if ctx.record is not None:
                ctx.record[ctx.spec.dims[slot.dim]] = _undetermined(ctx, new, _rules_among(ctx, tied, slot))
            if new != params:
                params, changed = new, True
        if not changed:
            break
    return params


# -- scatter gates -----------------------------------------------------------------------------------
def _expert_centre(ctx: _Ctx) -> list[float] | None:
    """The expert population's median position in robust-normalised parent coordinates (1st..99th
    percentile -> 0..1), averaged over the training samples."""
    centres = []
    for i, s in enumerate(ctx.samples):
        rows = ctx.parent_rows(i)
        if rows.size < 50:
            continue
        X = s.prepared.columns(ctx.spec.dims)[rows].astype(np.float64)
        ok = np.all(np.isfinite(X), axis=1)
        e = s.expert[ctx.spec.name][rows] & ok
        if e.sum() < 10:
            continue
        lo, hi = np.quantile(X[ok], [0.01, 0.99], axis=0)
        scale = np.where(hi > lo, hi - lo, 1.0)
        centres.append((np.median(X[e], axis=0) - lo) / scale)
    if not centres:
        return None
    return [round(float(v), 4) for v in np.mean(centres, axis=0)]


def tune_gmm_ellipse(ctx: _Ctx) -> dict[str, Any]:
    params = copy.deepcopy(ctx.spec.params)
    centre = _expert_centre(ctx)
    targets = [params.get("target")] + ([centre] if centre else [])
    n0 = params.get("n_components", 3)
    cands = []
    for tgt in targets:
        for n in dict.fromkeys((n0, 1, 2, 3, 4, 5, 7)):
            c = {**params, "n_components": n}
            if tgt is not None:
                c["target"] = tgt
            cands.append(c)
    params, _ = _best(ctx, params, cands)
    cov = [0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999]
    params, _ = _best(ctx, params, [{**params, "coverage": c} for c in cov])
    params, _ = _best(ctx, params, [{**params, "min_weight": w} for w in (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)])
    return params


def tune_singlets(ctx: _Ctx) -> dict[str, Any]:
    params = copy.deepcopy(ctx.spec.params)
    for key, grid in (("lower_mads", (2, 3, 4, 5, 6, 8, 10)), ("upper_mads", (1.5, 2, 2.5, 3, 4, 5, 6, 8)),
                      ("min_area_quantile", (0.0, 0.01, 0.02, 0.05))):
        params, _ = _best(ctx, params, [{**params, key: v} for v in grid])
    return params


def tune_density_polygon(ctx: _Ctx) -> dict[str, Any]:
    params = copy.deepcopy(ctx.spec.params)
    centre = _expert_centre(ctx)
    if centre:
        params, _ = _best(ctx, params, [{**params, "target": centre}])
    params, _ = _best(ctx, params, [{**params, "level": v} for v in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)])
    params, _ = _best(ctx, params, [{**params, "smooth": v} for v in (1.0, 2.0, 3.0, 4.0)])
    return params


#: gate method -> tuner (params of the best candidate). Methods not listed are fixed (nothing to learn).
TUNERS: dict[str, Callable[[_Ctx], dict[str, Any]]] = {
    "threshold": tune_thresholds, "interval": tune_thresholds, "quadrant": tune_thresholds,
    "phenotype": tune_thresholds, "gmm_ellipse": tune_gmm_ellipse, "singlets": tune_singlets,
    "density_polygon": tune_density_polygon,
}


def _below(definition: StrategyDefinition, name: str, samples: list[TrainingSample]) -> tuple[str, ...]:
    """Populations below ``name`` that are expert-gated, or needed to fit one that is (in order)."""
    from ..gating.model import ancestors, dependents

    deps = dependents(definition, name)[1:]
    mapped = [d for d in deps if samples and all(d in s.expert for s in samples)]
    needed = set(mapped)
    for d in mapped:
        needed |= set(ancestors(definition, d)) & set(deps)
    return tuple(d for d in deps if d in needed)


def _replace(definition: StrategyDefinition, name: str, params: dict[str, Any]) -> StrategyDefinition:
    data = definition.model_dump()
    for p in data["populations"]:
        if p["name"] == name:
            p["params"] = params
    return StrategyDefinition.model_validate(data)


#: leave-one-out check of a tuned population: the largest loss of score on a left-out training sample
#: (tuned without it, compared with the base parameters on it) that still lets the tuning be adopted
LOO_TOLERANCE = 0.002
#: with two or more training samples, the least gain of training score (F1 units) for which tuned
#: parameters replace the base ones (smaller gains are within what resampling a sample changes)
MIN_GAIN = 0.002


def is_rule_change(spec: PopulationSpec, proposed: dict[str, Any], *, fallback_width: bool = False) -> bool:
    """Whether ``proposed`` differs from ``spec``'s parameters only by switching threshold slots to rule
    candidates (:func:`rule_candidates`: another valley choice, the method's default valley depth, no
    bounds), i.e. carries no number fitted to the training samples.

    ``fallback_width``: a slot may also differ in its fallback tail's width (:data:`.fallback.FALLBACK_FIELDS`,
    :func:`.fallback.fallback_candidates`): the one number fitted, and only on the samples where the rule
    finds no valley."""
    base, slots = threshold_slots(spec)
    if not slots or proposed == spec.params:
        return False
    for slot in slots:
        b = get_param(base, slot.path) or {}
        q = get_param(proposed, slot.path) if _has(proposed, slot.path) else b
        if q == b:
            continue
        rules = rule_candidates(b, DEPTH_GRID)
        if q in rules:
            continue
        if not fallback_width or q.get("mode", "valley") != "valley":
            return False
        if without_fallback(q) not in [without_fallback(r) for r in [b, *rules]]:
            return False
    slot_keys = {slot.path[0] for slot in slots}
    return ({k: v for k, v in proposed.items() if k not in slot_keys}
            == {k: v for k, v in base.items() if k not in slot_keys})


def _has(params: dict, path: tuple) -> bool:
    try:
        get_param(params, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _per_sample(ctx: _Ctx, params: dict[str, Any]) -> np.ndarray:
    """Per training sample: mean F1 over the scored populations."""
    return np.mean(np.array(list(ctx.scores(params).values()), dtype=np.float64), axis=0)


def _validated(ctx: _Ctx, proposed: dict[str, Any] | None = None) -> tuple[bool, list[float]]:
    """Whether tuning this population generalises across the training samples: re-tuned without each
    training sample in turn, the parameters score on the left-out sample at least as well as the base
    parameters (within :data:`LOO_TOLERANCE`), and better on average. With one training sample there is
    nothing to check (True). Returns the verdict and the gain on each left-out sample.

    A *rule change* (``proposed`` passes :func:`is_rule_change`: no number in it is fitted to the data)
    that reproduces the expert on every training sample at least as well as the base parameters
    (within :data:`LOO_TOLERANCE`) needs no average gain on the left-out samples, only no loss: when a
    lab's rule agrees with the shipped one on some training samples and differs on others, the samples
    where they agree cannot show a gain, but they do show that the new rule keeps their placements, which
    is the evidence that the rule, not a value fitted to one sample, is what changed."""
    n = len(ctx.samples)
    if n < 2:
        return True, []
    gains = []
    for i in range(n):
        rest = [j for j in range(n) if j != i]
        # the left-out sample's events (not its expert gates) are unlabelled data of the study, as any
        # sample the learned strategy will gate
        sub = _Ctx(ctx.spec, [ctx.samples[j] for j in rest], [ctx.states[j] for j in rest], ctx.definition,
                   ctx.below, ctx.tie, [*ctx.unlabelled, unlabelled(ctx.samples[i])],
                   [*ctx.unlabelled_states, ctx.states[i]])
        held = _Ctx(ctx.spec, [ctx.samples[i]], [ctx.states[i]], ctx.definition, ctx.below)
        tuned = TUNERS[ctx.spec.method](sub)
        if sub.score(tuned) < sub.score(ctx.spec.params) + MIN_GAIN:  # not adopted on those samples
            tuned = ctx.spec.params
        gains.append(held.score(tuned) - held.score(ctx.spec.params))
    ok = min(gains) >= -LOO_TOLERANCE and float(np.mean(gains)) > 1e-6
    if (not ok and proposed is not None and min(gains) >= -LOO_TOLERANCE
            and is_rule_change(ctx.spec, proposed, fallback_width=True)):
        ok = bool(np.all(_per_sample(ctx, proposed) >= _per_sample(ctx, ctx.spec.params) - LOO_TOLERANCE))
    log.info("%s: leave-one-out gain over the base parameters per training sample %s: %s", ctx.spec.name,
             ", ".join(f"{g:+.4f}" for g in gains), "adopted" if ok else "not adopted (kept the base parameters)")
    return ok, gains


def valley_depth_ranges(ctx: _Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    """For each valley-rule slot of ``params`` whose depth cut-off (``max_valley_ratio``) differs from the
    base parameters: the cut-offs on :data:`DEPTH_GRID` that reproduce every training sample as well as
    ``params`` do (within :data:`RULE_TIE`). A wide range means the samples do not show how shallow a dip
    the lab still counts as a valley; the value used is then a prior (the method's default), not learned.
    Rows: ``dim``, ``used``, ``low``, ``high`` (depth ratios, 0..1)."""
    base, slots = threshold_slots(ctx.spec)
    ref = _per_sample(ctx, params)
    out = []
    for slot in slots:
        b = get_param(base, slot.path) or {}
        q = get_param(params, slot.path) if _has(params, slot.path) else b
        default = ThresholdParams.model_fields["max_valley_ratio"].default
        used = q.get("max_valley_ratio", default)
        if q.get("mode", "valley") != "valley" or used == b.get("max_valley_ratio", default):
            continue
        ok = [r for r in DEPTH_GRID
              if np.all(_per_sample(ctx, set_param(params, slot.path, {**q, "max_valley_ratio": r})) >= ref - RULE_TIE)]
        if ok:
            out.append({"dim": ctx.spec.dims[slot.dim], "used": used, "low": min(ok), "high": max(ok)})
    return out


def tune_definition(definition: StrategyDefinition, samples: list[TrainingSample], *,
                    populations: Iterable[str] | None = None,
                    decisions: list[dict[str, Any]] | None = None,
                    tie: float | None = None,
                    unlabelled_samples: Sequence[TrainingSample] = (),
                    undetermined: list[dict[str, Any]] | None = None) -> StrategyDefinition:
    """A copy of ``definition`` whose tunable populations with expert gates (or those in ``populations``)
    have the parameters that best reproduce the experts' gates on ``samples`` (see module docstring).

    ``decisions`` (if given) receives one dict per population whose tuning raised its training score:
    ``population``, ``method``, ``score_before``, ``score_after`` (training score, F1 units),
    ``loo_gains`` (per left-out training sample), ``adopted``, the ``proposed`` parameters and
    ``valley_depth`` (:func:`valley_depth_ranges`: how far the training samples fix a changed valley
    depth cut-off).

    ``tie``: near-tie width when tuning thresholds (default :data:`RULE_TIE` with two or more samples,
    none with one; the leave-one-sample-out rows of a learner trained on several samples pass
    :data:`RULE_TIE` so that they are tuned as the final strategy is).

    ``unlabelled_samples``: the study's samples not trained on (prepared; any expert gates they carry are
    not read): among parameters that reproduce the training samples equally, the one whose gates on these
    differ least from the base parameters' is kept (:func:`_least_change`).

    ``undetermined`` (if given) receives one dict per threshold dimension of a tuned population whose
    equally fitting candidates gate some unlabelled samples differently (:func:`_undetermined`):
    ``population``, ``dim``, ``samples`` (rows ``sample``, ``f1``, ``alternative``)."""
    if tie is None:
        tie = RULE_TIE if len(samples) > 1 else 1e-6
    wanted = set(populations) if populations is not None else None
    states = [FitState() for _ in samples]
    free = [unlabelled(s) for s in unlabelled_samples]
    free_states = [FitState() for _ in free]
    for spec in list(definition.populations):
        has_expert = all(spec.name in s.expert for s in samples)
        if samples and has_expert and spec.method in TUNERS and (wanted is None or spec.name in wanted):
            below = _below(definition, spec.name, samples)
            ctx = _Ctx(spec, samples, states, definition, below, tie, free, free_states,
                       record={} if undetermined is not None else None)
            before = ctx.score(spec.params)
            params = TUNERS[spec.method](ctx)
            if undetermined is not None and ctx.record:
                undetermined += [{"population": spec.name, "dim": dim, "samples": rows}
                                 for dim, rows in ctx.record.items() if rows]
            if params != spec.params:
                after = ctx.score(params)
                if after > before + (MIN_GAIN if len(samples) > 1 else 1e-6):
                    ok, gains = _validated(ctx, params)
                    if decisions is not None:
                        decisions.append({"population": spec.name, "method": spec.method, "score_before": before,
                                          "score_after": after, "loo_gains": gains, "adopted": ok,
                                          "proposed": params,
                                          "valley_depth": valley_depth_ranges(ctx, params) if ok else []})
                    if ok:
                        definition = _replace(definition, spec.name, params)
                        spec = definition.population(spec.name)
                        log.info("tuned %s: training F1 score %.4f -> %.4f", spec.name, before, after)
        for s, st in zip(samples, states):
            try:
                fit_population(spec, s.prepared, st)
            except CytokitError as exc:
                log.warning("%s: %s could not be fitted: %s", s.name, spec.name, exc)
        for s, st in zip(free, free_states):
            try:
                fit_population(spec, s.prepared, st)
            except CytokitError as exc:
                log.debug("%s (unlabelled): %s could not be fitted: %s", s.name, spec.name, exc)
    return definition


def unlabelled(sample: TrainingSample) -> TrainingSample:
    """The sample without its expert gates (its events only)."""
    return TrainingSample(sample.name, sample.prepared, sample.plan, {})


def changed_params(before: StrategyDefinition, after: StrategyDefinition) -> list[dict[str, Any]]:
    """Populations whose parameters changed: ``population``, ``method``, ``before``, ``after`` (dicts)."""
    out = []
    for p in after.populations:
        old = before.population(p.name)
        if old.params != p.params:
            out.append({"population": p.name, "method": p.method, "before": old.params, "after": p.params})
    return out
