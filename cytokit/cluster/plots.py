"""Figures of a clustering run (PNG, written atomically through :mod:`cytokit.io_utils`).

* :func:`plot_heatmap` — metacluster x marker median expression (transformed scale), rows labelled with
  metacluster id, name and % of events.
* :func:`plot_map` — minimum spanning tree of the SOM nodes (Euclidean distances between codes), laid out
  by classical MDS of the tree's path lengths; node area ~ events, colour = metacluster.
* :func:`plot_abundance` — % of the clustered population per metacluster by visit and arm.
Figures are built on :class:`matplotlib.figure.Figure` objects (no pyplot global state).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.sparse.csgraph import minimum_spanning_tree, shortest_path
from scipy.spatial.distance import cdist

from ..io_utils import atomic_write_bytes
from ..reproducible import PNG_METADATA, fixed_jitter
from ..results import schema as S


def _save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA)
    return atomic_write_bytes(path, buf.getvalue())


def _palette(k: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if k > 10 else "tab10"]
    return np.array([cmap(i % cmap.N) for i in range(k)])


def plot_heatmap(metaclusters: pd.DataFrame, markers: list[str], path: str | Path, *,
                 scale: str = "transformed scale") -> Path:
    """Heatmap of per-metacluster marker medians (table from ``metacluster_table``); metaclusters without
    events are left out (their medians are undefined). ``scale`` names the values' transform."""
    import seaborn as sns

    shown = metaclusters[metaclusters["events"] > 0] if "events" in metaclusters.columns else metaclusters
    data = shown[[f"median_{m}" for m in markers]].to_numpy(dtype=float)
    labels = [f"{r.metacluster}: {r.name} ({r.pct_events:.1f}%)" for r in shown.itertuples()]
    fig = Figure(figsize=(2.0 + 0.7 * len(markers), 1.4 + 0.38 * len(labels)))
    ax = fig.add_subplot(111)
    sns.heatmap(pd.DataFrame(data, index=labels, columns=markers), ax=ax, cmap="viridis", annot=len(markers) <= 14,
                fmt=".2f", annot_kws={"size": 7}, cbar_kws={"label": f"median ({scale})"})
    ax.set_title("Metacluster median expression")
    ax.set_xlabel("marker")
    ax.set_ylabel("")
    empty = len(metaclusters) - len(shown)
    if empty:
        fig.text(0.01, 0.005, f"{empty} metacluster(s) without events not shown", fontsize=7, color="0.4")
    return _save(fig, path)


