"""Logistic regression of a binary clinical outcome on arm and covariates, with separation handling.

The design matrix is built explicitly (intercept, treatment indicator, numeric covariates, treatment-coded
dummies of text covariates with the alphabetically first level as reference) so term names do not depend
on formula parsing of untrusted labels. The fit is statsmodels ``Logit`` (maximum likelihood); odds ratios
are exp(coefficient) with Wald 95 % confidence intervals and Wald P values.

Complete or quasi-complete separation (an arm or covariate level in which everyone, or no-one, responds)
makes maximum-likelihood estimates diverge. It is detected (statsmodels' perfect-separation warning, a
fit that does not converge, or fitted probabilities of 0/1 together with an exploding coefficient) and
then the model is refitted with Firth's penalised likelihood, which gives finite estimates; every row
carries ``flag='separation'`` and says so in ``note``.
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

    def table(self, confidence: float = 0.95) -> pd.DataFrame:
        z = stats.norm.ppf(0.5 + confidence / 2)
        with np.errstate(over="ignore"):
            return pd.DataFrame({
                "term": self.terms,
                "coef": self.coef,
                "se": self.se,
                "odds_ratio": np.exp(self.coef),
                "ci_low": np.exp(self.coef - z * self.se),
                "ci_high": np.exp(self.coef + z * self.se),
                "p": self.p,
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


def firth_logit(y: np.ndarray, X: np.ndarray, *, max_iter: int = 100,
                tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, bool]:
    """Firth's bias-reduced logistic regression by Newton-Raphson on the penalised score.

    Returns (coefficients, standard errors from the inverse penalised information, converged).
    """
    beta = np.zeros(X.shape[1])
    converged = False
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -30, 30)
        pi = 1.0 / (1.0 + np.exp(-eta))
        w = pi * (1 - pi)
        info = X.T @ (X * w[:, None])
        cov = np.linalg.pinv(info)
        h = np.einsum("ij,jk,ik->i", X * w[:, None], cov, X)  # leverages of the weighted hat matrix
        score = X.T @ (y - pi + h * (0.5 - pi))
        step = cov @ score
        # halve large steps: keeps Newton stable when the MLE would diverge
        m = np.max(np.abs(step))
        if m > 5:
            step *= 5 / m
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
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
        notes.append("separation (perfect prediction): Firth penalised-likelihood estimates, Wald CI")
        beta, se, conv = firth_logit(yv, Xv, max_iter=max_iter)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = 2 * stats.norm.sf(np.abs(beta / se))
        if not conv:
            notes.append("Firth fit did not converge")
        return LogisticFit(list(X.columns), beta, se, p, len(yv), int(yv.sum()), "firth", True, conv, notes)
    assert fit is not None  # no fit always means separation (handled above)
    return LogisticFit(list(X.columns), np.asarray(fit.params), np.asarray(fit.bse), np.asarray(fit.pvalues),
                       len(yv), int(yv.sum()), "mle", False, converged, notes)
