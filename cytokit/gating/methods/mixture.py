"""A full-covariance Gaussian mixture fitted by EM in numpy (the ``gmm_ellipse`` gate's model).

The scatter gate fits a few (1-10) components to at most a few ten thousand events in 1-3 dimensions;
numpy does that in milliseconds, while importing scikit-learn for it costs about a second of start-up.
The algorithm is the textbook one, with the same model, stopping rule and regularisation as
``sklearn.mixture.GaussianMixture(covariance_type="full", n_init=1, init_params="kmeans")``:

1. initial partition: k-means (greedy k-means++ seeding drawn from ``numpy.random.RandomState(seed)`` in
   the order scikit-learn draws them, then Lloyd iterations until no label changes or the centres' total
   squared shift is at most ``1e-4`` x the mean per-dimension variance);
2. M-step on that hard partition, then EM: E-step (log responsibilities), M-step (weights, means,
   covariances + ``reg_covar`` on the diagonal), until the mean log-likelihood per event changes by
   less than ``tol`` or ``max_iter`` EM steps were made (then ``converged`` is False).

Deterministic for a given ``seed`` and input. With the same seed it starts from the same k-means++ seeds
as scikit-learn, so the fits agree up to floating-point rounding (which can still, rarely, tip a k-means
assignment); ``tests/test_gating_mixture.py`` compares the gates' memberships on bundled and real files.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from dataclasses import dataclass

import numpy as np

#: relative centre shift below which k-means stops (x mean per-dimension variance of the data)
KMEANS_TOL = 1e-4
KMEANS_MAX_ITER = 300


@dataclass(frozen=True)
class MixtureFit:
    """Fitted mixture: ``weights`` (k,) summing to 1, ``means`` (k, d), ``covariances`` (k, d, d), in the
    units of the data it was fitted on; ``converged`` is False when ``max_iter`` EM steps did not meet
    ``tol``; ``lower_bound`` is the final mean log-likelihood per event."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    converged: bool
    n_iter: int
    lower_bound: float


def _sq_dist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances between the rows of ``X`` and of ``C``."""
    return np.maximum((X * X).sum(1)[:, None] - 2.0 * (X @ C.T) + (C * C).sum(1)[None, :], 0.0)


def _kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ seeding: each new centre is the best (lowest potential) of ``2 + ln k``
    candidates drawn with probability proportional to the squared distance to the nearest centre."""
    n = X.shape[0]
    trials = 2 + int(math.log(k))
    centres = np.empty((k, X.shape[1]))
    uniform_cdf = np.cumsum(np.full(n, 1.0 / n))
    uniform_cdf /= uniform_cdf[-1]
    first = min(int(np.searchsorted(uniform_cdf, rng.random_sample(), side="right")), n - 1)
    centres[0] = X[first]
    closest = _sq_dist(X, centres[:1])[:, 0]
    for c in range(1, k):
        draws = rng.random_sample(trials) * closest.sum()
        picks = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
        candidate_d = np.minimum(closest[:, None], _sq_dist(X, X[picks]))
        best = int(np.argmin(candidate_d.sum(0)))
        centres[c] = X[picks[best]]
        closest = candidate_d[:, best]
    return centres


