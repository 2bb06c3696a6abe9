"""Per-event agreement between two gatings of the same events: F1, precision, recall, |Δ%|.

Percentages are percent (0-100) of a reference population that both sides have: the population's nearest
strategy ancestor with expert gates (usually its parent), taken from each side's own gating; all events
when there is none. |Δ%| is the difference in percentage points.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
from ..results import schema as S

COLUMNS = ("sample", S.POPULATION, "expert_population", "f1", "precision", "recall", "n_expert",
           "n_auto", "pct_expert", "pct_auto", "abs_delta_pct")


def f1_score(auto: np.ndarray, expert: np.ndarray) -> float:
    """Per-event F1 of ``auto`` against ``expert`` (1.0 when both are empty)."""
    tp = int(np.count_nonzero(auto & expert))
    denom = int(np.count_nonzero(auto)) + int(np.count_nonzero(expert))
    return 1.0 if denom == 0 else 2.0 * tp / denom


def agreement_rows(sample: str, auto: Mapping[str, np.ndarray], expert: Mapping[str, np.ndarray],
                   auto_parents: Mapping[str, np.ndarray | None], expert_parents: Mapping[str, np.ndarray | None],
                   names: Mapping[str, str] | None = None) -> list[dict]:
    """One row per population present in both ``auto`` and ``expert`` (masks over the same events)."""
    rows = []
    for pop, e in expert.items():
        a = auto.get(pop)
        if a is None:
            a = np.zeros_like(e)
        tp = int(np.count_nonzero(a & e))
        na, ne = int(np.count_nonzero(a)), int(np.count_nonzero(e))
        pa, pe = auto_parents.get(pop), expert_parents.get(pop)
        da = int(np.count_nonzero(pa)) if pa is not None else a.size
        de = int(np.count_nonzero(pe)) if pe is not None else e.size
        pct_a = 100.0 * na / da if da else math.nan
        pct_e = 100.0 * ne / de if de else math.nan
        rows.append({"sample": sample, S.POPULATION: pop, "expert_population": (names or {}).get(pop, pop),
                     "f1": f1_score(a, e), "precision": tp / na if na else (1.0 if ne == 0 else 0.0),
                     "recall": tp / ne if ne else 1.0, "n_expert": ne, "n_auto": na,
                     "pct_expert": pct_e, "pct_auto": pct_a, "abs_delta_pct": abs(pct_a - pct_e)})
    return rows


def worst_first(table: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered worst agreement first (lowest F1, then largest |Δ%|)."""
    return table.sort_values(["f1", "abs_delta_pct"], ascending=[True, False], kind="stable").reset_index(drop=True)


def summarise(table: pd.DataFrame, by: tuple[str, ...] = (S.POPULATION,)) -> pd.DataFrame:
    """Per population: median/min F1 and median/max |Δ%| over samples, worst first."""
    g = table.groupby(list(by), sort=False)
    out = g.agg(n_samples=("sample", "nunique"), f1_median=("f1", "median"), f1_min=("f1", "min"),
                abs_delta_pct_median=("abs_delta_pct", "median"),
                abs_delta_pct_max=("abs_delta_pct", "max")).reset_index()
    return out.sort_values(["f1_min", "abs_delta_pct_max"], ascending=[True, False]).reset_index(drop=True)
