"""Figures of the per-patient report (matplotlib, Agg backend), returned as PNG bytes."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..results import schema as S
from .config import TrendPanel  # noqa: E402
from .patient import PatientReport  # noqa: E402

_UNITS = {S.ABS_COUNT: "cells/µL", S.PCT_PARENT: "% of parent", S.PCT_LYMPHOCYTES: "% of lymphocytes"}


def trend_png(report: PatientReport, panels: list[TrendPanel], dpi: int = 110) -> bytes | None:
    """Small multiples of each panel's value over visit weeks, IL-2 cycles shaded, reference band drawn."""
    data = report.trends
    present = [p for p in panels if (data[S.POPULATION] == p.population).any() and p.measure in data.columns
               and data.loc[data[S.POPULATION] == p.population, p.measure].notna().any()]
    if not present:
        return None
    ncol = min(4, len(present))
    nrow = int(np.ceil(len(present) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow), squeeze=False)
    for ax in axes.ravel()[len(present):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.ravel(), present):
        sel = data[data[S.POPULATION] == panel.population].dropna(subset=[panel.measure, S.WEEK])
        sel = sel.sort_values(S.WEEK).drop_duplicates(S.VISIT)
        for start, end in report.cycles_weeks:
            ax.axvspan(start, end, color="#f4a261", alpha=0.35, lw=0)
        iv = report.intervals.get((panel.population, panel.measure))
        if iv is not None:
            lo = iv.low if iv.low is not None else 0.0
            hi = iv.high if iv.high is not None else float(sel[panel.measure].max()) * 1.2
            ax.axhspan(lo, hi, color="#2a9d8f", alpha=0.12, lw=0)
        ax.plot(sel[S.WEEK], sel[panel.measure], marker="o", color="#264653")
        ax.set_title(panel.population, fontsize=9)
        ax.set_xlabel(S.WEEK, fontsize=8)
        ax.set_ylabel(_UNITS[panel.measure], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes | None = None, path: Path | None = None) -> str:
    """A ``data:image/png;base64,...`` URI from bytes or a PNG file ('' when neither is usable)."""
    if png is None and path is not None:
        png = Path(path).read_bytes()
    if not png:
        return ""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
