"""FlowJo-like plot axes: marker and fluorochrome in the label, decades of a transformed scale labelled in
linear units (``-10³ 0 10³ 10⁴ 10⁵``), linear scatter axes in thousands (``50K 100K``).

Contract
--------
Plotted values are on the display scale the gate lives on (a channel's transform output: logicle and the
other Gating-ML scales run 0..1 at top of scale ``T``; linear channels are in instrument units). An
:class:`AxisScale` knows that transform (``None`` = linear) and puts its tick marks at round **linear** values,
so a reader sees the instrument values a cytometrist reads off FlowJo, not 0..1 scale positions.

* :func:`axis_scale` ``(sample, dim)`` -> :class:`AxisScale` from a Sample's channel table and
  ``Sample.transforms`` (what :func:`cytokit.gating.preprocess.prepare` applied);
* :func:`scale_for` ``(label, transform)`` for coordinates computed elsewhere (e.g. an imported Gating-ML
  document's own transforms);
* :meth:`AxisScale.apply` ``(ax, "x"|"y")`` labels one matplotlib axis; :func:`format_axes` does both.

These helpers only decorate axes; they never change data or limits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..sample import Sample
    from ..transforms import Transform

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
#: Largest decade exponent that is ever ticked (10^9 is beyond any cytometer's range).
_MAX_DECADE = 9
#: Labels closer than this fraction of the axis span are dropped (the tick stays).
_MIN_LABEL_GAP = 0.07
#: Minor ticks closer than this fraction of the axis span to another tick are dropped.
_MIN_MINOR_GAP = 0.012


def decade_label(value: float) -> str:
    """``1000 -> '10³'``, ``-1000 -> '-10³'``, ``0 -> '0'`` (linear units)."""
    if value == 0:
        return "0"
    k = int(round(math.log10(abs(value))))
    return ("-" if value < 0 else "") + "10" + str(k).translate(_SUPERSCRIPT)


def thousands_label(value: float) -> str:
    """``50000 -> '50K'``, ``250 -> '250'``, ``1.5e6 -> '1.5M'`` (linear units)."""
    a = abs(value)
    if a >= 1e6:
        text = f"{value / 1e6:g}M"
    elif a >= 1e3:
        text = f"{value / 1e3:g}K"
    else:
        text = f"{value:g}"
    return text


def channel_label(sample: "Sample", dim: str) -> str:
    """``'CD4 FITC-A'``-style axis text: the marker and the fluorochrome (or detector) that measured it.

    Scatter and unresolved channels (marker equal to the detector name) give the detector name alone.
    """
    try:
        row = sample.channels.iloc[sample.channel_index(dim)]
    except Exception:  # a derived dimension (e.g. a ratio) has no channel row
        return str(dim)
    marker = str(row["marker"] or "").strip()
    pnn = str(row["pnn"] or "").strip()
    fluor = str(row.get("fluorochrome") or "").strip() if "fluorochrome" in row.index else ""
    fluor = "" if fluor.lower() in ("", "nan", "none") else fluor
    if not marker or marker.casefold() == pnn.casefold():
        return pnn or str(dim)
    where = fluor if fluor and fluor.casefold() != marker.casefold() else pnn
    if where and where.casefold() not in marker.casefold():
        return f"{marker} {where}"
    return marker


def channel_transform(sample: "Sample", dim: str) -> "Transform | None":
    """The transform recorded in ``Sample.transforms`` for ``dim`` (None when the channel is linear)."""
    try:
        pnn = str(sample.channels["pnn"].iloc[sample.channel_index(dim)])
    except Exception:
        return None
    text = sample.transforms.get(pnn)
    if not text:
        return None
    from ..transforms import parse_transform

    try:
        tf = parse_transform(text)
    except Exception:
        return None
    return None if tf.name == "linear" else tf


@dataclass(frozen=True)
class AxisScale:
    """One plot axis: its text and the transform from linear units to the plotted coordinate."""

    label: str
    transform: Any = None  # a cytokit Transform, or None for a linear axis

    @property
    def is_linear(self) -> bool:
        return self.transform is None

    def to_display(self, linear: Any) -> np.ndarray:
        """Linear values -> plotted coordinates."""
        x = np.asarray(linear, dtype=np.float64)
        return x if self.transform is None else np.asarray(self.transform.forward(x), dtype=np.float64)

    def to_linear(self, display: Any) -> np.ndarray:
        """Plotted coordinates -> linear values."""
        y = np.asarray(display, dtype=np.float64)
        return y if self.transform is None else np.asarray(self.transform.inverse(y), dtype=np.float64)

    def ticks(self, lo: float, hi: float) -> tuple[list[float], list[str], list[float]]:
        """``(major positions, their labels, minor positions)`` within the plotted range ``[lo, hi]``.

        Transformed axes: majors at 0 and ±10^k (linear units), minors at ±m·10^k (m = 2..9); a label that
        would crowd its neighbour (near-linear region around 0) is left blank. Linear axes: 4–7 round
        values labelled in K/M.
        """
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            return [], [], []
        if self.transform is None:
            return self._linear_ticks(lo, hi)
        lin_lo, lin_hi = (float(v) for v in self.to_linear([lo, hi]))
        values: list[float] = [0.0]
        minors: list[float] = []
        for k in range(0, _MAX_DECADE + 1):
            d = 10.0 ** k
            for sign in (1.0, -1.0):
                v = sign * d
                if lin_lo <= v <= lin_hi:
                    values.append(v)
                for m in range(2, 10):
                    mv = sign * m * d
                    if lin_lo <= mv <= lin_hi:
                        minors.append(mv)
        values = sorted(v for v in set(values) if lin_lo <= v <= lin_hi)
        pos = [float(p) for p in self.to_display(values)]
        labels = self._thin([decade_label(v) for v in values], pos, values, lo, hi)
        minor_pos = [float(p) for p in self.to_display(minors)] if minors else []
        # a decade too close to its neighbour to be labelled is only a minor tick
        minor_pos += [p for p, lab in zip(pos, labels) if not lab]
        pos, labels = [p for p, lab in zip(pos, labels) if lab], [lab for lab in labels if lab]
        return pos, labels, self._spaced(minor_pos, pos, lo, hi)

    @staticmethod
    def _spaced(minors: list[float], majors: list[float], lo: float, hi: float) -> list[float]:
        """Minor ticks at least ``_MIN_MINOR_GAP`` of the span from every other tick (the compressed
        near-zero region of a logicle scale would otherwise be a black smear)."""
        gap = _MIN_MINOR_GAP * (hi - lo)
        placed = sorted(majors)
        out: list[float] = []
        for m in sorted(minors, key=abs):
            if all(abs(m - t) >= gap for t in placed):
                placed.append(m)
                out.append(m)
        return sorted(out)

    @staticmethod
    def _thin(labels: list[str], pos: list[float], values: list[float], lo: float, hi: float) -> list[str]:
        """Blank labels closer than ``_MIN_LABEL_GAP`` of the span to a kept one; 0 and the largest
        decades win (they are what a reader looks for)."""
        span = hi - lo
        order = sorted(range(len(pos)), key=lambda i: (values[i] != 0, -abs(values[i])))
        kept: list[int] = []
        for i in order:
            if all(abs(pos[i] - pos[j]) >= _MIN_LABEL_GAP * span for j in kept):
                kept.append(i)
        return [lab if i in kept else "" for i, lab in enumerate(labels)]

    @staticmethod
    def _linear_ticks(lo: float, hi: float) -> tuple[list[float], list[str], list[float]]:
        span = hi - lo
        raw = span / 6.0
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
        first = math.ceil(lo / step) * step
        pos = [first + i * step for i in range(int((hi - first) / step) + 1)]
        pos = [0.0 if abs(p) < step * 1e-9 else p for p in pos]
        return pos, [thousands_label(p) for p in pos], []

    def apply(self, ax: "Axes", which: Literal["x", "y"] = "x", *, fontsize: float = 8.0) -> None:
        """Label axis ``which`` ('x' or 'y') of ``ax`` with this scale for the current view limits."""
        lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
        lo, hi = min(lo, hi), max(lo, hi)
        pos, labels, minors = self.ticks(lo, hi)
        axis = ax.xaxis if which == "x" else ax.yaxis
        if pos:
            axis.set_ticks(pos)
            axis.set_ticklabels(labels)
        axis.set_ticks(minors, minor=True)
        ax.tick_params(axis=which, which="major", labelsize=fontsize, length=4)
        ax.tick_params(axis=which, which="minor", length=2)
        (ax.set_xlabel if which == "x" else ax.set_ylabel)(self.label, fontsize=fontsize + 1)


def scale_for(label: str, transform: "Transform | None") -> AxisScale:
    """An :class:`AxisScale` from a label and a transform object (``None`` or a linear transform = linear)."""
    if transform is not None and getattr(transform, "name", "") == "linear":
        transform = None
    return AxisScale(label=label, transform=transform)


def axis_scale(sample: "Sample", dim: str) -> AxisScale:
    """The axis of channel ``dim`` of a prepared (possibly transformed) Sample."""
    return AxisScale(label=channel_label(sample, dim), transform=channel_transform(sample, dim))


def format_axes(ax: "Axes", x: AxisScale, y: AxisScale | None = None, *, fontsize: float = 8.0) -> None:
    """Label both axes (y optional: a histogram's y axis stays 'events')."""
    x.apply(ax, "x", fontsize=fontsize)
    if y is not None:
        y.apply(ax, "y", fontsize=fontsize)
