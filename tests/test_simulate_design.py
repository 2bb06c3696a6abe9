"""The designed trial effects hold: CD4 gain and 80%-increase targets, IL-2 effects on subsets, responder
model, and FCS-level truth that follows the patient courses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.simulate import SimulationConfig, simulate_trial
from cytokit.simulate.clinical import draw_info
from cytokit.simulate.courses import draw_patient, visit_state

N_COURSES = 3000


@pytest.fixture(scope="module")
def courses() -> pd.DataFrame:
    cfg = SimulationConfig(visits=["W0", "W74"])
    rows = []
    for arm in ("IL-2", "control"):
        for i in range(N_COURSES):
            rng = np.random.default_rng([77, i, arm == "IL-2"])
            p = draw_patient(f"P{i}", i, arm, cfg.course, rng)
            info = draw_info(p, cfg, rng)
            s0, s1 = visit_state(p, 0, cfg.course), visit_state(p, 74, cfg.course)
            rows.append({"arm": arm, "b": s0.cd4, "gain": s1.cd4 - s0.cd4, "l0": s0.lymphocytes,
                         "naive0": s0.naive * s0.cd4, "naive1": s1.naive * s1.cd4,
                         "mem0": (1 - s0.naive) * s0.cd4, "mem1": (1 - s1.naive) * s1.cd4,
                         "cd28": s1.cd28_cd4 - s0.cd28_cd4, "cd25": s1.cd25 - s0.cd25,
                         "nk": s1.nk / s0.nk, "responder": info.responder})
    return pd.DataFrame(rows)


def test_cd4_gain_and_80pct_increase_match_the_published_arms(courses: pd.DataFrame) -> None:
    by = courses.groupby("arm")
    med = by["gain"].median()
    assert med["IL-2"] == pytest.approx(865, rel=0.05)
    assert med["control"] == pytest.approx(262, rel=0.06)
    reach = courses.assign(r=courses["gain"] >= 0.8 * courses["b"]).groupby("arm")["r"].mean() * 100
    assert reach["IL-2"] == pytest.approx(89, abs=2.5)
    assert reach["control"] == pytest.approx(47, abs=3)
    base = by["b"].median()
    assert 290 < base["IL-2"] < 400 and 290 < base["control"] < 400  # baselines ~300-500 cells/µL band
    assert courses["b"].quantile(0.9) < 500 and courses["b"].quantile(0.1) > 250


def test_il2_raises_naive_memory_cd28_cd25_and_nk(courses: pd.DataFrame) -> None:
    m = courses.assign(dn=courses["naive1"] - courses["naive0"], dm=courses["mem1"] - courses["mem0"]
                       ).groupby("arm").median(numeric_only=True)
    for col in ("dn", "dm", "cd28", "cd25", "nk"):
        assert m.loc["IL-2", col] > m.loc["control", col], col
    assert m.loc["IL-2", "dn"] > 0 and m.loc["IL-2", "dm"] > 0
    assert m.loc["IL-2", "nk"] == pytest.approx(2.0, rel=0.05)
    assert m.loc["IL-2", "cd25"] > 0.15


def test_responder_model_has_arm_and_baseline_cd4_effects(courses: pd.DataFrame) -> None:
    import statsmodels.api as sm

    X = sm.add_constant(pd.DataFrame({"il2": (courses["arm"] == "IL-2").astype(float),
                                      "cd4_100": (courses["b"] - 350) / 100}))
    fit = sm.Logit(courses["responder"].astype(float), X).fit(disp=0)
    cfg = SimulationConfig().clinical
    assert fit.params["il2"] == pytest.approx(cfg.responder_arm_log_or, abs=0.3)
    assert fit.params["cd4_100"] == pytest.approx(cfg.responder_cd4_log_or_per_100, abs=0.3)
    assert fit.params["const"] == pytest.approx(cfg.responder_intercept, abs=0.2)


@pytest.fixture(scope="module")
def file_trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("design")
    simulate_trial(out, SimulationConfig(patients_per_arm=16, visits=["W0", "W74"], events=2500, seed=5))
    return out


def _wide(out: Path) -> pd.DataFrame:
    pops = pd.read_csv(out / "truth" / "populations.csv")
    man = pd.read_csv(out / "manifest.csv")
    return pops.merge(man[["file", "patient", "visit", "arm"]], on="file")


def test_file_truth_follows_the_patient_courses(file_trial: Path) -> None:
    pops = _wide(file_trial)
    true = pd.read_csv(file_trial / "truth" / "patients.csv").set_index(["patient", "visit"])
    cd4 = pops[pops["population"] == "CD4 T"].set_index(["patient", "visit"])["abs_count_per_uL"]
    rel = (cd4 / true["cd4_per_uL"].reindex(cd4.index) - 1).abs()
    assert rel.median() < 0.06 and rel.max() < 0.3  # sampling error of ~1,000 single lymphocytes
    nk = pops[pops["population"] == "NK cells"].set_index(["patient", "visit"])["abs_count_per_uL"]
    assert ((nk / true["nk_per_uL"].reindex(nk.index) - 1).abs().median()) < 0.12


def test_file_level_arm_differences(file_trial: Path) -> None:
    pops = _wide(file_trial)
    key = ["patient", "arm", "population"]
    w0 = pops[pops["visit"] == "W0"].set_index(key)
    w74 = pops[pops["visit"] == "W74"].set_index(key)
    d = pd.DataFrame({"d_abs": w74["abs_count_per_uL"] - w0["abs_count_per_uL"],
                      "d_pct": w74["pct_parent"] - w0["pct_parent"]}).reset_index()
    med = d.groupby(["population", "arm"])[["d_abs", "d_pct"]].median()
    gain = med["d_abs"].xs("CD4 T")
    assert gain["IL-2"] > 550 and gain["control"] < 450 and gain["IL-2"] - gain["control"] > 300
    for pop in ("Naive CD4", "Memory CD4", "NK cells"):
        assert med.loc[(pop, "IL-2"), "d_abs"] > med.loc[(pop, "control"), "d_abs"], pop
    for pop in ("CD25+ CD4", "CD28+ CD4", "CD56bright NK"):
        assert med.loc[(pop, "IL-2"), "d_pct"] > med.loc[(pop, "control"), "d_pct"] + 2, pop
