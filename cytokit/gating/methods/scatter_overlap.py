"""How much of a scatter ellipse gate belongs to other event classes (an estimate, fractions 0-1).

Two sources, both estimated from the parent's own events in robust-normalised scatter (see :mod:`.scatter`):

* **neighbouring components** (monocytes, granulocytes): the mixture's posterior probability that an
  event inside the ellipse belongs to a component behind a density valley from the population's own
  (a cloud the mixture split into pieces counts as one), averaged over the gate's events;
* **debris running into the gate** along FSC (first dimension): a Gaussian mixture in linear scatter cannot
  separate a debris continuum from the lymphocytes, so the debris density is read where the gate ends on
  the low-FSC side (events within 2 SD of the population's SSC) and assumed to fall linearly to zero at
  the population's FSC centre: debris inside ~ 1/2 x edge density x (centre - edge). With a clean
  valley the edge density is ~0; with debris reaching the population it is not. A gate reaching the low
  end of the scatter range (no low-FSC edge inside the data) is read at that end instead.

A third estimate needs the populations below the gate and is made by the engine after every population is
fitted (:func:`fit_backgate`, :func:`backgate_share`): **back-gating** onto scatter, as a cytometrist does.
A reference population known to hold lymphocytes only (e.g. CD3+ T cells: monocytes, granulocytes and
debris are CD3-) gives the lymphocytes' own scatter; every population below the gate is checked for events
that are larger or more granular than the reference's (log scatter, beyond the reference's
:data:`BACKGATE_QUANTILE` Mahalanobis radius, on the high-SSC side). The reference itself has
``1 - BACKGATE_QUANTILE`` of its events there minus those on the low side (``ref_rate``); a population with
more holds other events -- monocytes next to the lymphocyte cloud, joined into it by the mixture without a
valley, the case the mixture's own estimate misses (CD3- CD16dim monocytes end up among NK cells). Its share
of other events is the excess over the reference's rate, less :data:`BACKGATE_Z` binomial standard errors
(a lower bound: events of other classes that overlap the reference's scatter are not counted).
:func:`backgate_error_pp` turns the shares of a population and of its parent into the error of the
population's % of parent.

The sum (``other_share_pct``: % of the gate's events that are not the population) inflates the gate's
% of parent by ``% of parent x share / 100`` (the fit's ``est_error_pp``; a back-gated scatter-only gate's own row
in the populations table reads its other events in and its lymphocytes left out instead,
:func:`cytokit.gating.backgating.in_and_out_pct`). A lineage population's % of the lymphocyte denominator is diluted by that share
(:func:`dilution_error_pp`); when the gate is flagged, the engine adds that error to the populations
directly below the denominator and flags those where it exceeds the ``uncertain`` limit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .base import every_nth
from .mixture import MixtureFit, _log_prob, _logsumexp_columns, chi2_quantile

#: review flag of a scatter gate whose estimated share of other classes exceeds its limit, and of the
#: populations directly below the lymphocyte denominator it feeds (their % of parent is diluted)
OVERLAP_FLAG = "scatter_overlap"
#: review flag of every population below a scatter gate whose own % is estimated more than
#: :data:`FAILED_PP` off (``est_error_pp`` of its row): its denominator is mostly not the cells it names, and
#: the dilution estimate of a child understates what such a gate does to it (chosen on the independent
#: lab B's lysed-blood files, seeds 11-13; docs/gating.md, "A failed scatter gate")
FAILED_FLAG = "scatter_failed"
#: estimated error of a scatter gate's own % of parent (pp) above which it counts as failed
FAILED_PP = 10.0
#: fit-info key of a back-gated scatter gate: its parent's events inside the reference's own gate (CD3+) that
#: lie outside the gate, per such event inside it (``backgating.reference_outside``)
OUTSIDE_KEY = "reference_outside_ratio"
#: above this ratio the gate missed the lymphocytes: it is not redrawn (its T cells are not a template) and
#: counts as failed (chosen on lab B's seeds 11-13; docs/gating.md, "A failed scatter gate")
MISSED_RATIO = 4.5
#: fit-info key: estimated % of the gate's events that belong to other classes
OTHER_SHARE_KEY = "other_share_pct"
#: fit-info key: the part of :data:`OTHER_SHARE_KEY` that is debris running into the gate along FSC (%,
#: :func:`debris_edge_share`)
DEBRIS_KEY = "debris_share_pct"
#: fit-info key: the strip where :data:`DEBRIS_KEY` is read, in the gate's own units ([[FSC low, FSC high], [SSC
#: low, SSC high]], :func:`debris_strip`)
DEBRIS_STRIP_KEY = "debris_strip"
#: fit-info key of a back-gated scatter gate: :data:`DEBRIS_KEY` net of the doublets (those its singlet gates remove)
#: and the lymphocytes' own tail in its strip (%, :func:`debris_net_share`, ``backgating.record_scatter_cuts``);
#: read instead of it where present
DEBRIS_NET_KEY = "debris_net_pct"
#: two mixture components are one cloud when the density between their centres stays above this fraction of
#: the lower centre density (no valley); chosen on cytokit's own scatter families (tuning seed 101)
VALLEY = 0.8
#: fit-info key of every population below a back-gated scatter gate: estimated % of the population's events
#: that are not lymphocytes (:func:`backgate_share`, percent)
BACKGATE_KEY = "scatter_other_pct"
#: fit-info key of every population below a back-gating reference: the most % of its events that can be other
#: events, its parent's other events (:data:`BACKGATE_KEY` x the parent's events) all in it (percent, <= 100;
#: :func:`.backgating.subset_other_max`)
BACKGATE_MAX_KEY = "scatter_other_max_pct"
#: a mixture component is a piece of the chosen population's cloud (``cloud_pieces``) when its centre lies
#: inside a piece's ellipse of this coverage ...
PIECE_COVERAGE = 0.95
#: ... and neither of its SDs is more than this multiple of the chosen component's (a broad component
#: spanning the cloud and its neighbours is not a piece of it)
PIECE_MAX_SD_RATIO = 2.0
#: the back-gating region starts at this quantile of the reference's own squared Mahalanobis distance
BACKGATE_QUANTILE = 0.9
#: binomial standard errors subtracted from a population's excess over the reference's rate (lower bound)
BACKGATE_Z = 2.0
#: the low-side quantile (per dimension) whose distance above the reference's moves the region up
BACKGATE_LOW_QUANTILE = 0.1
#: fewest reference events for a back-gating region
BACKGATE_MIN_REFERENCE = 200
#: at most this many reference events are used to place the region (a systematic sample)
BACKGATE_MAX_EVENTS = 20000


def dilution_error_pp(pct_parent: float, other_share_pct: float) -> float:
    """Error (pp) of a population's % of a parent that holds ``other_share_pct`` % events of other classes
    that are not in the population (debris, monocytes in a lymphocyte gate): pct x share / 100."""
    return float(pct_parent) * float(other_share_pct) / 100.0


def _mixture_density(points: np.ndarray, gmm: MixtureFit) -> np.ndarray:
    weighted = _log_prob(points, gmm.means, gmm.covariances) + np.log(np.maximum(gmm.weights, 1e-300))[:, None]
    return np.exp(_logsumexp_columns(weighted))


def same_cloud(gmm: MixtureFit, k: int, d2: float, *, valley: float = VALLEY) -> np.ndarray:
    """Components that belong to the cloud of component ``k``: centred inside its ellipse at squared radius
    ``d2``, or joined to a member without a density valley (along the segment between the two centres the
    mixture density never falls below ``valley`` x the lower of the two centre densities): a cloud the
    mixture split into pieces, not a neighbouring population behind a valley."""
    diff = gmm.means - gmm.means[k]
    own = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(gmm.covariances[k]), diff) <= d2
    changed = True
    while changed:
        changed = False
        for j in np.flatnonzero(~own):
            for g in np.flatnonzero(own):
                if _no_valley(gmm, g, j, valley):
                    own[j] = changed = True
                    break
    return own


def _no_valley(gmm: MixtureFit, a: int | np.integer, b: int | np.integer, valley: float) -> bool:
    """True when the mixture density along the segment between the centres of components ``a`` and ``b``
    never falls below ``valley`` x the lower of the two centre densities."""
    t = np.linspace(0.0, 1.0, 25)[:, None]
    f = _mixture_density(gmm.means[a] + t * (gmm.means[b] - gmm.means[a]), gmm)
    return bool(f.min() >= valley * min(f[0], f[-1]))


def cloud_pieces(gmm: MixtureFit, k: int, *, valley: float = VALLEY) -> np.ndarray:
    """Components (bool per component) that are pieces of the cloud of component ``k``: ``k`` and, repeatedly,
    every component whose centre lies inside a piece's :data:`PIECE_COVERAGE` ellipse with no density valley
    between the two centres (``valley`` as in :func:`same_cloud`), provided neither of its SDs exceeds
    :data:`PIECE_MAX_SD_RATIO` x component ``k``'s. A mixture in linear scatter splits a skewed lymphocyte
    cloud into overlapping pieces of similar size; a neighbouring cloud (monocytes, debris) lies beyond the
    pieces' ellipses or behind a valley, and a broad component spanning several clouds fails the size limit."""
    n, d = gmm.means.shape
    radius = chi2_quantile(PIECE_COVERAGE, d)
    sd = np.sqrt(np.diagonal(gmm.covariances, axis1=1, axis2=2))
    small = np.all(sd <= PIECE_MAX_SD_RATIO * sd[k], axis=1)
    inv = np.linalg.inv(gmm.covariances)
    own = np.zeros(n, dtype=bool)
    own[k] = True
    changed = True
    while changed:
        changed = False
        for j in np.flatnonzero(~own & small):
            for g in np.flatnonzero(own):
                diff = gmm.means[j] - gmm.means[g]
                if float(diff @ inv[g] @ diff) <= radius and _no_valley(gmm, g, j, valley):
                    own[j] = changed = True
                    break
    return own