def mst_layout(codes: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """2-D positions of the nodes (classical MDS of MST path lengths) and the MST edges."""
    d = cdist(codes, codes)
    tree = minimum_spanning_tree(d + 1e-12 * (d == 0))  # zero distances would drop edges
    coo = tree.tocoo()
    edges = [(int(i), int(j)) for i, j in zip(coo.row, coo.col)]
    unit = tree.copy()
    unit.data = np.ones_like(unit.data)
    path = shortest_path(unit, directed=False)
    path[~np.isfinite(path)] = np.nanmax(path[np.isfinite(path)]) + 1 if np.isfinite(path).any() else 1
    n = len(codes)
    J = np.eye(n) - 1.0 / n
    B = -0.5 * J @ (path ** 2) @ J
    vals, vecs = np.linalg.eigh(B)
    order = np.argsort(vals)[::-1][:2]
    pos = vecs[:, order] * np.sqrt(np.clip(vals[order], 0, None))
    pos *= np.where(np.sign(pos[np.argmax(np.abs(pos), axis=0), [0, 1]]) < 0, -1.0, 1.0)
    return pos, edges


def plot_map(nodes: pd.DataFrame, codes: np.ndarray, path: str | Path, *, names: pd.Series | None = None) -> Path:
    """MST view of the SOM nodes (table from ``node_table``); legend = metacluster id and name."""
    pos, edges = mst_layout(codes)
    k = int(nodes["metacluster"].max()) + 1
    colours = _palette(k)
    size = 20 + 400 * np.sqrt(nodes["events"].to_numpy(float) / max(nodes["events"].max(), 1))
    fig = Figure(figsize=(8, 7))
    ax = fig.add_subplot(111)
    for i, j in edges:
        ax.plot(pos[[i, j], 0], pos[[i, j], 1], color="0.7", lw=0.8, zorder=1)
    for mc in range(k):
        sel = (nodes["metacluster"] == mc).to_numpy()
        if not sel.any() or nodes.loc[sel, "events"].sum() == 0:
            continue  # an empty metacluster has nothing on the map
        label = f"{mc}: {names.get(mc, '')}" if names is not None else str(mc)
        ax.scatter(pos[sel, 0], pos[sel, 1], s=size[sel], color=colours[mc], edgecolor="k", lw=0.4,
                   label=label, zorder=2)
    ax.set_axis_off()
    ax.set_title("SOM nodes: minimum spanning tree (area ~ events)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=0.5, title="metacluster")
    return _save(fig, path)


def plot_abundance(abundance: pd.DataFrame, path: str | Path, *, group_col: str = S.ARM,
                   arm_order: list[str] | None = None) -> Path:
    """Box + points of % per metacluster, by visit (x, in week order) and ``group_col`` (colour: the trial
    figures' arm colours, :func:`cytokit.palette.arm_palette`, in ``arm_order``). Metaclusters without
    events in any sample are left out."""
    import seaborn as sns

    from ..palette import arm_palette

    df = abundance.copy()
    df["cluster"] = df["metacluster"].astype(str) + ": " + df["name"].astype(str)
    order_visits = (df.sort_values(S.WEEK)[S.VISIT].drop_duplicates().tolist() if S.WEEK in df
                    else sorted(df[S.VISIT].unique()))
    nonempty = df.groupby("metacluster")[S.COUNT].sum() > 0 if S.COUNT in df.columns else None
    if nonempty is not None:
        df = df[df["metacluster"].map(nonempty)]
    clusters = df.drop_duplicates("metacluster").sort_values("metacluster")["cluster"].tolist()
    ncol = max(1, min(4, len(clusters)))
    nrow = max(1, int(np.ceil(len(clusters) / ncol)))
    fig = Figure(figsize=(4.2 * ncol, 3.0 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    hue = group_col if group_col in df and df[group_col].notna().any() else None
    hue_order = None
    palette = None
    if hue is not None:
        present = sorted(df[hue].dropna().astype(str).unique())
        hue_order = [a for a in (arm_order or []) if a in present] + [a for a in present if a not in (arm_order or [])]
        palette = arm_palette(hue_order)
        df[hue] = df[hue].astype(str)
    for ax, cl in zip(axes.ravel(), clusters):
        sub = df[df["cluster"] == cl]
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated 'vert' internally
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.boxplot(data=sub, x=S.VISIT, y="pct", hue=hue, hue_order=hue_order, palette=palette,
                        order=order_visits, ax=ax, fliersize=0, linewidth=0.8, boxprops={"alpha": 0.45})
        with fixed_jitter():  # the same jitter in every run (byte-reproducible figures)
            sns.stripplot(data=sub, x=S.VISIT, y="pct", hue=hue, hue_order=hue_order, order=order_visits,
                          dodge=hue is not None, ax=ax, size=2.5, palette="dark:k" if hue else None,
                          color=None if hue else "k", legend=False)
        ax.set_title(cl, fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("% of clustered population")
        ax.tick_params(axis="x", labelsize=7, rotation=45)
        if ax.get_legend() is not None and cl != clusters[0]:
            ax.get_legend().remove()
    for ax in axes.ravel()[len(clusters):]:
        ax.set_axis_off()
    fig.suptitle("Metacluster abundance by visit and arm")
    fig.tight_layout()
    return _save(fig, path)
