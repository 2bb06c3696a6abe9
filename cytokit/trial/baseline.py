"""Baseline characteristics by arm (the "Table 1" of a trial report).

Rows, in this order: number of patients; every clinical column recorded at the baseline visit (numeric
columns as median (IQR) in their own unit, text columns as n (%) per level); baseline values of the
headline populations in ``TrialConfig.cd4_measure`` units and the CD4/CD8 ratio; IL-2 cycles per
patient when the cycles table is present. Percentages are percent of the arm's patients with the
characteristic recorded. No P values: baseline differences in a randomised trial are chance by design.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..results import schema as S
from .config import MEASURE_UNITS, TrialConfig
from .stats import median_iqr

BASELINE_COLUMNS = ["characteristic", "level", "unit", S.ARM, "n", "summary", "median", "q1", "q3", S.COUNT, "pct"]

_SKIP = {S.PATIENT, S.ARM, S.VISIT, S.WEEK, "date"}
_UNITS = (("_per_uL", "cells/µL"), ("_copies_per_mL", "copies/mL"), ("_IU_per_mL", "IU/mL"))


def _unit(col: str) -> str:
    for suffix, unit in _UNITS:
        if col.endswith(suffix):
            return unit
    return "years" if col == "age" else ""


def display_name(col: str) -> str:
    """A clinical column name as a reader expects it: ``viral_load_copies_per_mL`` -> ``Viral load`` (the
    unit is shown in its own column), ``age`` -> ``Age``; names that are already text are kept."""
    name = col
    for suffix, _ in _UNITS:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    if "_" not in name and not name.islower():
        return name
    name = name.replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "NA"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _numeric_rows(name: str, unit: str, series_by_arm: dict[str, pd.Series]) -> list[dict]:
    rows = []
    for arm, s in series_by_arm.items():
        st = median_iqr(s)
        rows.append({"characteristic": name, "level": "", "unit": unit, S.ARM: arm, "n": st.n,
                     "summary": f"{_fmt(st.median)} ({_fmt(st.q1)}-{_fmt(st.q3)})" if st.n else "NA",
                     "median": st.median, "q1": st.q1, "q3": st.q3, S.COUNT: np.nan, "pct": np.nan})
    return rows


def baseline_table(values: pd.DataFrame, flags: pd.DataFrame, clinical: pd.DataFrame, cycles: pd.DataFrame,
                   config: TrialConfig) -> pd.DataFrame:
    """Tidy baseline table: one row per characteristic × level × arm (treatment arm first)."""
    arms = list(config.arms)
    patients = values[values[S.ARM].isin(arms)].drop_duplicates(S.PATIENT).set_index(S.PATIENT)[S.ARM]
    rows: list[dict] = []
    for arm in arms:
        n = int((patients == arm).sum())
        rows.append({"characteristic": "Patients", "level": "", "unit": "n", S.ARM: arm, "n": n, "summary": str(n),
                     "median": np.nan, "q1": np.nan, "q3": np.nan, S.COUNT: n, "pct": np.nan})
    if not clinical.empty:
        base = clinical[clinical[S.VISIT] == config.baseline_visit].drop_duplicates(S.PATIENT).set_index(S.PATIENT)
        base = base.reindex(patients.index)
        for col in [c for c in base.columns if c not in _SKIP]:
            s = base[col]
            if s.notna().sum() == 0:
                continue
            num = pd.to_numeric(s, errors="coerce")
            if num.notna().sum() == s.notna().sum():
                rows += _numeric_rows(col, _unit(col), {a: num[patients == a] for a in arms})
                continue
            levels = sorted(s.dropna().astype(str).unique())
            for arm in arms:
                sa = s[patients == arm].dropna().astype(str)
                for lev in levels:
                    c = int((sa == lev).sum())
                    pct = 100.0 * c / len(sa) if len(sa) else np.nan
                    rows.append({"characteristic": col, "level": lev, "unit": "n (%)", S.ARM: arm, "n": len(sa),
                                 "summary": f"{c} ({pct:.0f}%)" if len(sa) else "NA", "median": np.nan,
                                 "q1": np.nan, "q3": np.nan, S.COUNT: c, "pct": pct})
    m = config.cd4_measure
    at_base = values[values[S.VISIT] == config.baseline_visit]
    for pop in config.headline_populations:
        sub = at_base[at_base[S.POPULATION] == pop].set_index(S.PATIENT)[m]
        if sub.empty:
            continue
        rows += _numeric_rows(f"{pop} at baseline", MEASURE_UNITS[m],
                              {a: sub.reindex(patients.index)[patients == a] for a in arms})
    fb = flags[flags[S.VISIT] == config.baseline_visit].set_index(S.PATIENT)["cd4_cd8_ratio"]
    if fb.notna().any():
        rows += _numeric_rows("CD4/CD8 ratio at baseline", "ratio",
                              {a: fb.reindex(patients.index)[patients == a] for a in arms})
    if not cycles.empty and S.PATIENT in cycles.columns:
        per = cycles.assign(**{S.PATIENT: cycles[S.PATIENT].astype(str)}).groupby(S.PATIENT).size()
        per = per.reindex(patients.index).fillna(0)
        rows += _numeric_rows("IL-2 cycles", "cycles per patient", {a: per[patients == a] for a in arms})
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)


def baseline_wide(table: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """The tidy baseline table pivoted for display: characteristic, level, unit, then one column per arm."""
    key = ["characteristic", "level", "unit"]
    order = table[key].drop_duplicates().reset_index(drop=True)
    wide = table.pivot_table(index=key, columns=S.ARM, values="summary", aggfunc="first", sort=False)
    wide = order.merge(wide.reset_index(), on=key, how="left")
    for arm in arms:
        if arm not in wide.columns:
            wide[arm] = ""
    return wide[key + arms].fillna("")
