"""Scatter-population gate methods: Gaussian-mixture ellipse, density contour polygon, singlet band.

Scatter is gated on its linear scale (or whatever scale the strategy gives it). To be independent of
instrument gain and range, targets are given in *robust-normalised* coordinates: each dimension mapped
so its 1st percentile is 0 and its 99th percentile is 1 (computed on the parent's events).
"""
from __future__ import annotations

import contextlib
import hashlib
from contextvars import ContextVar
from typing import Iterator, Literal, Sequence

import numpy as np
from pydantic import Field

from ...gates import EllipsoidGate, PolygonGate
from ...results import schema as S
from .base import FitResult, MethodParams, finite_rows, subsample
from .mixture import MixtureFit, _log_prob, chi2_quantile, fit_gaussian_mixture, merge_components
from .confidence import TAIL_SD_UNCERTAINTY, UNCERTAIN_PP, ThresholdUncertainty, estimated_error
from .scatter_overlap import (DEBRIS_KEY, DEBRIS_STRIP_KEY, OTHER_SHARE_KEY, OVERLAP_FLAG, cloud_pieces, component_share,
                              debris_edge_share, debris_strip, dilution_error_pp)


#: a component is about as near the target as the nearest one (``ambiguous_component``) within this multiple
#: of the nearest one's distance: the target cannot tell them apart
AMBIGUOUS_DISTANCE = 1.5
#: fit-info key of a gate whose component was chosen by its back-gating reference's events
#: (:func:`anchored_component`): the component the target chose first
RECHOSEN_KEY = "rechosen_from"
#: note of such a gate whose component changed
RECHOSEN_FLAG = "component_by_reference"


#: the values of ``lymphocyte_doublets`` (what a lab's ``Lymphocytes`` holds); their meanings are the registry
#: :data:`cytokit.gating.lymphocyte_doublets.CONVENTIONS`, which holds exactly these
DoubletConvention = Literal["unstated", "excluded", "counted", "singles_and_pairs"]


class LymphocyteDoubletsParams(MethodParams):
    """The lab's lymphocyte-doublet convention, a parameter of every scatter lymphocyte gate method
    (``gmm_ellipse``, ``density_polygon``; :mod:`cytokit.gating.lymphocyte_doublets`)."""

    lymphocyte_doublets: DoubletConvention = Field(
        "unstated", description="the lab's convention for lymphocyte-lymphocyte doublets (gate with a 'singlets' "
        "child only): 'unstated' (default) reports the drawn gate, which leaves most of them outside, and notes "
        "the row 'lymphocyte_doublets' + 'uncertain' (the estimate in est_error_pp) where the doublets estimated "
        "outside it exceed the uncertain limit, since the lab might count them; 'excluded' (the lab's "
        "lymphocyte gate leaves them out, as cytokit's does) reports the drawn gate with no convention note and no "
        "convention part in est_error_pp (the estimate still in info 'lymphocyte_doublets_pp'); 'counted' "
        "(a lab whose lymphocyte gate holds them and whose singlet gate removes them) reports the gate plus the "
        "doublets estimated outside it (info 'lymphocyte_doublets_pp', events added to its count) and reads its "
        "children's % of parent against that count; 'singles_and_pairs' (a lab whose Lymphocytes are single "
        "lymphocytes plus lymphocyte-lymphocyte doublets, no doublet of a lymphocyte with another particle) "
        "reports the singlet gate's events plus the lymphocyte-lymphocyte doublets estimated inside the gate "
        "(among the events its singlet gate removes, info 'lymphocyte_doublets_inside_pp') and outside it, and reads "
        "its children's % of parent against that count; under both counting values the estimate's own error "
        "enters est_error_pp (cytokit.gating.lymphocyte_doublets)")


class BackgateParams(MethodParams):
    """The back-gating reference, a parameter of every scatter lymphocyte gate method (``gmm_ellipse``,
    ``density_polygon``; :func:`cytokit.gating.scatter_reference.backgate_reference` says which gates have one
    and :mod:`cytokit.gating.backgating` reads it)."""

    backgate_reference: str | None = Field(
        None, description="a population below this gate that holds lymphocytes only (e.g. T cells): after "
        "every population is fitted, each population below the gate is back-gated onto this gate's scatter "
        "against it (scatter_overlap.fit_backgate) and its % of parent carries the error of the other "
        "events found (est_error_pp; review flag 'scatter_overlap' above the uncertain limit)")


