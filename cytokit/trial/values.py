"""One value per patient × visit × population, change from baseline and area under the curve.

Units: ``pct_parent`` and ``pct_lymphocytes`` are percent (0-100); ``abs_count_per_uL`` is cells/µL
(= 10^6/L). ``<measure>_change`` is value − baseline in the measure's unit; ``<measure>_change_pct`` is
the relative change in percent of the baseline value (+80 = an 80 % increase; NaN when the baseline is 0
or missing). ``weeks_from_baseline`` is the time since the patient's baseline visit in weeks (actual
sample dates when available, else nominal weeks). The AUC minus baseline integrates (value − baseline)
over ``weeks_from_baseline`` by the trapezoid rule: unit × weeks.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..errors import StatsError
from ..results import schema as S
from .config import MEASURES, TrialConfig, TubeSelection
from .inputs import visit_order

log = logging.getLogger(__name__)

#: column of patient-visit values: the absolute count may be wrong (its populations row's ``count_flags`` is not
#: empty; any of the tubes for a mean); ``count_review_baseline`` the same for the baseline's count
COUNT_REVIEW = "count_review"
VALUE_KEYS = [S.PATIENT, S.ARM, S.VISIT, S.WEEK, S.POPULATION]


def select_tubes(populations: pd.DataFrame, rule: TubeSelection) -> pd.DataFrame:
    """Reduce a populations table to one row per patient × visit × population.

    Candidates are the rows of every tube (and any repeated sample) measuring the population at that
    visit. ``per_population`` pins a tube first; then ``rule`` picks (see :class:`TubeSelection`).
    The result has a ``tube`` column naming the tube(s) used and ``n_tubes`` (candidates available).
    """
    df = populations.copy()
    if S.PARENT_COUNT not in df.columns:
        df[S.PARENT_COUNT] = np.nan
    if S.SAMPLE_ID not in df.columns:
        df[S.SAMPLE_ID] = ""
    df[S.SAMPLE_ID] = df[S.SAMPLE_ID].astype("string").fillna("")
    keys = [S.PATIENT, S.VISIT, S.POPULATION]
    pinned = df[S.POPULATION].map(rule.per_population)
    has_pin = pinned.notna()
    if has_pin.any():
        pin_ok = df[S.TUBE] == pinned
        # keep only the pinned tube when it measured the population; otherwise fall back to the rule
        any_pin = pin_ok.groupby([df[k] for k in keys]).transform("any")
        drop = has_pin & any_pin & ~pin_ok
        df = df.loc[~drop]
    n_tubes = df.groupby(keys)[S.TUBE].transform("size")
    df = df.assign(n_tubes=n_tubes)
    if rule.rule == "mean":
        agg: dict[str, Any] = {m: "mean" for m in MEASURES}
        agg.update({S.WEEK: "median", S.ARM: "first", S.PARENT_COUNT: "sum", "n_tubes": "first",
                    S.TUBE: lambda s: "+".join(sorted(set(s))),
                    S.SAMPLE_ID: lambda s: ";".join(sorted(set(s) - {""}))})
        if S.COUNT in df.columns:
            agg[S.COUNT] = "sum"
        if S.REVIEW in df.columns:  # a mean over tubes may be wrong when one of its estimates may be
            agg[S.REVIEW] = "any"
        for col in (S.REVIEW_FLAGS, S.NOTES, S.COUNT_FLAGS):
            if col in df.columns:
                agg[col] = lambda s: ";".join(dict.fromkeys(w for v in s for w in str(v).split(";") if w))
        out = df.groupby(keys, sort=True).agg(agg).reset_index()
        return out
    rank = {t: i for i, t in enumerate(rule.preference)}
    df = df.assign(_pref=df[S.TUBE].map(rank).fillna(len(rank)).astype(int),
                   _neg_parent=-df[S.PARENT_COUNT].fillna(-1.0))
    order = ["_pref", "_neg_parent"] if rule.rule == "preference" else ["_neg_parent", "_pref"]
    df = df.sort_values(keys + order + [S.TUBE, S.SAMPLE_ID], kind="mergesort")
    out = df.drop_duplicates(keys, keep="first").drop(columns=["_pref", "_neg_parent"])
    return out.reset_index(drop=True)


def _fill_abs_from_lymphocytes(values: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """Dual-platform absolute counts where a sample has none: pct_lymphocytes / 100 × lymphocytes/µL."""
    if clinical.empty or S.LYMPHOCYTES_PER_UL not in clinical.columns:
        return values.assign(abs_source=np.where(values[S.ABS_COUNT].notna(), "store", ""))
    lym = clinical[[S.PATIENT, S.VISIT, S.LYMPHOCYTES_PER_UL]]
    merged = values.merge(lym, on=[S.PATIENT, S.VISIT], how="left")
    derived = merged[S.PCT_LYMPHOCYTES] / 100.0 * merged[S.LYMPHOCYTES_PER_UL]
    fill = merged[S.ABS_COUNT].isna() & derived.notna()
    merged["abs_source"] = np.where(merged[S.ABS_COUNT].notna(), "store",
                                    np.where(fill, "dual_platform_derived", ""))
    merged.loc[fill, S.ABS_COUNT] = derived[fill]
    if fill.any():
        log.info("derived %d absolute counts from pct_lymphocytes × clinical lymphocytes_per_uL", int(fill.sum()))
    return merged.drop(columns=[S.LYMPHOCYTES_PER_UL])


def _weeks_from_baseline(values: pd.DataFrame, clinical: pd.DataFrame, config: TrialConfig) -> pd.Series:
    """Time since the patient's baseline visit in weeks (actual dates when configured and present)."""
    base_week = values.loc[values[S.VISIT] == config.baseline_visit].groupby(S.PATIENT)[S.WEEK].first()
    nominal = values[S.WEEK] - values[S.PATIENT].map(base_week)
    if config.auc_time != "date" or clinical.empty or "date" not in clinical.columns:
        return nominal
    dates = clinical.set_index([S.PATIENT, S.VISIT])["date"]
    idx = pd.MultiIndex.from_frame(values[[S.PATIENT, S.VISIT]].astype(object))
    visit_date = pd.Series(dates.reindex(idx).to_numpy(), index=values.index)
    base_date = values[S.PATIENT].map(
        clinical.loc[clinical[S.VISIT] == config.baseline_visit].set_index(S.PATIENT)["date"])
    actual = (pd.to_datetime(visit_date) - pd.to_datetime(base_date)).dt.days / 7.0
    return actual.where(actual.notna(), nominal)


