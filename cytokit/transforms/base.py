"""The :class:`Transform` interface shared by every scale in :data:`cytokit.transforms.TRANSFORMS`.

A transform is a frozen dataclass whose fields are its parameters (Gating-ML names where Gating-ML
defines the transform: ``T``, ``W``, ``M``, ``A``). ``forward`` maps **linear-scale** values (the
compensated channel values, in the instrument's units) to the transformed display scale; ``inverse``
maps back. Both take any array-like and return ``float64`` arrays of the same shape.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..errors import TransformError


@dataclasses.dataclass(frozen=True)
class Transform:
    """Base class: subclasses set ``name`` and implement ``_forward`` / ``_inverse`` on float64 arrays."""

    name: ClassVar[str] = "transform"

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:  # pragma: no cover - overridden where parameters are constrained
        return None

    def _forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _inverse(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        """Parameter name → value (only the dataclass fields that are parameters)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def forward(self, x: Any) -> np.ndarray:
        """Linear-scale values → transformed scale (float64, same shape)."""
        return self._forward(np.asarray(x, dtype=np.float64))

    def inverse(self, y: Any) -> np.ndarray:
        """Transformed-scale values → linear scale (float64, same shape)."""
        return self._inverse(np.asarray(y, dtype=np.float64))

    __call__ = forward

    def describe(self) -> str:
        """Text that :func:`cytokit.transforms.parse_transform` turns back into this transform."""
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.name}({args})"

    def __str__(self) -> str:
        return self.describe()


def _fmt(value: Any) -> str:
    """Shortest exact text of a parameter: integral floats without '.0', others with repr()."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return repr(value) if isinstance(value, str) else str(value)


def require(condition: bool, transform: str, message: str) -> None:
    """Raise :class:`TransformError` for an invalid parameter combination."""
    if not condition:
        raise TransformError(f"{transform}: {message}")


def as_float(value: Any, transform: str, param: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TransformError(f"{transform}: parameter {param} must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise TransformError(f"{transform}: parameter {param} must be finite, got {value!r}")
    return out
