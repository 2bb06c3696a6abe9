"""The lymphocyte core of a CD45 x SSC gate: the events of the gate's majority cloud, as a cytometrist redraws a
lymphocyte gate on CD45 x SSC around the CD45-bright, SSC-low cluster and leaves out the monocytes (CD45-bright,
about three times a lymphocyte's side scatter) and the counting beads (brighter in every channel).

On a CD45 x SSC plot the mixture of :func:`.scatter.fit_gmm_ellipse` works on robust-normalised linear axes whose
side-scatter range the granulocytes set (their SSC is ten times a lymphocyte's): lymphocytes and monocytes lie
close together there and one component takes both. Read on CD45 (as transformed) and **log** side scatter, the
two are separate clouds (lymphocytes' log SSC is about symmetric with an SD of ~0.2; monocytes lie ~1.1 above):
the core is the events within the :data:`CORE_QUANTILE` robust (minimum covariance determinant) ellipse of the
gate's majority, which the lymphocytes are in a lymphocyte gate. The engine passes the core as the gate's
template (:func:`cytokit.gating.backgating.scatter_redraws`), so the redrawn ellipse (linear scale, as every
scatter gate) holds ``redraw_coverage`` of the core's events.
"""
from __future__ import annotations

import numpy as np

from .mixture import chi2_quantile

#: chi-squared quantile of the robust ellipse (on CD45 and log SSC) within which an event is in the core
CORE_QUANTILE = 0.999
#: at most this many events are used to estimate the robust centre and covariance (a systematic sample)
CORE_MAX_EVENTS = 5000
#: fewest events for a core
CORE_MIN_EVENTS = 100


def core_axes(X: np.ndarray, log_dims: tuple[bool, ...]) -> np.ndarray:
    """``X`` with the columns flagged in ``log_dims`` (linear scatter) on a natural-log scale (values below 1
    read as 1) and the others (transformed fluorescence, e.g. logicle CD45) as they are."""
    Y = np.asarray(X, dtype=np.float64).copy()
    for j, is_log in enumerate(log_dims):
        if is_log:
            Y[:, j] = np.log(np.maximum(Y[:, j], 1.0))
    return Y


def lymphocyte_core(X: np.ndarray, log_dims: tuple[bool, ...], quantile: float | None = None) -> np.ndarray | None:
    """Bool per row of ``X`` (a gate's events in its dims, without counting beads): inside the ``quantile``
    chi-squared ellipse (default :data:`CORE_QUANTILE`) of the minimum-covariance-determinant centre and covariance (scikit-learn's
    ``MinCovDet``: the half of the events with the smallest covariance, reweighted) on :func:`core_axes`. The
    majority cloud's events; None when there are fewer than :data:`CORE_MIN_EVENTS` events or the robust
    covariance is singular."""
    from sklearn.covariance import MinCovDet

    if X.shape[0] < CORE_MIN_EVENTS:
        return None
    Y = core_axes(X, log_dims)
    step = int(np.ceil(Y.shape[0] / CORE_MAX_EVENTS))
    mcd = MinCovDet(random_state=0).fit(Y[::step])
    cov = np.atleast_2d(mcd.covariance_)
    if not np.all(np.isfinite(cov)) or np.linalg.det(cov) <= 0:
        return None
    D = Y - mcd.location_
    d2 = np.einsum("ij,jk,ik->i", D, np.linalg.inv(cov), D)
    return np.asarray(d2 <= chi2_quantile(CORE_QUANTILE if quantile is None else quantile, Y.shape[1]))
