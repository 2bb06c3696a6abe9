"""One threshold fit per distinct input while one sample is gated: sibling gates share their dimensions' fits.

Sibling quadrants of a strategy (CD4+CD8- and CD4-CD8+ on the T cells; the four CD45RA x CD62L quadrants
on the CD4 T cells) fit the same dimensions of the same parent events with the same parameters: the
per-dimension fit (:func:`~.density.fit_threshold`) does not depend on the quadrant's signs, so each
quadrant would make the same fits again. Inside :func:`shared_threshold_fits` (entered by
:func:`cytokit.gating.engine.fit_all` for one sample), :func:`fit_threshold_shared` makes a fit once per
distinct input and hands every caller its own deep copy of it.

The key is the exact input: the values' dtype, shape and bytes, the parameters (a frozen model, compared by
value) and the reference values' bytes (or None), so a shared fit is the fit the caller would have made
(:func:`~.density.fit_threshold` is deterministic: its subsampling is seeded by the parameters). The store
lives in a context variable set for the block only: nothing is kept between samples or files, and
threads (Dask workers) each see their own. Outside the block every call fits.
"""
from __future__ import annotations

import contextlib
import copy
from contextvars import ContextVar
from typing import Any, Iterator

import numpy as np

from .density import Threshold, ThresholdParams, fit_threshold

__all__ = ["fit_threshold_shared", "shared_threshold_fits"]

_STORE: ContextVar[dict[Any, Threshold] | None] = ContextVar("cytokit_shared_threshold_fits", default=None)


@contextlib.contextmanager
def shared_threshold_fits() -> Iterator[None]:
    """Within the block, equal threshold fits are made once (see the module docstring); a new, empty store
    for every block, dropped at its end."""
    token = _STORE.set({})
    try:
        yield
    finally:
        _STORE.reset(token)


def _values_key(x: np.ndarray | None) -> tuple[str, tuple[int, ...], bytes] | None:
    if x is None:
        return None
    a = np.ascontiguousarray(x)
    return a.dtype.str, a.shape, a.tobytes()


def fit_threshold_shared(x: np.ndarray, params: ThresholdParams, *,
                         reference: np.ndarray | None = None) -> Threshold:
    """:func:`~.density.fit_threshold` ``(x, params, reference=reference)``, made once per distinct input
    inside :func:`shared_threshold_fits` (each caller gets its own deep copy)."""
    store = _STORE.get()
    if store is None:
        return fit_threshold(x, params, reference=reference)
    key = (_values_key(np.asarray(x)), params, _values_key(reference))
    fit = store.get(key)
    if fit is None:
        fit = store[key] = fit_threshold(x, params, reference=reference)
    return copy.deepcopy(fit)