def kmeans_labels(X: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """Cluster label (0..k-1) of each row of ``X`` by k-means (Lloyd iterations from k-means++ seeds).

    Stops when no label changes or the centres' total squared shift is at most ``KMEANS_TOL`` x the
    mean per-dimension variance; an empty cluster takes the point farthest from its own centre.
    """
    X = X - X.mean(0)  # centred: more accurate squared distances
    centres = _kmeans_plus_plus(X, k, rng)
    tol = KMEANS_TOL * float(np.mean(np.var(X, axis=0)))
    n = X.shape[0]
    previous: np.ndarray | None = None
    for _ in range(KMEANS_MAX_ITER):
        d = _sq_dist(X, centres)
        labels = np.argmin(d, axis=1)
        empty = np.flatnonzero(np.bincount(labels, minlength=k) == 0)
        if len(empty):  # each empty cluster takes one of the points farthest from their own centres
            farthest = np.argsort(-d[np.arange(n), labels], kind="stable")[: len(empty)]
            labels[farthest] = empty
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.stack([np.bincount(labels, weights=X[:, i], minlength=k) for i in range(X.shape[1])], 1)
        new = sums / counts[:, None]
        shift = float(((new - centres) ** 2).sum())
        centres = new
        if previous is not None and np.array_equal(labels, previous):
            return labels  # strict convergence: the labels are the final centres' own
        if shift <= tol:
            break
        previous = labels
    return np.argmin(_sq_dist(X, centres), axis=1)


def _m_step(X: np.ndarray, resp: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, means, covariances) from responsibilities ``resp`` (k, n: one row per component)."""
    nk = resp.sum(1) + 10 * np.finfo(resp.dtype).eps
    means = (resp @ X) / nk[:, None]
    d = X.shape[1]
    covs = np.empty((len(nk), d, d))
    for j in range(len(nk)):
        diff = X - means[j]
        covs[j] = (resp[j] * diff.T) @ diff / nk[j]
        covs[j].flat[:: d + 1] += reg_covar
    return nk / X.shape[0], means, covs


def _log_prob(X: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(k, n) log density of each row of ``X`` under each Gaussian component (through the Cholesky
    factor of each precision matrix: whitened residuals ``(x - mean) @ inv(L).T`` with ``cov = L L.T``)."""
    n, d = X.shape
    out = np.empty((len(means), n))
    for j in range(len(means)):
        try:
            chol = np.linalg.cholesky(covs[j])
        except np.linalg.LinAlgError:
            raise ValueError("the Gaussian mixture fit failed: a component has an ill-defined (singular) "
                             "covariance; use fewer components or a larger reg_covar") from None
        prec_chol = np.linalg.inv(chol).T  # d x d: tiny
        y = X @ prec_chol - means[j] @ prec_chol
        out[j] = -0.5 * (d * math.log(2 * math.pi) + np.einsum("ij,ij->i", y, y)) + np.log(np.diag(prec_chol)).sum()
    return out


def _logsumexp_columns(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0))


def fit_gaussian_mixture(X: np.ndarray, n_components: int, *, seed: int = 0, max_iter: int = 200,
                         tol: float = 1e-3, reg_covar: float = 1e-6) -> MixtureFit:
    """Fit a ``n_components`` full-covariance Gaussian mixture to the rows of ``X`` (n, d) by EM.

    ``tol`` is on the change of the mean log-likelihood per event; ``reg_covar`` is added to every
    covariance's diagonal (data units squared). Raises ``ValueError`` for fewer rows than components or
    a singular component.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < n_components or n_components < 1:
        raise ValueError(f"cannot fit {n_components} components to {X.shape[0]} events")
    labels = kmeans_labels(X, n_components, np.random.RandomState(seed))
    resp = np.zeros((n_components, X.shape[0]))
    resp[labels, np.arange(X.shape[0])] = 1.0
    weights, means, covs = _m_step(X, resp, reg_covar)
    lower_bound = -np.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        weighted = _log_prob(X, means, covs) + np.log(weights)[:, None]
        norm = _logsumexp_columns(weighted)
        resp = np.exp(weighted - norm)
        weights, means, covs = _m_step(X, resp, reg_covar)
        lower_bound = float(norm.mean())
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    return MixtureFit(weights=weights, means=means, covariances=covs, converged=converged, n_iter=n_iter,
                      lower_bound=lower_bound)


def merge_components(gmm: MixtureFit, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the single Gaussian with the same first two moments as the components
    ``members`` (bool per component) of ``gmm`` together, weighted by their mixture weights (units of the
    data the mixture was fitted on)."""
    w = gmm.weights[members] / gmm.weights[members].sum()
    means, covs = gmm.means[members], gmm.covariances[members]
    mean = w @ means
    diff = means - mean
    cov = np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, diff, diff)
    return mean, cov


def chi2_quantile(p: float, df: int) -> float:
    """Quantile of the chi-squared distribution: the squared Mahalanobis radius holding fraction ``p``
    (0 < p < 1) of a ``df``-dimensional Gaussian. Closed form for 1 and 2 dimensions (the scatter gates'
    cases: ``NormalDist`` quantile squared; ``-2 ln(1 - p)``), ``scipy.special`` otherwise."""
    if not 0 < p < 1:
        raise ValueError(f"coverage must be between 0 and 1, got {p}")
    if df == 1:
        return NormalDist().inv_cdf(0.5 + p / 2) ** 2
    if df == 2:
        return -2.0 * math.log1p(-p)
    from scipy.special import gammaincinv  # imported where used: scipy loads slowly

    return 2.0 * float(gammaincinv(df / 2.0, p))
