"""Longitudinal models of one population × measure over visits: ``value ~ arm * visit``.

``mixedlm``: linear mixed model with a random intercept per patient (statsmodels ``MixedLM``). The joint
test of the arm × visit interaction (do the arms' trajectories differ?) is a likelihood-ratio test between
maximum-likelihood fits with and without the interaction; per-visit interaction coefficients (difference
between arms in the change from baseline to that visit, in the measure's unit) come from the REML fit.

``gee``: generalised estimating equations, Gaussian family, exchangeable working correlation within
patient, robust (sandwich) standard errors; the joint interaction test is a Wald chi-square.

Visits enter as treatment-coded categories with the baseline visit as reference; the design is built
explicitly (``treat`` 0/1 and visit indicator columns) so arbitrary visit labels never reach a formula
parser. :data:`LONGITUDINAL_MODELS` is the registry: name -> fitting function.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats
from ..results import schema as S


@dataclass(frozen=True)
class LongitudinalFit:
    """Interaction coefficients per visit and the joint interaction test."""

    model: str
    visits: list[str]  # follow-up visits, in order (one interaction term each)
    coef: np.ndarray
    se: np.ndarray
    p: np.ndarray
    joint_statistic: float
    joint_df: int
    joint_p: float
    n_obs: int
    n_patients: int
    flags: list[str] = field(default_factory=list)


def design(data: pd.DataFrame, baseline_visit: str, visits: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Columns: intercept, treat, one indicator per follow-up visit, treat × each follow-up visit.

    ``data`` has ``treat`` (0/1) and ``visit``; ``visits`` is the visit order (baseline first or anywhere).
    Returns (X, interaction column names).
    """
    follow = [v for v in visits if v != baseline_visit and v in set(data[S.VISIT])]
    X = pd.DataFrame({"intercept": 1.0, "treat": data["treat"].astype(float)}, index=data.index)
    inter = []
    for i, v in enumerate(follow):
        ind = (data[S.VISIT] == v).astype(float)
        X[f"visit_{i}"] = ind
        X[f"treat_x_visit_{i}"] = ind * X["treat"]
        inter.append(f"treat_x_visit_{i}")
    return X, inter


def _record(caught, flags: list[str]) -> None:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    for w in caught:
        if issubclass(w.category, ConvergenceWarning) and "not_converged" not in flags:
            flags.append("not_converged")


def _model_arrays(data: pd.DataFrame, baseline_visit: str, visits: list[str]):
    """Design matrix, interaction columns and their indices, response, groups and follow-up visits."""
    X, inter = design(data, baseline_visit, visits)
    idx = [list(X.columns).index(c) for c in inter]
    follow = [v for v in visits if v != baseline_visit and v in set(data[S.VISIT])]
    return X, inter, idx, data["value"].to_numpy(float), data[S.PATIENT].to_numpy(), follow


def _wald_p(coef: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Two-sided normal P of each coefficient."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * stats.norm.sf(np.abs(coef / se))


def fit_mixedlm(data: pd.DataFrame, baseline_visit: str, visits: list[str]) -> LongitudinalFit:
    """Random-intercept linear mixed model; ``data`` has ``patient``, ``treat``, ``visit``, ``value``."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    X, inter, idx, y, groups, follow = _model_arrays(data, baseline_visit, visits)
    flags: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reml = MixedLM(y, X, groups=groups).fit(reml=True)
        full = MixedLM(y, X, groups=groups).fit(reml=False)
        reduced = MixedLM(y, X.drop(columns=inter), groups=groups).fit(reml=False)
    _record(caught, flags)
    lr = max(0.0, 2.0 * (full.llf - reduced.llf))
    params, bse = np.asarray(reml.fe_params), np.asarray(reml.bse_fe)
    coef, se = params[idx], bse[idx]
    return LongitudinalFit("mixedlm", follow, coef, se, _wald_p(coef, se), float(lr), len(inter),
                           float(stats.chi2.sf(lr, len(inter))), len(y), int(pd.Series(groups).nunique()), flags)


def fit_gee(data: pd.DataFrame, baseline_visit: str, visits: list[str]) -> LongitudinalFit:
    """Gaussian GEE, exchangeable working correlation, robust SEs; joint Wald test of the interaction."""
    from statsmodels.genmod.cov_struct import Exchangeable
    from statsmodels.genmod.families import Gaussian
    from statsmodels.genmod.generalized_estimating_equations import GEE

    X, inter, idx, y, groups, follow = _model_arrays(data, baseline_visit, visits)
    flags: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = GEE(y, X, groups=groups, family=Gaussian(), cov_struct=Exchangeable()).fit()
    _record(caught, flags)
    params, cov = np.asarray(res.params), np.asarray(res.cov_params())
    coef, se = params[idx], np.sqrt(np.diag(cov)[idx])
    sub = cov[np.ix_(idx, idx)]
    wald = float(coef @ np.linalg.pinv(sub) @ coef) if idx else float("nan")
    return LongitudinalFit("gee", follow, coef, se, _wald_p(coef, se), wald, len(inter), float(stats.chi2.sf(wald, len(inter))),
                           len(y), int(pd.Series(groups).nunique()), flags)


#: registry of longitudinal models (TrialConfig.longitudinal.model)
LONGITUDINAL_MODELS: dict[str, Callable[[pd.DataFrame, str, list[str]], LongitudinalFit]] = {
    "mixedlm": fit_mixedlm,
    "gee": fit_gee,
}
