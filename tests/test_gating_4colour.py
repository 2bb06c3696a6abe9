"""4-colour FACSCalibur strategies on 4-channel files derived from simulated 8-colour files (FL1-H..FL4-H,
empty $PnS: markers resolved from the tube's fluorochrome assignment)."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.preprocess import compensate
from cytokit.panel import load_panel
from cytokit.sample import Sample
from cytokit.simulate import SimulationConfig, simulate_trial, truth_masks

TUBES = {  # 4-colour tube -> (8-colour tube, FL1..FL4 markers)
    "naive": ("tmem", ["CD45RA", "CD62L", "CD4", "CD3"]),
    "activation": ("tmem", ["CD28", "CD25", "CD4", "CD8"]),
    "nkb": ("nkb", ["CD3", "CD16", "CD45", "CD19"]),
}


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial4")
    simulate_trial(out, SimulationConfig(seed=5, patients_per_arm=1, visits=["W0"], events=20000, tubes=["tmem", "nkb"]))
    return out


def four_colour(trial, tube8: str, markers: list[str]) -> tuple[Sample, str]:
    file = sorted((trial / "fcs").glob(f"P001_*_{tube8}.fcs"))[0]
    s = load_panel("il2_trial").resolve(read_fcs(file), tube=tube8)
    s = compensate(s, load_strategy(tube8).definition)  # a compensated 4-colour file without $SPILLOVER
    src = ["FSC-H", "SSC-A"] + markers
    cols = [s.channel_index(m) for m in src]
    ch = s.channels.iloc[cols].reset_index(drop=True).copy()
    ch["pnn"] = ["FSC-H", "SSC-H", "FL1-H", "FL2-H", "FL3-H", "FL4-H"]
    ch["pns"] = ""
    ch["marker"] = ch["pnn"]
    events = np.ascontiguousarray(s.events[:, cols])
    return Sample(events=events, channels=ch, metadata={}, path=file), f"fcs/{file.name}"


@pytest.mark.parametrize("tube", sorted(TUBES))
def test_four_colour_strategies_match_truth(trial, tube):
    tube8, markers = TUBES[tube]
    sample, rel = four_colour(trial, tube8, markers)
    result = load_strategy(f"il2_trial_4colour_{tube}").apply(sample, qc=False)  # masks vs per-event truth
    truth = truth_masks(trial, rel)
    by = result.populations.set_index("population")
    assert by.loc["Singlets", "count"] == by.loc["Lymphocytes", "count"]  # pass-through without FSC-A
    checks = {"naive": ["T cells", "CD4 T", "Naive CD4", "Memory CD4"],
              "activation": ["CD28+ CD4"], "nkb": ["T cells", "B cells", "NK cells"]}[tube]
    for pop in checks:
        m, t = result.masks[pop], truth[pop]
        f1 = 2 * (m & t).sum() / (m.sum() + t.sum())
        assert f1 > 0.9, (tube, pop, f1)
    if tube == "activation":  # no CD3: CD4+ CD8- single lymphocytes still recover the CD4 T cells
        m, t = result.masks["CD4 T"], truth["CD4 T"]
        assert (m & t).sum() / t.sum() > 0.95
