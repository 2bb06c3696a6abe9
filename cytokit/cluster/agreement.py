"""Gating versus clustering: per sample and population, the difference in abundance (percentage points).

Both sides are expressed as **percent of the clustered population** (e.g. % of T cells): the gating side
is ``count(population) / count(clustered population) * 100`` from the results store's
``populations`` table (counts, not its ``pct_parent``), the clustering side is
:func:`cytokit.cluster.abundance.population_abundance`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ClusterError
from ..results import schema as S


def gating_pct_of(populations: pd.DataFrame, root: str) -> pd.DataFrame:
    """``sample_id, population, gating_count, gating_total, gating_pct`` (% of ``root``) from a populations table."""
    need = {S.SAMPLE_ID, S.POPULATION, S.COUNT}
    missing = need - set(populations.columns)
    if missing:
        raise ClusterError(f"populations table lacks columns {sorted(missing)}")
    pops = populations[[S.SAMPLE_ID, S.POPULATION, S.COUNT]].copy()
    roots = pops[pops[S.POPULATION] == root].groupby(S.SAMPLE_ID)[S.COUNT].sum()
    pops = pops.rename(columns={S.COUNT: "gating_count"})
    pops["gating_total"] = pops[S.SAMPLE_ID].map(roots)
    pops = pops.dropna(subset=["gating_total"])
    pops["gating_pct"] = np.where(pops["gating_total"] > 0,
                                  100.0 * pops["gating_count"] / pops["gating_total"].clip(lower=1), np.nan)
    return pops


def agreement_table(clustering: pd.DataFrame, populations: pd.DataFrame, *, root: str,
                    margin_pp: float) -> pd.DataFrame:
    """Join clustering and gating abundances; flag ``|difference| > margin_pp`` percentage points.

    ``clustering`` is a population-abundance table (``sample_id, population, count, pct``). Rows:
    ``sample_id, population, gating_pct, clustering_pct, difference_pp`` (clustering - gating),
    ``flagged`` (bool), ``margin_pp``. Only populations present on both sides are compared.
    """
    gate = gating_pct_of(populations, root)
    clus = clustering[[S.SAMPLE_ID, S.POPULATION, S.COUNT, "pct"]].rename(
        columns={S.COUNT: "clustering_count", "pct": "clustering_pct"})
    df = clus.merge(gate, on=[S.SAMPLE_ID, S.POPULATION], how="inner")
    df = df[df[S.POPULATION] != root]
    df["difference_pp"] = df["clustering_pct"] - df["gating_pct"]
    df["flagged"] = df["difference_pp"].abs() > margin_pp
    df["margin_pp"] = float(margin_pp)
    cols = [S.SAMPLE_ID, S.POPULATION, "gating_count", "gating_total", "gating_pct", "clustering_count",
            "clustering_pct", "difference_pp", "flagged", "margin_pp"]
    return df[cols].sort_values([S.SAMPLE_ID, S.POPULATION], kind="stable").reset_index(drop=True)


def agreement_summary(agreement: pd.DataFrame) -> pd.DataFrame:
    """Per population: samples compared, mean and max absolute difference (pp), samples flagged."""
    if agreement.empty:
        return pd.DataFrame(columns=[S.POPULATION, "n_samples", "mean_abs_difference_pp",
                                     "max_abs_difference_pp", "n_flagged"])
    g = agreement.assign(abs_diff=agreement["difference_pp"].abs()).groupby(S.POPULATION, sort=False)
    return pd.DataFrame({
        "n_samples": g.size(), "mean_abs_difference_pp": g["abs_diff"].mean(),
        "max_abs_difference_pp": g["abs_diff"].max(), "n_flagged": g["flagged"].sum().astype(int),
    }).reset_index()
