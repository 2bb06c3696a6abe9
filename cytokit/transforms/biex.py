"""Gating-ML 2.0 ``logicle`` and ``hyperlog`` scales (Moore & Parks 2012; Gating-ML 2.0 §6.5–6.6).

Both are defined through their inverse ``B(y)`` (linear value at scale position ``y``), odd-symmetric
about ``x1 = (A + W)/(M + A)`` where ``B(x1) = 0``, with ``B(1) = T``:

* logicle: ``B(y) = a·e^(b·y) − c·e^(−d·y) + f`` for y ≥ x1, with ``w = W/(M+A)``, ``x2 = A/(M+A)``,
  ``x1 = x2 + w``, ``x0 = x2 + 2w``, ``b = (M+A)·ln10``, ``d`` the root of ``2(ln d − ln b) + w(b + d) = 0``,
  ``c/a = e^(x0(b+d))``, ``f/a = −(e^(b·x1) − (c/a)·e^(−d·x1))`` and ``a = T / (e^b − (−f/a) − (c/a)·e^(−d))``;
* hyperlog: ``B(y) = a·e^(b·y) + c·y − f`` with ``c/a = e^(b·x0)/w``, ``f/a = e^(b·x1) + (c/a)·x1``,
  ``a = T / (e^b + c/a − f/a)``.

Parameters (Gating-ML names): ``T`` top of scale (linear units, maps to 1), ``M`` decades of the full
scale, ``W`` decades of the near-linear region, ``A`` additional negative decades. Output is on the
0..1 Gating-ML scale (``T`` → 1; 0 → x1). Near ``x1`` ``B`` is evaluated by its Taylor series to keep
relative precision; the forward scale uses an exact table + cubic Hermite lookup (see
:mod:`._kernels`), solved by Newton's method where the table does not reach.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..errors import TransformError
from ._kernels import hermite_coefficients, lookup
from .base import Transform, as_float, require
from .roots import increasing_root

LN10 = math.log(10.0)
TAYLOR_TERMS = 16
TABLE_NODES = 8192
Y_TOP = 1.5  # the table reaches the scale position 1.5 (far above T); beyond it values are solved


@dataclasses.dataclass(frozen=True)
class _Coefficients:
    a: float
    b: float
    c: float
    d: float
    f: float
    w: float
    x1: float
    x0: float
    taylor_cut: float
    taylor: np.ndarray  # coefficients of (y - x1)^1 .. (y - x1)^TAYLOR_TERMS


@dataclasses.dataclass(frozen=True)
class _Table:
    x1: float
    inv_s: float
    u_max: float
    inv_h: float
    coeffs: np.ndarray

    def args(self) -> tuple:
        return (self.x1, self.inv_s, self.u_max, self.inv_h, self.coeffs)


@dataclasses.dataclass(frozen=True)
class _BiexScale(Transform):
    """Shared machinery: B(y) with Taylor core and reflection, exact table, forward lookup + polish."""

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    _coef: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _table: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)

    # -- subclass hooks: B and B' on the positive branch (y >= x1), vectorised ---------------------
    def _b_pos(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _db_pos(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _make_coefficients(self) -> _Coefficients:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- construction --------------------------------------------------------------------------------
    def _validate(self) -> None:
        for p in ("T", "W", "M", "A"):
            object.__setattr__(self, p, as_float(getattr(self, p), self.name, p))
        require(self.T > 0, self.name, f"T must be > 0, got {self.T}")
        require(self.M > 0, self.name, f"M must be > 0, got {self.M}")
        require(0 <= self.W <= self.M / 2, self.name, f"W must be in [0, M/2] = [0, {self.M / 2}], got {self.W}")
        require(-self.W <= self.A <= self.M - 2 * self.W, self.name,
                f"A must be in [-W, M - 2W] = [{-self.W}, {self.M - 2 * self.W}], got {self.A}")
        object.__setattr__(self, "_coef", self._make_coefficients())
        object.__setattr__(self, "_table", self._make_table())

    @staticmethod
    def _taylor_poly(coeffs: np.ndarray, delta: np.ndarray) -> np.ndarray:
        acc = np.zeros_like(delta)
        for c in coeffs[::-1]:
            acc = (acc + c) * delta
        return acc

    def _b_nonneg(self, y: np.ndarray) -> np.ndarray:
        """B on y >= x1, with the Taylor series near x1."""
        k = self._coef
        out = np.array(self._b_pos(y), dtype=np.float64)  # an array even for a 0-d input (item assignment)
        near = y < k.taylor_cut
        if np.any(near):
            out[near] = self._taylor_poly(k.taylor, y[near] - k.x1)
        return out

    def _b(self, y: np.ndarray) -> np.ndarray:
        x1 = self._coef.x1
        neg = y < x1
        yy = np.where(neg, 2.0 * x1 - y, y)
        out = self._b_nonneg(yy)
        return np.where(neg, -out, out)

    def _make_table(self) -> _Table:
        k = self._coef
        s = float(self._db_pos(np.array([k.x1]))[0]) / k.b  # makes y(u) nearly linear (see _kernels)
        v_top = float(self._b_pos(np.array([Y_TOP]))[0])
        u_max = math.log1p(v_top / s)
        u = np.linspace(0.0, u_max, TABLE_NODES)
        v = s * np.expm1(u)
        y = self._solve_nonneg(v, lo=k.x1, hi=Y_TOP)
        dy = s * np.exp(u) / self._db_pos(y)
        h = u[1] - u[0]
        return _Table(x1=k.x1, inv_s=1.0 / s, u_max=float(u[-1]), inv_h=1.0 / h,
                      coeffs=hermite_coefficients(y, dy, h))

    def _solve_nonneg(self, v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """Exact y >= x1 with B(y) = v (v >= 0, B(hi) >= v): bisection, then two Newton steps."""
        lo_a = np.full(v.shape, lo)
        hi_a = np.full(v.shape, hi)
        for _ in range(60):
            mid = 0.5 * (lo_a + hi_a)
            above = self._b_nonneg(mid) > v
            hi_a = np.where(above, mid, hi_a)
            lo_a = np.where(above, lo_a, mid)
        y = 0.5 * (lo_a + hi_a)
        for _ in range(2):
            y = np.maximum(y - (self._b_nonneg(y) - v) / self._db_pos(y), lo)
        return y

    def _solve_large(self, v: np.ndarray) -> np.ndarray:
        """y for |v| beyond the table: Newton from the logarithmic asymptote y ≈ ln(|v|/a)/b."""
        k = self._coef
        av = np.abs(v)
        y = np.maximum(np.log(av / k.a) / k.b, Y_TOP)
        for _ in range(8):
            y = y - (self._b_pos(y) - av) / self._db_pos(y)
        return np.where(v < 0, 2.0 * k.x1 - y, y)

    # -- public ---------------------------------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> np.ndarray:
        y, beyond = lookup(x, *self._table.args())
        if beyond:
            miss = np.isnan(y) & np.isfinite(x)
            y[miss] = self._solve_large(x[miss])
            infinite = np.isinf(x)
            y[infinite] = x[infinite]  # the scale is increasing without bound: ±inf stays ±inf
        return y

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return self._b(y)

    @property
    def x1(self) -> float:
        """Scale position of linear 0 (``(A + W)/(M + A)``)."""
        return self._coef.x1


def _scale_points(W: float, M: float, A: float) -> tuple[float, float, float, float]:
    """Gating-ML biexponential landmarks on the 0..1 scale: (w, x1, x0, b) with x2 = A/(M+A) the
    lowest point, x1 = x2 + w the linear zero, x0 = x2 + 2w, and b = (M+A)·ln 10."""
    w = W / (M + A)
    x2 = A / (M + A)
    return w, x2 + w, x2 + 2 * w, (M + A) * LN10


@dataclasses.dataclass(frozen=True)
class Logicle(_BiexScale):
    """Gating-ML 2.0 logicle (defaults T=262144, W=0.5, M=4.5, A=0; output 0..1 at T)."""

    name = "logicle"

    def _make_coefficients(self) -> _Coefficients:
        T = self.T
        w, x1, x0, b = _scale_points(self.W, self.M, self.A)
        d = _solve_d(b, w)
        c_a = math.exp(x0 * (b + d))
        mf_a = math.exp(b * x1) - c_a * math.exp(-d * x1)
        a = T / (math.exp(b) - mf_a - c_a * math.exp(-d))
        c = c_a * a
        f = -mf_a * a
        pos = a * math.exp(b * x1)
        neg = -c * math.exp(-d * x1)
        taylor = np.array([(pos * b ** n + neg * (-d) ** n) / math.factorial(n) for n in range(1, TAYLOR_TERMS + 1)])
        taylor[1] = 0.0  # the second derivative vanishes at x1 by construction of d
        return _Coefficients(a=a, b=b, c=c, d=d, f=f, w=w, x1=x1, x0=x0, taylor_cut=x1 + w / 4, taylor=taylor)

    def _b_pos(self, y: np.ndarray) -> np.ndarray:
        k = self._coef
        return k.a * np.exp(k.b * y) - k.c * np.exp(-k.d * y) + k.f

    def _db_pos(self, y: np.ndarray) -> np.ndarray:
        k = self._coef
        return k.a * k.b * np.exp(k.b * y) + k.c * k.d * np.exp(-k.d * y)


@dataclasses.dataclass(frozen=True)
class Hyperlog(_BiexScale):
    """Gating-ML 2.0 hyperlog (defaults T=262144, W=0.5, M=4.5, A=0; W must be > 0)."""

    name = "hyperlog"

    def _validate(self) -> None:
        require(as_float(self.W, self.name, "W") > 0, self.name, f"W must be > 0, got {self.W}")
        super()._validate()

    def _make_coefficients(self) -> _Coefficients:
        T = self.T
        w, x1, x0, b = _scale_points(self.W, self.M, self.A)
        c_a = math.exp(b * x0) / w
        f_a = math.exp(b * x1) + c_a * x1
        a = T / (math.exp(b) + c_a - f_a)
        c = c_a * a
        f = f_a * a
        pos = a * math.exp(b * x1)
        taylor = np.array([pos * b ** n / math.factorial(n) for n in range(1, TAYLOR_TERMS + 1)])
        taylor[0] += c
        return _Coefficients(a=a, b=b, c=c, d=0.0, f=f, w=w, x1=x1, x0=x0, taylor_cut=x1 + w / 4, taylor=taylor)

    def _b_pos(self, y: np.ndarray) -> np.ndarray:
        k = self._coef
        return k.a * np.exp(k.b * y) + k.c * y - k.f

    def _db_pos(self, y: np.ndarray) -> np.ndarray:
        k = self._coef
        return k.a * k.b * np.exp(k.b * y) + k.c


def _solve_d(b: float, w: float) -> float:
    """The logicle constant d: root of 2(ln d − ln b) + w(b + d) = 0 in (0, b] (d = b when w = 0)."""
    if w == 0:
        return b
    g = lambda d: 2.0 * (math.log(d) - math.log(b)) + w * (b + d)  # noqa: E731
    try:
        return increasing_root(g, 1e-300, b)
    except ValueError as exc:  # pragma: no cover - g changes sign for every valid w
        raise TransformError(f"logicle: cannot solve for d with b={b}, w={w}: {exc}") from exc