class GMMEllipseParams(LymphocyteDoubletsParams, BackgateParams):
    """Fit a Gaussian mixture; keep the ellipse of the component nearest ``target``."""

    n_components: int = Field(3, ge=1, le=10)
    target: tuple[float, ...] = Field((0.4, 0.2), description="robust-normalised location of the population")
    coverage: float = Field(0.95, gt=0, lt=1, description="fraction of the component inside the ellipse")
    min_weight: float = Field(0.05, ge=0, lt=1, description="components lighter than this are not chosen")
    max_events: int = Field(20000, ge=200)
    seed: int = 0
    max_other_pct: float = Field(3.0, gt=0, description="flag 'scatter_overlap' when the estimated share of "
                                 "the gate's events from other classes (est_error_pp, %) exceeds this")
    redraw: bool = Field(False, description="with backgate_reference: a gate estimated to hold more than "
                         "max_other_pct % other events (its own estimate or the back-gated one) is redrawn "
                         "as the ellipse holding redraw_coverage of its events inside the reference's own gate "
                         "(CD3+ for T cells, live and dead, whatever gates lie between) and every population below "
                         "it is re-fitted (info 'redrawn'); not when most of the reference's events lie outside "
                         "the gate (it missed the lymphocytes; flagged 'scatter_failed')")
    whole_cloud: bool = Field(False, description="draw the ellipse around the whole cloud of the chosen "
                              "component: with the components the mixture split it into (scatter_overlap."
                              "cloud_pieces), as the coverage ellipse of their moment-matched Gaussian "
                              "(info 'cloud_components')")
    redraw_coverage: float = Field(0.998, gt=0, lt=1, description="fraction of the reference's events inside a "
                                   "redrawn gate")


class DensityPolygonParams(LymphocyteDoubletsParams, BackgateParams):
    """Smoothed 2-D histogram; polygon = the density contour at ``level`` x the peak nearest ``target``."""

    target: tuple[float, float] = (0.4, 0.2)
    level: float = Field(0.1, gt=0, lt=1, description="contour height as a fraction of the chosen peak")
    bins: int = Field(128, ge=16, le=1024)
    smooth: float = Field(2.0, ge=0, description="Gaussian smoothing in bins")
    max_vertices: int = Field(64, ge=4)
    max_events: int = Field(50000, ge=200)
    seed: int = 0


class SingletParams(MethodParams):
    """Band around the diagonal of area vs height: ``dims = [area, height]``.

    Ratio area/height is estimated robustly (median, MAD); the band keeps ratios within
    ``[median - lower_mads*MAD, median + upper_mads*MAD]`` (doublets have larger area per height).
    """

    lower_mads: float = Field(4.0, gt=0)
    upper_mads: float = Field(3.0, gt=0)
    min_area_quantile: float = Field(0.0, ge=0, lt=0.5, description="drop the lowest-area events (debris)")
    max_band_ratio: float = Field(0.35, gt=0, description="flag 'unreliable' when the band is wider than this (ratio units / median)")
    max_events: int = Field(50000, ge=200)
    seed: int = 0


_MIXTURES: ContextVar[dict[tuple, MixtureFit] | None] = ContextVar("cytokit_shared_mixtures", default=None)


@contextlib.contextmanager
def shared_mixtures() -> Iterator[None]:
    """Within the block (one sample's gating, entered by :func:`cytokit.gating.engine.fit_all`; a nested
    block shares the outer one's store), a mixture is fitted once per distinct input: a scatter gate redrawn
    around its template re-uses the mixture of its first fit (same events, same parameters, same result)."""
    if _MIXTURES.get() is not None:
        yield
        return
    token = _MIXTURES.set({})
    try:
        yield
    finally:
        _MIXTURES.reset(token)


def _mixture(Z: np.ndarray, params: GMMEllipseParams) -> MixtureFit:
    store = _MIXTURES.get()
    if store is None:
        return fit_gaussian_mixture(Z, params.n_components, seed=params.seed, max_iter=200, reg_covar=1e-5)
    key = (hashlib.blake2b(np.ascontiguousarray(Z).tobytes(), digest_size=16).digest(), Z.shape,
           params.n_components, params.seed)
    if key not in store:
        store[key] = fit_gaussian_mixture(Z, params.n_components, seed=params.seed, max_iter=200, reg_covar=1e-5)
    return store[key]