def component_share(Z: np.ndarray, gmm: MixtureFit, k: int, inside: np.ndarray, d2: float) -> float:
    """Share of the ``inside`` events (rows of ``Z``) that the mixture assigns to components outside the
    cloud of component ``k`` (:func:`same_cloud`)."""
    if not inside.any():
        return 0.0
    own = same_cloud(gmm, k, d2)
    weighted = _log_prob(Z[inside], gmm.means, gmm.covariances) + np.log(np.maximum(gmm.weights, 1e-300))[:, None]
    post = np.exp(weighted - _logsumexp_columns(weighted))
    return float(post[~own].sum(0).mean())


def debris_strip(Z: np.ndarray, mean: np.ndarray, cov: np.ndarray, d2: float, *, bin_width: float = 0.02
                 ) -> tuple[float, float, float, float]:
    """The strip where :func:`debris_edge_share` reads the debris density (robust-normalised units, as ``Z``):
    (FSC low, FSC high, SSC low, SSC high) -- ``bin_width`` just below the gate's low-FSC edge, or at the low end
    of the scatter range (0.5 % quantile) when the gate reaches it, within 2 SD of the population's SSC."""
    sd = np.sqrt(np.diag(cov))
    edge = float(mean[0] - np.sqrt(d2) * sd[0])
    low = float(np.quantile(Z[:, 0], 0.005))
    if edge < low + bin_width:  # the gate reaches the low end of the scatter range: read the density there
        edge = low + bin_width
    return edge - bin_width, edge, float(mean[1] - 2.0 * sd[1]), float(mean[1] + 2.0 * sd[1])


