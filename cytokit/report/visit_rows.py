"""The population rows of one visit in a patient report: one row per population, cross-checks, flags.

Contract
--------
* A population measured in several tubes of one visit (``T cells`` in ``tmem`` and ``nkb``) gets **one**
  row: the tube chosen by the trial's tube-selection rule (:class:`cytokit.trial.config.TubeSelection`,
  ``trial.tubes`` in the pipeline YAML, via :func:`cytokit.trial.values.select_tubes`), so the report, its
  trend plots and the trial analysis show the same number. The other tubes' values are kept as a
  cross-check (absolute count or %, with the relative difference to the chosen value).
* ``% of lymphocytes`` is percent (0–100) of the tube's lymphocyte denominator (the strategy's lymphocyte
  population recorded by the run, e.g. ``Singlets``; :mod:`cytokit.results.denominators`). Gates above the
  denominator (``Lymphocytes`` before the singlet gate) are not fractions of it: their cell is empty and
  the row names the denominator instead of showing > 100 %.
* A reference flag names the measure that triggered it: ``H (cells/µL)``, ``L (%)``, ``H (% and cells/µL)``.
* ``review`` (bool) is the populations table's column: True when the estimate may be wrong (a review flag,
  :func:`cytokit.gating.methods.review_columns`); the report shows it as a badge with ``review_flags``.
  Notes on how a gate was placed (``notes``) are not a badge.
Units: percentages 0–100; absolute counts cells/µL.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..gating.count_error import few_events
from ..results import schema as S
from ..trial.config import TubeSelection
from ..trial.values import select_tubes
from ..results.denominators import above_text, denominators
from .reference import ReferenceIntervals, flag

def as_number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or not a number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _review(row: pd.Series) -> bool:
    """The row's ``review`` column (read by :func:`cytokit.results.read_table`, so present and bool for a
    results folder's table; a table without it is judged from its ``flags``)."""
    value = row.get(S.REVIEW)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    from ..gating.methods import needs_review

    return needs_review(_text(row.get(S.FLAGS)))


def flag_text(pct_flag: str, abs_flag: str) -> tuple[str, str]:
    """(text, H/L class) of a reference flag naming the measure(s) that triggered it."""
    if not pct_flag and not abs_flag:
        return "", ""
    if pct_flag == abs_flag:
        return f"{pct_flag} (% and cells/µL)", pct_flag
    if pct_flag and abs_flag:  # opposite directions: show both, class of the absolute count
        return f"{pct_flag} (%), {abs_flag} (cells/µL)", abs_flag
    return (f"{pct_flag} (%)", pct_flag) if pct_flag else (f"{abs_flag} (cells/µL)", abs_flag)


def _cross_check(chosen: pd.Series, others: pd.DataFrame) -> list[dict[str, Any]]:
    """The same population from the other tubes: value and % difference to the chosen value."""
    out = []
    for o in others.itertuples(index=False):
        d = o._asdict()
        for measure, unit, digits in ((S.ABS_COUNT, "cells/µL", 0), (S.PCT_LYMPHOCYTES, "% of lymphocytes", 1)):
            mine, theirs = as_number(chosen.get(measure)), as_number(d.get(measure))
            if mine is not None and theirs is not None:
                diff = 100.0 * (theirs - mine) / mine if mine else None
                out.append({S.TUBE: str(d.get(S.TUBE, "")), "value": theirs, "unit": unit, "digits": digits,
                            "diff_pct": diff})
                break
    return out


