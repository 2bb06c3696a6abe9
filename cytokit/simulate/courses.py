"""Patient courses: baseline immunology, designed arm effects over time, and per-visit leaf weights.

Design of the CD4 endpoint (all counts cells/µL):

* baseline CD4 ``b ~ LogNormal(log(baseline_cd4_median), baseline_cd4_log_sd)``;
* gain by the reference week ``g ~ Normal(m, s)`` (floored at ``-0.5 b``) with ``m`` the arm's
  ``cd4_gain_median``; ``s`` is solved (:func:`gain_sd`) so that ``P(g >= 0.8 b)`` equals the arm's
  ``pct_reaching_80`` / 100 in expectation over ``b`` — the flooring changes neither the median nor that
  probability;
* ``CD4(week) = b + g * ramp(week)``, ``ramp(w) = (1 - exp(-w/τ)) / (1 - exp(-ref/τ))`` (0 at W0, 1 at
  the reference week).

Other subsets move with the same ramp: additive changes of fractions (naive, CD28+, CD25+, Treg,
CD56bright), a fold change of NK counts and additive changes of CD8 and B counts. Lymphocytes per µL are
the sum of all lymphocyte subsets, so ``CD4 % of lymphocytes × lymphocytes_per_uL = CD4 count``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

from ..errors import ConfigError
from .config import ARMS, CourseConfig
from .phenotypes import SUBSETS, cd4_leaf_name, cd8_leaf_name

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)  # E[f(Z)], Z ~ N(0, 1)
_GH_W = _GH_W / _GH_W.sum()


def _prob(mean_gain: float, sd_gain: float, b_median: float, b_log_sd: float) -> float:
    b = b_median * np.exp(b_log_sd * _GH_X)
    return float(np.sum(_GH_W * stats.norm.sf((0.8 * b - mean_gain) / sd_gain)))


def gain_sd(mean_gain: float, pct_reaching_80: float, course: CourseConfig, arm: str = "") -> float:
    """The gain SD (cells/µL) that makes ``pct_reaching_80`` % of patients reach a 1.8× baseline CD4."""
    return _gain_sd(float(mean_gain), float(pct_reaching_80), course.baseline_cd4_median,
                    course.baseline_cd4_log_sd, arm)


@lru_cache(maxsize=64)
def _gain_sd(mean_gain: float, pct: float, b_median: float, b_log_sd: float, arm: str) -> float:
    target = pct / 100.0
    f = lambda s: _prob(mean_gain, s, b_median, b_log_sd) - target  # noqa: E731
    lo, hi = 1.0, 20000.0
    if f(lo) * f(hi) > 0:
        reach = (f(lo) + target, f(hi) + target)
        raise ConfigError(
            f"simulation course, arm {arm!r}: pct_reaching_80={pct} cannot be reached with "
            f"cd4_gain_median={mean_gain} and this baseline (achievable range about "
            f"{100 * min(reach):.0f}-{100 * max(reach):.0f}%); change one of them"
        )
    return float(optimize.brentq(f, lo, hi, xtol=1e-6))


def ramp(week: float | np.ndarray, tau: float, reference_week: int) -> np.ndarray:
    """Fraction (0 at week 0, 1 at the reference week) of an arm's effect reached at ``week``."""
    w = np.asarray(week, dtype=float)
    return (1 - np.exp(-w / tau)) / (1 - np.exp(-reference_week / tau))


def _logit(p: float) -> float:
    return float(special.logit(p))


@dataclass(frozen=True)
class Patient:
    """A patient's fixed baseline and designed response (counts cells/µL, fractions 0–1)."""

    patient: str
    index: int
    arm: str
    cd4_baseline: float
    cd4_gain: float
    cd8: float
    b: float
    nk: float
    naive: float
    cd28_cd4: float
    cd28_cd8: float
    cd25: float
    treg: float
    cd56bright: float
    tetanus_baseline: float


def draw_patient(patient: str, index: int, arm: str, course: CourseConfig, rng: np.random.Generator,
                 *, tetanus_median: float = 0.4) -> Patient:
    """One patient's baseline and response, drawn from the course design."""
    a = course.arms[arm]
    z = rng.standard_normal(12)
    b = course.baseline_cd4_median * np.exp(course.baseline_cd4_log_sd * z[0])
    g = a.cd4_gain_median + gain_sd(a.cd4_gain_median, a.pct_reaching_80, course, arm) * z[1]
    g = max(g, -0.5 * b)
    sd = course.fraction_logit_sd

    def frac(p: float, k: int) -> float:
        return float(special.expit(_logit(p) + sd * z[k]))

    return Patient(
        patient=patient, index=index, arm=arm, cd4_baseline=float(b), cd4_gain=float(g),
        cd8=float(course.baseline_cd8_median * np.exp(course.count_log_sd * z[2])),
        b=float(course.baseline_b_median * np.exp(course.count_log_sd * z[3])),
        nk=float(course.baseline_nk_median * np.exp(course.count_log_sd * z[4])),
        naive=frac(course.naive_cd4_fraction, 5), cd28_cd4=frac(course.cd28_cd4_fraction, 6),
        cd28_cd8=frac(course.cd28_cd8_fraction, 7), cd25=frac(course.cd25_cd4_fraction, 8),
        treg=frac(course.treg_fraction, 9), cd56bright=frac(course.cd56bright_fraction, 10),
        tetanus_baseline=float(tetanus_median * np.exp(0.8 * z[11])),
    )


