"""Plots of fitted gates over their parent's density (matplotlib, Agg-safe), with FlowJo-like axes.

Each panel shows the parent's events in the gate's dimensions on the display scale the gate was fitted on;
the axes name marker and fluorochrome and label transformed scales in linear units (see
:mod:`cytokit.gating.axes`); the population's % of its parent is written on the plot. Populations that are
quadrants of one split (same parent, dimensions and dividers) are drawn as **one** quadrant plot carrying the
four percentages. Figures render at >= 100 dpi (:data:`DPI`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..gates import BooleanGate, EllipsoidGate, Gate, PolygonGate, QuadrantGate, RectangleGate
from ..io_utils import atomic_write_bytes
from ..results import schema as S
from .axes import AxisScale, axis_scale, format_axes, scale_for
from .lymphocyte_doublets import counts_doublets
from .methods.base import every_nth

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .result import GatingResult

#: Resolution of gate figures (dots per inch); a report thumbnail stays readable when printed.
DPI = 110
#: Gate outline colour.
GATE_COLOUR = "crimson"
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}


def _new_axes(ax: "Axes | None") -> tuple["Figure", "Axes"]:
    from matplotlib.figure import Figure

    if ax is not None:
        fig = ax.figure
        return (fig if isinstance(fig, Figure) else fig.figure), ax  # a SubFigure's root Figure

    fig = Figure(figsize=(4.2, 3.8), dpi=DPI)
    return fig, fig.add_subplot(1, 1, 1)


def _draw_gate_2d(ax: "Axes", gate: Gate, dims: tuple[str, ...], color: str = GATE_COLOUR) -> None:
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
        ax.add_patch(Ellipse((float(gate.mean[0]), float(gate.mean[1])), w, h, angle=angle, fill=False, ec=color, lw=1.5))
    elif isinstance(gate, RectangleGate):
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        lo = [float(v) if v is not None else d for v, d in zip(gate.lower[:2], (x0, y0))]
        hi = [float(v) if v is not None else d for v, d in zip(gate.upper[:2], (x1, y1))]
        ax.add_patch(Rectangle((lo[0], lo[1]), hi[0] - lo[0], hi[1] - lo[1], fill=False, ec=color, lw=1.5))
    elif isinstance(gate, QuadrantGate):
        _draw_dividers(ax, gate, dims, color)


def _draw_dividers(ax: "Axes", gate: QuadrantGate | RectangleGate, dims: tuple[str, ...],
                   color: str = GATE_COLOUR) -> None:
    """Threshold lines of a quadrant/range gate whose dims only partly match the plotted ones."""
    values: dict[str, float | None]
    if isinstance(gate, QuadrantGate):
        values = dict(zip(gate.dims, gate.dividers))
    else:
        values = {d: (lo if lo is not None else hi) for d, lo, hi in zip(gate.dims, gate.lower, gate.upper)}
    x = values.get(dims[0])
    if x is not None:
        ax.axvline(x, color=color, lw=1.2)
    y = values.get(dims[1]) if len(dims) > 1 else None
    if y is not None:
        ax.axhline(y, color=color, lw=1.2)


def _event_coordinates(result: "GatingResult", gate: Gate, dims: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    """Events ``rows`` in the coordinates ``gate`` was drawn in: an imported document's gates carry their
    own compensation and transforms (the sample is raw); fitted gates live on the prepared sample."""
    if result.document is not None and not isinstance(gate, BooleanGate):
        from ..gatingml.evaluate import DimensionResolver

        node = result.document.node(gate.id)
        return DimensionResolver(result.document, result.sample).coordinates(node)[rows][:, :2]
    return result.sample.columns(dims)[rows]


def gate_axis_scales(result: "GatingResult", gate: Gate, dims: tuple[str, ...]) -> list[AxisScale]:
    """The :class:`~cytokit.gating.axes.AxisScale` of each plotted dimension of ``gate``: the prepared
    sample's transforms for fitted gates, the document's own transformations for imported ones."""
    if result.document is None or isinstance(gate, BooleanGate):
        return [axis_scale(result.sample, d) for d in dims]
    from ..scales import scale_transform
    from .axes import channel_label

    node = result.document.node(gate.id)
    scales = []
    for spec in node.dims[: len(dims)]:
        tf = None
        if spec.transform and not spec.ratio:
            try:
                tf = scale_transform(result.document.transforms[spec.transform])
            except Exception:  # an unusual scale: plain numbers on the axis rather than no plot
                tf = None
        label = spec.name if spec.ratio else channel_label(result.sample, spec.name)
        scales.append(scale_for(label, tf))
    return scales


def _parent_rows(result: "GatingResult", parent: str | None, max_points: int) -> tuple[np.ndarray, int]:
    """Event rows of ``parent`` (every event when None), thinned to ``max_points``; and the full count."""
    mask = result.state.masks.get(parent) if parent else None
    rows = np.flatnonzero(mask) if mask is not None else np.arange(result.sample.n_events)
    total = int(rows.size)
    return every_nth(rows, max_points), total


def _pct(count: int, total: int) -> float:
    return 100.0 * count / total if total else float("nan")


def _density(ax: "Axes", X: np.ndarray) -> None:
    from matplotlib.colors import LogNorm

    lo = np.quantile(X, 0.001, axis=0)
    hi = np.quantile(X, 0.999, axis=0)
    pad = 0.04 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    hi = np.where(hi > lo, hi, lo + 1.0)  # a single distinct value still gets a histogram range
    ax.hist2d(X[:, 0], X[:, 1], bins=160, range=[[lo[0], hi[0]], [lo[1], hi[1]]], cmap="viridis",
              norm=LogNorm(), rasterized=True, cmin=1)
    ax.set_facecolor("white")


def _annotate(ax: "Axes", text: str, x: float, y: float, ha: str, va: str) -> None:
    ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="black", bbox=_LABEL_BOX,
            zorder=5)


#: colour of a plot title whose population's estimate may be wrong (a review flag; the tables' ``review``)
REVIEW_COLOUR = "#b00020"


def table_rows(result: "GatingResult") -> dict[str, dict[str, Any]]:
    """Population -> its populations-table row: the count and % the tables report (a gate counting lymphocyte
    doublets reports more than its mask holds) and its ``flags`` (the fit's words and those the table adds,
    e.g. ``uncertain`` from the error parts, ``few_events``, ``scatter_failed``)."""
    return {str(r[S.POPULATION]): r for r in result.population_rows}


def _row_flags(table: dict[str, dict[str, Any]], result: "GatingResult", name: str) -> str:
    """The ``flags`` of ``name``'s table row, or its fit's words where the table has no row."""
    row = table.get(name)
    return str(row[S.FLAGS]) if row is not None else ";".join(result.fit(name).flags)


def _flag_title(words: "list[str] | str") -> tuple[str, bool]:
    """The title lines of flag words (review flags first, as ``REVIEW: ...``, then the notes in brackets)
    and whether any is a review flag (:func:`cytokit.gating.methods.split_flags`)."""
    from .methods import split_flags

    review, notes = split_flags(words)
    line = f"\n{_wrapped('; '.join(review), prefix='REVIEW: ')}" if review else ""
    return line + (f"\n{_wrapped('[' + '; '.join(notes) + ']')}" if notes else ""), bool(review)


#: characters per title line of flag words (a 3.6-inch panel at 9 pt): longer lists wrap at word boundaries
TITLE_WIDTH = 48


def _wrapped(text: str, prefix: str = "") -> str:
    """``prefix`` + ``text`` broken into lines of at most :data:`TITLE_WIDTH` characters between words, the
    prefix counted in the first line (a flag word is never split), so a long list of flags stays within its
    panel."""
    import textwrap

    return "\n".join(textwrap.wrap(text, TITLE_WIDTH, initial_indent=prefix, break_long_words=False,
                                   break_on_hyphens=False))


def plot_population(result: "GatingResult", name: str, *, ax: "Axes | None" = None,
                    max_points: int = 200_000, table: "dict[str, dict[str, Any]] | None" = None) -> "Figure":
    """Parent density in the population's dims with the fitted gate; the population's % of parent is
    written on the plot and in the title, with the flags of its table row (``table``: population -> row,
    :func:`table_rows`, computed when not given): review flags as ``REVIEW: ...`` and the title in
    :data:`REVIEW_COLOUR` when the estimate may be wrong, then the notes."""
    fit = result.fit(name)
    spec = result.definition.population(name)
    rows, pcount = _parent_rows(result, spec.parent, max_points)
    fig, ax = _new_axes(ax)
    dims = spec.dims
    any_of = tuple(spec.params.get("any_of", ()))
    if len(any_of) == 2:  # show the OR-ed pair (e.g. CD56 vs CD16 for NK cells)
        dims = any_of
    # the table's count and % (a gate counting lymphocyte doublets reports more than its mask holds)
    table = table if table is not None else table_rows(result)
    row = table.get(name)
    count = int(row[S.COUNT]) if row is not None else int(result.state.masks[name].sum())
    pct = _pct(count, int(row[S.PARENT_COUNT]) if row is not None else pcount)
    line, review = _flag_title(_row_flags(table, result, name))
    extra = " with est. doublets" if counts_doublets(spec) and row is not None else ""  # more than drawn
    ax.set_title(f"{name}: {pct:.1f}% of {spec.parent or 'all events'}{extra}{line}", fontsize=9,
                 color=REVIEW_COLOUR if review else "black")
    if not dims:  # boolean: nothing to draw in a space
        ax.text(0.5, 0.5, f"{name}\n{fit.gate.to_dict().get('op')} of {spec.params.get('operands')}\n"
                f"{pct:.1f}% ({count:,} events)", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_axis_off()
        return fig
    X = _event_coordinates(result, fit.gate, tuple(dims[:2]), rows)
    X = X[np.all(np.isfinite(X), axis=1)]
    scales = gate_axis_scales(result, fit.gate, tuple(dims[:2]))
    if X.shape[0] == 0:  # empty parent: nothing to show a density of
        ax.text(0.5, 0.5, f"{name}\nno events in {spec.parent or 'the sample'}", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        return fig
    if len(dims) == 1:
        ax.hist(X[:, 0], bins=int(np.clip(X.shape[0] // 20, 32, 256)), color="0.45", histtype="stepfilled")
        g = fit.gate
        for v in (getattr(g, "lower", ()) or ()) + (getattr(g, "upper", ()) or ()):
            if v is not None:
                ax.axvline(v, color=GATE_COLOUR, lw=1.5)
        format_axes(ax, scales[0])
        ax.set_ylabel("events", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        _annotate(ax, f"{name}\n{pct:.1f}%", 0.98, 0.97, "right", "top")
        return fig
    _density(ax, X)
    gate = fit.gate
    for g in (fit.components if isinstance(gate, BooleanGate) else (gate,)):
        if isinstance(g, (QuadrantGate, RectangleGate)) and list(g.dims[:2]) != list(dims[:2]):
            _draw_dividers(ax, g, tuple(dims[:2]))
        else:
            _draw_gate_2d(ax, g, tuple(dims[:2]))
    format_axes(ax, scales[0], scales[1])
    if isinstance(gate, QuadrantGate) and len(gate.signs) >= 2:
        x = 0.98 if gate.signs[0] > 0 else 0.02
        y = 0.97 if gate.signs[1] > 0 else 0.03
        _annotate(ax, f"{name}\n{pct:.1f}%", x, y, "right" if x > 0.5 else "left", "top" if y > 0.5 else "bottom")
    else:
        _annotate(ax, f"{name}\n{pct:.1f}%", 0.98, 0.97, "right", "top")
    return fig


@dataclass(frozen=True)
class QuadrantSet:
    """Populations that are quadrants of one split: same parent, same two dims, same dividers."""

    parent: str | None
    dims: tuple[str, str]
    dividers: tuple[float, float]
    members: tuple[str, ...]  # population names in strategy order


def quadrant_sets(result: "GatingResult") -> list[QuadrantSet]:
    """Groups of >= 2 fitted quadrant populations sharing parent, dims and dividers (strategy order)."""
    groups: dict[tuple, list[str]] = {}
    for pop in result.definition.populations:
        fit = result.state.fits.get(pop.name)
        gate = fit.gate if fit is not None else None
        if not isinstance(gate, QuadrantGate) or len(gate.dims) != 2 or result.document is not None:
            continue
        key = (pop.parent, tuple(gate.dims), tuple(round(float(d), 9) for d in gate.dividers))
        groups.setdefault(key, []).append(pop.name)
    return [QuadrantSet(k[0], k[1], k[2], tuple(v)) for k, v in groups.items() if len(v) >= 2]


def plot_quadrants(result: "GatingResult", quadrants: QuadrantSet, *, ax: "Axes | None" = None,
                   max_points: int = 200_000, table: "dict[str, dict[str, Any]] | None" = None) -> "Figure":
    """One quadrant plot: parent density, the two dividers, and the % of parent of all four quadrants
    (each named after its population when one is defined, else by its signs, e.g. 'CD45RA+ CD62L-'); the
    title carries the member rows' flags as :func:`plot_population` does."""
    fig, ax = _new_axes(ax)
    rows, pcount = _parent_rows(result, quadrants.parent, 10**12)
    X_all = result.sample.columns(quadrants.dims)[rows]
    names = {tuple(cast(QuadrantGate, result.fit(n).gate).signs): n for n in quadrants.members}
    sx, sy = (axis_scale(result.sample, d) for d in quadrants.dims)
    dx, dy = quadrants.dividers
    shown = X_all[:: max(1, int(np.ceil(X_all.shape[0] / max_points)))] if X_all.shape[0] else X_all
    shown = shown[np.all(np.isfinite(shown), axis=1)]
    marker = [str(result.sample.channels["marker"].iloc[result.sample.channel_index(d)]) for d in quadrants.dims]
    title = f"{quadrants.parent or 'all events'}: {marker[0]} × {marker[1]} quadrants (% of parent)"
    table = table if table is not None else table_rows(result)
    words = sorted({w for n in quadrants.members for w in _row_flags(table, result, n).split(";") if w})
    line, review = _flag_title(words)
    ax.set_title(title + line, fontsize=9, color=REVIEW_COLOUR if review else "black")
    if shown.shape[0] == 0:
        ax.text(0.5, 0.5, f"no events in {quadrants.parent or 'the sample'}", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        return fig
    _density(ax, shown)
    ax.axvline(dx, color=GATE_COLOUR, lw=1.2)
    ax.axhline(dy, color=GATE_COLOUR, lw=1.2)
    format_axes(ax, sx, sy)
    for signs in ((-1, 1), (1, 1), (-1, -1), (1, -1)):
        if signs in names:
            count = int(result.state.masks[names[signs]].sum())
            label = names[signs]
        else:
            inside = np.ones(X_all.shape[0], dtype=bool)
            for i, (div, s) in enumerate(zip((dx, dy), signs)):
                inside &= (X_all[:, i] >= div) if s > 0 else (X_all[:, i] < div)
            count = int(inside.sum())
            label = " ".join(f"{m}{'+' if s > 0 else '-'}" for m, s in zip(marker, signs))
        x = 0.98 if signs[0] > 0 else 0.02
        y = 0.97 if signs[1] > 0 else 0.03
        _annotate(ax, f"{label}\n{_pct(count, pcount):.1f}%", x, y, "right" if x > 0.5 else "left",
                  "top" if y > 0.5 else "bottom")
    return fig


def plot_grid(result: "GatingResult", *, path: str | Path | None = None, cols: int = 4) -> "Figure":
    """Every fitted population's gate in a grid (quadrant sets drawn once with their four percentages);
    PNG written atomically at :data:`DPI` when ``path`` is given."""
    from matplotlib.figure import Figure

    sets = quadrant_sets(result)
    in_set = {n: q for q in sets for n in q.members}
    panels: list[object] = []
    for p in result.definition.populations:
        if p.name not in result.state.fits:
            continue
        q = in_set.get(p.name)
        if q is None:
            panels.append(p.name)
        elif q.members[0] == p.name:
            panels.append(q)
    cols = max(1, min(cols, len(panels)))
    rows = max(1, int(np.ceil(len(panels) / cols)))
    fig = Figure(figsize=(3.6 * cols, 3.4 * rows), dpi=DPI)
    table = table_rows(result)  # the table's rows, computed once for every panel
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        if isinstance(panel, QuadrantSet):
            plot_quadrants(result, panel, ax=ax, max_points=50_000, table=table)
        else:
            plot_population(result, str(panel), ax=ax, max_points=50_000, table=table)
    fig.tight_layout()
    if path is not None:
        atomic_write_bytes(path, figure_png(fig))
    return fig


def figure_png(fig: "Figure", dpi: int = DPI) -> bytes:
    """PNG bytes of ``fig`` at ``dpi`` with no time/version metadata (same figure -> same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