def debris_edge_share(Z: np.ndarray, mean: np.ndarray, cov: np.ndarray, d2: float, inside: np.ndarray,
                      *, bin_width: float = 0.02, strip: tuple[float, float, float, float] | None = None) -> float:
    """Share of the gate's events estimated to be debris continuing below the population along FSC
    (first column of ``Z``), from the event density in a ``bin_width`` strip just below the gate's
    low-FSC edge (robust-normalised units; events within 2 SD of the population's second dimension;
    :func:`debris_strip`, or ``strip`` when the caller has it already)."""
    n_in = int(inside.sum())
    if n_in == 0 or Z.shape[1] < 2:
        return 0.0
    lo, hi, band_lo, band_hi = strip if strip is not None else debris_strip(Z, mean, cov, d2, bin_width=bin_width)
    edge = float(mean[0] - np.sqrt(d2) * np.sqrt(cov[0, 0]))
    if edge < hi:  # the gate reaches the low end of the scatter range: read the density there
        edge = lo
    in_strip = (Z[:, 1] >= band_lo) & (Z[:, 1] <= band_hi) & (Z[:, 0] >= lo) & (Z[:, 0] < hi)
    density = in_strip.sum() / bin_width  # events per unit FSC at the edge
    return float(min(1.0, 0.5 * density * max(mean[0] - edge, 0.0) / n_in))