@dataclass(frozen=True)
class VisitState:
    """True immunology of one patient at one week (counts cells/µL, fractions 0–1)."""

    cd4: float
    cd8: float
    dn_t: float
    b: float
    nk: float
    other: float
    naive: float
    cd28_cd4: float
    cd28_cd8: float
    cd25: float
    treg: float
    cd56bright: float

    @property
    def t_cells(self) -> float:
        return self.cd4 + self.cd8 + self.dn_t

    @property
    def lymphocytes(self) -> float:
        return self.t_cells + self.b + self.nk + self.other


def visit_state(p: Patient, week: int, course: CourseConfig) -> VisitState:
    """The designed state of patient ``p`` at ``week``."""
    a = course.arms[p.arm]
    r = float(ramp(week, a.time_constant_weeks, course.reference_week))

    def clip(x: float, lo: float = 0.01, hi: float = 0.99) -> float:
        return float(min(max(x, lo), hi))

    cd4 = p.cd4_baseline + p.cd4_gain * r
    cd8 = max(p.cd8 + a.cd8_change_per_uL * r, 50.0)
    dn = course.dn_t_fraction * (cd4 + cd8) / (1 - course.dn_t_fraction)
    b = max(p.b + a.b_change_per_uL * r, 5.0)
    nk = p.nk * (1 + (a.nk_fold - 1) * r)
    non_other = cd4 + cd8 + dn + b + nk
    other = course.other_lymphocyte_fraction * non_other / (1 - course.other_lymphocyte_fraction)
    treg = clip(p.treg + a.treg_change * r, 0.005, 0.5)
    return VisitState(
        cd4=cd4, cd8=cd8, dn_t=dn, b=b, nk=nk, other=other,
        naive=clip(p.naive + a.naive_cd4_change * r, 0.02, 0.9),
        cd28_cd4=clip(p.cd28_cd4 + a.cd28_cd4_change * r, 0.3, 0.99),
        cd28_cd8=clip(p.cd28_cd8 + a.cd28_cd8_change * r, 0.05, 0.97),
        cd25=clip(max(p.cd25 + a.cd25_cd4_change * r, treg + 0.01), 0.02, 0.9),
        treg=treg, cd56bright=clip(p.cd56bright + a.cd56bright_change * r, 0.01, 0.8),
    )


def lymphocyte_weights(s: VisitState, tube: str, course: CourseConfig) -> dict[str, float]:
    """Cells/µL of every lymphocyte leaf of ``tube`` (their sum is ``s.lymphocytes``)."""
    if tube == "nkb":
        nkt = course.nkt_fraction
        bright, neg = s.cd56bright, min(course.cd56neg_fraction, 0.95 - s.cd56bright)
        return {
            "T cell": s.t_cells * (1 - nkt), "NKT-like T cell": s.t_cells * nkt,
            "NK CD56bright": s.nk * bright, "NK CD56- CD16+": s.nk * neg,
            "NK CD56dim": s.nk * (1 - bright - neg), "B cell": s.b, "Other lymphocyte": s.other,
        }
    w: dict[str, float] = {}
    # CD4: memory subsets; CD28 (naive ~all CD28+); CD25- / CD25+ (non-Treg) / Treg (CD28+ only)
    n, t = s.naive, course.temra_cd4_fraction
    mem = max(1 - n - t, 0.0)
    p_sub = {"Naive": n, "CM": mem * course.cm_share_of_memory, "EM": mem * (1 - course.cm_share_of_memory),
             "TEMRA": t}
    q = min(max((s.cd28_cd4 - 0.98 * n) / max(1 - n, 1e-9), 0.02), 0.995)
    p28 = {"Naive": 0.98, "CM": q, "EM": q, "TEMRA": q}
    cd28_total = sum(p_sub[k] * p28[k] for k in SUBSETS)
    treg_share = min(s.treg / cd28_total, 0.95)  # of each CD28+ subset
    f25 = (s.cd25 - s.treg) / (1 - s.treg)  # CD25+ (non-Treg) among non-Treg CD4
    for sub in SUBSETS:
        for cd28 in (True, False):
            base = s.cd4 * p_sub[sub] * (p28[sub] if cd28 else 1 - p28[sub])
            treg = base * treg_share if cd28 else 0.0
            if cd28:
                w[cd4_leaf_name(sub, True, "Treg")] = treg
            w[cd4_leaf_name(sub, cd28, "CD25+")] = (base - treg) * f25
            w[cd4_leaf_name(sub, cd28, "CD25-")] = (base - treg) * (1 - f25)
    # CD8: subsets from the course; CD28 (naive ~all CD28+)
    raw8 = np.asarray(course.cd8_subset_fractions, dtype=float)
    f8 = {sub: float(v) for sub, v in zip(SUBSETS, raw8 / raw8.sum())}
    q8 = min(max((s.cd28_cd8 - 0.97 * f8["Naive"]) / max(1 - f8["Naive"], 1e-9), 0.02), 0.995)
    for sub in SUBSETS:
        p = 0.97 if sub == "Naive" else q8
        w[cd8_leaf_name(sub, True)] = s.cd8 * f8[sub] * p
        w[cd8_leaf_name(sub, False)] = s.cd8 * f8[sub] * (1 - p)
    w.update({"DN T": s.dn_t, "B cell": s.b, "NK cell": s.nk, "Other lymphocyte": s.other})
    return w


def check_arms(course: CourseConfig) -> None:
    """Raise ConfigError early when an arm's targets are unreachable."""
    for arm in ARMS:
        a = course.arms[arm]
        gain_sd(a.cd4_gain_median, a.pct_reaching_80, course, arm)
