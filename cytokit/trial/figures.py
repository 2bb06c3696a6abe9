"""Figures of the trial analysis as PNG bytes (no pyplot state: each figure is its own ``Figure``).

* :func:`trajectories` - median and IQR band per arm over nominal weeks, one panel per population;
* :func:`change_at_visit` - box + strip plot of the change from baseline at one visit, per population;
* :func:`forest` - odds ratios with 95 % CIs on a log axis (infinite bounds drawn as arrows at the edge).

Arms are coloured by :func:`cytokit.palette.arm_palette` (treatment red, control blue), as in the
clustering figures. A change in a percentage measure is a difference in percentage points and is labelled so.
"""
from __future__ import annotations

import io
import logging
import math
import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..palette import arm_palette
from ..reproducible import PNG_METADATA, fixed_jitter
from ..results import schema as S
from .config import MEASURE_UNITS

log = logging.getLogger(__name__)


def _figure_rows(values: pd.DataFrame, d: pd.DataFrame, arms: list[str], figure: str, measure: str) -> list[str]:
    """The arms of ``arms`` with a row in ``d`` (the rows a figure draws, taken from ``values``); a warning names
    each arm of ``arms`` the figure has no row for, and the arms the data carry, so a figure missing an arm, or
    not drawn at all, is never silent."""
    drawn = [a for a in arms if (d[S.ARM] == a).any()]
    missing = [a for a in arms if a not in drawn]
    if missing:
        found = sorted({str(a) for a in values[S.ARM].dropna()}) if S.ARM in values else []
        log.warning("%s of %s: no value for arm%s %s (arms compared: %s; arms in the data: %s)%s", figure, measure,
                    "s" if len(missing) > 1 else "", missing, arms, found, "" if drawn else "; figure not drawn")
    return drawn


def change_label(measure: str) -> str:
    """Axis text of a change from baseline: 'change (cells/µL)', 'change (percentage points)'."""
    unit = MEASURE_UNITS.get(measure, measure)
    return "change (percentage points)" if unit.startswith("%") else f"change ({unit})"


def change_title(measure: str, visit: str) -> str:
    unit = MEASURE_UNITS.get(measure, measure)
    what = f"{unit}, difference in percentage points" if unit.startswith("%") else unit
    return f"Change from baseline at {visit}: {what}"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=PNG_METADATA)
    return buf.getvalue()


def _grid(n: int, ncols: int = 3, size: tuple[float, float] = (3.6, 2.9)) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def trajectories(values: pd.DataFrame, populations: list[str], measure: str, arms: list[str]) -> bytes | None:
    """Median (line) and interquartile band (shaded) of ``measure`` by arm over weeks, one panel per population
    with a value of ``measure`` in ``arms`` (none for a population without, e.g. absolute counts with no
    lymphocyte count); None when no data."""
    import seaborn as sns

    d_all = values[values[S.POPULATION].isin(populations) & values[S.ARM].isin(arms)].dropna(subset=[measure])
    pops = [p for p in populations if (d_all[S.POPULATION] == p).any()]
    if not _figure_rows(values, d_all, arms, "trajectories", measure) or not pops:
        return None
    fig, axes = _grid(len(pops))
    palette = arm_palette(arms)
    for ax, pop in zip(axes, pops):
        d = d_all[d_all[S.POPULATION] == pop]
        sns.lineplot(data=d, x=S.WEEK, y=measure, hue=S.ARM, hue_order=arms, estimator="median",
                     errorbar=("pi", 50), marker="o", palette=palette, ax=ax)
        ax.set_title(pop, fontsize=10)
        ax.set_xlabel(S.WEEK)
        ax.set_ylabel(MEASURE_UNITS.get(measure, measure))
        if ax.get_legend() is not None and ax is not axes[0]:
            ax.get_legend().remove()
    fig.suptitle(f"Median (IQR band) by arm: {MEASURE_UNITS.get(measure, measure)}", fontsize=11)
    return _png(fig)