def visit_rows(vp: pd.DataFrame, rule: TubeSelection, intervals: ReferenceIntervals, sex: str | None,
               low_event_threshold: int, phenotype: Any, lymphocytes: Mapping[str, str] | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of one visit's table (chosen tube per population) and, per tube, its lymphocyte denominator
    (``lymphocytes``: tube -> the strategy's lymphocyte population, see :func:`denominators`)."""
    vp = vp.copy()
    if S.TUBE not in vp.columns:
        vp[S.TUBE] = ""
    vp[S.TUBE] = vp[S.TUBE].astype(str)
    vp["_order"] = range(len(vp))
    dens = denominators(vp, lymphocytes)
    chosen = select_tubes(vp, rule) if len(vp) else vp
    pref = {t: i for i, t in enumerate(rule.preference)}
    chosen = chosen.assign(_tube_rank=chosen[S.TUBE].map(pref).fillna(len(pref))).sort_values(
        ["_tube_rank", S.TUBE, "_order"], kind="mergesort")
    rows = []
    for _, rs in chosen.iterrows():
        pop, tube = str(rs[S.POPULATION]), str(rs[S.TUBE])
        others = vp[(vp[S.POPULATION].astype(str) == pop) & (vp[S.TUBE] != tube)]  # all tubes when averaged
        abs_v = as_number(rs.get(S.ABS_COUNT))
        pct_l = as_number(rs.get(S.PCT_LYMPHOCYTES))
        den, above = dens.get(tube, ("", set()))
        above_den = pop in above
        if above_den:
            pct_l = None  # not a fraction of the denominator (would read > 100 %)
        count = int(rs[S.COUNT]) if as_number(rs.get(S.COUNT)) is not None else None
        iv_abs = intervals.lookup(pop, S.ABS_COUNT, sex)
        iv_pct = intervals.lookup(pop, S.PCT_LYMPHOCYTES, sex)
        text, cls = flag_text(flag(pct_l, iv_pct), flag(abs_v, iv_abs))
        gate_flags = str(rs.get(S.FLAGS) or "")
        parent_n = as_number(rs.get(S.PARENT_COUNT))
        # a % of parent counted from few parent events: its counting SD is shown next to it (gating.count_error)
        count_sd = as_number(rs.get(S.COUNT_SD_PP)) if parent_n is not None and few_events(int(parent_n)) else None
        rows.append({
            S.TUBE: tube, S.POPULATION: pop, S.PHENOTYPE: phenotype(rs), S.PARENT: str(rs.get(S.PARENT, "") or ""),
            S.PCT_PARENT: as_number(rs.get(S.PCT_PARENT)), S.PCT_LYMPHOCYTES: pct_l, "abs": abs_v, S.COUNT: count,
            "above_denominator": above_den, "denominator": den, "above_text": above_text(den) if above_den else "",
            # (range, unit) per measure, one under the other; a range is never broken inside (at its dash)
            "reference": [(iv.text(), unit) for iv, unit in ((iv_pct, "%"), (iv_abs, "/µL")) if iv],
            "flag": text, "flag_class": cls,
            "low_events": count is not None and count < low_event_threshold,
            "count_sd": count_sd,
            "gate_flags": "" if gate_flags == "nan" else gate_flags,
            # the estimate may be wrong (review flags; docs/gating.md "Flags"): a badge on the row
            S.REVIEW: _review(rs), S.REVIEW_FLAGS: _text(rs.get(S.REVIEW_FLAGS)), S.NOTES: _text(rs.get(S.NOTES)),
            # the absolute count alone may be wrong (e.g. count_low): a mark on the cells/µL cell, not the row
            S.COUNT_FLAGS: _text(rs.get(S.COUNT_FLAGS)) if abs_v is not None else "",
            "n_tubes": int(len(others)) + 1,
            "cross_check": _cross_check(rs, others),
        })
    return rows, {t: d for t, (d, _) in dens.items() if d}


def rule_text(rule: TubeSelection) -> str:
    """How the tube of a population measured in several tubes was chosen, in words."""
    pins = "; ".join(f"{p} from {t}" for p, t in rule.per_population.items())
    if rule.rule == "preference":
        text = "first tube of the preference order " + " > ".join(rule.preference)
    elif rule.rule == "most_events":
        text = "the tube with the most parent events"
    else:
        text = "the mean over tubes"
    return text + (f" ({pins})" if pins else "")