def robust_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) per column so that (X - offset) / scale maps the 1st..99th percentile to 0..1."""
    lo, hi = np.quantile(X, [0.01, 0.99], axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    return lo, scale


def template_ellipse(Z: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, covariance, squared radius) of the ellipse holding ``coverage`` of the template events ``Z``
    (robust-normalised scatter of a population known to hold lymphocytes only): their mean and covariance
    after setting aside the events beyond the 99.9 % chi-squared radius of a first estimate (rare events of
    other classes), and the ``coverage`` quantile of the kept events' squared Mahalanobis distances (the
    scatter of lymphocytes is skewed on the linear scale: an empirical radius, not a Gaussian one)."""
    keep = Z
    for _ in range(2):
        mean = keep.mean(axis=0)
        cov = np.atleast_2d(np.cov(keep, rowvar=False))
        D = Z - mean
        d2 = np.einsum("ij,jk,ik->i", D, np.linalg.inv(cov), D)
        keep = Z[d2 <= chi2_quantile(0.999, Z.shape[1])]
    D = keep - mean
    return mean, cov, float(np.quantile(np.einsum("ij,jk,ik->i", D, np.linalg.inv(cov), D), coverage))


def anchored_component(gmm: MixtureFit, k: int, dist: np.ndarray, eligible: np.ndarray, anchor: np.ndarray) -> int:
    """The component of ``gmm`` holding most of the ``anchor`` events (robust-normalised scatter of the parent's
    events inside the back-gating reference's own gate: CD3+), each event counted for its most probable
    component, among the eligible components about as near the target as the nearest one ``k`` (within
    :data:`AMBIGUOUS_DISTANCE` x its distance ``dist[k]``): the target chose between clouds it cannot tell
    apart (lysed blood's red cells and the lymphocytes), the T cells show which one holds the lymphocytes. A
    component the target clearly prefers is kept (``k``)."""
    near = eligible & (dist <= AMBIGUOUS_DISTANCE * dist[k])
    if near.sum() < 2 or anchor.shape[0] == 0:
        return k
    logp = _log_prob(anchor, gmm.means, gmm.covariances) + np.log(np.maximum(gmm.weights, 1e-300))[:, None]
    votes = np.bincount(np.argmax(logp, axis=0), minlength=len(gmm.weights))
    votes[~near] = 0
    return int(np.argmax(votes)) if votes.max() > votes[k] else k


