"""Per-arm summaries and every between-arm / within-arm test, as tidy tables.

Input frames come from :mod:`cytokit.trial.values` and :mod:`cytokit.trial.responders`. Only patients of
``TrialConfig.treatment_arm`` and ``control_arm`` are compared. Tests (rows of the tidy tests table, columns
:data:`cytokit.trial.stats.TEST_COLUMNS`):

* ``rank_sum`` - Mann-Whitney U / Wilcoxon rank-sum, treatment vs control, on the change from baseline at
  each follow-up visit (``endpoint='change'``) and on the AUC minus baseline (``endpoint='auc_mb'``);
* ``signed_rank`` - within each arm, Wilcoxon signed-rank of follow-up vs baseline;
* ``fisher`` - responder proportions per visit, with the conditional odds ratio and exact 95 % CI;
* ``logistic`` - each binary clinical outcome on arm + covariates (one row per term; ORs, Wald CIs or a Firth
  fit's profile limits; the
  model's events per variable in column ``epv``, below :data:`~cytokit.trial.config.EPV_MIN` also stated in ``note``);
* ``mixedlm`` / ``gee`` - longitudinal arm × visit model (joint interaction test + per-visit terms).

Multiplicity: P values of rank-sum, signed-rank, Fisher and the joint longitudinal tests are adjusted
(Holm or Benjamini-Hochberg) within the configured family; logistic and per-term model rows, and joint
tests of models flagged ``not_converged``, keep ``p_adj`` empty (an unreliable P would change the others'
adjustment).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import StatsError
from ..results import schema as S
from .config import EPV_MIN, MEASURE_UNITS, TrialConfig
from .logistic import design_matrix, fit_logistic
from .longitudinal import LONGITUDINAL_MODELS
from .responders import flag_names, review_name
from .stats import TEST_COLUMNS, adjust_pvalues, fisher_2x2, median_iqr, rank_sum, signed_rank
from .values import COUNT_REVIEW

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [S.POPULATION, "measure", "unit", "quantity", S.ARM, S.VISIT, S.WEEK, "n", "n_review", "median",
                   "q1", "q3", "mean"]
RATE_COLUMNS = ["endpoint", S.ARM, S.VISIT, S.WEEK, "n", "responders", "pct", "n_review"]

_NUMERIC = (S.WEEK, "n", "n_review", "n_treatment", "n_control", "statistic", "estimate", "ci_low", "ci_high", "p", "p_adj",
            S.EPV)


def _row(**kw) -> dict:
    row = {c: (np.nan if c in _NUMERIC else "") for c in TEST_COLUMNS}
    row["_adjust"] = False
    row.update(kw)
    return row


def _arm_values(values: pd.DataFrame, config: TrialConfig) -> pd.DataFrame:
    other = sorted(set(values[S.ARM]) - set(config.arms))
    if other:
        log.warning("arms %s are neither treatment (%s) nor control (%s): not compared", other, *config.arms)
    present = set(values[S.ARM])
    for arm in config.arms:
        if arm not in present:
            raise StatsError(f"arm {arm!r} has no patients in the results store; arms are {sorted(present)} "
                             "(set trial.treatment_arm / trial.control_arm)")
    return values[values[S.ARM].isin(config.arms)]


def visit_weeks(values: pd.DataFrame) -> dict[str, float]:
    """Nominal week of each visit (median over samples)."""
    return values.groupby(S.VISIT)[S.WEEK].median().to_dict()


def _n_review(g: pd.DataFrame, col: str, *, baseline: bool, measure: str = "") -> int:
    """How many non-missing values of ``g[col]`` may be wrong: their own estimate, or (``baseline``, a change
    from baseline) the patient's baseline estimate, carries a review flag; for the absolute count
    (``measure`` ``abs_count_per_uL``, cells/µL) also a count flag (populations' ``count_flags``,
    :data:`~cytokit.trial.values.COUNT_REVIEW`), which leaves its percentages alone."""
    present = g[col].notna().to_numpy()
    flagged = np.zeros(len(g), dtype=bool)
    for review in ((S.REVIEW, COUNT_REVIEW) if measure == S.ABS_COUNT else (S.REVIEW,)):
        for c in (review, f"{review}_baseline") if baseline else (review,):
            if c in g.columns:
                flagged = flagged | g[c].fillna(False).astype(bool).to_numpy()
    return int((present & flagged).sum())


def summarise(values: pd.DataFrame, patient_summaries: pd.DataFrame, config: TrialConfig,
              visits: list[str]) -> pd.DataFrame:
    """Median (IQR) per population × measure × arm × visit of the value, change and relative change
    (``quantity`` = ``value`` | ``change`` | ``change_pct``), plus the per-patient AUC minus baseline
    (``auc_mb``, unit × weeks; ``auc_mb_per_week``, unit) with an empty visit.

    ``n_review``: how many of the ``n`` values summarised may be wrong (the populations table's ``review``: a
    review flag on the estimate, or for a change on the patient's baseline estimate; for cells/µL also its
    ``count_flags``, e.g. ``count_low``: the count alone may be wrong); NaN where ``values``
    carries no ``review`` column and for the AUC rows."""
    weeks = visit_weeks(values)
    review = S.REVIEW in values.columns
    rows = []
    for (pop, arm, visit), g in values.groupby([S.POPULATION, S.ARM, S.VISIT], sort=False):
        for m in config.measures:
            for q, col in (("value", m), ("change", f"{m}_change"), ("change_pct", f"{m}_change_pct")):
                if q != "value" and visit == config.baseline_visit:
                    continue
                s = median_iqr(g[col])
                n_review = _n_review(g, col, baseline=q != "value", measure=m) if review else np.nan
                rows.append({S.POPULATION: pop, "measure": m, "unit": "%" if q == "change_pct" else MEASURE_UNITS[m],
                             "quantity": q, S.ARM: arm, S.VISIT: visit, S.WEEK: weeks[visit], "n": s.n,
                             "n_review": n_review, "median": s.median, "q1": s.q1, "q3": s.q3, "mean": s.mean})
    for (pop, m, arm), g in patient_summaries.groupby([S.POPULATION, "measure", S.ARM], sort=False):
        for q, unit in (("auc_mb", f"{MEASURE_UNITS[m]} × weeks"), ("auc_mb_per_week", MEASURE_UNITS[m])):
            s = median_iqr(g[q])
            rows.append({S.POPULATION: pop, "measure": m, "unit": unit, "quantity": q, S.ARM: arm, S.VISIT: "",
                         S.WEEK: np.nan, "n": s.n, "median": s.median, "q1": s.q1, "q3": s.q3, "mean": s.mean})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return sort_table(out, visits, [S.POPULATION, "measure", "quantity", "_visit", S.ARM])


def _review_note(note: str, k: int, n: int) -> str:
    """``note`` with "k of the n values flagged for review" added when k > 0."""
    said = f"{k} of the {n} values flagged for review (their estimate or its baseline's may be wrong)" if k else ""
    return "; ".join(w for w in (note, said) if w)


def continuous_tests(values: pd.DataFrame, patient_summaries: pd.DataFrame, config: TrialConfig,
                     visits: list[str]) -> list[dict]:
    """Rank-sum (between arms, on change and AUC-MB) and signed-rank (within arm) rows.

    The note of a change row says how many of its values may be wrong (as the summaries' ``n_review``: a
    review flag on the estimate or its baseline's, for cells/µL also a count flag)."""
    t_arm, c_arm = config.arms
    review = S.REVIEW in values.columns
    weeks = visit_weeks(values)
    k = config.min_per_arm
    rows: list[dict] = []
    follow = [v for v in visits if v != config.baseline_visit]
    by = {key: g for key, g in values.groupby([S.POPULATION, S.VISIT, S.ARM], sort=False)}
    pops = sorted(values[S.POPULATION].unique())
    empty = values.iloc[0:0]
    for pop in pops:
        for visit in follow:
            gt, gc = by.get((pop, visit, t_arm), empty), by.get((pop, visit, c_arm), empty)
            if gt.empty and gc.empty:
                continue
            for m in config.measures:
                col = f"{m}_change"
                kt, kc = ((_n_review(gt, col, baseline=True, measure=m), _n_review(gc, col, baseline=True, measure=m))
                          if review else (0, 0))
                r = rank_sum(gt[col], gc[col], min_n=k)
                rows.append(_row(test="rank_sum", endpoint="change", population=pop, measure=m, visit=visit,
                                 week=weeks[visit], n=r.n1 + r.n2, n_treatment=r.n1, n_control=r.n2,
                                 statistic=r.statistic, estimate=r.estimate,
                                 estimate_kind="difference in median change (treatment - control)",
                                 p=r.p, note=_review_note(r.note, kt + kc, r.n1 + r.n2), _adjust=True))
                for arm, g, kr in ((t_arm, gt, kt), (c_arm, gc, kc)):
                    s = signed_rank(g[col], min_n=k)
                    rows.append(_row(test="signed_rank", endpoint="change", population=pop, measure=m,
                                     visit=visit, week=weeks[visit], arm=arm, n=s.n1, statistic=s.statistic,
                                     estimate=s.estimate, estimate_kind="median change from baseline", p=s.p,
                                     note=_review_note(s.note, kr, s.n1), _adjust=True))
    ps = patient_summaries[patient_summaries[S.ARM].isin(config.arms)]
    for (pop, m), g in ps.groupby([S.POPULATION, "measure"], sort=True):
        r = rank_sum(g.loc[g[S.ARM] == t_arm, "auc_mb"], g.loc[g[S.ARM] == c_arm, "auc_mb"], min_n=k)
        # an AUC (unit x weeks) that stops early (no final-visit value: withdrawn, or that sample missing) covers
        # fewer weeks than the others: smaller by construction, whatever the course
        short = g[g["auc_mb"].notna() & g["final"].isna()]
        short_note = (f"{len(short)} of the {r.n1 + r.n2} patients' AUC stops before the final visit (no value "
                      f"there: {', '.join(map(str, short[S.PATIENT].tolist()[:10]))}): it covers fewer weeks than "
                      "the others' (patient_summaries weeks_observed; auc_mb_per_week is the time-averaged change)"
                      if len(short) else "")
        rows.append(_row(test="rank_sum", endpoint="auc_mb", population=pop, measure=m, n=r.n1 + r.n2,
                         n_treatment=r.n1, n_control=r.n2, statistic=r.statistic, estimate=r.estimate,
                         estimate_kind="difference in median AUC minus baseline (unit x weeks)", p=r.p,
                         note="; ".join(w for w in (r.note, short_note) if w), _adjust=True))
    return rows


def responder_rates_and_tests(flags: pd.DataFrame, config: TrialConfig,
                              visits: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Responder proportions per arm × visit (percent) and Fisher exact rows per flag × visit.

    ``n_review``: how many of the ``n`` flags rest on a value that may be wrong (``flags``' ``review_<flag>``:
    a review flag on the CD4 / CD8 estimate or its baseline, a count flag on a count; NaN when ``flags`` has no
    such column); the Fisher row's note says how many of its patients' flags do."""
    t_arm, c_arm = config.arms
    weeks = flags.groupby(S.VISIT)[S.WEEK].median().to_dict()
    names = flag_names(config)
    rates, rows = [], []
    for visit in visits:
        fv = flags[flags[S.VISIT] == visit]
        if fv.empty:
            continue
        for name in names:
            if name == names[0] and visit == config.baseline_visit:
                continue  # an increase over baseline is undefined at baseline
            counts, n_review = {}, 0.0
            for arm in config.arms:
                col = fv.loc[fv[S.ARM] == arm, name].dropna()
                n, r = int(len(col)), int(col.astype(bool).sum())
                k = float(fv.loc[col.index, review_name(name)].sum()) if review_name(name) in fv.columns else np.nan
                counts[arm], n_review = (r, n), n_review + k
                rates.append({"endpoint": name, S.ARM: arm, S.VISIT: visit, S.WEEK: weeks[visit], "n": n,
                              "responders": r, "pct": 100.0 * r / n if n else np.nan, "n_review": k})
            (rt, nt), (rc, nc) = counts[t_arm], counts[c_arm]
            if nt < config.min_per_arm or nc < config.min_per_arm:
                res_note, f = f"fewer than {config.min_per_arm} patients in an arm", None
            else:
                f, res_note = fisher_2x2(rt, nt, rc, nc), ""
            rows.append(_row(
                test="fisher", endpoint=name, population=config.cd4_population, measure=config.cd4_measure,
                visit=visit, week=weeks[visit], n=nt + nc, n_treatment=nt, n_control=nc,
                statistic=f.statistic if f else np.nan, estimate=f.estimate if f else np.nan,
                estimate_kind="odds ratio (conditional MLE, treatment vs control)",
                ci_low=f.ci_low if f else np.nan, ci_high=f.ci_high if f else np.nan, p=f.p if f else np.nan,
                note="; ".join(w for w in (f.note if f else res_note, f"responders {rt}/{nt} vs {rc}/{nc}",
                                            f"{n_review:.0f} of the {nt + nc} flags rest on a value flagged for review"
                                            if n_review > 0 else "") if w), _adjust=True))
    rate_df = pd.DataFrame(rates, columns=RATE_COLUMNS)
    return sort_table(rate_df, visits, ["endpoint", "_visit", S.ARM]), rows


def _per_patient(clinical: pd.DataFrame, column: str, visit: str | None, order: list[str]) -> pd.Series:
    """One value per patient: at ``visit``, or the last non-missing by visit order when ``visit`` is None."""
    sub = clinical[[S.PATIENT, S.VISIT, column]].dropna(subset=[column])
    if sub.empty:
        return pd.Series(dtype=object)
    if visit is not None:
        sub = sub[sub[S.VISIT] == visit]
    rank = {v: i for i, v in enumerate(order)}
    sub = sub.assign(_r=sub[S.VISIT].map(rank).fillna(len(rank)))
    return sub.sort_values([S.PATIENT, "_r"]).groupby(S.PATIENT)[column].last()


def _baseline_clinical(clinical: pd.DataFrame, column: str, baseline: str, order: list[str]) -> pd.Series:
    """Covariate per patient at the baseline visit (else its first recorded value)."""
    sub = clinical[[S.PATIENT, S.VISIT, column]].dropna(subset=[column])
    rank = {v: i for i, v in enumerate(order)}
    sub = sub.assign(_r=np.where(sub[S.VISIT] == baseline, -1, sub[S.VISIT].map(rank).fillna(len(rank))))
    return sub.sort_values([S.PATIENT, "_r"]).groupby(S.PATIENT)[column].first()


def logistic_data(values: pd.DataFrame, clinical: pd.DataFrame, config: TrialConfig, outcome: str,
                  visits: list[str], source: str = "<clinical table>") -> pd.DataFrame:
    """One row per patient of the two arms: ``arm``, ``outcome`` (0/1) and the covariates."""
    lc = config.logistic
    arms = values.drop_duplicates(S.PATIENT).set_index(S.PATIENT)[S.ARM]
    arms = arms[arms.isin(config.arms)]
    data = pd.DataFrame({S.ARM: arms})
    raw = _per_patient(clinical, outcome, lc.visit, visits)
    y = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & ~y.isin([0, 1])
    if bad.any():
        found = sorted({str(v) for v in raw[bad].tolist()})[:5]
        raise StatsError(f"clinical outcome {outcome!r} must be 0/1; found {found}", path=source)
    data["outcome"] = y.reindex(data.index)
    for cov in lc.covariates:
        if cov == "baseline_cd4":
            base = values[(values[S.POPULATION] == config.cd4_population) & (values[S.VISIT] == config.baseline_visit)]
            data[cov] = base.set_index(S.PATIENT)[S.ABS_COUNT].reindex(data.index)
        elif cov in clinical.columns:
            data[cov] = _baseline_clinical(clinical, cov, config.baseline_visit, visits).reindex(data.index)
        else:
            raise StatsError(f"logistic covariate {cov!r} is neither 'baseline_cd4' nor a clinical column "
                             f"({[c for c in clinical.columns if c not in ('patient', 'visit')]})",
                             path=source)
    return data.sort_index()


def logistic_tests(values: pd.DataFrame, clinical: pd.DataFrame, config: TrialConfig,
                   visits: list[str], source: str = "<clinical table>") -> list[dict]:
    """One row per outcome × model term (odds ratio per unit of the term, 95 % CI and P: Wald, or for a Firth
    fit under separation profile penalised likelihood and its likelihood-ratio test)."""
    lc = config.logistic
    rows: list[dict] = []
    for outcome in lc.outcomes:
        if clinical.empty or outcome not in clinical.columns:
            log.warning("clinical outcome %r not in the clinical table: logistic regression skipped", outcome)
            continue
        data = logistic_data(values, clinical, config, outcome, visits, source)
        complete = data.dropna()
        dropped = len(data) - len(complete)
        X, notes = design_matrix(complete, treatment=config.treatment_arm, control=config.control_arm,
                                 covariates=list(lc.covariates), scales={"baseline_cd4": lc.cd4_scale_per_uL})
        if dropped:
            notes.append(f"{dropped} patients without outcome or covariates excluded")
        X = X.dropna()
        y = complete.loc[X.index, "outcome"]
        nt = int((complete.loc[X.index, S.ARM] == config.treatment_arm).sum())
        nc = len(X) - nt
        if nt < config.min_per_arm or nc < config.min_per_arm or y.nunique() < 2 or len(X) <= X.shape[1]:
            rows.append(_row(test="logistic", endpoint=outcome, term="(model)", n=len(X), n_treatment=nt,
                             n_control=nc, flag="not_estimable",
                             note="; ".join(notes + ["too few patients or no variation in the outcome"])))
            continue
        fit = fit_logistic(y, X, max_iter=lc.max_iter)
        tab = fit.table()
        flag = "separation" if fit.separation else ("not_converged" if not fit.converged else "")
        n_terms = sum(1 for t in fit.terms if t != "(intercept)")
        epv = min(fit.n_events, fit.n - fit.n_events) / max(n_terms, 1)  # the rarer outcome per model term
        epv_note = ([f"events per variable {epv:.1f} (< {EPV_MIN:g}: {n_terms} terms are too many for "
                     f"{min(fit.n_events, fit.n - fit.n_events)} patients with the rarer outcome; odds ratios "
                     "unreliable)"] if epv < EPV_MIN else [])
        note = "; ".join(notes + fit.notes + [f"{fit.n_events} events / {fit.n} patients ({fit.method})"] + epv_note)
        for t in tab.itertuples(index=False):
            if t.term == "(intercept)":
                continue
            rows.append(_row(test="logistic", endpoint=outcome, term=t.term, n=fit.n, n_treatment=nt,
                             n_control=nc, statistic=t.statistic, estimate=t.odds_ratio,
                             estimate_kind="odds ratio (per unit of term)", ci_low=t.ci_low, ci_high=t.ci_high,
                             p=t.p, flag=flag, note=note, **{S.EPV: epv}))
    return rows


def longitudinal_tests(values: pd.DataFrame, config: TrialConfig, visits: list[str]) -> list[dict]:
    """Arm × visit model rows per population × measure: the joint interaction test and each visit's term."""
    lcfg = config.longitudinal
    if lcfg.model == "none":
        return []
    fit_fn = LONGITUDINAL_MODELS[lcfg.model]
    pops = lcfg.populations if lcfg.populations is not None else config.headline_populations
    measures = lcfg.measures or config.measures
    weeks = visit_weeks(values)
    rows: list[dict] = []
    for pop in pops:
        sub = values[values[S.POPULATION] == pop]
        if sub.empty:
            continue
        for m in measures:
            data = sub[[S.PATIENT, S.ARM, S.VISIT, m]].dropna().rename(columns={m: "value"})
            if lcfg.log10:
                data = data.assign(value=np.log10(data["value"].clip(lower=0) + 1.0))
            data = data.assign(treat=(data[S.ARM] == config.treatment_arm).astype(int))
            n_arm = data.groupby(S.ARM)[S.PATIENT].nunique()
            common = {"test": lcfg.model, "endpoint": "log10(value + 1)" if lcfg.log10 else "value",
                      S.POPULATION: pop, "measure": m}
            if (n_arm.reindex(list(config.arms)).fillna(0) < config.min_per_arm).any() or data[S.VISIT].nunique() < 2:
                rows.append(_row(**common, term="arm x visit (joint)", flag="not_estimable",
                                 note="too few patients or visits"))
                continue
            try:
                fit = fit_fn(data.reset_index(drop=True), config.baseline_visit, visits)
            except (np.linalg.LinAlgError, ValueError) as exc:
                log.warning("%s model failed for %s / %s: %s", lcfg.model, pop, m, exc)
                rows.append(_row(**common, term="arm x visit (joint)", flag="failed", note=str(exc)))
                continue
            nt, nc = int(n_arm.get(config.treatment_arm, 0)), int(n_arm.get(config.control_arm, 0))
            flag = ";".join(fit.flags)
            converged = "not_converged" not in fit.flags  # an unconverged model's P stays out of the family
            rows.append(_row(**common, term="arm x visit (joint)", n=fit.n_obs, n_treatment=nt, n_control=nc,
                             statistic=fit.joint_statistic,
                             estimate_kind=f"chi-square, {fit.joint_df} df "
                             f"({'likelihood ratio' if lcfg.model == 'mixedlm' else 'Wald'})",
                             p=fit.joint_p, flag=flag, _adjust=converged,
                             note="" if converged else "model did not converge: P not multiplicity-adjusted "
                             "and not comparable with the others"))
            for v, c, se, p in zip(fit.visits, fit.coef, fit.se, fit.p):
                rows.append(_row(**common, term="arm x visit", visit=v, week=weeks.get(v, np.nan), n=fit.n_obs,
                                 n_treatment=nt, n_control=nc, statistic=c / se if se else np.nan, estimate=c,
                                 estimate_kind="difference between arms in change from baseline (model)",
                                 ci_low=c - 1.959963984540054 * se, ci_high=c + 1.959963984540054 * se, p=p,
                                 flag=flag))
    return rows


def adjust(tests: pd.DataFrame, config: TrialConfig) -> pd.DataFrame:
    """Fill ``p_adj``, ``adjust_method`` and ``adjust_family`` for the rows marked adjustable."""
    mc = config.multiplicity
    out = tests.copy()
    adj = out["_adjust"].astype(bool)
    if mc.family == "test_measure":
        fam = out["test"] + "|" + out["measure"].astype(str)
    elif mc.family == "test":
        fam = out["test"].astype(str)
    else:
        fam = pd.Series("all", index=out.index)
    out.loc[adj, "adjust_family"] = fam[adj]
    out.loc[adj, "adjust_method"] = mc.method
    for _, idx in out[adj].groupby(fam[adj]).groups.items():
        out.loc[idx, "p_adj"] = adjust_pvalues(out.loc[idx, "p"].to_numpy(float), mc.method)
    return out.drop(columns=["_adjust"])


def sort_table(df: pd.DataFrame, visits: list[str], by: list[str]) -> pd.DataFrame:
    """Deterministic order: ``_visit`` in ``by`` stands for visit order (empty visit last)."""
    rank = {v: i for i, v in enumerate(visits)}
    tmp = df.assign(_visit=df[S.VISIT].map(rank).fillna(len(rank)).astype(int)) if S.VISIT in df.columns else df
    return tmp.sort_values(by, kind="mergesort").drop(columns=["_visit"], errors="ignore").reset_index(drop=True)


def run_tests(values: pd.DataFrame, flags: pd.DataFrame, patient_summaries: pd.DataFrame, clinical: pd.DataFrame,
              config: TrialConfig, visits: list[str], *,
              clinical_source: str = "<clinical table>") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tests, responder rates) for the two configured arms; tests are multiplicity-adjusted and sorted."""
    values = _arm_values(values, config)
    flags = flags[flags[S.ARM].isin(config.arms)]
    rows = continuous_tests(values, patient_summaries, config, visits)
    rates, fisher_rows = responder_rates_and_tests(flags, config, visits)
    rows += fisher_rows
    rows += logistic_tests(values, clinical, config, visits, clinical_source)
    rows += longitudinal_tests(values, config, visits)
    tests = pd.DataFrame(rows, columns=TEST_COLUMNS + ["_adjust"])
    tests = adjust(tests, config)
    test_rank = {t: i for i, t in enumerate(["rank_sum", "signed_rank", "fisher", "logistic", "mixedlm", "gee"])}
    tests = tests.assign(_t=tests["test"].map(test_rank))
    tests = sort_table(tests, visits, ["_t", "endpoint", S.POPULATION, "measure", "_visit", S.ARM, "term"])
    return tests.drop(columns=["_t"]), rates
