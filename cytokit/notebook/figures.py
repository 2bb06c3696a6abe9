"""Figures of the gate editor: one population's gate (via :mod:`cytokit.gating.plotting`), PNG bytes
for widgets and notebooks, and the cohort thumbnail grid with outliers framed in red."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io_utils import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .state import CohortResult

OUTLIER_COLOUR = "#d62728"


def png_bytes(fig: "Figure", *, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes (works with any matplotlib backend, no pyplot state)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show(fig: "Figure") -> Any:
    """An IPython image of ``fig``: the last expression of a cell (or ``display(show(fig))``) shows it in
    Jupyter and is stored in the notebook as PNG (visible on a code host)."""
    from IPython.display import Image

    return Image(data=png_bytes(fig))


def gate_figure(result: Any, name: str, *, size: tuple[float, float] = (4.6, 4.0)) -> "Figure":
    """``name``'s gate over its parent's density (the gating plots' own axes and labels)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    result.plot(name, ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    return fig


def cohort_grid(cohort: "CohortResult", *, cols: int = 4, path: str | Path | None = None) -> "Figure":
    """One thumbnail per sample of the population's gate; outliers get a thick red frame and the reason."""
    from matplotlib.figure import Figure

    names = list(cohort.results)
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows), dpi=80)
    table = cohort.table.set_index("sample")
    for i, sample in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        cohort.results[sample].plot(cohort.population, ax=ax, max_points=30_000)
        row = table.loc[sample]
        title = f"{sample}\n{row['pct_parent']:.1f}% of parent"
        if bool(row["outlier"]):
            for spine in ax.spines.values():
                spine.set_edgecolor(OUTLIER_COLOUR)
                spine.set_linewidth(3)
            title += f"  OUTLIER: {row['reason']}"
        ax.set_title(title, fontsize=7, color=OUTLIER_COLOUR if bool(row["outlier"]) else "black")
        ax.tick_params(labelsize=6)
        ax.xaxis.label.set_fontsize(7)
        ax.yaxis.label.set_fontsize(7)
    n_out = int(cohort.table["outlier"].sum()) if len(cohort.table) else 0
    fig.suptitle(f"{cohort.population} on {len(names)} samples ({n_out} outlier{'s' if n_out != 1 else ''} "
                 f"framed in red)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / max(rows, 1) / 3.0))
    if path is not None:
        atomic_write_bytes(path, png_bytes(fig))
    return fig