def fit_gmm_ellipse(X: np.ndarray, params: GMMEllipseParams, *, dims: tuple[str, ...], gate_id: str,
                    template: np.ndarray | None = None, anchor: np.ndarray | None = None) -> FitResult:
    """Ellipse (Gating-ML ellipsoid) of the Gaussian component nearest ``params.target``.

    The mixture is fitted by :func:`.mixture.fit_gaussian_mixture` (numpy EM, scikit-learn's model and
    k-means start) on the robust-normalised events; the ellipse holds ``coverage`` of that component.
    ``template`` (events of a population holding lymphocytes only, same dims and scale; the engine passes
    the ``backgate_reference`` when ``redraw`` applies): the ellipse is instead the one holding
    ``redraw_coverage`` of those events (:func:`template_ellipse`), and ``info["redrawn"]`` is True.
    ``anchor`` (the parent's events inside the ``backgate_reference``'s own gate, same dims and scale; the
    engine passes it when the first fit missed the lymphocytes): among the components about as near the target
    as the nearest one, the one holding most of them is chosen (:func:`anchored_component`;
    ``info["rechosen_from"]`` is the component the target chose).
    ``info["other_share_pct"]`` is the estimated % of the gate's events that belong to other classes
    (:mod:`.scatter_overlap`; above ``max_other_pct`` the gate is flagged ``scatter_overlap``, a review flag)
    and ``est_error_pp`` what they add to the gate's % of parent (pp; ``uncertain`` above the limit of
    :mod:`.confidence`).
    """
    X = finite_rows(X)
    if len(params.target) != X.shape[1]:
        raise ValueError(f"target has {len(params.target)} values for {X.shape[1]} dimensions")
    flags: list[str] = []
    if X.shape[0] < 10 * params.n_components:
        raise ValueError(f"only {X.shape[0]} events: too few to fit {params.n_components} components")
    Xs = subsample(X, params.max_events, params.seed)
    off, scale = robust_scale(Xs)
    Z = (Xs - off) / scale
    gmm = _mixture(Z, params)
    if not gmm.converged:
        flags.append("not_converged")
    target = np.asarray(params.target, dtype=np.float64)
    dist = np.linalg.norm(gmm.means - target, axis=1)
    eligible = gmm.weights >= params.min_weight
    if not eligible.any():
        eligible[:] = True
        flags.append("unreliable")
    order = np.argsort(np.where(eligible, dist, np.inf))
    k = int(order[0])
    if eligible.sum() > 1 and dist[order[1]] < AMBIGUOUS_DISTANCE * dist[k] and dist[k] > 0.15:
        flags.append("ambiguous_component")
    first = k
    A = finite_rows(np.asarray(anchor, dtype=np.float64)) if anchor is not None else None
    if A is not None:
        k = anchored_component(gmm, k, dist, eligible, (A - off) / scale)
        if k != first:  # a note (how the gate was placed), not a review flag
            flags = [f for f in flags if f != "ambiguous_component"] + [RECHOSEN_FLAG]
    centre_z, cov_z = gmm.means[k], gmm.covariances[k]
    pieces = cloud_pieces(gmm, k) if params.whole_cloud else None
    if pieces is not None and pieces.sum() > 1:
        centre_z, cov_z = merge_components(gmm, pieces)
    d2 = chi2_quantile(params.coverage, X.shape[1])
    T = finite_rows(np.asarray(template, dtype=np.float64)) if template is not None else None
    if T is not None and T.shape[0] >= 10 * X.shape[1]:
        centre_z, cov_z, d2 = template_ellipse((T - off) / scale, params.redraw_coverage)
        k = int(np.argmin(np.linalg.norm(gmm.means - centre_z, axis=1)))  # its component, for the estimates
        flags = [f for f in flags if f != "ambiguous_component"]
    mean = centre_z * scale + off
    cov = cov_z * np.outer(scale, scale)
    gate = EllipsoidGate(id=gate_id, dims=tuple(dims), mean=tuple(float(m) for m in mean),
                         covariance=tuple(tuple(float(c) for c in row) for row in cov), distance_square=d2)
    inside = np.einsum("ij,jk,ik->i", Z - centre_z, np.linalg.inv(cov_z), Z - centre_z) <= d2
    neighbours = component_share(Z, gmm, k, inside, d2)
    strip_z = debris_strip(Z, centre_z, cov_z, d2) if Z.shape[1] >= 2 else None  # one reading for both uses
    debris = debris_edge_share(Z, centre_z, cov_z, d2, inside, strip=strip_z)
    strip = np.reshape(strip_z, (2, 2)) * scale[:2, None] + off[:2, None] if strip_z is not None else None
    share = 100.0 * (neighbours + debris)
    est = dilution_error_pp(100.0 * float(inside.mean()), share)  # % of parent inflated by the other events
    if share > params.max_other_pct:
        flags.append(OVERLAP_FLAG)
    if est > UNCERTAIN_PP:
        flags.append("uncertain")
    info = {"component": k, S.EST_ERROR_PP: round(est, 3), OTHER_SHARE_KEY: round(share, 3),
            "neighbour_share_pct": round(100 * neighbours, 3), DEBRIS_KEY: round(100 * debris, 3), "weights": [round(float(w), 4) for w in gmm.weights],
            "means_normalised": [[round(float(v), 4) for v in m] for m in gmm.means],
            "distance_square": d2, "n_events": int(Xs.shape[0])}
    if strip is not None:
        info[DEBRIS_STRIP_KEY] = [[float(v) for v in row] for row in strip]
    if A is not None:
        info[RECHOSEN_KEY] = first
    if pieces is not None:
        info["cloud_components"] = [int(j) for j in np.flatnonzero(pieces)]
    if T is not None:
        info["redrawn"] = T.shape[0] >= 10 * X.shape[1]
    return FitResult(gate, tuple(flags), info)


def _simplify(vertices: np.ndarray, max_vertices: int) -> np.ndarray:
    if len(vertices) <= max_vertices:
        return vertices
    idx = np.linspace(0, len(vertices) - 1, max_vertices).round().astype(int)
    return vertices[np.unique(idx)]


