"""A lymphocyte subset cut by the scatter gate: its cells just outside the gate, against the reference's.

NK cells have more side scatter than T cells; where the lymphocyte ellipse is drawn tight around the T cells'
cloud (or a mixture component of their own), its high-SSC edge leaves part of the NK cells out and NK (% of
single lymphocytes) reads low -- silently, since every gate below sees only the events inside. A
cytometrist sees it by back-gating the other way: showing the NK phenotype on *all* events, the NK cells
spill over the gate's edge where the T cells do not.

The same is measured here on a ring just outside a scatter ellipse (squared Mahalanobis distance between 1
and :data:`RING` squared times the gate's own, so the ring follows the gate's shape): the events in the ring
that pass the gates from below the scatter gate down to the population (singlets, live, the population's
own phenotype), per event of the population inside, against the same ratio of the back-gating reference
(T cells: lymphocytes only, their scatter defines the lymphocytes'). The excess, less
:data:`SE_MARGIN` binomial standard errors, is the share of the population's cells left outside per cell
inside (a lower bound: cells beyond the ring are not counted). Monocytes, granulocytes and debris in the
ring count only where they pass the population's phenotype; a population that does let such events in shows
them inside the gate too (its back-gated share of other events, :mod:`.scatter_overlap`), and is then not
measured here (the engine skips it): the ring's excess would be more of them, not its own cells.

Units: shares are fractions (0..1) of the population's events inside the gate; errors are percentage points
of the population's % of parent.
"""
from __future__ import annotations

import math

import numpy as np

from ...gates import EllipsoidGate, PolygonGate

#: ``info`` key of a population's excess share of cells just outside the scatter gate (%, per 100 inside)
CUT_KEY = "scatter_cut_pct"
#: ``info`` key of a population's own events in the ring just outside the scatter gate (%, per 100 inside; not the
#: reference's excess: every one of them is missing from an events-based count, :mod:`cytokit.gating.edge_loss`)
RING_KEY = "scatter_ring_pct"
#: note on a population whose scatter-cut error is part of its ``est_error_pp``
CUT_FLAG = "scatter_cut"
#: the ring's outer radius, in units of the gate's own Mahalanobis radius
RING = 1.5
#: binomial standard errors subtracted from the excess (a lower bound, as for the back-gated share)
SE_MARGIN = 2.0


def ring_rows(gate: EllipsoidGate | PolygonGate, X: np.ndarray) -> np.ndarray:
    """Indices (into ``X``, events in the gate's dims, same scale) of the events in the ring just outside the
    scatter gate. An ellipse: squared distance ratio to the gate's in (1, :data:`RING` ** 2]. A polygon (a density
    contour, ``density_polygon``): outside it and inside the polygon scaled by :data:`RING` about its vertices'
    mean (the same ring for an ellipse drawn as a polygon)."""
    if isinstance(gate, PolygonGate):
        V = np.asarray(gate.vertices, dtype=np.float64)
        centre = V.mean(axis=0)
        P = np.asarray(X, dtype=np.float64)
        outer = PolygonGate(id=gate.id, dims=gate.dims, vertices=tuple(
            (float(a), float(b)) for a, b in centre + RING * (V - centre)))
        return np.flatnonzero(~gate.contains(P) & outer.contains(P))
    inv = np.linalg.inv(np.asarray(gate.covariance, dtype=np.float64))
    d = np.asarray(X, dtype=np.float64) - np.asarray(gate.mean, dtype=np.float64)
    r2 = np.einsum("ij,jk,ik->i", d, inv, d) / float(gate.distance_square)
    return np.flatnonzero((r2 > 1.0) & (r2 <= RING * RING))


def cut_share(ring_pop: int, inside_pop: int, ring_ref: int, inside_ref: int) -> float:
    """Excess share (fraction per event inside) of a population's events in the ring over the reference's
    rate, less :data:`SE_MARGIN` binomial SEs of the population's ratio; 0 when not above it or too few."""
    if inside_pop < 1 or inside_ref < 1:
        return 0.0
    rate_ref = ring_ref / inside_ref
    p = ring_pop / (ring_pop + inside_pop)
    se = math.sqrt(p * (1.0 - p) / (ring_pop + inside_pop)) / max((1.0 - p) ** 2, 1e-12)
    excess = ring_pop / inside_pop - rate_ref - SE_MARGIN * se
    return max(excess, 0.0)


def cut_error_pp(pct_parent: float, share: float, parent_share: float) -> float:
    """Error (pp) of a % of parent whose population lost ``share`` (per event inside) of its cells to the
    scatter gate and whose parent lost ``parent_share``: ``pct x ((1 + s) / (1 + s_p) - 1)``, 0 when not
    positive (a lower bound, so only a loss counts)."""
    if not np.isfinite(pct_parent):
        return 0.0
    return max(pct_parent * ((1.0 + share) / (1.0 + parent_share) - 1.0), 0.0)
