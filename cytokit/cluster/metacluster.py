"""Consensus hierarchical metaclustering of SOM nodes (FlowSOM's second level).

Contract
--------
:func:`consensus_metaclusters` takes node codes ``(n_nodes, n_markers)`` (transformed scale) and returns
an ``int32`` metacluster id per node in ``0..k-1``. It follows consensus clustering (Monti et al. 2003, as
used by FlowSOM's ConsensusClusterPlus step): ``n_resamples`` times, a fraction ``resample_fraction`` of
the nodes is clustered by average-linkage hierarchical clustering into ``k`` groups; the consensus matrix
holds, for each pair of nodes, the fraction of resamples that contained both in which they were grouped
together; the final metaclusters are an average-linkage clustering of ``1 - consensus``. Random draws
come only from ``numpy.random.default_rng(seed)``: same codes and seed give the same metaclusters.
Metacluster ids are renumbered by decreasing weight (``weights`` = events per node when given, else
number of nodes), ties broken by the smallest node index, so id 0 is the largest metacluster.
"""
from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform


def hierarchical_labels(points: np.ndarray, k: int, *, method: str = "average") -> np.ndarray:
    """Cut an agglomerative clustering of ``points`` (Euclidean) into at most ``k`` groups (0-based)."""
    if len(points) <= k:
        return np.arange(len(points), dtype=np.int32)
    z = linkage(points, method=method, metric="euclidean")
    return (fcluster(z, t=k, criterion="maxclust") - 1).astype(np.int32)


def consensus_matrix(codes: np.ndarray, k: int, *, n_resamples: int = 50, resample_fraction: float = 0.9,
                     seed: int = 0, method: str = "average") -> np.ndarray:
    """Pairwise co-clustering frequency of nodes over resampled hierarchical clusterings (0..1)."""
    codes = np.asarray(codes, dtype=np.float64)
    n = codes.shape[0]
    rng = np.random.default_rng(seed)
    together = np.zeros((n, n), dtype=np.float64)
    sampled = np.zeros((n, n), dtype=np.float64)
    m = max(2, int(round(n * resample_fraction)))
    for _ in range(n_resamples):
        idx = np.sort(rng.choice(n, size=min(m, n), replace=False))
        lab = hierarchical_labels(codes[idx], k, method=method)
        same = (lab[:, None] == lab[None, :]).astype(np.float64)
        together[np.ix_(idx, idx)] += same
        sampled[np.ix_(idx, idx)] += 1.0
    cons = np.divide(together, sampled, out=np.zeros_like(together), where=sampled > 0)
    np.fill_diagonal(cons, 1.0)
    return cons


def _renumber(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    uniq = np.unique(labels)
    keys = []
    for u in uniq:
        members = np.flatnonzero(labels == u)
        keys.append((-float(weights[members].sum()), int(members.min()), int(u)))
    order = {u: new for new, (_, _, u) in enumerate(sorted(keys))}
    return np.array([order[int(v)] for v in labels], dtype=np.int32)


def consensus_metaclusters(codes: np.ndarray, k: int, *, n_resamples: int = 50,
                           resample_fraction: float = 0.9, seed: int = 0,
                           weights: np.ndarray | None = None, method: str = "average") -> np.ndarray:
    """Metacluster id (``0..k-1``, largest first) for each node; see the module docstring."""
    codes = np.asarray(codes, dtype=np.float64)
    n = codes.shape[0]
    if k < 1:
        raise ValueError("number of metaclusters must be >= 1")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n <= k:
        return _renumber(np.arange(n, dtype=np.int32), w)
    if n_resamples > 0:
        cons = consensus_matrix(codes, k, n_resamples=n_resamples, resample_fraction=resample_fraction,
                                seed=seed, method=method)
        dist = squareform(1.0 - cons, checks=False)
        z = linkage(dist, method=method)
    else:
        z = linkage(pdist(codes), method=method)
    labels = (fcluster(z, t=k, criterion="maxclust") - 1).astype(np.int32)
    return _renumber(labels, w)
