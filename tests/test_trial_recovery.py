"""On a simulated trial the analysis recovers the designed effects.

The simulator (cytokit.simulate, default seed and 10,000 events per file; tmem tube only to keep the
test quick) draws 20 patients per arm with the IL-2 trial's design (median CD4 gain 865 vs 262 cells/µL,
89 % vs 47 % reaching +80 %). The analysis runs on the true per-file populations (event-count noise
included) and is compared with the designed, noise-free per-patient CD4 course in truth/patients.csv.
"""
from __future__ import annotations

import logging

import pytest

from cytokit.simulate import load_config, simulate_trial
from cytokit.trial import TrialConfig, analyse, designed_cd4, inputs_from_simulation

log = logging.getLogger(__name__)
N_PER_ARM = 20


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim_trial")
    simulate_trial(out, load_config(None, patients_per_arm=N_PER_ARM, tubes=["tmem"]))
    cfg = TrialConfig(measures=["abs_count_per_uL"], figures=False, html=False,
                      populations=["T cells", "CD4 T", "CD8 T", "Naive CD4", "CD28+ CD4", "CD25+ CD4"],
                      longitudinal={"populations": ["CD4 T"]})
    res = analyse(inputs_from_simulation(out), cfg)
    return res, designed_cd4(out)


def test_median_cd4_gain_recovered_within_15_percent_with_p_below_0001(recovered):
    res, truth = recovered
    s = res.summaries
    measured = s[(s["population"] == "CD4 T") & (s["quantity"] == "change") & (s["visit"] == "W74")
                 ].set_index("arm")["median"]
    true_gain = truth.groupby("arm")["gain"].median()
    for arm in ("IL-2", "control"):
        rel = measured[arm] / true_gain[arm] - 1
        log.info("median CD4 gain %s: measured %.1f, truth %.1f (%.1f%%)", arm, measured[arm], true_gain[arm],
                 100 * rel)
        assert abs(rel) <= 0.15, (arm, measured[arm], true_gain[arm])
    diff_measured = measured["IL-2"] - measured["control"]
    diff_true = true_gain["IL-2"] - true_gain["control"]
    assert abs(diff_measured / diff_true - 1) <= 0.15
    t = res.tests
    p = t[(t["test"] == "rank_sum") & (t["endpoint"] == "change") & (t["population"] == "CD4 T")
          & (t["visit"] == "W74")]["p"].iloc[0]
    log.info("IL-2 vs control change in CD4 at W74: rank-sum P = %.2g", p)
    assert p < 0.001


def test_proportion_reaching_80_percent_within_one_patient(recovered):
    res, truth = recovered
    r = res.rates
    measured = r[(r["endpoint"] == "cd4_increase_ge_80pct") & (r["visit"] == "W74")].set_index("arm")
    true_n = truth.groupby("arm")["reached"].sum()
    for arm in ("IL-2", "control"):
        log.info("reaching +80%% %s: measured %d/%d, truth %d/%d", arm, measured.loc[arm, "responders"],
                 measured.loc[arm, "n"], true_n[arm], N_PER_ARM)
        assert measured.loc[arm, "n"] == N_PER_ARM
        assert abs(int(measured.loc[arm, "responders"]) - int(true_n[arm])) <= 1
    # and the arms differ in the designed direction
    assert measured.loc["IL-2", "pct"] > measured.loc["control", "pct"]


def test_designed_secondary_effects_have_the_right_sign(recovered):
    res, _ = recovered
    t = res.tests
    rs = t[(t["test"] == "rank_sum") & (t["endpoint"] == "change") & (t["visit"] == "W74")].set_index("population")
    # IL-2 raises CD4, naive, CD28+ and CD25+ CD4 counts more than control; CD8 falls less by design
    for pop in ("CD4 T", "Naive CD4", "CD28+ CD4", "CD25+ CD4"):
        assert rs.loc[pop, "estimate"] > 0, pop
    joint = t[(t["test"] == "mixedlm") & (t["term"] == "arm x visit (joint)")]
    assert joint["p"].iloc[0] < 0.001
