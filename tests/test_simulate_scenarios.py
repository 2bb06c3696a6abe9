"""Scenario options of the simulator (PhenotypeConfig): marker levels, stain brightness, broad negatives."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytokit.errors import ConfigError
from cytokit.simulate import load_config, simulate_file, truth_masks
from cytokit.simulate.channels import TUBES

CD25 = 3 + [m for m, _ in TUBES["tmem"]].index("CD25")


def _cd25_of_cd25pos(tmp_path: Path, name: str, **overrides) -> tuple[np.ndarray, np.ndarray]:
    cfg = load_config(None, acquisition={"electronic_noise": 0, "photon_noise": 0, "clog_probability": 0},
                      **overrides)
    sim = simulate_file(tmp_path / f"{name}.fcs", 20000, "tmem", "bd", seed=3, config=cfg, truth_out=tmp_path)
    masks = truth_masks(tmp_path, tmp_path / f"{name}.fcs")
    pos = masks["CD25+ CD4"] & ~masks["Treg"]
    neg = masks["CD4 T"] & ~masks["CD25+ CD4"]
    return sim.unspilled[pos, CD25 - 3], sim.unspilled[neg, CD25 - 3]


def test_default_phenotype_keeps_the_bundled_trial(tmp_path: Path) -> None:
    a = simulate_file(tmp_path / "a.fcs", 3000, "tmem", "bd", seed=9)
    b = simulate_file(tmp_path / "b.fcs", 3000, "tmem", "bd", seed=9, config=load_config(None, phenotype={}))
    np.testing.assert_array_equal(a.events, b.events)


def test_marker_levels_turn_a_continuum_into_a_mode_and_brightness_scales_it(tmp_path: Path) -> None:
    cont, _ = _cd25_of_cd25pos(tmp_path, "cont")
    mode, _ = _cd25_of_cd25pos(tmp_path, "mode", phenotype={"marker_levels": {"CD25": {"cont": [3000, 0.2]}}})
    # a log-uniform continuum 400..8000 is much wider than a lognormal with log-sd 0.2
    assert np.std(np.log(cont)) > 2 * np.std(np.log(mode))
    dim, _ = _cd25_of_cd25pos(tmp_path, "dim", phenotype={"marker_levels": {"CD25": {"cont": [3000, 0.2]}},
                                                          "marker_brightness": {"CD25": 0.5}})
    assert np.median(dim) / np.median(mode) == pytest.approx(0.5, rel=0.15)


def test_broad_negative_widens_the_negative_population(tmp_path: Path) -> None:
    _, narrow = _cd25_of_cd25pos(tmp_path, "narrow")
    _, broad = _cd25_of_cd25pos(tmp_path, "broad", phenotype={"negative_spread": 0.8, "autofluorescence_scale": 2})
    assert np.std(np.log(broad)) > 1.8 * np.std(np.log(narrow))
    assert np.median(broad) > 1.5 * np.median(narrow)


def test_absent_marker_leaves_its_channel_out_and_strategy_skips_treg(tmp_path: Path) -> None:
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy

    cfg = load_config(None, phenotype={"absent_markers": ["CD127"]})
    simulate_file(tmp_path / "x.fcs", 5000, "tmem", "bd", seed=2, config=cfg)
    sample = read_fcs(tmp_path / "x.fcs")
    assert "BV605-A" not in list(sample.channels["pnn"]) and len(sample.channels) == 3 + 7 + 1
    assert sample.metadata["spillover"].startswith("7,")
    pops = load_strategy("tmem").apply(sample).populations.population.tolist()
    assert "Treg" not in pops and "CD25+ CD4" in pops


@pytest.mark.parametrize("bad, match", [
    ({"marker_levels": {"CD999": {"pos": [1, 0.1]}}}, "unknown marker 'CD999'"),
    ({"marker_levels": {"CD25": {"bright": [1, 0.1]}}}, "unknown state 'bright'"),
    ({"marker_levels": {"CD25": {"cont": ["cont", 9000, 400]}}}, r"\[median, log_sd\]"),
    ({"marker_brightness": {"CD56": 0}}, "brightness must be > 0"),
    ({"negative_spread": 0}, "negative_spread"),
    ({"absent_markers": ["CD999"]}, "unknown markers"),
])
def test_invalid_scenario_options_are_config_errors(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, phenotype=bad)
