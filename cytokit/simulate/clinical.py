"""Clinical tables of a simulated trial: patients × visits, IL-2 cycles, per-patient truth.

Units: counts cells/µL, viral load copies/mL (values at the detection limit mean "at or below"),
tetanus antibody IU/mL, fractions 0–1, dates ISO (YYYY-MM-DD).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from ..results import schema as S
from .config import SimulationConfig
from .courses import Patient, VisitState, ramp


@dataclass(frozen=True)
class PatientInfo:
    """Demographics, calendar and the final-visit responder outcome of one patient."""

    patient: Patient
    age: int
    sex: str
    stratum: str
    enrolment: dt.date
    visit_dates: dict[str, dt.date]
    responder_probability: float
    responder: int


def draw_info(p: Patient, cfg: SimulationConfig, rng: np.random.Generator) -> PatientInfo:
    c = cfg.clinical
    enrol = c.start_date + dt.timedelta(days=int(rng.integers(0, c.enrolment_days + 1)))
    dates = {}
    for visit, week in zip(cfg.visits, cfg.weeks):
        jitter = int(rng.integers(-c.visit_jitter_days, c.visit_jitter_days + 1)) if week else 0
        dates[visit] = enrol + dt.timedelta(days=7 * week + jitter)
    logit = (c.responder_intercept + c.responder_arm_log_or * (p.arm == "IL-2")
             + c.responder_cd4_log_or_per_100 * (p.cd4_baseline - 350.0) / 100.0)
    prob = float(special.expit(logit))
    return PatientInfo(
        patient=p, age=int(np.clip(round(38 + 8 * rng.standard_normal()), 18, 70)),
        sex="M" if rng.random() < 0.8 else "F",
        stratum="CD4<350" if p.cd4_baseline < 350 else "CD4>=350",
        enrolment=enrol, visit_dates=dates, responder_probability=prob,
        responder=int(rng.random() < prob),
    )


def clinical_rows(info: PatientInfo, states: dict[str, VisitState], cfg: SimulationConfig,
                  rng: np.random.Generator) -> list[dict]:
    """``clinical.csv`` rows of one patient (one per visit)."""
    p, c = info.patient, cfg.clinical
    arm = cfg.course.arms[p.arm]
    final = cfg.visits[-1]
    rows = []
    for visit, week in zip(cfg.visits, cfg.weeks):
        detectable = rng.random() < (0.3 if week == 0 else 0.1)
        vl = max(round(float(400 * np.exp(1.2 * rng.standard_normal()))), c.viral_load_limit) \
            if detectable else c.viral_load_limit
        fold = 1 + (arm.tetanus_fold - 1) * float(ramp(week, arm.time_constant_weeks, cfg.course.reference_week))
        tet = p.tetanus_baseline * fold * float(np.exp(0.15 * rng.standard_normal()))
        rows.append({
            S.PATIENT: p.patient, S.ARM: p.arm, "stratum": info.stratum, "age": info.age, "sex": info.sex,
            S.VISIT: visit, S.WEEK: week, "date": info.visit_dates[visit].isoformat(),
            S.LYMPHOCYTES_PER_UL: lymphocytes_per_uL(states[visit]),
            "viral_load_copies_per_mL": int(vl), "tetanus_titre_IU_per_mL": round(tet, 3),
            "recall_antigen_responder": info.responder if visit == final else None,
        })
    return rows


def lymphocytes_per_uL(state: VisitState) -> int:
    """The lymphocyte count reported in the clinical table (cells/µL, whole number)."""
    return int(round(state.lymphocytes))


def il2_cycle_rows(info: PatientInfo, cfg: SimulationConfig) -> list[dict]:
    """IL-2 cycles of an IL-2 patient: ``il2_cycle_days``-day cycles every ``il2_cycle_interval_weeks``
    from W0 until before the last visit (none for controls)."""
    if info.patient.arm != "IL-2":
        return []
    c = cfg.clinical
    start = info.visit_dates[cfg.visits[0]]
    rows = []
    last = max(cfg.weeks)
    for k, week in enumerate(range(0, max(last, 1), c.il2_cycle_interval_weeks), start=1):
        s = start + dt.timedelta(days=7 * week)
        rows.append({S.PATIENT: info.patient.patient, "cycle": k, "start_date": s.isoformat(),
                     "end_date": (s + dt.timedelta(days=c.il2_cycle_days - 1)).isoformat()})
    return rows


def truth_rows(info: PatientInfo, states: dict[str, VisitState], cfg: SimulationConfig) -> list[dict]:
    """``truth/patients.csv`` rows: the designed (true) immunology per visit."""
    p = info.patient
    rows = []
    for visit, week in zip(cfg.visits, cfg.weeks):
        s = states[visit]
        rows.append({
            S.PATIENT: p.patient, S.ARM: p.arm, S.VISIT: visit, S.WEEK: week,
            "cd4_per_uL": round(s.cd4, 2), "cd4_baseline_per_uL": round(p.cd4_baseline, 2),
            "cd4_gain_at_reference_week_per_uL": round(p.cd4_gain, 2),
            "cd8_per_uL": round(s.cd8, 2), "t_cells_per_uL": round(s.t_cells, 2), "b_per_uL": round(s.b, 2),
            "nk_per_uL": round(s.nk, 2), S.LYMPHOCYTES_PER_UL: lymphocytes_per_uL(s),
            "naive_cd4_fraction": round(s.naive, 4), "cd28_cd4_fraction": round(s.cd28_cd4, 4),
            "cd28_cd8_fraction": round(s.cd28_cd8, 4), "cd25_cd4_fraction": round(s.cd25, 4),
            "treg_cd4_fraction": round(s.treg, 4), "cd56bright_nk_fraction": round(s.cd56bright, 4),
            "responder_probability": round(info.responder_probability, 4),
        })
    return rows


def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """A table with fixed columns even when there are no rows."""
    return pd.DataFrame(rows, columns=columns)
