"""FlowSOM-style clustering across samples: one shared SOM, consensus metaclusters, every event mapped.

Contract
--------
:class:`SOMClusterer` is a scikit-learn-style estimator: parameters (:class:`ClusterParams`) in
``__init__``, learning in :meth:`SOMClusterer.fit`, fitted attributes ending in ``_``.

* ``fit(samples, markers)`` takes a mapping ``sample_id -> events`` (``(n_events, n_markers)`` arrays on
  the **transformed scale**, columns in the order of ``markers``). It draws a per-sample-balanced training
  subsample (at most ``ceil(n_train / n_samples)`` events from each sample, without replacement, from
  ``numpy.random.default_rng(seed)``), trains one batch SOM on it, and metaclusters the nodes.
* ``predict(X)`` maps events to ``(node, metacluster)`` ids.
* :func:`cluster_samples` fits and maps every event of every sample, returning a :class:`ClusteringResult`.

Determinism: the same samples (same order of ids), markers and parameters give identical codes and
assignments.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ClusterError
from .metacluster import consensus_metaclusters
from .params import ClusterParams
from .som import map_to_codes, train_batch_som

log = logging.getLogger(__name__)


def _check_samples(samples: Mapping[str, np.ndarray], markers: Sequence[str]) -> dict[str, np.ndarray]:
    if not samples:
        raise ClusterError("no samples to cluster")
    if len(markers) == 0:
        raise ClusterError("no markers chosen for clustering")
    if len(set(markers)) != len(markers):
        raise ClusterError(f"markers listed twice: {list(markers)}")
    out = {}
    for sid, X in samples.items():
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(markers):
            raise ClusterError(
                f"sample {sid!r}: events of shape {X.shape} do not match {len(markers)} markers {list(markers)}")
        if not np.issubdtype(X.dtype, np.number):
            raise ClusterError(f"sample {sid!r}: events are not numeric ({X.dtype})")
        if X.size and not np.isfinite(X).all():
            bad = [m for j, m in enumerate(markers) if not np.isfinite(X[:, j]).all()]
            raise ClusterError(f"sample {sid!r}: non-finite values (NaN/inf) in marker(s) {bad}")
        out[str(sid)] = np.ascontiguousarray(X, dtype=np.float32)
    if sum(x.shape[0] for x in out.values()) == 0:
        raise ClusterError("all samples have zero events in the clustered population")
    return out


def balanced_subsample(samples: Mapping[str, np.ndarray], n_train: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-sample-balanced training events and the row indices drawn from each sample.

    Each sample contributes ``min(n_events, ceil(n_train / n_samples))`` events, so every sample weighs
    the same in the map whatever its event count.
    """
    rng = np.random.default_rng(seed)
    quota = int(np.ceil(n_train / max(len(samples), 1)))
    parts, taken = [], {}
    for sid, X in samples.items():
        n = X.shape[0]
        idx = np.arange(n) if n <= quota else np.sort(rng.choice(n, size=quota, replace=False))
        taken[sid] = idx
        parts.append(X[idx])
    return np.concatenate(parts, axis=0), taken


