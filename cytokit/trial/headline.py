"""The headline table, laid out the way the trial reports its results.

``p_min`` is the smallest P the row's test can attain with its group sizes (:mod:`cytokit.trial.attainable`);
``note`` is the test row's note (why P is empty, values flagged for review, ...).

Rows: median change from baseline of the CD4 population at the final visit per arm (median (IQR), in the
CD4 measure's unit) with the rank-sum P; the percentage of patients reaching the CD4-increase threshold at
the responder visit with Fisher's P and odds ratio; then the same change comparison for every other
headline population and measure (naive/memory CD4, CD28+ and CD25+ CD4, NK cells by default).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..results import schema as S
from .attainable import fisher_min_p, rank_sum_min_p
from .config import MEASURE_UNITS, TrialConfig
from .responders import flag_names

HEADLINE_COLUMNS = ["endpoint", S.POPULATION, "measure", "unit", S.VISIT, "treatment", "control", "effect",
                    "test", "p", "p_adj", "p_min", "note"]


def _fmt(x: float) -> str:
    if x is None or np.isnan(x):
        return "NA"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _min_rank_sum(r: pd.Series) -> float:
    """Smallest P the rank-sum test can give with this row's group sizes (NaN when unknown)."""
    try:
        return rank_sum_min_p(int(r["n_treatment"]), int(r["n_control"]))
    except (TypeError, ValueError):
        return float("nan")


#: the words after ``k`` in a headline cell whose values include ``k`` that may be wrong (summaries' n_review)
FLAGGED_TEXT = "flagged for review"


def _median_text(summaries: pd.DataFrame, pop: str, m: str, arm: str, visit: str) -> str:
    s = summaries[(summaries[S.POPULATION] == pop) & (summaries["measure"] == m) & (summaries[S.ARM] == arm)
                  & (summaries[S.VISIT] == visit) & (summaries["quantity"] == "change")]
    if s.empty or not s["n"].iloc[0]:
        return "NA"
    r = s.iloc[0]
    k = r.get("n_review", float("nan"))
    flagged = f", {int(k)} {FLAGGED_TEXT}" if pd.notna(k) and k else ""  # values that may be wrong
    return f"{_fmt(r['median'])} ({_fmt(r['q1'])} to {_fmt(r['q3'])}), n={int(r['n'])}{flagged}"


def rate_text(rates: pd.DataFrame, endpoint: str, arm: str, visit: str) -> tuple[str, tuple[int, int]]:
    """("responders/n (pct%)[, k flagged for review]", (responders, n)) of one arm from the responder rates
    table; ("NA", (0, 0)) when the arm has no patient with a known flag there. The one text every table
    (headline, HTML responder table) shows for a responder proportion; k is the rates' ``n_review``."""
    q = rates[(rates["endpoint"] == endpoint) & (rates[S.ARM] == arm) & (rates[S.VISIT] == visit)]
    if q.empty:
        return "NA", (0, 0)
    r = q.iloc[0]
    counts = (int(r["responders"]), int(r["n"]))
    if not counts[1]:
        return "NA", counts
    k = r.get("n_review", float("nan"))
    flagged = f", {int(k)} {FLAGGED_TEXT}" if pd.notna(k) and k else ""
    return f"{counts[0]}/{counts[1]} ({_fmt(r['pct'])}%){flagged}", counts


def headline_table(summaries: pd.DataFrame, tests: pd.DataFrame, rates: pd.DataFrame, config: TrialConfig,
                   final_visit: str, responder_visit: str) -> pd.DataFrame:
    """Display rows (text for the arms and effect, numeric P and adjusted P)."""
    t_arm, c_arm = config.arms
    rows = []

    def change_row(pop: str, m: str) -> dict | None:
        t = tests[(tests["test"] == "rank_sum") & (tests["endpoint"] == "change") & (tests[S.POPULATION] == pop)
                  & (tests["measure"] == m) & (tests[S.VISIT] == final_visit)]
        if t.empty:
            return None
        r = t.iloc[0]
        return {"endpoint": f"median change from baseline, median (IQR)", S.POPULATION: pop, "measure": m,
                "unit": MEASURE_UNITS[m], S.VISIT: final_visit,
                "treatment": _median_text(summaries, pop, m, t_arm, final_visit),
                "control": _median_text(summaries, pop, m, c_arm, final_visit),
                "effect": f"difference in medians {_fmt(r['estimate'])}", "test": "Wilcoxon rank-sum",
                "p": r["p"], "p_adj": r["p_adj"], "p_min": _min_rank_sum(r), "note": r["note"]}

    first = change_row(config.cd4_population, config.cd4_measure)
    if first:
        rows.append(first)
    name = flag_names(config)[0]
    f = tests[(tests["test"] == "fisher") & (tests["endpoint"] == name) & (tests[S.VISIT] == responder_visit)]
    if not f.empty:
        r = f.iloc[0]
        texts, counts = {}, {}
        for arm in config.arms:
            texts[arm], counts[arm] = rate_text(rates, name, arm, responder_visit)
        rows.append({"endpoint": f"patients reaching a {config.responders.cd4_increase_pct:g}% CD4 increase",
                     S.POPULATION: config.cd4_population, "measure": config.cd4_measure, "unit": "% of patients",
                     S.VISIT: responder_visit, "treatment": texts[t_arm], "control": texts[c_arm],
                     "effect": f"OR {_fmt(r['estimate'])} ({_fmt(r['ci_low'])} to {_fmt(r['ci_high'])})",
                     "test": "Fisher exact", "p": r["p"], "p_adj": r["p_adj"],
                     "p_min": fisher_min_p(counts[t_arm][1], counts[c_arm][1], counts[t_arm][0] + counts[c_arm][0]),
                     "note": r["note"]})
    for pop in config.headline_populations:
        for m in config.measures:
            if pop == config.cd4_population and m == config.cd4_measure:
                continue
            row = change_row(pop, m)
            if row:
                rows.append(row)
    return pd.DataFrame(rows, columns=HEADLINE_COLUMNS)
