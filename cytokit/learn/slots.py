"""Where a population's fitted thresholds live in its params, and the valley rules a learner may try.

A *slot* is one fitted threshold inside a gate method's params (its path, dimension and kept side); the
rule candidates are the valley rules that differ from a threshold's current parameters in as few choices as
possible. Shared by the search (:mod:`.search`), the joint rule + fallback fit (:mod:`.fallback`) and the
sample suggestion (:mod:`.suggest`). Thresholds are on the gate's scale (logicle 0..1).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

from ..gating.methods.density import ThresholdParams
from ..gating.model import PopulationSpec


@dataclass(frozen=True)
class Slot:
    """One fitted threshold inside a method's params: where it lives, its dimension and kept side."""

    path: tuple[Any, ...]
    dim: int
    positive: bool  # the gate keeps x >= t


def get_param(params: dict, path: tuple) -> Any:
    out: Any = params
    for k in path:
        out = out[k]
    return out


def set_param(params: dict, path: tuple, value: Any) -> dict:
    out = copy.deepcopy(params)
    target: Any = out
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return out


def threshold_slots(spec: PopulationSpec) -> tuple[dict[str, Any], list[Slot]]:
    """The population's params with one threshold entry per dimension, and the threshold slots."""
    p = copy.deepcopy(spec.params)
    if spec.method == "threshold":
        p.setdefault("threshold", {})
        return p, [Slot(("threshold",), 0, p.get("sign", "+") == "+")]
    if spec.method in ("quadrant", "phenotype"):
        n = len(p["signs"])
        th = list(p.get("thresholds") or [{}])
        p["thresholds"] = [copy.deepcopy(th[0]) for _ in range(n)] if len(th) == 1 else th
        return p, [Slot(("thresholds", i), i, s == "+") for i, s in enumerate(p["signs"])]
    if spec.method == "interval":
        slots = []
        if p.get("lower") is not None:
            slots.append(Slot(("lower",), 0, True))
        if p.get("upper") is not None:
            slots.append(Slot(("upper",), 0, False))
        return p, slots
    return p, []


#: valley choices a rule candidate may switch to (the parameter ``valley`` of ThresholdParams)
RULE_VALLEYS = ("deepest", "first", "last")


def rule_candidates(cur: dict[str, Any], depths: Iterable[float] = ()) -> list[dict[str, Any]]:
    """Valley rules that differ from the current threshold parameters in as few of the rule's choices as
    possible, fewest changes first: which valley (:data:`RULE_VALLEYS`), how shallow a dip still counts
    (``max_valley_ratio``: current or the method's default), the plausible range (``bounds``: current
    or none) and whether a valley above a dim mode gives way to the tail (``dim_mode_tail``: current or
    never). No value here is fitted to the training samples, so a rule that reproduces the expert on
    every training sample is the lab's rule as far as those samples show it, and with the near-tie
    preference of :func:`_best` a choice the samples do not show keeps its current (shipped) value.
    ``depths``: further depth cut-offs to list (:func:`is_rule_change` accepts any of :data:`DEPTH_GRID`,
    the values :func:`_with_depths` lists)."""
    if cur.get("mode", "valley") != "valley":
        return []
    fields = ThresholdParams.model_fields
    now = {"valley": cur.get("valley", fields["valley"].default),
           "max_valley_ratio": cur.get("max_valley_ratio", fields["max_valley_ratio"].default),
           "bounds": cur.get("bounds"), "dim_mode_tail": cur.get("dim_mode_tail")}
    options = {"valley": [v for v in RULE_VALLEYS if v != now["valley"]],
               "max_valley_ratio": [r for r in dict.fromkeys((fields["max_valley_ratio"].default, *depths))
                                    if r != now["max_valley_ratio"]],
               "bounds": [None] if now["bounds"] is not None else [],
               # a valley above a dim mode taken as a valley all the same (the lab may cut between dim and bright)
               "dim_mode_tail": [None] if now["dim_mode_tail"] is not None else []}
    changes: list[dict[str, Any]] = [{}]
    for key, values in options.items():
        changes += [{**c, key: v} for c in changes for v in values]
    out = []
    for ch in sorted(changes[1:], key=len):
        cand = {k: v for k, v in cur.items() if k not in ch or ch[k] is not None}
        cand.update({k: v for k, v in ch.items() if v is not None})
        cand["mode"] = "valley"
        if "max_valley_ratio" in ch and "fallback" in cand:
            # the method's default valley definition as a whole: dips down to its default depth count, and a
            # valley that moves with the smoothing is kept (flagged) rather than replaced by the fallback's
            # count ('excess' distrusts exactly the shallow valleys this depth admits)
            cand["fallback"] = fields["fallback"].default
        out.append(cand)
    return out


#: valley depth cut-offs (``max_valley_ratio``) probed by :func:`valley_depth_ranges`
DEPTH_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))
