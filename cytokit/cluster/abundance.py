"""Cluster annotation and per-sample abundance tables (tidy, one row per sample x cluster/population).

Units: ``pct`` columns are **percent (0-100) of the clustered population's events** in that sample;
counts are events. Medians are on the transformed scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ClusterError
from ..results import schema as S
from .model import ClusteringResult
from .naming import match_matrix, name_clusters, unique_names
from .phenotype import UNASSIGNED, PhenotypeTable
from .thresholds import Thresholds

LEVELS = ("node", "metacluster")


@dataclass
class Annotation:
    """Phenotype matches and names of SOM nodes and metaclusters.

    ``node_matches`` / ``metacluster_matches``: boolean frames (cluster x population);
    ``node_names`` / ``metacluster_names``: most specific matching population or ``"unassigned"``;
    metacluster names are unique (the distinguishing marker appended, see ``naming.unique_names``).
    """

    table: PhenotypeTable
    thresholds: Thresholds
    node_matches: pd.DataFrame
    node_names: pd.Series
    metacluster_matches: pd.DataFrame
    metacluster_names: pd.Series

    @property
    def populations(self) -> list[str]:
        """Populations that could be decided from the clustered markers (table order)."""
        return list(self.metacluster_matches.columns)


def annotate(result: ClusteringResult, table: PhenotypeTable, thresholds: Thresholds) -> Annotation:
    """Match every node and metacluster median against the phenotype table.

    Only descendants of the clustered population (``result.population``) are candidates when it is in
    the table, and the terms its own gate guarantees are not re-tested (see ``PhenotypeTable.within``).
    """
    sub, implied = table.within(result.population)
    nm = match_matrix(result.node_medians, sub, thresholds, implied)
    mm = match_matrix(result.metacluster_medians, sub, thresholds, implied)
    mc_names = unique_names(name_clusters(mm, sub, result.markers, implied), result.metacluster_medians, thresholds)
    return Annotation(sub, thresholds, nm, name_clusters(nm, sub, result.markers, implied), mm, mc_names)


def metacluster_abundance(result: ClusteringResult, annotation: Annotation | None = None) -> pd.DataFrame:
    """Rows: sample_id, metacluster, name, count, total, pct (% of the clustered population)."""
    counts = result.metacluster_counts()
    totals = counts.sum(axis=1)
    rows = []
    for sid, row in counts.iterrows():
        for mc, c in row.items():
            rows.append((sid, int(mc), int(c), int(totals[sid])))
    df = pd.DataFrame(rows, columns=[S.SAMPLE_ID, "metacluster", S.COUNT, "total"])
    df["pct"] = np.where(df["total"] > 0, 100.0 * df[S.COUNT] / df["total"].clip(lower=1), np.nan)
    names = annotation.metacluster_names if annotation is not None else pd.Series(dtype=object)
    df.insert(2, "name", df["metacluster"].map(lambda k: names.get(k, UNASSIGNED)))
    df.insert(1, S.POPULATION, result.population or "")
    return df


def population_abundance(result: ClusteringResult, annotation: Annotation, *, level: str = "node") -> pd.DataFrame:
    """Rows: sample_id, population, count, total, pct — events in clusters matching each phenotype.

    ``level="node"`` sums SOM nodes whose median matches (finer); ``"metacluster"`` sums metaclusters.
    """
    if level not in LEVELS:
        raise ClusterError(f"abundance level must be one of {LEVELS}, not {level!r}")
    if level == "node":
        counts, matches = result.node_counts(), annotation.node_matches
    else:
        counts, matches = result.metacluster_counts(), annotation.metacluster_matches
    C = counts.to_numpy(dtype=np.int64)
    M = matches.reindex(index=counts.columns, fill_value=False).to_numpy(dtype=np.int64)
    pop_counts = C @ M
    totals = C.sum(axis=1)
    rows = []
    for i, sid in enumerate(counts.index):
        for j, pop in enumerate(matches.columns):
            rows.append((sid, pop, int(pop_counts[i, j]), int(totals[i])))
    df = pd.DataFrame(rows, columns=[S.SAMPLE_ID, S.POPULATION, S.COUNT, "total"])
    df["pct"] = np.where(df["total"] > 0, 100.0 * df[S.COUNT] / df["total"].clip(lower=1), np.nan)
    df.insert(2, "clustered_population", result.population or "")
    df["level"] = level
    return df


def metacluster_table(result: ClusteringResult, annotation: Annotation | None = None) -> pd.DataFrame:
    """One row per metacluster: name, matching populations, nodes, % of all events, marker medians."""
    counts = result.metacluster_counts().sum(axis=0)
    total = max(int(counts.sum()), 1)
    k = len(result.metacluster_medians)
    df = pd.DataFrame({"metacluster": np.arange(k)})
    if annotation is not None:
        df["name"] = annotation.metacluster_names.reindex(range(k)).fillna(UNASSIGNED).to_numpy()
        mm = annotation.metacluster_matches
        df["matches"] = [";".join(c for c in mm.columns if mm.at[i, c]) if i in mm.index else "" for i in range(k)]
    else:
        df["name"] = UNASSIGNED
        df["matches"] = ""
    df["n_nodes"] = np.bincount(result.node_metacluster, minlength=k)
    df["events"] = counts.reindex(range(k), fill_value=0).to_numpy()
    df["pct_events"] = 100.0 * df["events"] / total
    for m in result.markers:
        df[f"median_{m}"] = result.metacluster_medians[m].to_numpy()
    return df


def node_table(result: ClusteringResult, annotation: Annotation | None = None) -> pd.DataFrame:
    """One row per SOM node: grid position, metacluster, name, events, marker medians."""
    p = result.params
    n = result.codes.shape[0]
    df = pd.DataFrame({"node": np.arange(n), "grid_x": np.arange(n) // p.ydim, "grid_y": np.arange(n) % p.ydim,
                       "metacluster": result.node_metacluster})
    df["name"] = (annotation.node_names.reindex(range(n)).fillna(UNASSIGNED).to_numpy()
                  if annotation is not None else UNASSIGNED)
    df["events"] = result.node_counts().sum(axis=0).reindex(range(n), fill_value=0).to_numpy()
    for m in result.markers:
        df[f"median_{m}"] = result.node_medians[m].to_numpy()
    return df
