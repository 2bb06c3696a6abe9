"""The smallest P value a test can give with the group sizes at hand (discrete tests on tiny groups).

With 4 vs 4 patients the exact two-sided Wilcoxon rank-sum test cannot go below 2 / C(8, 4) = 0.0286
however large the effect; after a multiplicity adjustment no result may be able to reach the threshold.
A reader must see that bound next to the P value, or a "P = 0.0286" reads like a finding.

* :func:`rank_sum_min_p` ``(n1, n2)`` — P of two completely separated samples under the same test and
  method choice as :func:`cytokit.trial.stats.rank_sum` (scipy ``mannwhitneyu``, ``method='auto'``);
* :func:`fisher_min_p` ``(n_t, n_c, responders)`` — the smallest two-sided Fisher P over all 2×2 tables
  with those margins (conditional test: the margins are fixed).
"""
from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=256)
def rank_sum_min_p(n1: int, n2: int) -> float:
    """Smallest two-sided rank-sum P for group sizes ``n1``, ``n2`` (NaN when a group is empty)."""
    if n1 < 1 or n2 < 1:
        return float("nan")
    from scipy import stats

    a = list(range(n1))
    b = [n1 + i for i in range(n2)]
    return float(stats.mannwhitneyu(a, b, alternative="two-sided", method="auto").pvalue)


@lru_cache(maxsize=1024)
def fisher_min_p(n_t: int, n_c: int, responders: int) -> float:
    """Smallest two-sided Fisher exact P with arm sizes ``n_t``, ``n_c`` and ``responders`` in total."""
    if n_t < 0 or n_c < 0 or not 0 <= responders <= n_t + n_c or n_t + n_c == 0:
        return float("nan")
    from scipy import stats

    lo, hi = max(0, responders - n_c), min(responders, n_t)
    best = 1.0
    for a in range(lo, hi + 1):
        p = stats.fisher_exact([[a, n_t - a], [responders - a, n_c - (responders - a)]])[1]
        best = min(best, float(p))
    return best


def is_tiny(min_p: float, threshold: float = 0.001) -> bool:
    """True when the attainable minimum is worth stating (it is above ``threshold``)."""
    return not math.isnan(min_p) and min_p > threshold
