"""A lone mode (no valley) read against the same file's negative reference: its position relative to the
reference's negatives and the count of events where those negatives lie decide negative or positive, so the
reading follows gain and fluorochrome; where the two disagree, or the mode sits at the boundary, the fit is
flagged ``ambiguous_mode`` (arrays generated here, and one simulated file through the shipped strategy)."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.fit_state import reference_mask
from cytokit.gating.model import dependents
from cytokit.gating.methods import fit_threshold, needs_review
from cytokit.gating.methods.density import ThresholdParams, reference_negative
from cytokit.gating.methods.lone_mode import ALL_POSITIVE_SHARE, negative_share
from cytokit.gating.model import StrategyDefinition, reference_operands
from cytokit.simulate import simulate_file, truth_masks
from cytokit.simulate.config import InstrumentConfig, SimulationConfig

CD28 = ThresholdParams(bounds=(0.2, 0.65))  # the shipped CD28 rule: default valley, tail 2.5 SD


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("ref_mode, ref_sd, pos_mode", [
    (0.08, 0.03, 0.26),   # low gain: the positives' mode lies far below the fixed limit (0.425)
    (0.24, 0.05, 0.48),   # the usual gain
    (0.40, 0.045, 0.64),  # high gain: the reference's negatives lie near the middle of the bounds
])
def test_all_positive_population_reads_positive_at_any_gain(ref_mode, ref_sd, pos_mode):
    r = rng(11)
    cd4 = np.r_[r.normal(pos_mode, 0.045, 19950), r.normal(ref_mode, ref_sd, 50)]  # 99.75 % CD28+: no second mode
    ref = r.normal(ref_mode, ref_sd, 8000)  # the CD3- lymphocytes: CD28-
    t = fit_threshold(cd4, CD28, reference=ref)
    pct = 100 * np.mean(cd4 >= t.value)
    assert pct > 90, (pct, t.flags)
    assert "all_positive" in t.flags and not needs_review(t.flags)
    assert t.info["lone_mode"]["method"] == "below_mode"


@pytest.mark.parametrize("ref_mode, ref_sd", [(0.08, 0.03), (0.24, 0.05), (0.40, 0.045)])
def test_all_negative_population_reads_negative_at_any_gain(ref_mode, ref_sd):
    r = rng(12)
    cd4 = np.r_[r.normal(ref_mode, ref_sd, 19600), r.uniform(ref_mode + 0.15, ref_mode + 0.35, 400)]  # 2 %
    t = fit_threshold(cd4, CD28, reference=r.normal(ref_mode, ref_sd, 8000))
    assert 100 * np.mean(cd4 >= t.value) < 5
    assert "all_positive" not in t.flags and "ambiguous_mode" not in t.flags


def test_dim_positive_mode_merged_with_the_negatives_is_counted_not_cut_above():
    # CD28+ a dim mode ~4 SD above the negatives, 88 % of CD4 T: one mode, no valley. Read as negative (the
    # fixed limit) the gate lay above it (0 %); read as all positive below it, it took in the negatives
    r = rng(13)
    neg = r.normal(0.14, 0.045, 2400)
    cd4 = np.r_[neg, r.normal(0.32, 0.07, 17600)]
    ref = r.normal(0.14, 0.045, 8000)
    fixed = fit_threshold(cd4, CD28)
    assert 100 * np.mean(cd4 >= fixed.value) < 50  # the failure without the reference
    t = fit_threshold(cd4, CD28, reference=ref)
    pct = 100 * np.mean(cd4 >= t.value)
    assert abs(pct - 88.0) < 3, (pct, t.flags, t.info.get("lone_mode"))
    assert t.info["lone_mode"]["method"] == "counted" and "all_positive" in t.flags
    assert t.info["lone_mode"]["negative_share"] > ALL_POSITIVE_SHARE


def test_mode_at_the_boundary_is_flagged_ambiguous():
    r = rng(14)
    ref = r.normal(0.2, 0.04, 8000)
    neg = reference_negative(ref, CD28)
    assert neg is not None
    cd4 = r.normal(neg["negative_max"] + 0.01, 0.04, 20000)  # 0.25 SD above the reference's limit
    t = fit_threshold(cd4, CD28, reference=ref)
    assert "ambiguous_mode" in t.flags and needs_review(t.flags)


def test_position_and_count_that_disagree_are_flagged_and_the_position_decides():
    # negatives spread upwards by spillover: the lone mode lies within the reference's negatives' range (below
    # negative_max), yet few of its events lie at the reference's mode, so the count reads them positive
    r = rng(15)
    ref = r.normal(0.2, 0.05, 8000)
    cd4 = np.r_[r.normal(0.2425, 0.05, 18000), r.uniform(0.35, 0.6, 2000)]  # the mode 0.85 SD above the reference's
    neg = reference_negative(ref, CD28)
    assert neg is not None and 0.2425 < neg["negative_max"] - neg["half_sd"] and negative_share(cd4, neg) < 0.5
    t = fit_threshold(cd4, CD28, reference=ref)
    assert "ambiguous_mode" in t.flags and "all_positive" not in t.flags
    assert t.info["tail_side"] == "upper" and 100 * np.mean(cd4 >= t.value) < 20


def test_reference_expression_is_an_intersection_of_populations_and_complements():
    assert reference_operands("Singlets & !T cells") == [("Singlets", False), ("T cells", True)]
    assert reference_operands("Singlets") == [("Singlets", False)]
    masks = {"Singlets": np.array([True, True, False, True]), "T cells": np.array([True, False, False, False])}
    assert reference_mask("Singlets & !T cells", masks).tolist() == [False, True, False, True]
    assert reference_mask("Singlets & !B cells", masks) is None  # an operand that was not fitted
    tmem = load_strategy("tmem")
    assert tmem.population("CD28+ CD4").negative_reference == "Singlets & !T cells"
    assert {"CD28+ CD4", "CD28+ CD8"} <= set(dependents(tmem.definition, "T cells"))
    data = tmem.definition.model_dump()
    next(p for p in data["populations"] if p["name"] == "CD28+ CD8")["negative_reference"] = "Singlets & !NK"
    with pytest.raises(ValueError, match="negative_reference 'NK' must be a population defined above"):
        StrategyDefinition.model_validate(data)


@pytest.mark.parametrize("gain", [0.45, 2.2])
def test_shipped_tmem_reads_a_dim_cd28_mode_at_low_and_high_gain(tmp_path, gain):
    """A tmem file whose CD28+ cells are one dim mode close to the CD28- peak (about 90 % of CD4 T), acquired at
    a low and a high detector gain: CD28+ CD4 within 3 pp of the truth, or flagged."""
    inst = InstrumentConfig(name="BD FACSCanto II", style="bd", fluorescence_scale=gain)
    cfg = SimulationConfig(phenotype={"marker_levels": {"CD28": {"pos": (700.0, 0.35)}}})
    path = tmp_path / "dim.fcs"
    simulate_file(path, n_events=30000, tube="tmem", instrument=inst, seed=21, config=cfg, truth_out=tmp_path)
    truth = truth_masks(tmp_path, path)
    res = load_strategy("tmem").apply(read_fcs(path), qc=False)
    rows = res.populations.set_index("population")
    for pop, parent in (("CD28+ CD4", "CD4 T"), ("CD28+ CD8", "CD8 T")):
        true_pct = 100 * truth[pop].sum() / truth[parent].sum()
        got = rows.loc[pop]
        assert abs(got.pct_parent - true_pct) < 3.0 or needs_review(got["flags"]), (pop, got.pct_parent, true_pct)
    cd4 = rows.loc["CD28+ CD4"]
    assert abs(cd4.pct_parent - 100 * truth["CD28+ CD4"].sum() / truth["CD4 T"].sum()) < 3.0, cd4["flags"]


def test_tail_is_measured_from_the_mode_the_reference_calls_negative():
    # high gain, bright broad negatives: a small dim bump (2 %) below the CD25- mode is the lowest mode, and no
    # valley lies inside the bounds. Measured from that bump the tail lay inside the negatives (~90 % positive)
    r = rng(16)
    cd4 = np.r_[r.normal(0.15, 0.015, 400), r.normal(0.385, 0.05, 17600), r.normal(0.75, 0.05, 2000)]
    params = ThresholdParams(valley="first", max_valley_ratio=0.5, tail_sd=1.75, bounds=(0.2, 0.5))
    plain = fit_threshold(cd4, params)
    assert plain.info["peaks"][0] < 0.2 and np.mean(cd4 >= plain.value) > 0.5  # the failure
    t = fit_threshold(cd4, params, reference=r.normal(0.385, 0.05, 20000))
    assert abs(t.info["reference_peak"] - 0.385) < 0.03
    assert abs(100 * np.mean(cd4 >= t.value) - 10.0) < 4


def test_a_count_is_valid_only_over_a_reference_negative_for_the_marker():
    from cytokit.gating.methods.negative_model import main_mode_is_lowest, negative_model

    r = rng(17)
    cd8 = np.r_[r.normal(0.15, 0.05, 3000), r.normal(0.5, 0.05, 7000)]  # 70 % CD28+ CD8 T cells
    cd3neg = r.normal(0.15, 0.05, 6000)  # B and NK cells: CD28-
    # all single lymphocytes: the CD28+ T cells are the main mode, the CD28- cells a mode below it
    singlets = np.r_[r.normal(0.15, 0.05, 9000), r.normal(0.5, 0.05, 14000)]
    # ... or, with more CD28- cells, the main mode is CD28- and a large CD28+ mode lies above it
    singlets_b = np.r_[r.normal(0.15, 0.05, 14000), r.normal(0.5, 0.05, 9000)]
    # CD25 on all single lymphocytes: a small CD25+ mode above the CD25- one is no reason to refuse it
    cd25 = np.r_[r.normal(0.2, 0.05, 20000), r.normal(0.55, 0.06, 1500)]
    assert main_mode_is_lowest(cd3neg) and main_mode_is_lowest(cd25)
    assert not main_mode_is_lowest(singlets) and not main_mode_is_lowest(singlets_b)
    good = negative_model(cd8, reference=cd3neg)
    assert good is not None and good.valid and abs(good.positive_pct - 70) < 3
    for ref in (singlets, singlets_b):
        m = negative_model(cd8, reference=ref)
        assert m is not None and not m.valid  # its count (tens of pp off) is no second estimate


def test_ambiguous_mode_with_positives_above_it_reads_negative():
    # lab B's CD4 T cells' CD25 (CD4-PE spill into the CD25 detector): their negatives' mode sits just above the
    # Singlets' negative_max and few of them lie at the Singlets' mode, so position and count both said
    # positive; the threshold went below the mode (93 % for 10 %). The mode's own shape (a plateau of
    # positives above it, nothing below) says negative.
    r = rng(16)
    ref = r.normal(0.18, 0.058, 20000)
    cd4 = np.r_[r.normal(0.31, 0.055, 18000), r.uniform(0.42, 0.7, 2000)]
    neg = reference_negative(ref, CD28)
    assert neg is not None and abs(0.31 - neg["negative_max"]) < neg["half_sd"]  # at the boundary
    t = fit_threshold(cd4, CD28, reference=ref)
    assert "ambiguous_mode" in t.flags and needs_review(t.flags) and "all_positive" not in t.flags
    assert t.info["lone_mode"]["decided_by"] == "side_excess"
    assert abs(100 * np.mean(cd4 >= t.value) - 10.0) < 2.5


def test_ambiguous_negative_mode_with_a_heavier_lower_side_stays_negative():
    # negatives on a logicle scale spread further below their mode than above it (lab B 12 `B01_V8`'s CD4 T
    # cells' CD25: 5 % more events below than above, with 6 % CD25+ above): an excess below is no sign of a
    # positive mode, so a mode at the boundary whose position says negative stays negative
    r = rng(17)
    ref = r.normal(0.18, 0.058, 20000)
    below = 0.29 - np.abs(r.normal(0, 0.09, 9000))
    above = 0.29 + np.abs(r.normal(0, 0.05, 9000))
    cd4 = np.r_[below, above, 0.33 + r.exponential(0.12, 1100)]
    t = fit_threshold(cd4, CD28, reference=ref)
    lone = t.info["lone_mode"]
    assert not lone["above_negative_max"] and lone["side_excess"] < 0 and "decided_by" not in lone
    assert "ambiguous_mode" in t.flags and "all_positive" not in t.flags
    assert 100 * np.mean(cd4 >= t.value) < 20
