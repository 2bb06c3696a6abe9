"""Statistical kernels of cytokit.trial checked against scipy / statsmodels called directly."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from scipy.stats.contingency import odds_ratio
from statsmodels.stats.multitest import multipletests

from cytokit.trial.logistic import design_matrix, firth_logit, fit_logistic
from cytokit.trial.longitudinal import LONGITUDINAL_MODELS, fit_gee, fit_mixedlm
from cytokit.trial.stats import adjust_pvalues, fisher_2x2, median_iqr, rank_sum, signed_rank
from cytokit.trial.values import auc_minus_baseline

X_T = [812.0, 640.5, 1203.0, 455.0, 990.0, 702.0, np.nan, 1500.0]
X_C = [210.0, 305.0, 150.5, 420.0, 260.0, 98.0, 333.0]


def test_median_iqr_matches_numpy_percentiles():
    s = median_iqr(X_T)
    a = np.array([x for x in X_T if np.isfinite(x)])
    assert s.n == 7
    assert s.median == pytest.approx(np.median(a))
    assert (s.q1, s.q3) == pytest.approx(tuple(np.percentile(a, [25, 75])))
    assert s.mean == pytest.approx(a.mean())
    assert median_iqr([np.nan]).n == 0 and np.isnan(median_iqr([]).median)


def test_rank_sum_matches_mannwhitneyu():
    r = rank_sum(X_T, X_C)
    a = [x for x in X_T if np.isfinite(x)]
    ref = stats.mannwhitneyu(a, X_C, alternative="two-sided")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p == pytest.approx(ref.pvalue)
    assert r.estimate == pytest.approx(np.median(a) - np.median(X_C))
    assert (r.n1, r.n2) == (7, 7)


def test_rank_sum_with_ties_uses_normal_approximation_like_scipy():
    x, y = [1, 2, 2, 3, 5, 5, 8, 9, 9, 9], [0, 1, 1, 2, 2, 3, 4, 4]
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert rank_sum(x, y).p == pytest.approx(ref.pvalue)


def test_rank_sum_too_few_values_gives_nan_with_note():
    r = rank_sum([1.0, 2.0], [3.0], min_n=2)
    assert np.isnan(r.p) and "fewer than 2" in r.note


def test_signed_rank_exact_matches_wilcoxon():
    d = [120.0, 85.5, -20.0, 310.0, 45.0, 60.0, 15.0, 230.0, -5.0]
    r = signed_rank(d)
    ref = stats.wilcoxon(d, method="exact")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p == pytest.approx(ref.pvalue)
    assert r.estimate == pytest.approx(np.median(d))


def test_signed_rank_with_ties_and_zeros_uses_corrected_normal_approximation():
    d = [3.0, 3.0, -1.0, 0.0, 5.0, 5.0, 2.0, 0.0, 4.0, -2.0, 6.0]
    r = signed_rank(d)
    ref = stats.wilcoxon(d, zero_method="wilcox", method="approx", correction=True)
    assert r.p == pytest.approx(ref.pvalue)
    assert r.statistic == pytest.approx(ref.statistic)


def test_signed_rank_all_zero_differences():
    r = signed_rank([0.0, 0.0, 0.0])
    assert np.isnan(r.p) and r.note == "all differences are zero"


def test_fisher_matches_scipy_and_conditional_odds_ratio():
    r = fisher_2x2(11, 12, 5, 12)
    table = [[11, 1], [5, 7]]
    sample_or, p = stats.fisher_exact(table)
    cond = odds_ratio(table, kind="conditional")
    ci = cond.confidence_interval(0.95)
    assert r.p == pytest.approx(p)
    assert r.statistic == pytest.approx(sample_or)
    assert r.estimate == pytest.approx(cond.statistic)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high))
    assert r.ci_low < r.estimate < r.ci_high


def test_fisher_zero_cell_gives_infinite_odds_ratio_and_bad_counts_raise():
    r = fisher_2x2(8, 8, 3, 8)
    assert np.isinf(r.estimate) and np.isinf(r.ci_high) and r.ci_low > 0
    assert r.p == pytest.approx(stats.fisher_exact([[8, 0], [3, 5]])[1])
    none = fisher_2x2(0, 5, 0, 5)
    assert np.isnan(none.estimate) and "no variation" in none.note
    with pytest.raises(ValueError):
        fisher_2x2(6, 5, 1, 5)


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
@pytest.mark.parametrize("p", [
    [0.01, np.nan, 0.04, 0.03, 0.2, 0.001],
    [0.01, 0.01, 0.04, 0.04, 0.5, 0.5, 0.9],          # ties
    list(np.random.default_rng(0).uniform(0, 0.2, 40)),
])
def test_adjust_pvalues_matches_multipletests_and_keeps_nan(method, p):
    p = np.asarray(p)
    out = adjust_pvalues(p, method)
    ok = np.isfinite(p)
    assert np.isnan(out[~ok]).all()
    np.testing.assert_allclose(out[ok], multipletests(p[ok], method=method)[1])
    np.testing.assert_allclose(adjust_pvalues(p, "none")[ok], p[ok])


def test_auc_minus_baseline_trapezoid_over_actual_weeks():
    weeks = [24.3, 0.0, 12.1, np.nan, 74.0]
    change = [300.0, 0.0, 150.0, 999.0, 800.0]
    expected = 12.1 * 150 / 2 + (24.3 - 12.1) * (150 + 300) / 2 + (74.0 - 24.3) * (300 + 800) / 2
    assert auc_minus_baseline(weeks, change) == pytest.approx(expected)
    assert np.isnan(auc_minus_baseline([0.0], [0.0]))


def _logistic_frame(n=60, seed=3):
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "IL-2", "control")
    cd4 = rng.normal(350, 80, n)
    stratum = rng.choice(["low", "high"], n)
    eta = -0.5 + 1.1 * (arm == "IL-2") + 0.6 * (cd4 - 350) / 100
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"arm": arm, "baseline_cd4": cd4, "stratum": stratum, "outcome": y})


def test_logistic_matches_statsmodels_formula_fit():
    df = _logistic_frame()
    X, notes = design_matrix(df, treatment="IL-2", control="control", covariates=["baseline_cd4", "stratum"],
                             scales={"baseline_cd4": 100.0})
    assert list(X.columns) == ["(intercept)", "arm[IL-2 vs control]", "baseline_cd4 (per 100)",
                               "stratum[low vs high]"]
    fit = fit_logistic(df["outcome"], X)
    tab = fit.table().set_index("term")
    ref = smf.logit("outcome ~ C(arm, Treatment('control')) + I(baseline_cd4 / 100) + C(stratum, Treatment('high'))",
                    data=df).fit(disp=0)
    ci = np.exp(ref.conf_int())
    arm_term = "C(arm, Treatment('control'))[T.IL-2]"
    assert not fit.separation and fit.method == "mle"
    assert tab.loc["arm[IL-2 vs control]", "odds_ratio"] == pytest.approx(np.exp(ref.params[arm_term]), rel=1e-6)
    assert tab.loc["arm[IL-2 vs control]", "ci_low"] == pytest.approx(ci.loc[arm_term, 0], rel=1e-6)
    assert tab.loc["arm[IL-2 vs control]", "ci_high"] == pytest.approx(ci.loc[arm_term, 1], rel=1e-6)
    assert tab.loc["arm[IL-2 vs control]", "p"] == pytest.approx(ref.pvalues[arm_term], rel=1e-6)
    assert tab.loc["baseline_cd4 (per 100)", "odds_ratio"] == pytest.approx(
        np.exp(ref.params["I(baseline_cd4 / 100)"]), rel=1e-6)
    assert tab.loc["stratum[low vs high]", "p"] == pytest.approx(
        ref.pvalues["C(stratum, Treatment('high'))[T.low]"], rel=1e-6)


def test_logistic_separation_is_flagged_and_firth_gives_finite_estimates():
    # every IL-2 patient responds: the arm coefficient diverges under maximum likelihood
    df = pd.DataFrame({"arm": ["IL-2"] * 6 + ["control"] * 6,
                       "outcome": [1] * 6 + [1, 0, 0, 1, 0, 0]})
    X, _ = design_matrix(df, treatment="IL-2", control="control", covariates=[])
    fit = fit_logistic(df["outcome"], X)
    assert fit.separation and fit.method == "firth"
    assert np.all(np.isfinite(fit.coef)) and np.all(np.isfinite(fit.se))
    assert any("separation" in n for n in fit.notes)
    # Firth with one binary covariate = log odds ratio of the table with 0.5 added to every cell
    a, b, c, d = 6, 0, 2, 4
    assert fit.coef[1] == pytest.approx(np.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))), rel=1e-6)


def test_firth_close_to_mle_without_separation():
    df = _logistic_frame(n=400, seed=5)
    X, _ = design_matrix(df, treatment="IL-2", control="control", covariates=["baseline_cd4"],
                         scales={"baseline_cd4": 100.0})
    beta, se, conv = firth_logit(df["outcome"].to_numpy(float), X.to_numpy(float))
    mle = sm.Logit(df["outcome"].to_numpy(float), X.to_numpy(float)).fit(disp=0)
    assert conv
    np.testing.assert_allclose(beta, mle.params, atol=0.05)
    np.testing.assert_allclose(se, mle.bse, rtol=0.05)


def _long_frame(seed=11):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(16):
        treat = int(i < 8)
        u = rng.normal(0, 60)
        for v, w in (("W0", 0), ("W24", 24), ("W74", 74)):
            mu = 350 + u + w * (2 + 8 * treat) + rng.normal(0, 30)
            rows.append({"patient": f"P{i:02d}", "treat": treat, "arm": "IL-2" if treat else "control",
                         "visit": v, "value": mu})
    return pd.DataFrame(rows)


def test_mixedlm_matches_statsmodels_formula_and_lr_test():
    d = _long_frame()
    fit = fit_mixedlm(d, "W0", ["W0", "W24", "W74"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reml = smf.mixedlm("value ~ treat * C(visit, Treatment('W0'))", d, groups=d["patient"]).fit(reml=True)
        full = smf.mixedlm("value ~ treat * C(visit, Treatment('W0'))", d, groups=d["patient"]).fit(reml=False)
        red = smf.mixedlm("value ~ treat + C(visit, Treatment('W0'))", d, groups=d["patient"]).fit(reml=False)
    for v, c, se in zip(fit.visits, fit.coef, fit.se):
        term = f"treat:C(visit, Treatment('W0'))[T.{v}]"
        assert c == pytest.approx(reml.fe_params[term], rel=1e-4)
        assert se == pytest.approx(reml.bse_fe[term], rel=1e-3)
    lr = 2 * (full.llf - red.llf)
    assert fit.joint_statistic == pytest.approx(lr, rel=1e-4)
    assert fit.joint_p == pytest.approx(stats.chi2.sf(lr, 2), rel=1e-3)
    assert fit.visits == ["W24", "W74"] and fit.n_patients == 16
    # designed interaction at W74: 8 cells/µL/week × 74 weeks
    assert fit.coef[-1] == pytest.approx(8 * 74, rel=0.15)


def test_gee_matches_statsmodels_formula_and_wald_test():
    d = _long_frame()
    fit = fit_gee(d, "W0", ["W0", "W24", "W74"])
    ref = smf.gee("value ~ treat * C(visit, Treatment('W0'))", "patient", d,
                  cov_struct=sm.cov_struct.Exchangeable(), family=sm.families.Gaussian()).fit()
    terms = [f"treat:C(visit, Treatment('W0'))[T.{v}]" for v in fit.visits]
    np.testing.assert_allclose(fit.coef, ref.params[terms].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(fit.se, ref.bse[terms].to_numpy(), rtol=1e-5)
    R = np.zeros((2, len(ref.params)))
    for k, t in enumerate(terms):
        R[k, list(ref.params.index).index(t)] = 1
    wald = ref.wald_test(R, scalar=True)
    assert fit.joint_statistic == pytest.approx(float(wald.statistic), rel=1e-5)
    assert fit.joint_p == pytest.approx(float(wald.pvalue), rel=1e-4)
    assert set(LONGITUDINAL_MODELS) == {"mixedlm", "gee"}


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 200), st.floats(-1e4, 1e4)), min_size=2, max_size=12, unique_by=lambda t: t[0]),
       st.randoms(use_true_random=False))
def test_auc_is_order_invariant_and_matches_sorted_trapezoid(points, rnd):
    shuffled = points[:]
    rnd.shuffle(shuffled)
    w, c = zip(*shuffled)
    ws, cs = zip(*sorted(points))
    assert auc_minus_baseline(w, c) == pytest.approx(np.trapezoid(cs, ws), rel=1e-9, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.sampled_from(["holm", "fdr_bh"]))
def test_adjusted_p_never_below_raw_and_at_most_one(p, method):
    out = adjust_pvalues(p, method)
    assert np.all(out >= np.asarray(p) - 1e-12) and np.all(out <= 1 + 1e-12)
    if method == "fdr_bh":  # (statsmodels' Holm path is too slow to call 60 times)
        np.testing.assert_allclose(out, multipletests(p, method=method)[1], atol=1e-12)


def test_unknown_adjustment_method_is_a_stats_error():
    from cytokit.cluster import differential_abundance
    from cytokit.errors import StatsError

    with pytest.raises(StatsError, match="unknown multiplicity adjustment 'bonferroni'.*fdr_bh"):
        adjust_pvalues([0.01, 0.2], "bonferroni")
    with pytest.raises(StatsError, match="unknown multiplicity adjustment"):
        adjust_pvalues([np.nan], "bonferroni")  # even when nothing is left to adjust
    ab = pd.DataFrame({"sample_id": list("abcd"), "metacluster": 0, "count": [5, 6, 9, 10], "total": 100,
                       "pct": [5.0, 6.0, 9.0, 10.0], "arm": ["control", "control", "IL-2", "IL-2"], "visit": "W0"})
    with pytest.raises(StatsError, match="bonferroni"):
        differential_abundance(ab, adjust="bonferroni")


def test_firth_profile_limits_and_likelihood_ratio_p_match_a_reference_implementation():
    """Under separation the Firth rows report profile penalised-likelihood limits and penalised likelihood-ratio
    P values (R logistf's defaults). Reference: firthmodels 0.8.2 FirthLogisticRegression (conf_int(method='pl'),
    lrt()) on the demo's recall-antigen model (8 patients: intercept, IL-2, baseline CD4 / 100, stratum), where
    every IL-2 patient responds."""
    from cytokit.trial.logistic import firth_profile

    X = np.array([[1, 1, 3.856009, 1], [1, 0, 2.77822, 0], [1, 1, 4.659523, 1], [1, 0, 4.065588, 1],
                  [1, 0, 4.039499, 1], [1, 0, 3.19508, 0], [1, 1, 3.175448, 0], [1, 1, 3.02756, 0]], dtype=float)
    y = np.array([1, 1, 1, 0, 0, 1, 1, 1], dtype=float)
    beta, _, conv = firth_logit(y, X)
    assert conv and beta == pytest.approx([1.2455112, 2.5396235, 0.0359190, -2.8681253], abs=1e-5)
    _, p, low, high = firth_profile(y, X, beta)
    assert p == pytest.approx([0.8845994, 0.1525625, 0.9898792, 0.4365553], abs=1e-5)
    assert low == pytest.approx([-24.575989, -0.829931, -8.696150, -13.310879], abs=1e-4)
    assert high == pytest.approx([27.997410, 8.839089, 8.866198, 6.229163], abs=1e-4)
    fit = fit_logistic(pd.Series(y), pd.DataFrame(X, columns=["(intercept)", "arm", "cd4", "stratum"]))
    row = fit.table().set_index("term").loc["arm"]
    assert fit.method == "firth" and "profile" in " ".join(fit.notes)
    assert (row["ci_low"], row["ci_high"], row["p"]) == pytest.approx((np.exp(-0.829931), np.exp(8.839089), 0.1525625),
                                                                      rel=1e-4)


def test_forest_marks_an_odds_ratio_of_zero_at_the_left_edge(monkeypatch):
    """Conditional OR 0 (every control patient responds, 3/4 vs 4/4): a left triangle at the axis edge and an
    arrow for the lower limit 0, as OR infinity gets a right triangle; before, the row was a bare line."""
    from cytokit.trial import figures

    monkeypatch.setattr(figures, "_png", lambda fig: fig)
    rows = pd.DataFrame({"label": ["CD4 > 200", "ratio > 1", "increase"], "estimate": [0.0, 6.4, np.inf],
                         "ci_low": [0.0, 0.21, 0.53], "ci_high": [39.0, 626.0, np.inf], "p": [1.0, 0.49, 0.14]})
    fig = figures.forest(rows)
    ax = fig.axes[0]
    markers = {ln.get_marker(): (ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ax.lines if ln.get_marker() != "None"}
    lo_edge, hi_edge = ax.get_xlim()
    assert markers["<"] == pytest.approx((lo_edge, 2)) and markers[">"] == pytest.approx((hi_edge, 0))
    assert markers["s"] == pytest.approx((6.4, 1))
    arrows = [a.xy for a in ax.texts]  # annotate() arrows: lower limit 0 (row 2) and upper limit inf (row 0)
    assert (lo_edge, 2) in arrows and (hi_edge, 0) in arrows