class SOMClusterer:
    """Shared self-organising map + consensus metaclustering (see module docstring)."""

    def __init__(self, params: ClusterParams | None = None) -> None:
        self.params = params or ClusterParams()

    # fitted: markers_, codes_, node_metacluster_, center_, scale_, n_train_, train_index_
    def fit(self, samples: Mapping[str, np.ndarray], markers: Sequence[str]) -> "SOMClusterer":
        p = self.params
        data = _check_samples(samples, markers)
        train, taken = balanced_subsample(data, p.n_train, p.seed)
        if train.shape[0] < p.n_nodes:
            raise ClusterError(
                f"only {train.shape[0]} events to train a {p.xdim}x{p.ydim} map; use a smaller --grid")
        self.markers_ = list(markers)
        if p.scale:
            self.center_ = train.mean(axis=0).astype(np.float64)
            sd = train.std(axis=0).astype(np.float64)
            self.scale_ = np.where(sd > 0, sd, 1.0)
        else:
            self.center_ = np.zeros(train.shape[1])
            self.scale_ = np.ones(train.shape[1])
        Z = self._standardise(train)
        codes = train_batch_som(Z, p.xdim, p.ydim, epochs=p.epochs, refine_epochs=p.refine_epochs,
                                radius_end=p.radius_end)
        train_nodes = map_to_codes(Z, codes)
        weights = np.bincount(train_nodes, minlength=p.n_nodes)
        self.node_metacluster_ = consensus_metaclusters(
            codes, p.n_metaclusters, n_resamples=p.consensus_resamples,
            resample_fraction=p.resample_fraction, seed=p.seed, weights=weights)
        self.codes_ = codes * self.scale_ + self.center_
        self.train_ = train
        self.train_nodes_ = train_nodes
        self.train_index_ = taken
        self.n_train_ = int(train.shape[0])
        log.info("trained %dx%d SOM on %d events from %d samples; %d metaclusters",
                 p.xdim, p.ydim, self.n_train_, len(data), len(np.unique(self.node_metacluster_)))
        return self

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        if not self.params.scale:
            return X
        return ((X - self.center_) / self.scale_).astype(np.float32)

    def predict_nodes(self, X: np.ndarray) -> np.ndarray:
        """SOM node id (``0..n_nodes-1``) of every event of ``X`` (transformed scale, fitted markers)."""
        if not hasattr(self, "codes_"):
            raise ClusterError("the clusterer is not fitted yet: call fit() first")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.markers_):
            raise ClusterError(f"events of shape {X.shape} do not match the {len(self.markers_)} fitted markers")
        codes_std = (self.codes_ - self.center_) / self.scale_
        return map_to_codes(self._standardise(X), codes_std)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(node, metacluster)`` id arrays for the events of ``X``."""
        nodes = self.predict_nodes(X)
        return nodes, self.node_metacluster_[nodes]


@dataclass
class ClusteringResult:
    """Clusters of one population across samples.

    ``nodes[sample_id]`` is the SOM node of every event of that sample (int32, in event order);
    ``codes`` are node centroids and ``node_medians`` / ``metacluster_medians`` per-marker medians (over the
    balanced training events ``train_events``), all on the transformed scale. ``params`` are the parameters that produced the result.
    """

    markers: list[str]
    params: ClusterParams
    codes: np.ndarray
    node_metacluster: np.ndarray
    nodes: dict[str, np.ndarray]
    node_medians: pd.DataFrame
    metacluster_medians: pd.DataFrame
    population: str | None = None
    n_train: int = 0
    train_events: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def metaclusters(self, sample_id: str) -> np.ndarray:
        """Metacluster id of every event of one sample."""
        return self.node_metacluster[self.nodes[sample_id]]

    def node_counts(self) -> pd.DataFrame:
        """Events per sample (rows, in input order) and SOM node (columns)."""
        n = self.codes.shape[0]
        rows = {sid: np.bincount(lab, minlength=n) for sid, lab in self.nodes.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=range(n))

    def metacluster_counts(self) -> pd.DataFrame:
        """Events per sample (rows) and metacluster (columns ``0..k-1``)."""
        k = int(self.node_metacluster.max()) + 1
        rows = {sid: np.bincount(self.node_metacluster[lab], minlength=k) for sid, lab in self.nodes.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=range(k))


def _group_medians(X: np.ndarray, labels: np.ndarray, n_groups: int, markers: Sequence[str],
                   fallback: np.ndarray | None = None) -> pd.DataFrame:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_groups + 1))
    out = np.full((n_groups, len(markers)), np.nan)
    for g in range(n_groups):
        rows = order[bounds[g]:bounds[g + 1]]
        if len(rows):
            out[g] = np.median(X[rows], axis=0)
        elif fallback is not None:
            out[g] = fallback[g]
    return pd.DataFrame(out, columns=list(markers))


def cluster_samples(samples: Mapping[str, np.ndarray], markers: Sequence[str], *,
                    params: ClusterParams | None = None, population: str | None = None) -> ClusteringResult:
    """Fit one shared map on a balanced subsample of ``samples`` and map every event of every sample.

    ``samples`` maps sample id -> events ``(n_events, len(markers))`` on the transformed scale. Medians
    per node and per metacluster are taken over the (balanced) training events.
    """
    model = SOMClusterer(params).fit(samples, markers)
    p = model.params
    nodes = {sid: model.predict_nodes(X) for sid, X in _check_samples(samples, markers).items()}
    k = int(model.node_metacluster_.max()) + 1
    node_med = _group_medians(model.train_, model.train_nodes_, p.n_nodes, markers, fallback=model.codes_)
    mc_med = _group_medians(model.train_, model.node_metacluster_[model.train_nodes_], k, markers)
    return ClusteringResult(
        markers=list(markers), params=p, codes=model.codes_, node_metacluster=model.node_metacluster_,
        nodes=nodes, node_medians=node_med, metacluster_medians=mc_med, population=population,
        n_train=model.n_train_, train_events=model.train_,
        info={"n_samples": len(nodes), "n_events": int(sum(len(v) for v in nodes.values()))},
    )