def fit_density_polygon(X: np.ndarray, params: DensityPolygonParams, *, dims: tuple[str, ...],
                        gate_id: str) -> FitResult:
    """Polygon along a density contour around the peak nearest ``params.target``."""
    import contourpy  # shipped with matplotlib
    from scipy.ndimage import gaussian_filter, maximum_filter

    X = finite_rows(X)
    if X.shape[1] != 2:
        raise ValueError("density_polygon needs exactly two dimensions")
    if X.shape[0] < 50:
        raise ValueError(f"only {X.shape[0]} events: too few for a density contour")
    Xs = subsample(X, params.max_events, params.seed)
    off, scale = robust_scale(Xs)
    Z = (Xs - off) / scale
    edges = np.linspace(-0.25, 1.25, params.bins + 1)
    H, _, _ = np.histogram2d(Z[:, 0], Z[:, 1], bins=[edges, edges])
    H = gaussian_filter(H, params.smooth) if params.smooth > 0 else H
    centres = (edges[:-1] + edges[1:]) / 2
    # the local maximum nearest the target

    is_peak = (H == maximum_filter(H, size=5)) & (H >= 0.05 * H.max())
    pi, pj = np.nonzero(is_peak)
    d = np.hypot(centres[pi] - params.target[0], centres[pj] - params.target[1])
    k = int(np.argmin(d))
    peak_xy = (centres[pi[k]], centres[pj[k]])
    level = params.level * H[pi[k], pj[k]]
    gen = contourpy.contour_generator(x=centres, y=centres, z=H.T)
    lines: list[np.ndarray] = [np.asarray(line) for line in gen.lines(level)]  # default line type: Separate
    flags: list[str] = []
    best: np.ndarray | None = None
    for line in lines:
        if len(line) < 4:
            continue
        inside = PolygonGate(id="_", dims=("x", "y"), vertices=tuple(map(tuple, line))).contains(
            np.asarray([peak_xy]))[0]
        if inside and (best is None or len(line) > len(best)):
            best = line
    if best is None:
        flags.append("unreliable")
        best = max(lines, key=len) if lines else None
        if best is None or len(best) < 4:
            raise ValueError("no closed density contour around the target population")
    verts = _simplify(np.asarray(best), params.max_vertices) * scale + off
    gate = PolygonGate(id=gate_id, dims=tuple(dims), vertices=tuple((float(a), float(b)) for a, b in verts))
    info = {"peak_normalised": [float(peak_xy[0]), float(peak_xy[1])], "level": float(level),
            "n_vertices": len(verts), "n_events": int(Xs.shape[0])}
    return FitResult(gate, tuple(flags), info)


#: bootstrap resamples of the area/height ratios that measure the sampling SD of the singlet band's edges
#: (:func:`band_edge_sd`; 40 give that SD within ~11 %)
BAND_RESAMPLES = 40


def ratio_band(r: np.ndarray, lower_mads: float, upper_mads: float) -> tuple[float, float, float, float]:
    """The singlet band of area/height ratios ``r`` (linear scatter units): (median, robust SD = MAD x 1.4826,
    lower edge = median - ``lower_mads`` robust SDs (at least 1e-6), upper edge = median + ``upper_mads``)."""
    med = float(np.median(r))
    mad = float(np.median(np.abs(r - med)) * 1.4826) or 1e-3 * med
    return med, mad, max(med - lower_mads * mad, 1e-6), med + upper_mads * mad


def band_edge_sd(r: np.ndarray, lower_mads: float, upper_mads: float, seed: int = 0) -> tuple[float, float]:
    """Sampling SD (ratio units) of the lower and upper edge of :func:`ratio_band`: the SD of the edges re-estimated
    on :data:`BAND_RESAMPLES` bootstrap resamples of ``r`` (deterministic for a seed). It falls as 1/sqrt(events):
    a band drawn from ~1,300 events has edges ~0.1 robust SDs uncertain, one from 8,000 ~0.03."""
    rng = np.random.default_rng(seed)
    edges = np.array([ratio_band(r[rng.integers(0, r.size, r.size)], lower_mads, upper_mads)[2:]
                      for _ in range(BAND_RESAMPLES)])
    return float(np.std(edges[:, 0])), float(np.std(edges[:, 1]))


def _in_band(X: np.ndarray, values: Sequence[float | None]) -> np.ndarray:
    lo, hi = values
    return (X[:, 0] >= (lo if lo is not None else -np.inf)) & (X[:, 0] <= (hi if hi is not None else np.inf))


