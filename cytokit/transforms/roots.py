"""Root of a monotone scalar function to full double precision (bisection), without scipy.optimize.

The logicle/biex constants are roots of ``g(d) = 2 ln d + w d - const`` on a bracket that can span
hundreds of decades (``1e-300 .. b``). Bisection halves the bracket geometrically while its ends are
orders of magnitude apart, then arithmetically, until no double lies strictly between them; the end
with the smaller ``|g|`` is returned. That is at most ~70 evaluations of ``g`` and as accurate as the
function's rounding allows (importing ``scipy.optimize`` for ``brentq`` costs about 0.5 s of start-up).
"""
from __future__ import annotations

import math
from typing import Callable


def increasing_root(g: Callable[[float], float], lo: float, hi: float) -> float:
    """The ``x`` in ``[lo, hi]`` where the increasing function ``g`` crosses zero (to the last bit).

    Requires ``g(lo) <= 0 <= g(hi)``; raises ``ValueError`` otherwise. ``lo`` may be as small as the
    smallest positive double: while ``0 < lo`` and ``hi > 4 lo`` the bracket is split at ``sqrt(lo hi)``.
    """
    g_lo, g_hi = g(lo), g(hi)
    if not (g_lo <= 0 <= g_hi):
        raise ValueError(f"no sign change on [{lo!r}, {hi!r}]: g = {g_lo!r}, {g_hi!r}")
    if g_lo == 0:
        return lo
    if g_hi == 0:
        return hi
    while True:
        mid = math.sqrt(lo) * math.sqrt(hi) if 0 < lo and hi > 4 * lo else lo + (hi - lo) / 2
        if not lo < mid < hi:
            return lo if -g_lo <= g_hi else hi
        g_mid = g(mid)
        if g_mid == 0:
            return mid
        if g_mid < 0:
            lo, g_lo = mid, g_mid
        else:
            hi, g_hi = mid, g_mid
