"""A lab's valley rule learned together with its fallback's width: one training sample shows the valley the
lab takes (the highest, above the shipped range), the other has no valley and shows only where the lab's
tail goes (2.5 SD, the shipped rule 1.75 SD). Neither a rule nor a tail reproduces both; the rule with the
fallback width implied by the second sample does, and is adopted although each training sample is the only
one to show its part. Synthetic one-marker samples on the 0..1 gate scale (helpers of test_learn_rules)."""
from __future__ import annotations

import numpy as np

from cytokit.gating.methods.density import ThresholdParams, fit_threshold
from cytokit.learn.fallback import fallback_candidates, implied_fallback_widths
from cytokit.learn.search import _Ctx, fitted_numbers, is_rule_change, tune_definition
from cytokit.learn.slots import threshold_slots
from cytokit.gating.fit_state import FitState

from test_learn_rules import SHIPPED, _definition, _f1, _gated, _sample

#: the lab: the highest valley anywhere in 0.05..0.95, dips down to 0.6 count, else the method's default tail
LAB = ThresholdParams(valley="last", bounds=(0.05, 0.95), max_valley_ratio=0.6)
#: negative, dim and bright modes: the lab takes the dim-bright valley (above the shipped range)
THREE = [(0.2, 0.05, 5000), (0.42, 0.04, 2500), (0.66, 0.05, 2000)]
#: a negative peak with a shoulder and no valley: both rules fall back to a tail, of different widths
SHOULDER = [(0.2, 0.05, 6000), (0.36, 0.08, 2500)]


def _shipped_cut(sample) -> float:
    return fit_threshold(sample.events[:, 0].astype(np.float64), ThresholdParams.model_validate(SHIPPED)).value


def test_rule_and_fallback_width_are_learned_jointly():
    a, ta, _ = _gated("a", _sample(THREE, 10), LAB)
    b, tb, _ = _gated("b", _sample(SHOULDER, 11), LAB)
    assert ta - _shipped_cut(a.prepared) > 0.15  # a shows the lab's valley choice
    assert tb - _shipped_cut(b.prepared) > 0.02  # b shows the lab's fallback width
    held = [_gated("c", _sample([(0.22, 0.06, 6000), (0.40, 0.09, 2000)], 12), LAB)[0],  # fallback
            _gated("d", _sample([(0.2, 0.05, 5000), (0.44, 0.04, 2000), (0.70, 0.05, 2500)], 13), LAB)[0]]
    base = _definition()
    assert all(_f1(base, h) < 0.9 for h in held)
    decisions: list[dict] = []
    learned = tune_definition(base, [a, b], decisions=decisions)
    (d,) = decisions
    assert d["adopted"], d
    params = learned.population("pos").params
    # one fitted number only (the fallback's width), no range fitted around the placements
    assert fitted_numbers(base.population("pos"), params) == 1
    assert is_rule_change(base.population("pos"), params, fallback_width=True)
    assert not is_rule_change(base.population("pos"), params)
    assert "bounds" not in params["threshold"]
    assert abs(params["threshold"]["tail_sd"] - 2.5) < 0.25  # the lab's width (the method's default)
    for ts in (a, b, *held):
        assert _f1(learned, ts) > 0.98, ts.name


def test_fallback_widths_come_only_from_samples_that_fall_back():
    """The implied width is measured on the sample where the candidate rule finds no valley; a sample on
    which it takes a valley contributes none."""
    a, _, _ = _gated("a", _sample(THREE, 10), LAB)
    b, tb, _ = _gated("b", _sample(SHOULDER, 11), LAB)
    spec = _definition().population("pos")
    ctx = _Ctx(spec, [a, b], [FitState(), FitState()])
    params, (slot,) = threshold_slots(spec)
    ta = 0.539  # any placement: the shipped rule takes a valley on a
    widths = implied_fallback_widths(ctx, params, slot, [ta, tb])
    assert len(widths[False]) == 1 and len(widths[True]) == 1  # b only
    assert implied_fallback_widths(ctx, params, slot, [ta, None]) == {False: [], True: []}
    cands = fallback_candidates(ctx, params, slot, [ta, tb])
    assert cands and all(c["threshold"].get("mode", "valley") == "valley" for c in cands)
    # plain variants drop the base's widening/knee; none carries a range other than the base's
    assert all(c["threshold"].get("bounds") in (None, [0.2, 0.5]) for c in cands)