def patient_visit_values(populations: pd.DataFrame, clinical: pd.DataFrame, config: TrialConfig) -> pd.DataFrame:
    """Per patient × visit × population values with baseline, change and relative change per measure.

    ``populations`` and ``clinical`` are checked tables (:mod:`cytokit.trial.inputs`). Rows are sorted by
    patient, visit week, population. Patients without a baseline value keep their values; their changes
    are NaN. When ``populations`` has the ``review`` column (a results folder's table), the rows carry
    ``review`` (the value may be wrong: a review flag on its estimate, any of the tubes for a mean),
    ``review_flags`` and ``review_baseline`` (the same for the patient's baseline value, which every change
    uses; missing without a baseline). With ``count_flags`` they carry it (any tube's words for a mean),
    :data:`COUNT_REVIEW` (the absolute count, cells/µL, may be wrong though its percentages need no review)
    and ``count_review_baseline``.
    """
    pops = populations
    if config.populations is not None:
        unknown = sorted(set(config.populations) - set(pops[S.POPULATION]))
        if unknown:
            log.warning("configured populations not in the results store: %s", unknown)
        pops = pops[pops[S.POPULATION].isin(config.populations)]
    if pops.empty:
        raise StatsError("no population rows to analyse (check trial.populations against the results store)")
    if config.baseline_visit not in set(pops[S.VISIT]):
        raise StatsError(f"baseline visit {config.baseline_visit!r} not found; visits are {visit_order(pops)} "
                         "(set trial.baseline_visit)")
    values = select_tubes(pops, config.tubes)
    if config.abs_from_lymphocytes:
        values = _fill_abs_from_lymphocytes(values, clinical)
    else:
        values = values.assign(abs_source=np.where(values[S.ABS_COUNT].notna(), "store", ""))
    values["weeks_from_baseline"] = _weeks_from_baseline(values, clinical, config)
    review = [S.REVIEW] if S.REVIEW in values.columns else []  # tables read by cytokit.results carry it
    if S.COUNT_FLAGS in values.columns:  # the absolute count alone may be wrong (a count flag, e.g. count_low)
        values[COUNT_REVIEW] = values[S.COUNT_FLAGS].fillna("").astype(str) != ""
        review.append(COUNT_REVIEW)
    base = values.loc[values[S.VISIT] == config.baseline_visit, [S.PATIENT, S.POPULATION, *MEASURES, *review]]
    base = base.rename(columns={m: f"{m}_baseline" for m in (*MEASURES, *review)})
    values = values.merge(base, on=[S.PATIENT, S.POPULATION], how="left")
    for m in MEASURES:
        b = values[f"{m}_baseline"]
        values[f"{m}_change"] = values[m] - b
        values[f"{m}_change_pct"] = np.where(b > 0, 100.0 * (values[m] - b) / b.where(b > 0), np.nan)
    order = {v: i for i, v in enumerate(visit_order(pops))}
    values["visit_index"] = values[S.VISIT].map(order).astype(int)
    keep = [S.PATIENT, S.ARM, S.VISIT, "visit_index", S.WEEK, "weeks_from_baseline", S.POPULATION, S.TUBE,
            "n_tubes", S.SAMPLE_ID, "abs_source"]
    if S.REVIEW in values.columns:  # the value (and its baseline, which every change uses) may be wrong: a review flag
        values[S.REVIEW] = values[S.REVIEW].astype(bool)
        values[f"{S.REVIEW}_baseline"] = values[f"{S.REVIEW}_baseline"].astype("boolean")
        keep += [S.REVIEW, S.REVIEW_FLAGS, f"{S.REVIEW}_baseline"] if S.REVIEW_FLAGS in values.columns else \
            [S.REVIEW, f"{S.REVIEW}_baseline"]
    if COUNT_REVIEW in values.columns:  # the same for the absolute count alone (populations' count_flags)
        values[f"{COUNT_REVIEW}_baseline"] = values[f"{COUNT_REVIEW}_baseline"].astype("boolean")
        keep += [S.COUNT_FLAGS, COUNT_REVIEW, f"{COUNT_REVIEW}_baseline"]
    cols = keep + [c for m in MEASURES for c in (m, f"{m}_baseline", f"{m}_change", f"{m}_change_pct")]
    values = values[cols].sort_values([S.PATIENT, "visit_index", S.POPULATION], kind="mergesort")
    for c in (S.PATIENT, S.ARM, S.VISIT, S.POPULATION, S.TUBE, S.SAMPLE_ID, "abs_source"):
        values[c] = values[c].astype(str)
    return values.reset_index(drop=True)


