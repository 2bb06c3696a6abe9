"""Scale transformations of gate dimensions, by kind: one registry shared by Gating-ML and FlowJo.

Contract
--------
:func:`scale_transform` turns a transformation spec (anything with ``id``, ``kind`` and ``params``, e.g. a
:class:`cytokit.gatingml.TransformSpec`) into an object with ``forward`` (linear values -> scale) and
``inverse``. :data:`SCALES` is the registry: the Gating-ML 2.0 kinds (``flin``, ``flog``, ``fasinh``,
``logicle``, ``hyperlog``) are the transforms of :mod:`cytokit.transforms`; FlowJo's own scales that
Gating-ML does not define (``flowjo_biex``, ``flowjo_log``, ``flowjo_table``) are defined below. This
module sits below both :mod:`cytokit.gatingml` (the neutral model and its evaluator) and
:mod:`cytokit.flowjo` (readers/writer), so neither imports the other to find a scale. Bad parameters or an
unknown kind raise :class:`~cytokit.errors.TransformError` naming the transformation.

FlowJo's biex is defined by a lookup table from display channel (0..``channel_range``) to linear value,
built from the number of positive decades ``pos``, extra negative decades ``neg``, the width basis
``width`` (a negative number such as -10 or -100) and the top of scale ``max_value``; values between
table points are interpolated linearly and values outside the table clip to its ends. Forward maps
linear values to channels 0..``channel_range`` (4096 by FlowJo's convention), inverse maps back.

FlowJo's log: ``(log10(max(x, offset)) - log10(offset)) / decades`` (0..1 over ``decades`` decades).
A FlowJo 9 calibration table maps linear values to display channels by interpolation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from .errors import TransformError
from .transforms import get_transform
from .transforms.roots import increasing_root

LN10 = float(np.log(10.0))


def _negative_range(positive_range: float, width: float) -> float:
    """Root ``d`` in (0, positive_range] of 2 ln(d) + width*d = 2 ln(positive_range) - width*positive_range."""
    if width == 0:
        return positive_range
    b = positive_range

    def g(d: float) -> float:
        return 2.0 * np.log(d) + width * d - 2.0 * np.log(b) + width * b

    lo = 1e-300
    if g(b) <= 0:
        return b
    return increasing_root(g, lo, b)


def biex_table(*, pos: float, neg: float, width: float, max_value: float,
               channel_range: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """FlowJo's biex lookup table: (linear values, channel numbers 0..channel_range), both increasing."""
    if width >= 0:
        raise TransformError(f"FlowJo biex width basis must be negative, got {width}")
    if pos <= 0 or max_value <= 0:
        raise TransformError(f"FlowJo biex needs positive 'pos' and 'max_value' (got {pos}, {max_value})")
    w_decades = np.log10(-width)
    decades = pos - w_decades / 2.0
    extra = max(neg, 0.0) + w_decades / 2.0
    zero = int(min(int(extra * channel_range / (extra + decades)), channel_range / 2))
    if zero > 0:
        decades = extra * channel_range / zero
    w = w_decades / (2.0 * decades)
    positive_range = LN10 * decades
    minimum = max_value / np.exp(positive_range)
    negative_range = _negative_range(positive_range, w)
    n = channel_range + 1
    channels = np.arange(n, dtype=np.float64)
    pos_part = np.exp(channels / n * positive_range)
    neg_part = np.exp(channels / n * -negative_range) * np.exp(
        (positive_range + negative_range) * (w + extra / decades))
    shift = pos_part[zero] - neg_part[zero]
    values = minimum * ((pos_part - neg_part) - shift)
    if zero > 0:
        idx = np.arange(zero)
        values[idx] = -values[2 * zero - idx]
    return values, channels


