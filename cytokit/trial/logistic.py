"""Logistic regression of a binary clinical outcome on arm and covariates, with separation handling.

The design matrix is built explicitly (intercept, treatment indicator, numeric covariates, treatment-coded
dummies of text covariates with the alphabetically first level as reference) so term names do not depend
on formula parsing of untrusted labels. The fit is statsmodels ``Logit`` (maximum likelihood); odds ratios
are exp(coefficient) with Wald 95 % confidence intervals and Wald P values.

Complete or quasi-complete separation (an arm or covariate level in which everyone, or no-one, responds)
makes maximum-likelihood estimates diverge. It is detected (statsmodels' perfect-separation warning, a
fit that does not converge, or fitted probabilities of 0/1 together with an exploding coefficient) and
then the model is refitted with Firth's penalised likelihood, which gives finite estimates; every row
carries ``flag='separation'`` and says so in ``note``. A Firth fit's confidence limits are profile
penalised-likelihood limits and its P values penalised likelihood-ratio tests (Heinze & Schemper 2002, the
defaults of R's logistf): Wald limits around a Firth estimate under separation can be far off.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from ..results import schema as S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogisticFit:
    """Coefficients on the log-odds scale; ``odds_ratios`` etc. are exp() of them (per unit of the term)."""

    terms: list[str]
    coef: np.ndarray
    se: np.ndarray
    p: np.ndarray
    n: int
    n_events: int
    method: str  # "mle" or "firth"
    separation: bool
    converged: bool
    notes: list[str] = field(default_factory=list)
    #: Firth fits: profile penalised-likelihood 95 % limits (log-odds scale) and the penalised likelihood-ratio
    #: chi-square behind ``p``; None for maximum likelihood (Wald limits, Wald z)
    ci: np.ndarray | None = None
    chi2: np.ndarray | None = None

    def table(self, confidence: float = 0.95) -> pd.DataFrame:
        """Per term: coefficient, SE, odds ratio with its 95 % limits, P and ``statistic`` (Wald z, or the
        penalised likelihood-ratio chi-square of a Firth fit)."""
        z = stats.norm.ppf(0.5 + confidence / 2)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            low, high = (self.coef - z * self.se, self.coef + z * self.se) if self.ci is None else self.ci.T
            return pd.DataFrame({
                "term": self.terms,
                "coef": self.coef,
                "se": self.se,
                "odds_ratio": np.exp(self.coef),
                "ci_low": np.exp(low),
                "ci_high": np.exp(high),
                "p": self.p,
                "statistic": self.coef / self.se if self.chi2 is None else self.chi2,
            })


def design_matrix(data: pd.DataFrame, *, treatment: str, control: str, covariates: list[str],
                  scales: dict[str, float] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """(X, notes): intercept, ``arm[treatment vs control]``, then covariates.

    ``data`` needs ``arm`` and the covariate columns. Numeric covariates are divided by ``scales[name]``
    when given (term ``name (per S)``); text covariates become dummies ``name[level vs reference]``.
    Constant covariates are dropped with a note.
    """
    scales = scales or {}
    notes: list[str] = []
    X = pd.DataFrame({"(intercept)": 1.0}, index=data.index)
    X[f"arm[{treatment} vs {control}]"] = (data[S.ARM] == treatment).astype(float)
    for cov in covariates:
        col = data[cov]
        numeric = pd.to_numeric(col, errors="coerce")
        if numeric.notna().sum() == col.notna().sum() and col.notna().any():
            if numeric.nunique() < 2:
                notes.append(f"covariate {cov} is constant: dropped")
                continue
            s = scales.get(cov)
            X[f"{cov} (per {s:g})" if s else cov] = numeric / s if s else numeric
        else:
            levels = sorted(col.dropna().astype(str).unique())
            if len(levels) < 2:
                notes.append(f"covariate {cov} has one level: dropped")
                continue
            for lev in levels[1:]:
                X[f"{cov}[{lev} vs {levels[0]}]"] = (col.astype(str) == lev).astype(float).where(col.notna())
    return X, notes


def penalised_loglik(y: np.ndarray, X: np.ndarray, beta: np.ndarray) -> float:
    """Firth's penalised log-likelihood: log L(beta) + 0.5 log det I(beta) (Jeffreys prior)."""
    eta = np.clip(X @ beta, -30, 30)
    pi = 1.0 / (1.0 + np.exp(-eta))
    loglik = float(np.sum(y * np.log(pi) + (1 - y) * np.log1p(-pi)))
    sign, logdet = np.linalg.slogdet(X.T @ (X * (pi * (1 - pi))[:, None]))
    return loglik + 0.5 * float(logdet) if sign > 0 else -np.inf


def _firth_newton(y: np.ndarray, X: np.ndarray, beta: np.ndarray, free: np.ndarray, *, max_iter: int,
                  tol: float) -> tuple[np.ndarray, bool]:
    """Maximise the penalised likelihood over the coefficients ``free`` (bool mask), the others held at their
    value in ``beta``; the penalty is always that of the whole model (as logistf's profile fits)."""
    beta = beta.copy()
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -30, 30)
        pi = 1.0 / (1.0 + np.exp(-eta))
        w = pi * (1 - pi)
        info = X.T @ (X * w[:, None])
        cov = np.linalg.pinv(info)
        h = np.einsum("ij,jk,ik->i", X * w[:, None], cov, X)  # leverages of the weighted hat matrix
        score = X.T @ (y - pi + h * (0.5 - pi))
        step = np.zeros_like(beta)
        step[free] = np.linalg.pinv(info[np.ix_(free, free)]) @ score[free]
        # cap large steps: keeps Newton stable when the MLE would diverge
        m = np.max(np.abs(step))
        if m > 5:
            step *= 5 / m
        # halve a step that lowers the penalised likelihood
        before = penalised_loglik(y, X, beta)
        for _half in range(20):
            if penalised_loglik(y, X, beta + step) >= before - 1e-12:
                break
            step /= 2
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            return beta, True
    return beta, False


