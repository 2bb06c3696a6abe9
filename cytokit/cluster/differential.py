"""Differential abundance of clusters between trial arms (a diffcyt-DA-style view).

For every visit and every cluster (metacluster or named population), the per-sample counts of the
cluster out of the clustered population are compared between two arms. Tests (registry :data:`DA_TESTS`):

* ``"quasibinomial"`` (default): binomial GLM ``cbind(count, total - count) ~ arm`` with the dispersion
  estimated from the Pearson chi-square (quasi-binomial) and a t reference distribution, allowing for
  biological over-dispersion between samples as diffcyt/edgeR do; ``estimate`` is the log2 odds ratio
  treatment vs control.
* ``"rank_sum"``: Mann-Whitney test of the per-sample percentages (``cytokit.trial.stats.rank_sum``);
  ``estimate`` is the difference of medians in percentage points.

P values are adjusted within each visit over clusters (Benjamini-Hochberg FDR by default, via
``cytokit.trial.stats.adjust_pvalues``). A test that cannot be run gives P = NaN and a ``note``.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import ClusterError
from ..results import schema as S
from ..trial.stats import adjust_pvalues, rank_sum

DA_COLUMNS = [S.VISIT, S.WEEK, "cluster", "name", "test", "n_treatment", "n_control",
              "median_pct_treatment", "median_pct_control", "estimate", "estimate_kind", "statistic",
              "p", "p_adj", "adjust_method", "significant", "note"]


def _quasibinomial(count: np.ndarray, total: np.ndarray, is_treat: np.ndarray) -> tuple[float, float, float, str]:
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    keep = total > 0
    count, total, is_treat = count[keep], total[keep], is_treat[keep]
    if is_treat.sum() < 2 or (~is_treat).sum() < 2:
        return np.nan, np.nan, np.nan, "fewer than 2 samples in an arm"
    if count.sum() == 0 or count.sum() == total.sum():
        return np.nan, np.nan, np.nan, "cluster empty (or everything) in all samples"
    # a 0.5 continuity correction keeps the log odds finite when one arm has no events in the cluster
    n = total + 1.0
    y = (count + 0.5) / n
    X = np.column_stack([np.ones(len(count)), is_treat.astype(float)])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PerfectSeparationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            # proportions with var_weights = totals; Pearson dispersion; t reference for small n
            fit = sm.GLM(y, X, family=sm.families.Binomial(), var_weights=n).fit(scale="X2", use_t=True)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return np.nan, np.nan, np.nan, f"model failed: {exc}"
    beta, p, z = float(fit.params[1]), float(fit.pvalues[1]), float(fit.tvalues[1])
    return beta / np.log(2.0), z, p, ""


def _test_quasibinomial(sub: pd.DataFrame, is_treat: np.ndarray) -> dict:
    est, stat, p, note = _quasibinomial(sub[S.COUNT].to_numpy(float), sub["total"].to_numpy(float), is_treat)
    return {"estimate": est, "estimate_kind": "log2 odds ratio", "statistic": stat, "p": p, "note": note}


def _test_rank_sum(sub: pd.DataFrame, is_treat: np.ndarray) -> dict:
    pct = sub["pct"].to_numpy(float)
    r = rank_sum(pct[is_treat], pct[~is_treat])
    return {"estimate": r.estimate, "estimate_kind": "difference of medians (pp)", "statistic": r.statistic,
            "p": r.p, "note": r.note}


#: registry of differential-abundance tests
DA_TESTS: dict[str, Callable[[pd.DataFrame, np.ndarray], dict]] = {
    "quasibinomial": _test_quasibinomial,
    "rank_sum": _test_rank_sum,
}


def differential_abundance(abundance: pd.DataFrame, *, cluster_col: str = "metacluster",
                           group_col: str = S.ARM, treatment: str | None = None, control: str | None = None,
                           test: str = "quasibinomial", adjust: str = "fdr_bh", alpha: float = 0.05) -> pd.DataFrame:
    """Between-arm tests per visit and cluster on a tidy abundance table.

    ``abundance`` needs ``sample_id, <cluster_col>, count, total, pct`` plus ``group_col`` and ``visit``
    (``week`` optional) — i.e. an abundance table joined with the samples' manifest columns. ``control``
    defaults to ``"control"`` when present, ``treatment`` to the other level. Returns :data:`DA_COLUMNS`.
    """
    if test not in DA_TESTS:
        raise ClusterError(f"unknown differential-abundance test {test!r}; choose one of {sorted(DA_TESTS)}")
    need = {S.SAMPLE_ID, cluster_col, S.COUNT, "total", "pct", group_col, S.VISIT}
    missing = need - set(abundance.columns)
    if missing:
        raise ClusterError(f"abundance table lacks columns {sorted(missing)} needed for arm comparisons")
    df = abundance.dropna(subset=[group_col]).copy()
    df[group_col] = df[group_col].astype(str)
    levels = sorted(df[group_col].unique())
    if len(levels) != 2:
        raise ClusterError(f"arm comparison needs exactly two groups in column {group_col!r}, found {levels}")
    control = control or ("control" if "control" in levels else levels[0])
    treatment = treatment or next(lv for lv in levels if lv != control)
    if {control, treatment} != set(levels):
        raise ClusterError(f"groups {treatment!r} vs {control!r} do not match the data's groups {levels}")
    name_col = "name" if "name" in df.columns else cluster_col
    rows = []
    for visit, vdf in df.groupby(S.VISIT, sort=False):
        week = vdf[S.WEEK].iloc[0] if S.WEEK in vdf.columns else np.nan
        block = []
        for cl, sub in vdf.groupby(cluster_col, sort=True):
            is_treat = (sub[group_col] == treatment).to_numpy()
            res = DA_TESTS[test](sub, is_treat)
            block.append({
                S.VISIT: visit, S.WEEK: week, "cluster": cl, "name": sub[name_col].iloc[0], "test": test,
                "n_treatment": int(is_treat.sum()), "n_control": int((~is_treat).sum()),
                "median_pct_treatment": float(np.median(sub["pct"][is_treat])) if is_treat.any() else np.nan,
                "median_pct_control": float(np.median(sub["pct"][~is_treat])) if (~is_treat).any() else np.nan,
                **res,
            })
        p_adj = adjust_pvalues([b["p"] for b in block], adjust)
        for b, q in zip(block, p_adj):
            b.update(p_adj=q, adjust_method=adjust, significant=bool(np.isfinite(q) and q < alpha))
        rows.extend(block)
    out = pd.DataFrame(rows, columns=DA_COLUMNS)
    if S.WEEK in out and out[S.WEEK].notna().any():
        out = out.sort_values([S.WEEK, "cluster"], kind="stable").reset_index(drop=True)
    out.attrs.update(treatment=treatment, control=control)
    return out