@dataclass(frozen=True)
class FlowJoBiex:
    """FlowJo 10 biex (see module docstring); output channels 0..``channel_range``."""

    pos: float = 4.418540
    neg: float = 0.0
    width: float = -10.0
    max_value: float = 262144.0
    channel_range: int = 4096
    name: str = field(default="flowjo_biex", init=False)

    def __post_init__(self) -> None:
        x, y = biex_table(pos=self.pos, neg=self.neg, width=self.width, max_value=self.max_value,
                          channel_range=self.channel_range)
        if np.any(np.diff(x) <= 0):
            raise TransformError(f"FlowJo biex {self}: lookup table is not increasing")
        object.__setattr__(self, "_x", x)
        object.__setattr__(self, "_y", y)

    def forward(self, x: Any) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=np.float64), self._x, self._y)  # type: ignore[attr-defined]

    def inverse(self, y: Any) -> np.ndarray:
        return np.interp(np.asarray(y, dtype=np.float64), self._y, self._x)  # type: ignore[attr-defined]

    @property
    def params(self) -> dict[str, float]:
        return {"pos": self.pos, "neg": self.neg, "width": self.width, "max_value": self.max_value,
                "channel_range": self.channel_range}


@dataclass(frozen=True)
class FlowJoLog:
    """FlowJo 10 log: ``(log10(max(x, offset)) - log10(offset)) / decades``."""

    offset: float = 1.0
    decades: float = 4.0
    name: str = field(default="flowjo_log", init=False)

    def __post_init__(self) -> None:
        if self.offset <= 0 or self.decades <= 0:
            raise TransformError(f"FlowJo log needs positive offset and decades (got {self.offset}, {self.decades})")

    def forward(self, x: Any) -> np.ndarray:
        x = np.maximum(np.asarray(x, dtype=np.float64), self.offset)
        return (np.log10(x) - np.log10(self.offset)) / self.decades

    def inverse(self, y: Any) -> np.ndarray:
        return self.offset * 10.0 ** (np.asarray(y, dtype=np.float64) * self.decades)

    @property
    def params(self) -> dict[str, float]:
        return {"offset": self.offset, "decades": self.decades}


@dataclass(frozen=True)
class FlowJoTable:
    """A FlowJo 9 calibration table: ``values[i]`` is the linear value of display channel ``i``."""

    values: tuple[float, ...] = ()
    name: str = field(default="flowjo_table", init=False)

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 1 or len(v) < 2 or np.any(np.diff(v) <= 0):
            raise TransformError("FlowJo calibration table must hold at least 2 increasing values")
        object.__setattr__(self, "_v", v)
        object.__setattr__(self, "_c", np.arange(len(v), dtype=np.float64))

    def forward(self, x: Any) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=np.float64), self._v, self._c)  # type: ignore[attr-defined]

    def inverse(self, y: Any) -> np.ndarray:
        return np.interp(np.asarray(y, dtype=np.float64), self._c, self._v)  # type: ignore[attr-defined]

    @property
    def params(self) -> dict[str, Any]:
        return {"values": self.values}


#: FlowJo-only scales by TransformSpec kind.
FLOWJO_SCALES: dict[str, Callable[..., Any]] = {"flowjo_biex": FlowJoBiex, "flowjo_log": FlowJoLog,
                                                "flowjo_table": FlowJoTable}
#: Gating-ML 2.0 scale transformations; their functions are the :mod:`cytokit.transforms` registry's
SCALE_KINDS: tuple[str, ...] = ("flin", "flog", "fasinh", "logicle", "hyperlog")


def _gatingml_scale(kind: str) -> Callable[..., Any]:
    def build(**params: Any) -> Any:
        return get_transform(kind, **{k: float(v) for k, v in params.items()})

    return build


#: every scale kind a gate dimension may use -> constructor(**params)
SCALES: dict[str, Callable[..., Any]] = {**{k: _gatingml_scale(k) for k in SCALE_KINDS}, **FLOWJO_SCALES}


class ScaleSpec(Protocol):
    """What :func:`scale_transform` reads from a transformation spec."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


def scale_transform(spec: ScaleSpec) -> Any:
    """The transform object (``forward``/``inverse`` on linear values) of a scale transformation spec."""
    build = SCALES.get(spec.kind)
    if build is None:
        raise TransformError(f"transformation {spec.id!r}: {spec.kind!r} is not a scale transformation")
    try:
        return build(**spec.params)
    except (TransformError, TypeError, ValueError) as exc:
        raise TransformError(f"transformation {spec.id!r} ({spec.kind}): {exc}") from None