def band_error_pp(r: np.ndarray, band: tuple[float, float], mad: float, edge_sd: tuple[float, float],
                  parts: dict[str, float] | None = None) -> float:
    """Estimated error (percentage points of % of parent) of the singlet band ``band`` = (lower, upper edge) on
    the ratios ``r`` (area/height of every parent event, NaN for those the band cannot hold: non-positive area or
    height, below the area cut), by :func:`.confidence.estimated_error` with each edge a threshold whose
    alternatives are the edge moved by ±hypot(:data:`~.confidence.TAIL_SD_UNCERTAINTY` x ``mad``, its sampling SD
    ``edge_sd``). An edge at median + k robust SDs is placed by a convention as a tail threshold is (how many
    SDs of the singles the doublet tail begins at; the tail's ±0.25 SD), plus the noise of the median and MAD it
    is drawn from. It is the density of events against each edge times that distance: large where the doublet
    tail (or the singles' own shoulder) runs through the edge, and for few events. ``parts``: as
    :func:`.confidence.estimated_error` fills it."""
    d = [float(np.hypot(TAIL_SD_UNCERTAINTY * mad, sd)) for sd in edge_sd]
    edges = [ThresholdUncertainty(v, (v - dv, v + dv)) for v, dv in zip(band, d)]
    return estimated_error(r[:, None], edges, _in_band, parts=parts)


def fit_singlets(X: np.ndarray, params: SingletParams, *, dims: tuple[str, ...], gate_id: str) -> FitResult:
    """Polygon band ``area/height`` within robust limits, over the observed area range (:func:`ratio_band`).

    ``info["est_error_pp"]`` (pp of % of parent; ``uncertain`` above the limit of :mod:`.confidence`):
    :func:`band_error_pp`, where the band's edges could plausibly lie instead; ``info["band_edge_sd"]`` the
    edges' sampling SDs (ratio units, :func:`band_edge_sd`)."""
    X = finite_rows(X)
    if X.shape[1] != 2:
        raise ValueError("singlets needs two dimensions: [area, height]")
    Xs = subsample(X, params.max_events, params.seed)
    a, h = Xs[:, 0], Xs[:, 1]
    ok = (h > 0) & (a > 0)
    if ok.sum() < 50:
        raise ValueError(f"only {int(ok.sum())} events with positive area and height")
    held = ok & (a >= np.quantile(a[ok], params.min_area_quantile)) if params.min_area_quantile > 0 else ok
    r = a[held] / h[held]  # the ratios the band is drawn from
    # the polygon's area floor: the same quantile of the events kept
    a_lo = float(np.quantile(a[held], params.min_area_quantile)) if params.min_area_quantile > 0 else 0.0
    inside = ok & (a >= a_lo)  # the events the polygon can hold, by their ratio
    ratios = np.full(a.shape, np.nan)
    ratios[inside] = a[inside] / h[inside]
    med, mad, r_lo, r_hi = ratio_band(r, params.lower_mads, params.upper_mads)
    flags = ["unreliable"] if (r_hi - r_lo) / med > params.max_band_ratio else []
    a_hi = float(X[:, 0].max()) * 1.01 + 1.0
    # polygon in (area, height): between the lines h = a / r_hi (lower) and h = a / r_lo (upper)
    verts: tuple[tuple[float, float], ...] = ((a_lo, a_lo / r_hi), (a_hi, a_hi / r_hi), (a_hi, a_hi / r_lo), (a_lo, a_lo / r_lo))
    if a_lo == 0.0:
        verts = ((0.0, 0.0), (a_hi, a_hi / r_hi), (a_hi, a_hi / r_lo))
    gate = PolygonGate(id=gate_id, dims=tuple(dims), vertices=tuple((float(x), float(y)) for x, y in verts))
    edge_sd = band_edge_sd(r, params.lower_mads, params.upper_mads, params.seed)
    parts: dict[str, float] = {}
    est = band_error_pp(ratios, (r_lo, r_hi), mad, edge_sd, parts)
    if est > UNCERTAIN_PP:
        flags.append("uncertain")
    info = {"ratio_median": med, "ratio_mad": mad, "ratio_band": [r_lo, r_hi], "n_events": int(r.size),
            S.EST_ERROR_PP: round(est, 3), "est_error_parts": parts,
            "band_edge_sd": [round(v, 6) for v in edge_sd]}
    return FitResult(gate, tuple(flags), info)
