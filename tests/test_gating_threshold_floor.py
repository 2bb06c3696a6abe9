"""Two gates, one marker, one file (gating/threshold_floor.py): a Treg gate's CD25hi cut is never below the
CD25+ CD4 cut of the same file (``threshold_floor``), and where the two readings disagree by more than
DISAGREE_PP % of the parent the floor's row is flagged for review (and the floored one where the raise took
more than FLOORED_OFF_PP % out of it) instead of contradicting each other silently."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.gating import engine, load_strategy
from cytokit.gating.fit_state import FitState
from cytokit.gating.model import dependents
from cytokit.gating.methods import needs_review
from cytokit.gating.methods.density import ThresholdParams, fit_threshold
from cytokit.gating.model import StrategyDefinition
from cytokit.gating.strategy import Strategy
from cytokit.gating.threshold_floor import DISAGREE_FLAG, DISAGREE_PP, FLOORED_OFF_PP, NO_FLOOR_FLAG, OWN_INSIDE_PCT
from cytokit.sample import CHANNEL_COLUMNS, Sample

MARKERS = ("CD4", "CD25", "CD127")


def _sample(events: np.ndarray) -> Sample:
    rows = [dict(pnn=m, pns=m, marker=m, fluorochrome="", range=1.0, gain=1.0, log_decades=0.0, log_offset=0.0,
                 bits=32, kind="fluorescence") for m in MARKERS]
    return Sample(np.ascontiguousarray(events, dtype=np.float32), pd.DataFrame(rows, columns=list(CHANNEL_COLUMNS)))


def _cd4(n_neg: int, n_mid: int, n_treg: int, seed: int = 0, mid_cd127: float = 0.2) -> Sample:
    """CD4 T cells on a transformed scale: CD25- CD127+ (CD25 0.2 +- 0.03), CD25-mid cells between the CD25-
    peak and the CD25+ cut (CD25 0.32-0.38; CD127 ``mid_cd127``: lo by default) and CD25hi CD127lo Treg
    (CD25 0.6)."""
    r = np.random.default_rng(seed)
    cd25 = np.r_[r.normal(0.2, 0.03, n_neg), r.uniform(0.32, 0.38, n_mid), r.normal(0.6, 0.03, n_treg)]
    cd127 = np.r_[r.normal(0.6, 0.03, n_neg), r.normal(mid_cd127, 0.03, n_mid), r.normal(0.2, 0.03, n_treg)]
    return _sample(np.c_[np.full(cd25.size, 0.7), cd25, cd127])


def _definition(floor: bool, treg_cd25: float = 0.3) -> StrategyDefinition:
    """CD25+ CD4 cut at 0.45 (above the CD25-mid cells), Treg's own CD25 cut at ``treg_cd25``."""
    treg = {"name": "Treg", "parent": "CD4 T", "dims": ["CD25", "CD127"], "method": "quadrant",
            "params": {"signs": ["+", "-"], "thresholds": [{"mode": "fixed", "value": treg_cd25},
                                                            {"mode": "fixed", "value": 0.4}]}}
    if floor:
        treg["threshold_floor"] = {"CD25": "CD25+ CD4"}
    return StrategyDefinition.model_validate({"name": "t", "lymphocytes": "CD4 T", "populations": [
        {"name": "CD4 T", "dims": ["CD4"], "method": "rectangle", "params": {"lower": [0.5], "upper": [None]}},
        {"name": "CD25+ CD4", "parent": "CD4 T", "dims": ["CD25"], "method": "threshold",
         "params": {"threshold": {"mode": "fixed", "value": 0.45}}},
        treg]})


def _table(definition: StrategyDefinition, sample: Sample) -> pd.DataFrame:
    state = engine.fit_all(definition, sample)
    return engine.population_table(definition, state, sample.n_events).set_index("population")


def test_fit_threshold_raises_a_result_below_its_floor_and_says_so():
    x = np.random.default_rng(1).normal(0.2, 0.03, 5000)
    own = fit_threshold(x, ThresholdParams(mode="tail", tail_sd=2.0))
    floored = fit_threshold(x, ThresholdParams(mode="tail", tail_sd=2.0, at_least=0.45))
    assert own.value < 0.45 and floored.value == pytest.approx(0.45)
    assert "raised_to_floor" in floored.flags and floored.info["below_floor"] == pytest.approx(own.value)
    above = fit_threshold(x, ThresholdParams(mode="tail", tail_sd=2.0, at_least=0.1))
    assert above.value == pytest.approx(own.value) and "raised_to_floor" not in above.flags


