"""Statistical kernels on plain arrays: summaries, rank tests, Fisher exact test, multiplicity.

Each function takes numbers and returns a small frozen result; NaNs are dropped first. They wrap scipy
and statsmodels so that the rest of the package never handles their edge cases (empty groups, all-zero
differences) itself: a test that cannot be run returns P = NaN with a ``note`` saying why.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from scipy.stats.contingency import odds_ratio

from ..errors import StatsError
from ..results import schema as S

#: columns of the tidy tests table (one row per test, model term or adjusted family member)
TEST_COLUMNS: list[str] = [
    "test", "endpoint", S.POPULATION, "measure", S.VISIT, S.WEEK, S.ARM, "term",
    "n", "n_treatment", "n_control", "statistic", "estimate", "estimate_kind", "ci_low", "ci_high",
    "p", "p_adj", "adjust_method", "adjust_family", "flag", "note", S.EPV,
]


#: largest number of pairs for an exact signed-rank P (beyond it, the normal approximation)
EXACT_MAX_N = 50


@dataclass(frozen=True)
class Summary:
    """n (non-missing), median, first and third quartile (numpy 'linear' percentiles), mean."""

    n: int
    median: float
    q1: float
    q3: float
    mean: float


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p: float
    estimate: float
    n1: int
    n2: int = 0
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    note: str = ""


def _clean(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def median_iqr(x: ArrayLike) -> Summary:
    """Median and interquartile range of the finite values of ``x`` (same unit as ``x``)."""
    a = _clean(x)
    if a.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Summary(int(a.size), float(med), float(q1), float(q3), float(a.mean()))


def rank_sum(x: ArrayLike, y: ArrayLike, *, min_n: int = 2) -> TestResult:
    """Two-sided Mann-Whitney U (Wilcoxon rank-sum) test of ``x`` (treatment) vs ``y`` (control).

    ``statistic`` is U of ``x``; ``estimate`` is median(x) − median(y) in the data's unit. Exact P when one
    sample has at most 8 values and there are no ties, normal approximation with tie and continuity correction
    otherwise (scipy's ``method='auto'``).
    """
    a, b = _clean(x), _clean(y)
    est = float(np.median(a) - np.median(b)) if a.size and b.size else float("nan")
    if a.size < min_n or b.size < min_n:
        return TestResult(float("nan"), float("nan"), est, int(a.size), int(b.size),
                          note=f"fewer than {min_n} values in an arm")
    res = stats.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    return TestResult(float(res.statistic), float(res.pvalue), est, int(a.size), int(b.size))


def signed_rank(d: ArrayLike, *, min_n: int = 2) -> TestResult:
    """Two-sided Wilcoxon signed-rank test that paired differences ``d`` (follow-up − baseline) centre on 0.

    ``statistic`` is scipy's W (smaller rank sum); ``estimate`` is the median difference. Zero
    differences are dropped (``zero_method='wilcox'``); when all are zero P is NaN with a note. P is exact
    when there are no ties or zeros and at most :data:`EXACT_MAX_N` pairs, otherwise the normal
    approximation with tie and continuity correction (the conventions of R's ``wilcox.test``).
    """
    a = _clean(d)
    est = float(np.median(a)) if a.size else float("nan")
    if a.size < min_n:
        return TestResult(float("nan"), float("nan"), est, int(a.size), note=f"fewer than {min_n} pairs")
    if np.all(a == 0):
        return TestResult(float("nan"), float("nan"), est, int(a.size), note="all differences are zero")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's small-sample normal-approximation notice
        nz = a[a != 0]
        exact = nz.size == a.size and np.unique(np.abs(a)).size == a.size and a.size <= EXACT_MAX_N
        res = stats.wilcoxon(a, zero_method="wilcox", alternative="two-sided",
                             method="exact" if exact else "approx", correction=not exact)
    return TestResult(float(res.statistic), float(res.pvalue), est, int(a.size))


def fisher_2x2(resp_t: int, n_t: int, resp_c: int, n_c: int, *, confidence: float = 0.95) -> TestResult:
    """Fisher's exact test of responder proportions, treatment vs control (two-sided).

    Table rows = arm (treatment, control), columns = (responder, non-responder). ``estimate`` is the
    conditional maximum-likelihood odds ratio with its exact ``confidence`` interval (scipy
    ``odds_ratio(kind='conditional')``; 0 or inf when a cell is empty); ``statistic`` is the sample odds
    ratio reported by ``fisher_exact``.
    """
    if min(resp_t, n_t, resp_c, n_c) < 0 or resp_t > n_t or resp_c > n_c:
        raise ValueError("responder counts must lie between 0 and the arm size")
    if n_t == 0 or n_c == 0:
        nan = float("nan")
        return TestResult(nan, nan, nan, n_t, n_c, note="an arm has no patients")
    table = np.array([[resp_t, n_t - resp_t], [resp_c, n_c - resp_c]])
    sample_or, p = stats.fisher_exact(table, alternative="two-sided")
    note = ""
    if (table.sum(axis=0) == 0).any():
        est, lo, hi = float("nan"), float("nan"), float("nan")
        note = "no variation in response: odds ratio undefined"
    else:
        res = odds_ratio(table, kind="conditional")
        ci = res.confidence_interval(confidence_level=confidence)
        est, lo, hi = float(res.statistic), float(ci.low), float(ci.high)
    return TestResult(float(sample_or), float(p), est, int(n_t), int(n_c), lo, hi, note)


def _holm(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="mergesort")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _fdr_bh(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


#: multiplicity adjustments (TrialConfig.multiplicity.method); same results as statsmodels'
#: ``multipletests`` (checked by the tests) without its per-call garbage collection
ADJUSTMENTS = {"holm": _holm, "fdr_bh": _fdr_bh, "none": lambda p: p.copy()}


def adjust_pvalues(p: ArrayLike, method: str) -> np.ndarray:
    """Multiplicity-adjusted P values (``holm``: Holm step-down family-wise; ``fdr_bh``: Benjamini-Hochberg
    false discovery rate; ``none``). NaNs stay NaN and are not counted in the family."""
    if method not in ADJUSTMENTS:
        raise StatsError(f"unknown multiplicity adjustment {method!r}; choose one of {sorted(ADJUSTMENTS)}")
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = ADJUSTMENTS[method](p[ok])
    return out
