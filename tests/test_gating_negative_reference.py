"""Negative reference: whether a lone mode is negative or positive is decided against a population of the
same file known to be mostly negative for the marker, not against a fixed position that moves with gain."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.errors import ConfigError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.model import dependents
from cytokit.gating.methods import fit_gate, fit_threshold
from cytokit.gating.methods.density import REFERENCE_SD, ThresholdParams, reference_negative
from cytokit.simulate import simulate_file, truth_masks
from cytokit.simulate.config import InstrumentConfig, SimulationConfig

CD25 = ThresholdParams(valley="first", max_valley_ratio=0.5, tail_sd=1.75, bounds=(0.2, 0.5))


def rng(seed: int = 3) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_lone_negative_mode_above_the_fixed_limit_stays_negative_with_a_reference():
    # high detector gain: the CD25- mode of CD4 T sits at 0.42, above negative_max (middle of bounds, 0.35)
    r = rng()
    cd4 = np.r_[r.normal(0.42, 0.04, 19600), r.uniform(0.5, 0.75, 400)]  # 2 % CD25+ continuum, no valley
    fixed = fit_threshold(cd4, CD25)
    assert "all_positive" in fixed.flags and (cd4 >= fixed.value).mean() > 0.9  # the old failure
    lymph = r.normal(0.42, 0.04, 50000)  # the same channel on all singlets: mostly negative
    t = fit_threshold(cd4, CD25, reference=lymph)
    assert "all_positive" not in t.flags and "ambiguous_mode" not in t.flags
    assert t.value > 0.42 and (cd4 >= t.value).mean() < 0.1
    neg = t.info["negative_reference"]
    assert neg["mode"] == pytest.approx(0.42, abs=0.01)
    assert neg["negative_max"] == pytest.approx(neg["mode"] + REFERENCE_SD * neg["half_sd"], abs=1e-4)


def test_lone_positive_mode_is_positive_against_the_reference():
    # all CD28+ CD4 at a low gain: the lone positive mode (0.33) is below the fixed limit (0.425 for [0.2, 0.65])
    r = rng(4)
    cd4 = r.normal(0.33, 0.04, 20000)
    params = ThresholdParams(bounds=(0.2, 0.65))
    fixed = fit_threshold(cd4, params)
    assert (cd4 >= fixed.value).mean() < 0.5  # placed above the only mode: most positives lost
    lymph = np.r_[r.normal(0.1, 0.03, 30000), r.normal(0.33, 0.04, 20000)]  # CD28- B/NK and CD28+ T
    t = fit_threshold(cd4, params, reference=lymph)
    assert "all_positive" in t.flags and t.value < 0.33
    assert (cd4 >= t.value).mean() > 0.95


def test_reference_negative_uses_the_main_mode_and_its_lower_half():
    r = rng(5)
    x = np.r_[r.normal(0.3, 0.05, 40000), r.normal(0.7, 0.05, 10000)]  # positives do not widen the SD
    neg = reference_negative(x, ThresholdParams())
    assert neg is not None
    assert neg["mode"] == pytest.approx(0.3, abs=0.01) and neg["half_sd"] == pytest.approx(0.05, rel=0.15)
    assert reference_negative(x[:50], ThresholdParams()) is None


def test_too_small_a_reference_is_said_and_the_fixed_limit_used():
    r = rng(6)
    x = r.normal(0.42, 0.04, 20000)
    t = fit_threshold(x, CD25, reference=r.normal(0.42, 0.04, 20))
    assert "no_negative_reference" in t.flags and "all_positive" in t.flags
    assert "negative_reference" not in t.info


def test_every_threshold_type_method_takes_the_reference_others_refuse_it():
    r = rng(7)
    x = r.normal(0.42, 0.04, (5000, 2))
    ref = r.normal(0.42, 0.04, (5000, 2))
    one = {"threshold": CD25.model_dump()}
    assert fit_gate("threshold", x[:, :1], one, dims=("CD25",), reference=ref[:, 0]).gate.lower[0] > 0.42
    quad = fit_gate("quadrant", x, {"signs": ["+", "+"], "thresholds": [CD25.model_dump()]}, dims=("a", "b"),
                    reference=ref)
    assert min(quad.gate.dividers) > 0.42
    interval = fit_gate("interval", x[:, :1], {"lower": CD25.model_dump()}, dims=("CD25",), reference=ref[:, 0])
    assert interval.gate.lower[0] > 0.42
    from cytokit.errors import GatingError

    with pytest.raises(GatingError, match="takes no negative reference"):
        fit_gate("gmm_ellipse", x, {"target": [0.4, 0.4]}, dims=("a", "b"), reference=ref)


def _tmem_with(populations_edit) -> dict:
    data = load_strategy("tmem").definition.model_dump()
    populations_edit(data["populations"])
    return data


def test_strategy_validates_the_reference():
    from cytokit.gating.model import StrategyDefinition

    def later(pops):
        next(p for p in pops if p["name"] == "T cells")["negative_reference"] = "CD4 T"

    with pytest.raises(ValueError, match="negative_reference 'CD4 T' must be a population defined above"):
        StrategyDefinition.model_validate(_tmem_with(later))

    def scatter(pops):
        next(p for p in pops if p["name"] == "Singlets")["negative_reference"] = "Lymphocytes"

    with pytest.raises(ValueError, match="takes no negative_reference"):
        StrategyDefinition.model_validate(_tmem_with(scatter))


def test_shipped_tmem_names_an_internal_negative_for_cd25_and_refits_follow_it(tmp_path):
    s = load_strategy("tmem")
    spec = s.population("CD25+ CD4")
    assert spec.negative_reference == "Singlets"
    assert "CD25+ CD4" in dependents(s.definition, "Singlets")
    again = load_strategy(s.save(tmp_path / "tmem.yaml"))
    assert again.definition == s.definition
    with pytest.raises(ConfigError):
        s.set_params("CD25+ CD4", method="gmm_ellipse", target=[0.4, 0.4])


@pytest.fixture(scope="module")
def high_gain(tmp_path_factory):
    """A tmem file acquired at a high detector gain (x2.6, bright negatives): the CD25- mode of CD4 T lies
    above the middle of the CD25 bounds."""
    out = tmp_path_factory.mktemp("high_gain")
    inst = InstrumentConfig(name="BD FACSCanto II", style="bd", fluorescence_scale=2.6)
    cfg = SimulationConfig(phenotype={"autofluorescence_scale": 1.5})
    path = out / "hg.fcs"
    simulate_file(path, n_events=30000, tube="tmem", instrument=inst, seed=10, config=cfg, truth_out=out)
    truth = truth_masks(out, path)
    return read_fcs(path), truth


def test_high_gain_cd25_is_measured_not_read_as_all_positive(high_gain):
    sample, truth = high_gain
    res = load_strategy("tmem").apply(sample, qc=False)
    true_pct = 100 * truth["CD25+ CD4"].sum() / truth["CD4 T"].sum()
    got = res.populations.set_index("population").loc["CD25+ CD4"]
    assert "all_positive" not in got["flags"]
    assert abs(got.pct_parent - true_pct) < 3.0, (got.pct_parent, true_pct, got["flags"])
    assert res.fits["CD25+ CD4"].info["CD25"]["negative_reference"]["mode"] > 0.35
    # the same file without the reference: the lone CD25- mode above the fixed limit is read as positive
    data = load_strategy("tmem").definition.model_dump()
    for p in data["populations"]:
        p.pop("negative_reference", None)
    from cytokit.gating.model import StrategyDefinition
    from cytokit.gating.strategy import Strategy

    plain = Strategy(StrategyDefinition.model_validate(data)).apply(sample, qc=False)
    old = plain.populations.set_index("population").loc["CD25+ CD4"]
    assert "all_positive" in old["flags"] and old.pct_parent > 90


def test_gatingml_export_of_a_referenced_gate_reproduces_its_mask(high_gain):
    from cytokit.gating.export import xml_id
    from cytokit.gatingml import evaluate_document, read_gatingml
    from cytokit.panel import load_panel

    sample, _ = high_gain
    res = load_strategy("tmem").apply(sample, qc=False)
    doc = read_gatingml(res.to_gatingml().encode())
    masks = evaluate_document(doc, load_panel("il2_trial").resolve(sample, tube="tmem"))
    assert (masks[xml_id("CD25+ CD4")] == res.masks["CD25+ CD4"]).mean() > 0.9999


def test_shipped_nkb_measures_the_cd56_negative_on_t_cells(tmp_path):
    # a high-gain NKB file: the CD56dim/bright splits use the CD56- T cells of the same file
    inst = InstrumentConfig(name="BD FACSCanto II", style="bd", fluorescence_scale=2.6)
    cfg = SimulationConfig(phenotype={"autofluorescence_scale": 1.5})
    path = tmp_path / "nk.fcs"
    simulate_file(path, n_events=30000, tube="nkb", instrument=inst, seed=3, config=cfg, truth_out=tmp_path)
    truth = truth_masks(tmp_path, path)
    res = load_strategy("nkb").apply(read_fcs(path), qc=False)
    table = res.populations.set_index("population")
    for name in ("CD56dim NK", "CD56bright NK"):
        assert load_strategy("nkb").population(name).negative_reference == "T cells"
        true_pct = 100 * truth[name].sum() / truth["NK cells"].sum()
        assert abs(table.loc[name, "pct_parent"] - true_pct) < 3.0, (name, table.loc[name, "flags"])
    neg = res.fits["CD56dim NK"].info["lower"]["negative_reference"]
    t_cd56 = res.sample.events[res.masks["T cells"], res.sample.channel_index("CD56")]
    assert neg["mode"] == pytest.approx(float(np.median(t_cd56)), abs=0.05)
