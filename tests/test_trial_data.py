"""Hand-made trial tables for the trial-analysis tests (no tests here: imported by tests/test_trial_*.py).

:func:`make_trial` builds a populations table and a clinical table in the results-store layout of
docs/architecture.md with known per-patient trajectories, so tests can recompute every statistic directly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

VISITS = [("W0", 0), ("W12", 12), ("W24", 24), ("W48", 48), ("W74", 74)]
POPS = {  # population -> (parent, tube, baseline abs cells/µL, pct_parent at baseline)
    "T cells": ("Singlets", "tmem", 1000.0, 70.0),
    "CD4 T": ("T cells", "tmem", 350.0, 35.0),
    "CD8 T": ("T cells", "tmem", 600.0, 60.0),
    "Naive CD4": ("CD4 T", "tmem", 120.0, 34.0),
    "Memory CD4": ("CD4 T", "tmem", 230.0, 66.0),
    "CD28+ CD4": ("CD4 T", "tmem", 300.0, 85.0),
    "CD25+ CD4": ("CD4 T", "tmem", 60.0, 17.0),
    "NK cells": ("Singlets", "nkb", 150.0, 10.0),
}


def make_trial(n_per_arm: int = 8, seed: int = 1, cd4_gain: tuple[float, float] = (800.0, 250.0),
               dual_tube_t_cells: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(populations, clinical) for ``n_per_arm`` IL-2 and control patients over :data:`VISITS`.

    CD4 T rises linearly in weeks to baseline + gain × U(0.5, 1.5) at W74 (``cd4_gain`` = (IL-2, control)
    cells/µL); other populations scale with CD4; "T cells" is measured in both tubes when
    ``dual_tube_t_cells`` (the nkb copy is 5 % lower, so tube selection is visible).
    """
    rng = np.random.default_rng(seed)
    rows, clin = [], []
    for arm_i, arm in enumerate(["IL-2", "control"]):
        for k in range(n_per_arm):
            patient = f"P{arm_i}{k:02d}"
            base_cd4 = rng.uniform(250, 450)
            gain = cd4_gain[arm_i] * rng.uniform(0.5, 1.5)
            lymph = rng.uniform(1200, 2000)
            stratum = "A" if k % 2 == 0 else "B"
            start = pd.Timestamp("2001-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
            for visit, week in VISITS:
                cd4 = base_cd4 + gain * week / 74.0
                scale = cd4 / POPS["CD4 T"][2]
                for pop, (parent, tube, b_abs, b_pct) in POPS.items():
                    if pop == "CD8 T":
                        ab = b_abs * rng.uniform(0.9, 1.1)
                    elif pop == "CD4 T":
                        ab = cd4
                    else:
                        ab = b_abs * scale * (1.0 + (0.2 * week / 74.0 if arm == "IL-2" and pop == "NK cells" else 0))
                    ab *= rng.normal(1.0, 0.03) if pop != "CD4 T" else 1.0
                    pct = b_pct * (1 + 0.1 * week / 74.0 * (arm_i == 0)) * rng.normal(1.0, 0.03)
                    tubes = [tube] + (["nkb"] if pop == "T cells" and dual_tube_t_cells else [])
                    for t in tubes:
                        f = 0.95 if t != tube else 1.0
                        sid = f"{patient}_{visit}_{t}"
                        rows.append({
                            "sample_id": sid, "file": f"{sid}.fcs", "sha256": "0" * 64, "patient": patient,
                            "visit": visit, "week": week, "arm": arm, "tube": t, "population": pop,
                            "parent": parent, "count": int(ab * 10 * f), "parent_count": int(ab * 20 * f),
                            "pct_parent": pct * f,
                            "pct_lymphocytes": 100.0 * ab * f / lymph,
                            "abs_count_per_uL": ab * f, "abs_method": "single_platform", "marker_medians": "{}",
                            "method": "test", "flags": "", "qc_flags": "",
                        })
                clin.append({
                    "patient": patient, "arm": arm, "stratum": stratum, "age": int(rng.integers(25, 60)),
                    "sex": "F" if rng.random() < 0.3 else "M", "visit": visit, "week": week,
                    "date": (start + pd.Timedelta(days=7 * week + int(rng.integers(-3, 4)) * (week > 0))
                             ).date().isoformat(),
                    "lymphocytes_per_uL": lymph, "viral_load_copies_per_mL": 50,
                    "tetanus_titre_IU_per_mL": 0.5,
                    "recall_antigen_responder": (int(rng.random() < (0.7 if arm == "IL-2" else 0.35))
                                                 if visit == "W74" else None),
                })
    return pd.DataFrame(rows), pd.DataFrame(clin)
