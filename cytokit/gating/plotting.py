"""Plots of fitted gates over their parent's density (matplotlib, Agg-safe)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..gates import BooleanGate, EllipsoidGate, Gate, PolygonGate, QuadrantGate, RectangleGate
from ..io_utils import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .result import GatingResult


def _new_axes(ax: "Axes | None") -> tuple["Figure", "Axes"]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.8), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _draw_gate_2d(ax: "Axes", gate: Gate, dims: tuple[str, str], color: str = "crimson") -> None:
    from matplotlib.patches import Ellipse, Polygon, Rectangle

    if list(gate.dims[:2]) != list(dims):
        if isinstance(gate, (QuadrantGate, RectangleGate)):
            _draw_dividers(ax, gate, dims, color)
        return
    if isinstance(gate, PolygonGate):
        ax.add_patch(Polygon(np.asarray(gate.vertices), closed=True, fill=False, ec=color, lw=1.5))
    elif isinstance(gate, EllipsoidGate):
        cov = np.asarray(gate.covariance)[:2, :2]
        vals, vecs = np.linalg.eigh(cov)
        angle = float(np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1])))
        w, h = 2 * np.sqrt(vals[::-1] * gate.distance_square)
        ax.add_patch(Ellipse(gate.mean[:2], w, h, angle=angle, fill=False, ec=color, lw=1.5))
    elif isinstance(gate, RectangleGate):
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        lo = [gate.lower[i] if gate.lower[i] is not None else (x0, y0)[i] for i in range(2)]
        hi = [gate.upper[i] if gate.upper[i] is not None else (x1, y1)[i] for i in range(2)]
        ax.add_patch(Rectangle(lo, hi[0] - lo[0], hi[1] - lo[1], fill=False, ec=color, lw=1.5))
    elif isinstance(gate, QuadrantGate):
        _draw_dividers(ax, gate, dims, color)


def _draw_dividers(ax: "Axes", gate: Gate, dims: tuple[str, str], color: str = "crimson") -> None:
    """Threshold lines of a quadrant/range gate whose dims only partly match the plotted ones."""
    if isinstance(gate, QuadrantGate):
        values = dict(zip(gate.dims, gate.dividers))
    else:
        values = {d: (lo if lo is not None else hi) for d, lo, hi in zip(gate.dims, gate.lower, gate.upper)}
    if dims[0] in values and values[dims[0]] is not None:
        ax.axvline(values[dims[0]], color=color, lw=1.2)
    if dims[1] in values and values[dims[1]] is not None:
        ax.axhline(values[dims[1]], color=color, lw=1.2)


def _event_coordinates(result: "GatingResult", gate: Gate, dims: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    """Events ``rows`` in the coordinates ``gate`` was drawn in: an imported document's gates carry their
    own compensation and transforms (the sample is raw); fitted gates live on the prepared sample."""
    if result.document is not None and not isinstance(gate, BooleanGate):
        from ..gatingml.evaluate import DimensionResolver

        node = result.document.node(gate.id)
        return DimensionResolver(result.document, result.sample).coordinates(node)[rows][:, :2]
    return result.sample.columns(dims)[rows]


def plot_population(result: "GatingResult", name: str, *, ax: "Axes | None" = None,
                    max_points: int = 200_000) -> "Figure":
    """Parent density in the population's dims with the fitted gate; title gives % of parent and flags."""
    fit = result.fit(name)
    spec = result.definition.population(name)
    parent = result.state.masks.get(spec.parent) if spec.parent else None
    rows = np.flatnonzero(parent) if parent is not None else np.arange(result.sample.n_events)
    if rows.size > max_points:
        rows = rows[:: int(np.ceil(rows.size / max_points))]
    fig, ax = _new_axes(ax)
    dims = spec.dims
    any_of = tuple(spec.params.get("any_of", ()))
    if len(any_of) == 2:  # show the OR-ed pair (e.g. CD56 vs CD16 for NK cells)
        dims = any_of
    count = int(result.state.masks[name].sum())
    pcount = int(parent.sum()) if parent is not None else result.sample.n_events
    title = f"{name}: {100.0 * count / pcount if pcount else float('nan'):.1f}% of {spec.parent or 'all'}"
    if fit.flags:
        title += "\n[" + "; ".join(fit.flags) + "]"
    if not dims:  # boolean: nothing to draw in a space
        ax.text(0.5, 0.5, f"{name}\n{fit.gate.to_dict().get('op')} of {spec.params.get('operands')}",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=8)
        return fig
    from matplotlib.colors import LogNorm

    X = _event_coordinates(result, fit.gate, tuple(dims[:2]), rows)
    X = X[np.all(np.isfinite(X), axis=1)]
    if X.shape[0] == 0:  # empty parent: nothing to show a density of
        ax.text(0.5, 0.5, f"{name}\nno events in {spec.parent or 'the sample'}", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_title(title, fontsize=8)
        return fig
    if len(dims) == 1:
        ax.hist(X[:, 0], bins=int(np.clip(X.shape[0] // 20, 32, 256)), color="0.4", histtype="stepfilled")
        ax.set_xlabel(dims[0])
        ax.set_ylabel("events")
        g = fit.gate
        for v in (getattr(g, "lower", ()) or ()) + (getattr(g, "upper", ()) or ()):
            if v is not None:
                ax.axvline(v, color="crimson", lw=1.5)
    else:
        lo = np.quantile(X, 0.001, axis=0)
        hi = np.quantile(X, 0.999, axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)  # a single distinct value still gets a histogram range
        ax.hist2d(X[:, 0], X[:, 1], bins=200, range=[[lo[0], hi[0]], [lo[1], hi[1]]], cmap="viridis",
                  norm=LogNorm(), rasterized=True)
        ax.set_xlabel(dims[0])
        ax.set_ylabel(dims[1])
        gate = fit.gate
        for g in (fit.components if isinstance(gate, BooleanGate) else (gate,)):
            if isinstance(g, (QuadrantGate, RectangleGate)) and list(g.dims[:2]) != list(dims[:2]):
                _draw_dividers(ax, g, tuple(dims[:2]))
            else:
                _draw_gate_2d(ax, g, tuple(dims[:2]))
    ax.set_title(title, fontsize=8)
    return fig


def plot_grid(result: "GatingResult", *, path: str | Path | None = None, cols: int = 4) -> "Figure":
    """Every fitted population's gate in a grid; PNG written atomically when ``path`` is given."""
    from matplotlib.figure import Figure

    names = [p.name for p in result.definition.populations if p.name in result.state.fits]
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig = Figure(figsize=(3.4 * cols, 3.1 * rows), dpi=90)
    for i, name in enumerate(names):
        plot_population(result, name, ax=fig.add_subplot(rows, cols, i + 1), max_points=50_000)
    fig.tight_layout()
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        atomic_write_bytes(path, buf.getvalue())
    return fig