def change_at_visit(values: pd.DataFrame, populations: list[str], measure: str, arms: list[str],
                    visit: str) -> bytes | None:
    """Box plot with individual patients of the change from baseline at ``visit``; None when no data."""
    import seaborn as sns

    col = f"{measure}_change"
    d = values[(values[S.VISIT] == visit) & values[S.ARM].isin(arms) & values[S.POPULATION].isin(populations)]
    d = d.dropna(subset=[col])
    pops = [p for p in populations if (d[S.POPULATION] == p).any()]
    if not _figure_rows(values, d, arms, f"change at {visit}", measure) or not pops:
        return None
    fig, axes = _grid(len(pops))
    palette = arm_palette(arms)
    for ax, pop in zip(axes, pops):
        dp = d[d[S.POPULATION] == pop]
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert` to bxp
            warnings.simplefilter("ignore", DeprecationWarning)
            sns.boxplot(data=dp, x=S.ARM, y=col, hue=S.ARM, order=arms, hue_order=arms, palette=palette,
                        showfliers=False, width=0.5, boxprops={"alpha": 0.35}, legend=False, ax=ax)
        with fixed_jitter():  # the same jitter in every run (byte-reproducible figures)
            sns.stripplot(data=dp, x=S.ARM, y=col, hue=S.ARM, order=arms, hue_order=arms, palette=palette,
                          size=3.5, jitter=0.15, legend=False, ax=ax)
        ax.axhline(0, color="0.5", lw=0.8, ls="--")
        ax.set_title(pop, fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel(change_label(measure))
    fig.suptitle(change_title(measure, visit), fontsize=11)
    return _png(fig)


def forest(rows: pd.DataFrame, *, title: str = "Odds ratios") -> bytes | None:
    """Forest plot of ``rows`` (columns ``label``, ``estimate``, ``ci_low``, ``ci_high``, ``p``).

    An odds ratio of 0 or infinity (an empty cell) is a triangle at the axis edge it lies beyond; a limit of 0
    or infinity an arrow at that edge."""
    rows = rows[np.isfinite(rows["estimate"].astype(float)) | np.isfinite(rows["ci_low"].astype(float))]
    if rows.empty:
        return None
    rows = rows.reset_index(drop=True)
    finite = pd.concat([rows["estimate"], rows["ci_low"], rows["ci_high"]]).astype(float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    lo_edge = min(0.1, float(finite.min()) / 1.5) if len(finite) else 0.1
    hi_edge = max(10.0, float(finite.max()) * 1.5) if len(finite) else 10.0
    fig = Figure(figsize=(7.5, 0.45 * len(rows) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows.itertuples(index=False)):
        est = float(r.estimate)
        lo = float(r.ci_low) if np.isfinite(r.ci_low) and r.ci_low > 0 else lo_edge
        hi = float(r.ci_high) if np.isfinite(r.ci_high) else hi_edge
        ax.plot([lo, hi], [yi, yi], color="0.2", lw=1.4)
        if not (np.isfinite(r.ci_high)):
            ax.annotate("", xy=(hi_edge, yi), xytext=(hi_edge / 1.6, yi), arrowprops={"arrowstyle": "->"})
        if not (np.isfinite(r.ci_low) and r.ci_low > 0):  # a lower limit of 0: the interval runs off the axis
            ax.annotate("", xy=(lo_edge, yi), xytext=(lo_edge * 1.6, yi), arrowprops={"arrowstyle": "->"})
        if np.isfinite(est) and est > 0:
            ax.plot([est], [yi], "s", color="#c0392b", ms=6)
        elif np.isinf(est) and est > 0:  # e.g. no responder in the control arm: OR beyond the axis
            ax.plot([hi_edge], [yi], ">", color="#c0392b", ms=7, clip_on=False)
        elif est == 0:  # e.g. every control patient responds: OR 0, beyond the axis on the left
            ax.plot([lo_edge], [yi], "<", color="#c0392b", ms=7, clip_on=False)
    ax.axvline(1.0, color="0.5", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(lo_edge, hi_edge)
    ax.set_yticks(y)
    ax.set_yticklabels(rows["label"].astype(str).tolist(), fontsize=8)
    ax.set_xlabel("odds ratio (95% CI), log scale")
    ax.set_title(title, fontsize=11)
    return _png(fig)
