"""Byte-reproducible figures: the same results give the same PNG bytes in every run and process.

Contract: plotting code that draws random numbers it does not own (seaborn's strip-plot jitter uses
NumPy's global generator) runs inside :func:`fixed_jitter`, which seeds that generator for the block and
restores the caller's state afterwards. PNGs are written without a software/date stamp
(:data:`PNG_METADATA`). Together with sorted tables this lets a re-run be verified by file hashes.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

#: PNG text chunks: none that changes between versions or runs
PNG_METADATA: dict[str, None] = {"Software": None}


@contextlib.contextmanager
def fixed_jitter(seed: int = 0) -> Iterator[None]:
    """Seed NumPy's global generator for the block (plot jitter), then restore the previous state."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
