"""Valley rules joined with the width of their fallback tail, the width measured where the rule falls back.

A lab's valley rule has two parts: which dips count as valleys and which one is taken (valley choice,
depth cut-off ``max_valley_ratio``, plausible range), and where the gate goes on a sample that has no such
valley (the fallback: a tail of the negative peak, ``tail_sd`` SDs of its outer half, possibly widened
on a skewed peak and raised to the peak's knee). A training sample with a valley the lab takes shows the
first part; a sample on which the lab's rule finds none shows only the second. Neither a rule candidate
(:func:`~cytokit.learn.slots.rule_candidates`, which keeps the base's fallback) nor a tail candidate
(which has no valley) reproduces both kinds of sample, so the two parts are fitted jointly here: every
rule candidate (each valley choice, with or without the range and the dim-mode tail, at each depth
cut-off on :data:`~cytokit.learn.slots.DEPTH_GRID`) is fitted on the training samples, and where it falls
back to a tail on a sample with an expert placement, the tail width that placement implies (in the
candidate's own width units, and in plain SDs of the outer half without widening or knee) is set as the
rule's ``tail_sd`` — on samples where the base rule finds no valley either (where it takes one, a rule that
does not plus a width fitted there would be two choices read off one sample, which nothing checks). The
depth cut-off and the fallback width are thus two parameters fitted together:
the cut-off by the samples with a valley (and by those without one, which must not show a valley the
expert did not take), the width by the samples without one. Values are on the gate's scale (logicle 0..1).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .slots import DEPTH_GRID, Slot, get_param, rule_candidates, set_param, threshold_slots

if TYPE_CHECKING:
    from .search import _Ctx

#: fields that only act where a valley rule falls back to a tail (the fallback's width)
FALLBACK_FIELDS = ("tail_sd", "tail_widen", "tail_knee")


def _tail_info(ctx: "_Ctx", params: dict[str, Any], slot: Slot, i: int) -> dict[str, Any] | None:
    """The threshold fit's info on training sample ``i`` when ``params`` place ``slot`` by a tail (a valley
    rule that fell back, or gave way to the tail above a dim mode); else None."""
    tmp = ctx.fit(params, i)
    fit = None if tmp is None else tmp.fits.get(ctx.spec.name)
    info = None if fit is None else fit.info.get(ctx.spec.dims[slot.dim])
    return info if isinstance(info, dict) and info.get("method") == "tail" else None


def implied_fallback_widths(ctx: "_Ctx", params: dict[str, Any], slot: Slot, cuts: list[float | None],
                            samples: set[int] | None = None) -> dict[bool, list[float]]:
    """Per training sample (of ``samples``, default all) on which ``params`` (a valley rule on ``slot``) falls
    back to a tail and the expert's placement on this dimension is known (``cuts``): the tail width (in SDs)
    that puts the tail at that placement, in the fit's own width units (``False``: with its widening) and in
    plain SDs of the peak's outer half (``True``). Samples where the rule takes a valley contribute nothing."""
    out: dict[bool, list[float]] = {False: [], True: []}
    for i, t in enumerate(cuts):
        if t is None or (samples is not None and i not in samples):
            continue
        info = _tail_info(ctx, params, slot, i)
        if info is None:
            continue
        mode, half = info.get("reference_peak"), info.get("half_sd")
        if mode is None or not half:
            continue
        upper = info.get("tail_side", "upper") == "upper"
        for plain, width in ((False, info.get("tail_width", half)), (True, half)):
            if not width:
                continue
            k = (t - mode) / width if upper else (mode - t) / width
            if 0.05 < k < 8:
                out[plain].append(float(k))
    return out


def fallback_candidates(ctx: "_Ctx", params: dict[str, Any], slot: Slot,
                        cuts: list[float | None]) -> list[dict[str, Any]]:
    """The current valley rule and the rule candidates for ``slot`` (every depth cut-off on DEPTH_GRID) that
    fall back to a tail on some training sample on which the base rule falls back too, each with the
    fallback width implied there (each sample's and their mean; in the rule's own width units and as a
    plain tail without widening or knee). Full params dicts.

    Only samples on which the base rule finds no valley either count: there the expert's cut shows the
    lab's fallback alone. Where the base rule takes a valley, a rule that does not (a stricter depth
    cut-off, say) plus a width fitted there would be two choices read off one sample, which no other
    training sample can check."""
    cur = get_param(params, slot.path) or {}
    out: list[dict[str, Any]] = []
    base = set_param(params, slot.path, get_param(threshold_slots(ctx.spec)[0], slot.path) or {})
    falls = {i for i, t in enumerate(cuts) if t is not None and _tail_info(ctx, base, slot, i) is not None}
    if not falls:
        return out
    rules = ([cur] if cur.get("mode", "valley") == "valley" else []) + rule_candidates(cur, DEPTH_GRID)
    for rule in rules:
        implied = implied_fallback_widths(ctx, set_param(params, slot.path, rule), slot, cuts, falls)
        for plain, ks in implied.items():
            if not ks:
                continue
            q = dict(rule)
            if plain:
                q.pop("tail_knee", None)
                q.pop("tail_widen", None)  # the method's default: no widening
            for k in sorted({*ks, float(np.mean(ks))}):
                out.append(set_param(params, slot.path, {**q, "tail_sd": round(k, 3)}))
    return out


def without_fallback(q: dict[str, Any]) -> dict[str, Any]:
    """Threshold params without the fields that act only on a fallback tail (:data:`FALLBACK_FIELDS`)."""
    return {k: v for k, v in q.items() if k not in FALLBACK_FIELDS}
