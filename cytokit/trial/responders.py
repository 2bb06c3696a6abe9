"""Responder flags per patient × visit (CD4 increase, CD4/CD8 ratio, absolute CD4 thresholds).

Flags are nullable booleans: missing when the value they need is missing. Column names carry their
threshold so a table is self-describing:

* ``cd4_increase_ge_<X>pct`` - CD4 (``TrialConfig.cd4_measure``) increased by at least X percent of its
  baseline value (a state, so it is also computed at every follow-up visit; missing at the baseline visit,
  where it is undefined, as in the responder rates);
* ``cd4_cd8_ratio`` (value) and ``cd4_cd8_ratio_gt_<R>`` - CD4/CD8 ratio of absolute counts (cells/µL),
  or of % lymphocytes when counts are missing, strictly above R;
* ``cd4_gt_<T>_per_uL`` - absolute CD4 count strictly above T cells/µL.

``review_<flag>`` (boolean, one per flag) says the flag rests on a value that may be wrong: the populations
table's ``review`` on an estimate it uses (CD4, and its baseline for the increase, CD8 for the ratio), or for
an absolute count (cells/µL) its ``count_flags`` (:data:`~cytokit.trial.values.COUNT_REVIEW`). Absent when the
values carry no ``review`` column (tables not read from a results folder).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..results import schema as S
from .config import TrialConfig
from .values import COUNT_REVIEW


def _num(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def flag_names(config: TrialConfig) -> list[str]:
    """Names of the responder flag columns, in output order."""
    r = config.responders
    return ([f"cd4_increase_ge_{_num(r.cd4_increase_pct)}pct", f"cd4_cd8_ratio_gt_{_num(r.cd4_cd8_ratio)}"]
            + [f"cd4_gt_{_num(t)}_per_uL" for t in r.cd4_thresholds_per_uL])


def flag_labels(config: TrialConfig) -> dict[str, str]:
    """Readable label of each responder flag column (for tables and figures)."""
    r = config.responders
    labels = [f"CD4 increase >= {r.cd4_increase_pct:g}% of baseline", f"CD4/CD8 ratio > {r.cd4_cd8_ratio:g}"]
    labels += [f"CD4 > {t:g} cells/µL" for t in r.cd4_thresholds_per_uL]
    return dict(zip(flag_names(config), labels))


def review_name(flag: str) -> str:
    """Column of :func:`responder_flags` saying responder flag ``flag`` rests on a value that may be wrong."""
    return f"{S.REVIEW}_{flag}"


def _review(rows: pd.DataFrame, index: pd.Index, *, counts: bool, baseline: bool = False) -> pd.Series:
    """Per patient × visit (``index``): the population's value (and its baseline when ``baseline``) may be wrong:
    ``review``, plus ``count_review`` when the value is an absolute count (``counts``)."""
    out = pd.Series(False, index=index)
    for c in (S.REVIEW, COUNT_REVIEW) if counts else (S.REVIEW,):
        for col in (c, f"{c}_baseline") if baseline else (c,):
            if col in rows.columns:
                out = out | rows[col].reindex(index).astype("boolean").fillna(False).astype(bool)
    return out


def _flag(mask: pd.Series, known: pd.Series) -> pd.Series:
    return pd.Series(np.where(known, mask, pd.NA), index=mask.index, dtype="boolean")


def responder_flags(values: pd.DataFrame, config: TrialConfig) -> pd.DataFrame:
    """One row per patient × visit with CD4 value/change, CD4/CD8 ratio and every responder flag.

    ``values`` is the output of :func:`cytokit.trial.values.patient_visit_values`.
    """
    r = config.responders
    keys = [S.PATIENT, S.ARM, S.VISIT, "visit_index", S.WEEK, "weeks_from_baseline"]
    frame = values[keys].drop_duplicates([S.PATIENT, S.VISIT]).set_index([S.PATIENT, S.VISIT])
    cd4 = values[values[S.POPULATION] == config.cd4_population].set_index([S.PATIENT, S.VISIT])
    cd8 = values[values[S.POPULATION] == config.cd8_population].set_index([S.PATIENT, S.VISIT])
    m = config.cd4_measure
    out = frame.copy()
    out["cd4_value"] = cd4[m].reindex(out.index)
    out["cd4_baseline"] = cd4[f"{m}_baseline"].reindex(out.index)
    out["cd4_change"] = cd4[f"{m}_change"].reindex(out.index)
    out["cd4_change_pct"] = cd4[f"{m}_change_pct"].reindex(out.index)
    cd4_abs = cd4[S.ABS_COUNT].reindex(out.index)
    cd8_abs = cd8[S.ABS_COUNT].reindex(out.index)
    cd4_pct = cd4[S.PCT_LYMPHOCYTES].reindex(out.index)
    cd8_pct = cd8[S.PCT_LYMPHOCYTES].reindex(out.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_abs = cd4_abs / cd8_abs.where(cd8_abs > 0)
        ratio_pct = cd4_pct / cd8_pct.where(cd8_pct > 0)
    out["cd4_cd8_ratio"] = ratio_abs.where(ratio_abs.notna(), ratio_pct)
    names = flag_names(config)
    inc = out["cd4_change_pct"]
    after_baseline = out.index.get_level_values(S.VISIT) != config.baseline_visit  # no increase over itself
    out[names[0]] = _flag(inc >= r.cd4_increase_pct, inc.notna() & after_baseline)
    out[names[1]] = _flag(out["cd4_cd8_ratio"] > r.cd4_cd8_ratio, out["cd4_cd8_ratio"].notna())
    for name, t in zip(names[2:], r.cd4_thresholds_per_uL):
        out[name] = _flag(cd4_abs > t, cd4_abs.notna())
    if S.REVIEW in values.columns:  # a results folder's table: which flags rest on a value that may be wrong
        idx = out.index
        on_counts = ratio_abs.notna()  # the ratio of counts, else of % lymphocytes
        cd4_count_review = _review(cd4, idx, counts=True)
        out[review_name(names[0])] = _review(cd4, idx, counts=m == S.ABS_COUNT, baseline=True)
        out[review_name(names[1])] = ((_review(cd4, idx, counts=False) | _review(cd8, idx, counts=False))
                                      | (on_counts & (cd4_count_review | _review(cd8, idx, counts=True))))
        for name in names[2:]:
            out[review_name(name)] = cd4_count_review
    out = out.reset_index().sort_values([S.PATIENT, "visit_index"], kind="mergesort")
    return out.reset_index(drop=True)