def debris_net_share(debris_pct: float, strip: int, gate: int, reference_strip: int, reference_gate: int,
                     single: int | None = None) -> float:
    """The debris edge (``debris_pct``, % of the gate's events, :func:`debris_edge_share`) net of what in its strip is
    not debris: the doublets (``single``: the strip's events that pass the singlet gates below the gate; all of
    ``strip`` when None) and the lymphocytes' own low-FSC tail. The strip's single events per event inside the gate
    (``single`` / ``gate``) less the back-gating reference's events in the strip per reference event inside the gate
    (``reference_strip`` / ``reference_gate``: the lymphocytes expected there, the reference being single
    lymphocytes only) is the debris; the edge, read from all ``strip`` events, scales with its share of them (%,
    >= 0). Where the reference's share of the strip's single events exceeds its share of the gate by more than
    :data:`BACKGATE_Z` binomial standard errors, its gate does not tell the lymphocytes there (it passes other
    events: a CD3 threshold on sticky debris) and the edge is read from all the single events."""
    single = strip if single is None else min(single, strip)
    if single <= 0 or gate <= 0 or reference_gate <= 0 or debris_pct <= 0.0:
        return 0.0
    share = min(reference_strip / single, 1.0)
    whole = float(debris_pct) * single / strip
    if share - BACKGATE_Z * math.sqrt(share * (1.0 - share) / single) > reference_gate / gate:
        return whole
    per_gate, expected = single / gate, reference_strip / reference_gate
    return whole * max(per_gate - expected, 0.0) / per_gate


def debris_pct(info: Mapping[str, object]) -> float:
    """The debris edge a scatter gate's readers use (%, of its events): net of the lymphocytes' own tail
    (:data:`DEBRIS_NET_KEY`) where back-gating measured that, else the mixture's (:data:`DEBRIS_KEY`), 0 when
    neither."""
    value = info.get(DEBRIS_NET_KEY, info.get(DEBRIS_KEY))
    return float(value) if isinstance(value, (int, float)) else 0.0


