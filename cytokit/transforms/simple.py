"""Closed-form scales: Gating-ML 2.0 ``flin``, ``flog``, ``fasinh`` and the gating conveniences
``linear`` and ``arcsinh`` (with a cofactor).

Formulas (Gating-ML 2.0, section 6):

* ``flin(x, T, A) = (x + A) / (T + A)``
* ``flog(x, T, M) = (1/M) · log10(x / T) + 1`` (undefined, returned as NaN, for x ≤ 0)
* ``fasinh(x, T, M, A) = (asinh(x · sinh(M·ln10) / T) + A·ln10) / ((M + A)·ln10)``

All three map the top of scale ``T`` (linear units) to 1. ``linear`` is ``slope·x + intercept`` and
``arcsinh`` is ``asinh(x / cofactor)`` (the cytometry convention; cofactor in linear units, e.g. 150 for
fluorescence, 5 for mass cytometry).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .base import Transform, as_float, require

LN10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class FLin(Transform):
    """Gating-ML ``flin``: ``(x + A) / (T + A)``; T > 0 (the spec asks 0 ≤ A ≤ T; only T + A ≠ 0 is enforced)."""

    T: float = 262144.0
    A: float = 0.0
    name = "flin"

    def _validate(self) -> None:
        object.__setattr__(self, "T", as_float(self.T, self.name, "T"))
        object.__setattr__(self, "A", as_float(self.A, self.name, "A"))
        require(self.T > 0, self.name, f"T must be > 0, got {self.T}")
        require(self.T + self.A != 0, self.name, "T + A must not be 0")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return (x + self.A) / (self.T + self.A)

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return y * (self.T + self.A) - self.A


@dataclasses.dataclass(frozen=True)
class FLog(Transform):
    """Gating-ML ``flog``: ``(1/M)·log10(x/T) + 1``; T > 0, M > 0; x ≤ 0 gives NaN."""

    T: float = 262144.0
    M: float = 4.5
    name = "flog"

    def _validate(self) -> None:
        object.__setattr__(self, "T", as_float(self.T, self.name, "T"))
        object.__setattr__(self, "M", as_float(self.M, self.name, "M"))
        require(self.T > 0, self.name, f"T must be > 0, got {self.T}")
        require(self.M > 0, self.name, f"M must be > 0, got {self.M}")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log10(x / self.T) / self.M + 1.0
        return np.where(x > 0, out, np.nan)

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return self.T * np.power(10.0, (y - 1.0) * self.M)


@dataclasses.dataclass(frozen=True)
class FASinh(Transform):
    """Gating-ML ``fasinh``: ``(asinh(x·sinh(M·ln10)/T) + A·ln10) / ((M + A)·ln10)``; T, M > 0, 0 ≤ A ≤ M."""

    T: float = 262144.0
    M: float = 4.5
    A: float = 0.0
    name = "fasinh"

    def _validate(self) -> None:
        for p in ("T", "M", "A"):
            object.__setattr__(self, p, as_float(getattr(self, p), self.name, p))
        require(self.T > 0, self.name, f"T must be > 0, got {self.T}")
        require(self.M > 0, self.name, f"M must be > 0, got {self.M}")
        require(0 <= self.A <= self.M, self.name, f"A must be in [0, M], got {self.A}")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return (np.arcsinh(x * (math.sinh(self.M * LN10) / self.T)) + self.A * LN10) / ((self.M + self.A) * LN10)

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return np.sinh(y * (self.M + self.A) * LN10 - self.A * LN10) * (self.T / math.sinh(self.M * LN10))


@dataclasses.dataclass(frozen=True)
class Linear(Transform):
    """``slope·x + intercept`` (identity by default; e.g. slope = 1/262144 puts scatter on 0..1)."""

    slope: float = 1.0
    intercept: float = 0.0
    name = "linear"

    def _validate(self) -> None:
        object.__setattr__(self, "slope", as_float(self.slope, self.name, "slope"))
        object.__setattr__(self, "intercept", as_float(self.intercept, self.name, "intercept"))
        require(self.slope != 0, self.name, "slope must not be 0 (the transform must be invertible)")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.slope + self.intercept

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return (y - self.intercept) / self.slope


@dataclasses.dataclass(frozen=True)
class ArcSinh(Transform):
    """``asinh(x / cofactor)`` with the cofactor in linear units (150 is usual for fluorescence)."""

    cofactor: float = 150.0
    name = "arcsinh"

    def _validate(self) -> None:
        object.__setattr__(self, "cofactor", as_float(self.cofactor, self.name, "cofactor"))
        require(self.cofactor > 0, self.name, f"cofactor must be > 0, got {self.cofactor}")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return np.arcsinh(x / self.cofactor)

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return np.sinh(y) * self.cofactor
