"""Naming clusters after populations: each phenotype of a :class:`~cytokit.cluster.phenotype.PhenotypeTable`
judged on cluster medians against per-marker :class:`~cytokit.cluster.thresholds.Thresholds` (both on the
**transformed scale**).

Contract
--------
* :func:`match_matrix` evaluates every phenotype on cluster medians. A population is matchable only when
  every term its clustered ancestor does not imply is on a clustered marker (CD25+ CD4 needs CD25).
* :func:`name_clusters`: a cluster is named after the matching population with the most tested terms
  (ties: table order); clusters that match nothing are ``"unassigned"``.
* :func:`unique_names` makes metacluster names unique by appending the marker that separates clusters of
  the same name (``CM CD4 CD28+`` / ``CM CD4 CD28-``).

This module sits above both :mod:`~cytokit.cluster.phenotype` (the tables) and
:mod:`~cytokit.cluster.thresholds` (which reads phenotype levels to place thresholds).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import ClusterError
from .phenotype import UNASSIGNED, PhenotypeTable, PopulationPhenotype, Term
from .thresholds import Thresholds


def _term_holds(values: np.ndarray, term: Term, j: int, thr: Thresholds) -> np.ndarray:
    t_pos, t_hi = thr.pos[term.marker], thr.hi[term.marker]
    v = values[:, j]
    if term.level == "+":
        return v >= t_pos
    if term.level == "-":
        return v < t_pos
    if term.level == "hi":
        return v >= t_hi
    if term.level == "dim":
        return (v >= t_pos) & (v < t_hi)
    if term.level == "lo":
        return v < t_hi
    raise ClusterError(f"unknown phenotype level {term.level!r}")


def _decidable(entry: PopulationPhenotype, markers: Sequence[str],
               implied: Iterable[tuple[Term, ...]] = ()) -> list[tuple[Term, ...]]:
    """Groups of ``entry`` to test: those the clustered population does not imply. Empty when any of
    them names a marker that was not clustered (the population cannot be told apart)."""
    implied = set(implied)
    groups = [g for g in entry.groups if g not in implied]
    if any(t.marker not in markers for g in groups for t in g):
        return []
    return groups


def match_matrix(medians: pd.DataFrame, table: PhenotypeTable, thresholds: Thresholds,
                 implied: Iterable[tuple[Term, ...]] = ()) -> pd.DataFrame:
    """Boolean frame (clusters x populations): does each cluster's median satisfy each phenotype.

    Groups in ``implied`` (guaranteed by the clustered population's gate) are not tested; only
    populations whose other groups are all on clustered markers appear as columns.
    """
    markers = list(medians.columns)
    values = medians.to_numpy(dtype=np.float64)
    implied = tuple(implied)
    cols = {}
    for entry in table:
        groups = _decidable(entry, markers, implied)
        if not groups:
            continue
        ok = np.ones(len(values), dtype=bool)
        for g in groups:
            any_ok = np.zeros(len(values), dtype=bool)
            for t in g:
                any_ok |= _term_holds(values, t, markers.index(t.marker), thresholds)
            ok &= any_ok
        cols[entry.name] = ok
    return pd.DataFrame(cols, index=medians.index)


def usable_terms(table: PhenotypeTable, markers: Sequence[str],
                 implied: Iterable[tuple[Term, ...]] = ()) -> dict[str, int]:
    """Number of decidable terms of each matchable population (used to rank specificity)."""
    implied = tuple(implied)
    out = {}
    for entry in table:
        n = sum(len(g) for g in _decidable(entry, markers, implied))
        if n:
            out[entry.name] = n
    return out


def name_clusters(matches: pd.DataFrame, table: PhenotypeTable, markers: Sequence[str],
                  implied: Iterable[tuple[Term, ...]] = ()) -> pd.Series:
    """The most specific matching population of each cluster, else :data:`UNASSIGNED`."""
    spec = usable_terms(table, markers, implied)
    order = {n: i for i, n in enumerate(table.names)}
    names = []
    for _, row in matches.iterrows():
        hits = [c for c in matches.columns if row[c]]
        if not hits:
            names.append(UNASSIGNED)
        else:
            names.append(sorted(hits, key=lambda n: (-spec.get(n, 0), order[n]))[0])
    return pd.Series(names, index=matches.index, name="name")


def unique_names(names: pd.Series, medians: pd.DataFrame, thresholds: Thresholds) -> pd.Series:
    """Names made unique: clusters sharing a name get the marker(s) that tell them apart appended.

    Within each group of equal names the marker whose medians fall on both sides of its positive threshold
    with the widest spread is added as ``CD28+`` / ``CD28-`` (``CM CD4 CD28+`` and ``CM CD4 CD28-``); the
    split repeats on any subgroup still sharing a name. Clusters that no clustered marker separates keep
    the name with ``#1``, ``#2``...; a cluster without events (no medians) is marked ``(no events)``. Names
    that were unique are unchanged. Index and order are kept.
    """
    out = names.astype(str).copy()
    markers = [m for m in medians.columns if m in thresholds.pos]

    def split(idx: list[Any], used: set[str]) -> None:
        if len(idx) < 2:
            return
        best, spread = None, -1.0
        for m in markers:
            if m in used:
                continue
            v = medians.loc[idx, m].to_numpy(dtype=float)
            above = v >= thresholds.pos[m]
            if above.any() and not above.all() and float(np.ptp(v)) > spread:
                best, spread = m, float(np.ptp(v))
        if best is None:
            for k, i in enumerate(idx, start=1):
                out[i] = f"{out[i]} #{k}"
            return
        t = thresholds.pos[best]
        for sign, part in (("+", [i for i in idx if medians.at[i, best] >= t]),
                           ("-", [i for i in idx if medians.at[i, best] < t])):
            for i in part:
                out[i] = f"{out[i]} {best}{sign}"
            split(part, used | {best})

    empty = medians.reindex(out.index)[markers].isna().all(axis=1) if markers else pd.Series(False, out.index)
    for i in out.index[empty.to_numpy()]:
        out[i] = f"{out[i]} (no events)"  # no medians: nothing to tell it apart by
    for _, group in out[~empty.to_numpy()].groupby(out[~empty.to_numpy()], sort=False):
        if len(group) > 1:
            split(list(group.index), set())
    return out