@dataclass(frozen=True)
class Backgate:
    """Scatter region of a reference lymphocyte population: log scatter centre (median), inverse
    covariance, the squared Mahalanobis limit (the reference's :data:`BACKGATE_QUANTILE` quantile), the
    reference's own rate of events outside it on the high-SSC side (fraction) and its event count."""

    centre: np.ndarray
    inv_cov: np.ndarray
    limit: float
    ref_rate: float
    n_reference: int
    low: np.ndarray  # the reference's BACKGATE_LOW_QUANTILE quantile of log scatter per dimension
    #: per dimension: read on a log scale (linear scatter); False for a dimension already on a transformed
    #: scale (a logicle CD45 of a CD45 x SSC gate: its log would be 0 for every event below 1)
    log_dims: tuple[bool, ...] | None = None

    def share(self, X: np.ndarray, *, shifted: bool = True) -> float:
        """Estimated share (fraction) of other events among a population's scatter events ``X`` (linear
        scale, the gate's dims, SSC last). The region keeps the reference's shape but moves up by as much
        as the population's low side (its :data:`BACKGATE_LOW_QUANTILE` quantile per dimension) lies above
        the reference's: a lymphocyte subset whose whole cloud sits a little higher (NK cells with more side
        scatter than T cells) then has no excess, while a second cloud of larger, more granular events
        (monocytes) barely moves the low side and stays beyond the region; see :func:`backgate_share`.
        ``shifted=False``: the region stays where the reference's is (events of no lymphocyte lineage the strategy
        gates: with no lymphocytes to hold the low side down, other events alone would move it onto themselves)."""
        L = _log_scale(np.asarray(X, dtype=np.float64), self.log_dims)
        L = L[np.isfinite(L).all(axis=1)]
        if L.shape[0] == 0:
            return 0.0
        shift = (np.maximum(np.quantile(L, BACKGATE_LOW_QUANTILE, axis=0) - self.low, 0.0) if shifted
                 else np.zeros(L.shape[1]))
        D = L - (self.centre + shift)
        d2 = np.einsum("ij,jk,ik->i", D, self.inv_cov, D)
        return backgate_share(int(np.count_nonzero((d2 > self.limit) & (D[:, -1] > 0))), L.shape[0], self)


def _log_scale(X: np.ndarray, log_dims: tuple[bool, ...] | None) -> np.ndarray:
    """``X`` with the columns of ``log_dims`` (every column when None) on a natural-log scale (values below 1
    read as 1); the other columns as given (already on a transformed scale)."""
    if log_dims is None:
        return np.log(np.maximum(X, 1.0))
    out = X.copy()
    cols = np.flatnonzero(np.asarray(log_dims, dtype=bool))
    out[:, cols] = np.log(np.maximum(X[:, cols], 1.0))
    return out


def fit_backgate(X_ref: np.ndarray, log_dims: tuple[bool, ...] | None = None) -> Backgate | None:
    """The back-gating region of a reference population's scatter events ``X_ref`` (rows = events, columns =
    the scatter gate's dims with SSC last); the columns of ``log_dims`` (linear scatter; every column when None)
    are read on a log scale, the others (a fluorescence dim such as CD45, already logicle-transformed) as they
    are. None for fewer than :data:`BACKGATE_MIN_REFERENCE` events or a degenerate spread."""
    X_ref = np.asarray(X_ref, dtype=np.float64)
    X_ref = X_ref[np.isfinite(X_ref).all(axis=1)]
    if X_ref.shape[0] < BACKGATE_MIN_REFERENCE:
        return None
    X_ref = every_nth(X_ref, BACKGATE_MAX_EVENTS)
    L = _log_scale(X_ref, log_dims)
    centre = np.median(L, axis=0)
    cov = np.atleast_2d(np.cov(L - centre, rowvar=False))
    if not np.all(np.isfinite(cov)) or np.linalg.det(cov) <= 0:
        return None
    inv = np.linalg.inv(cov)
    D = L - centre
    d2 = np.einsum("ij,jk,ik->i", D, inv, D)
    limit = float(np.quantile(d2, BACKGATE_QUANTILE))
    rate = float(np.mean((d2 > limit) & (D[:, -1] > 0)))
    return Backgate(centre, inv, limit, rate, int(X_ref.shape[0]), np.quantile(L, BACKGATE_LOW_QUANTILE, axis=0),
                    None if log_dims is None else tuple(bool(v) for v in log_dims))