def test_treg_is_kept_within_cd25_positive_cd4_and_a_small_raise_is_a_note():
    sample = _cd4(9000, 100, 400)  # the CD25-mid cells: 1 % of CD4 T, below DISAGREE_PP
    plain = _table(_definition(False), sample)
    assert plain.loc["Treg", "count"] > plain.loc["CD25+ CD4", "count"]  # the contradiction without the floor
    t = _table(_definition(True), sample)
    assert t.loc["Treg", "count"] <= t.loc["CD25+ CD4", "count"]
    assert t.loc["Treg", "pct_parent"] == pytest.approx(100 * 400 / 9500, abs=0.2)
    assert "CD25:raised_to_floor" in t.loc["Treg", "flags"].split(";")
    assert not needs_review(t.loc["Treg", "flags"]) and not needs_review(t.loc["CD25+ CD4", "flags"])


def test_two_cd25_readings_that_disagree_flag_both_rows():
    sample = _cd4(8500, 600, 400)  # 6 % of CD4 T between the two cuts
    t = _table(_definition(True), sample)
    assert 100 * 600 / 9500 > DISAGREE_PP
    for name in ("Treg", "CD25+ CD4"):
        assert DISAGREE_FLAG in t.loc[name, "flags"].split(";") and needs_review(t.loc[name, "flags"])
    plain = _table(_definition(False), sample)
    assert DISAGREE_FLAG not in plain.loc["CD25+ CD4", "flags"]


def test_a_disagreement_the_floored_gate_does_not_hold_flags_the_floor_row_only():
    # the events between the two cuts are CD127+ (activated CD25-dim cells): the raise takes none of them out
    # of Treg (CD127lo), so its row is its own reading; the CD25+ CD4 row, which they decide, is flagged
    sample = _cd4(8500, 600, 400, mid_cd127=0.6)
    state = engine.fit_all(_definition(True), sample)
    t = engine.population_table(_definition(True), state, sample.n_events).set_index("population")
    assert DISAGREE_FLAG in t.loc["CD25+ CD4", "flags"].split(";") and needs_review(t.loc["CD25+ CD4", "flags"])
    assert DISAGREE_FLAG not in t.loc["Treg", "flags"].split(";") and not needs_review(t.loc["Treg", "flags"])
    assert state.fits["Treg"].info["floor_moved_pct"] > DISAGREE_PP
    assert state.fits["Treg"].info["floor_moved_out_pct"] <= FLOORED_OFF_PP
    assert t.loc["Treg", "pct_parent"] == pytest.approx(100 * 400 / 9500, abs=0.2)


def test_a_refit_that_no_longer_disagrees_takes_the_flag_off():
    sample = _cd4(8500, 600, 400)
    strategy = Strategy(_definition(True))
    state = engine.fit_all(strategy.definition, sample)
    assert DISAGREE_FLAG in state.fits["CD25+ CD4"].flags
    close = strategy.set_params("Treg", thresholds=[{"mode": "fixed", "value": 0.44}, {"mode": "fixed", "value": 0.4}])
    state = engine.fit_all(close.definition, sample, state, only={"Treg"})
    assert DISAGREE_FLAG not in state.fits["CD25+ CD4"].flags and DISAGREE_FLAG not in state.fits["Treg"].flags


def test_an_own_cut_inside_the_main_population_is_raised_without_a_review_flag():
    # a Treg CD25 cut inside the CD25- peak (a tail measured from a small bump below it): most of CD4 T between
    sample = _cd4(9000, 100, 400)
    definition = _definition(True, treg_cd25=0.18)
    state = engine.fit_all(definition, sample)
    assert state.fits["Treg"].info["floor_moved_pct"] > OWN_INSIDE_PCT
    t = engine.population_table(definition, state, sample.n_events).set_index("population")
    assert t.loc["Treg", "pct_parent"] == pytest.approx(100 * 400 / 9500, abs=0.2)
    assert DISAGREE_FLAG not in t.loc["CD25+ CD4", "flags"] and DISAGREE_FLAG not in t.loc["Treg", "flags"]


def test_a_refit_of_the_floor_population_refits_the_floored_gate():
    definition = _definition(True)
    assert "Treg" in dependents(definition, "CD25+ CD4")


def test_a_missing_floor_population_is_noted():
    definition = _definition(True)
    state = FitState()
    sample = _cd4(9000, 100, 400)
    for spec in definition.populations:
        if spec.name != "CD25+ CD4":
            engine.fit_population(spec, sample, state)
    assert NO_FLOOR_FLAG in state.fits["Treg"].flags


@pytest.mark.parametrize("bad, message", [
    ({"CD8": "CD25+ CD4"}, "not among its dims"),
    ({"CD25": "Nope"}, "must be a population defined above it"),
    ({"CD127": "CD25+ CD4"}, "places no threshold on CD127"),
])
def test_threshold_floor_is_validated(bad, message):
    data = _definition(True).model_dump()
    data["populations"][2]["threshold_floor"] = bad
    with pytest.raises(ValueError, match=message):
        StrategyDefinition.model_validate(data)



def test_shipped_tmem_keeps_treg_within_cd25_positive_cd4():
    s = load_strategy("tmem")
    assert s.population("Treg").threshold_floor == {"CD25": "CD25+ CD4"}