def auc_minus_baseline(weeks: np.ndarray, change: np.ndarray) -> float:
    """Trapezoid area of ``change`` (value − baseline) over ``weeks``; unit × weeks.

    Points with a missing change or time are dropped; fewer than two points give NaN.
    """
    weeks = np.asarray(weeks, dtype=float)
    change = np.asarray(change, dtype=float)
    ok = np.isfinite(weeks) & np.isfinite(change)
    if ok.sum() < 2:
        return float("nan")
    order = np.argsort(weeks[ok], kind="mergesort")
    return float(np.trapezoid(change[ok][order], weeks[ok][order]))


def patient_summaries(values: pd.DataFrame, config: TrialConfig, final_visit: str) -> pd.DataFrame:
    """One row per patient × population × measure: baseline, final value, change, AUC minus baseline.

    ``auc_mb`` is unit × weeks over the patient's observed visits (:func:`auc_minus_baseline`, vectorised);
    ``auc_mb_per_week`` divides it by the span observed (a time-averaged change, in the measure's unit).
    ``final`` is the value at ``final_visit`` (NaN when that visit is missing: no carrying forward).
    """
    keys = [S.PATIENT, S.ARM, S.POPULATION]
    frames = []
    for m in config.measures:
        d = values[keys + [S.VISIT, "weeks_from_baseline", m, f"{m}_baseline", f"{m}_change", f"{m}_change_pct"]]
        base = d.groupby(keys, sort=True)[f"{m}_baseline"].first()
        fin = d[d[S.VISIT] == final_visit].set_index(keys)
        obs = d.dropna(subset=["weeks_from_baseline", f"{m}_change"]).sort_values(keys + ["weeks_from_baseline"],
                                                                                kind="mergesort")
        g = obs.groupby(keys, sort=True)
        dt = g["weeks_from_baseline"].diff()
        seg = dt * (obs[f"{m}_change"] + g[f"{m}_change"].shift()) / 2.0
        stats_ = pd.DataFrame({
            "auc_mb": seg.groupby([obs[k] for k in keys]).sum(min_count=1),
            "weeks_observed": g["weeks_from_baseline"].max() - g["weeks_from_baseline"].min(),
            "n_visits": g.size(),
        })
        out = pd.DataFrame(index=base.index)
        out["measure"] = m
        out["baseline"] = base
        out["final"] = fin[m].reindex(out.index)
        out["change_final"] = fin[f"{m}_change"].reindex(out.index)
        out["change_pct_final"] = fin[f"{m}_change_pct"].reindex(out.index)
        out = out.join(stats_)
        out["n_visits"] = out["n_visits"].fillna(0).astype(int)
        span = out["weeks_observed"].where(out["weeks_observed"] > 0)
        out["auc_mb_per_week"] = out["auc_mb"] / span
        out.loc[out["n_visits"] < 2, ["auc_mb", "auc_mb_per_week", "weeks_observed"]] = np.nan
        frames.append(out.reset_index())
    cols = [S.PATIENT, S.ARM, S.POPULATION, "measure", "baseline", "final", "change_final", "change_pct_final",
            "auc_mb", "auc_mb_per_week", "weeks_observed", "n_visits"]
    out = pd.concat(frames, ignore_index=True)[cols]
    rank = {m: i for i, m in enumerate(config.measures)}
    out = out.assign(_m=out["measure"].map(rank)).sort_values([S.PATIENT, S.POPULATION, "_m"], kind="mergesort")
    return out.drop(columns="_m").reset_index(drop=True)