def backgate_share(n_outside: int, n: int, region: Backgate) -> float:
    """Estimated share (fraction) of a population's ``n`` events that are not lymphocytes, from the
    ``n_outside`` of them in the region: excess over the reference's rate less :data:`BACKGATE_Z` standard
    errors, over the rate's complement; 0 when not above the reference."""
    if n <= 0:
        return 0.0
    r = region.ref_rate
    se = math.sqrt(max(r * (1.0 - r), 1e-6) * (1.0 / n + 1.0 / region.n_reference))
    return float(min(1.0, max(0.0, n_outside / n - r - BACKGATE_Z * se) / max(1.0 - r, 1e-6)))


def backgate_error_pp(pct_parent: float, share: float, parent_share: float) -> float:
    """Error (pp, >= 0) of a population's % of parent when ``share`` of its events and ``parent_share`` of
    its parent's (fractions) are other events: observed - true = pct x (share - parent_share) / (1 -
    parent_share)."""
    if not math.isfinite(pct_parent) or parent_share >= 1.0:
        return 0.0
    return abs(float(pct_parent) * (share - parent_share) / (1.0 - parent_share))


#: fit-info key of a back-gated scatter gate: estimated % of the lymphocyte denominator's events that are not
#: lymphocytes, read without the mixture (:func:`mirror_excess_share` and the events of populations outside the
#: denominator's lineage, e.g. counting beads)
DENOMINATOR_OTHER_KEY = "denominator_other_pct"
#: the mirror estimate counts events more than this many lower-side SDs from the side-scatter mode
MIRROR_WIDTH = 2.0
#: a denominator share (%) below this is read as none: the mirror reads 0.5-2.6 % on right CD45 x SSC gates
#: (lab C seed 31) and up to 10.2 % on simulator files with 1,500-3,800 lymphocytes (held-out seed 1111; 5 % there
#: flagged 11 rows, all within 1 pp) from the scatter's own asymmetry and noise; contaminated lab C gates read 13-44 %
MIRROR_MIN_PCT = 10.0
#: above this share (%) the denominator row itself is flagged: every single-platform count of it is as far off
DENOMINATOR_FLAG_PCT = 10.0


def mirror_excess_share(v: np.ndarray, *, width: float = MIRROR_WIDTH, z: float = BACKGATE_Z) -> float:
    """Share (fraction) of events beyond the high side of a lymphocyte cloud's side scatter ``v`` (log scale)
    that its low side does not mirror: lymphocytes' log side scatter is about symmetric around its mode, while
    monocytes (and other larger, more granular events) lie on the high side only. Mode of the smoothed
    histogram between the 1st and 99th percentile; SD from the low side (the distance from the mode to the
    31.7 % quantile of the events below it); excess = events above mode + ``width`` SD minus those below
    mode - ``width`` SD, less ``z`` Poisson SEs, over all events. It does not use the gate's mixture. A lymphocyte
    cloud skewed to low side scatter reads 0 (conservative). 0 for fewer than 200 events."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 200:
        return 0.0
    lo, hi = np.quantile(v, [0.01, 0.99])
    if not hi > lo:
        return 0.0
    counts, edges = np.histogram(v, bins=np.linspace(lo, hi, 101))
    smooth = np.convolve(counts, np.ones(5) / 5.0, mode="same")
    i = int(np.argmax(smooth))
    mode = 0.5 * (edges[i] + edges[i + 1])
    below = v[v < mode]
    if below.size < 50:
        return 0.0
    a = width * (mode - float(np.quantile(below, 0.3173)))
    up, down = int(np.count_nonzero(v > mode + a)), int(np.count_nonzero(v < mode - a))
    return float(max(0.0, (up - down - z * math.sqrt(up + down)) / n))