def firth_profile(y: np.ndarray, X: np.ndarray, beta: np.ndarray, *, confidence: float = 0.95,
                  max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Penalised-likelihood inference at the Firth estimate ``beta`` (Heinze & Schemper 2002; R logistf's
    defaults): per coefficient the penalised likelihood-ratio chi-square (1 df) against 0, its P, and the
    profile penalised-likelihood confidence limits (log-odds scale; +-inf when the profile does not fall
    far enough within |coefficient| <= 30). Under separation these are the reliable ones; Wald limits
    around a Firth estimate can be badly off."""
    from scipy.optimize import brentq

    k = X.shape[1]
    top = penalised_loglik(y, X, beta)
    crit = stats.chi2.ppf(confidence, 1)
    chi2, low, high = np.full(k, np.nan), np.full(k, -np.inf), np.full(k, np.inf)

    def drop(j: int, value: float) -> float:  # 2 x (max penalised loglik - profile at beta_j = value)
        start = beta.copy()
        start[j] = value
        free = np.ones(k, dtype=bool)
        free[j] = False
        fitted, _ = _firth_newton(y, X, start, free, max_iter=max_iter, tol=1e-8)
        return 2.0 * (top - penalised_loglik(y, X, fitted))

    for j in range(k):
        chi2[j] = max(drop(j, 0.0), 0.0)
        for side in (-1.0, 1.0):
            step, edge = 0.5, beta[j]
            while abs(edge - beta[j]) < 30:
                edge = beta[j] + side * step
                if drop(j, edge) > crit:
                    limit = brentq(lambda b: drop(j, b) - crit, min(beta[j], edge), max(beta[j], edge), xtol=1e-6)
                    (low if side < 0 else high)[j] = limit
                    break
                step *= 2
    return chi2, stats.chi2.sf(chi2, 1), low, high


def firth_logit(y: np.ndarray, X: np.ndarray, *, max_iter: int = 100,
                tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, bool]:
    """Firth's bias-reduced logistic regression by Newton-Raphson on the penalised score.

    Returns (coefficients, standard errors from the inverse penalised information, converged).
    """
    beta, converged = _firth_newton(y, X, np.zeros(X.shape[1]), np.ones(X.shape[1], dtype=bool),
                                    max_iter=max_iter, tol=tol)
    eta = np.clip(X @ beta, -30, 30)
    pi = 1.0 / (1.0 + np.exp(-eta))
    info = X.T @ (X * (pi * (1 - pi))[:, None])
    se = np.sqrt(np.clip(np.diag(np.linalg.pinv(info)), 0, None))
    return beta, se, converged


def _separated(fit, y: np.ndarray) -> bool:
    fitted = np.asarray(fit.predict())
    extreme = (fitted < 1e-6) | (fitted > 1 - 1e-6)
    big = np.any(np.abs(np.asarray(fit.params)) > 15) or np.any(~np.isfinite(np.asarray(fit.bse)))
    return bool(extreme.any() and big)


def fit_logistic(y: pd.Series, X: pd.DataFrame, *, max_iter: int = 200) -> LogisticFit:
    """Fit ``y`` (0/1) on ``X`` (with intercept); Firth refit when separation is detected."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import (ConvergenceWarning, PerfectSeparationError,
                                                 PerfectSeparationWarning)

    yv = np.asarray(y, dtype=float)
    Xv = np.asarray(X, dtype=float)
    notes: list[str] = []
    separation = False
    converged = True
    fit = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(yv, Xv).fit(disp=0, maxiter=max_iter, method="newton")
        except PerfectSeparationError:
            separation = True
        except np.linalg.LinAlgError:
            separation = True
            notes.append("singular information matrix")
    for w in caught:
        if issubclass(w.category, PerfectSeparationWarning):
            separation = True
        elif issubclass(w.category, ConvergenceWarning):
            converged = False
    if fit is not None:
        converged = converged and bool(fit.mle_retvals.get("converged", True))
        if not converged or _separated(fit, yv):
            separation = True
    if separation:
        log.warning("logistic regression: separation (perfect prediction) detected; using Firth estimates")
        notes.append("separation (perfect prediction): Firth penalised-likelihood estimates, profile "
                     "penalised-likelihood CI and likelihood-ratio P")
        beta, se, conv = firth_logit(yv, Xv, max_iter=max_iter)
        chi2, p, low, high = firth_profile(yv, Xv, beta, max_iter=max_iter)
        if not conv:
            notes.append("Firth fit did not converge")
        return LogisticFit(list(X.columns), beta, se, p, len(yv), int(yv.sum()), "firth", True, conv, notes,
                           ci=np.column_stack([low, high]), chi2=chi2)
    assert fit is not None  # no fit always means separation (handled above)
    return LogisticFit(list(X.columns), np.asarray(fit.params), np.asarray(fit.bse), np.asarray(fit.pvalues),
                       len(yv), int(yv.sum()), "mle", False, converged, notes)
