"""How much a threshold gate's population depends on exactly where its thresholds lie.

Contract
--------
A fitted threshold can be off by a little for reasons no density rule sees (a shoulder read as a mode,
spreading error, a drifting stain). :func:`threshold_sensitivity` measures what that would cost: it
moves each fitted threshold by ``±shift`` (gate coordinates: logicle 0..1 for fluorescence) one at a
time, re-counts the population among the parent's events and returns the largest change in **% of
parent** (percentage points). A gate sitting in an empty valley scores ~0; a gate cutting through a
dense shoulder scores high. Above :data:`UNCERTAIN_PP` the population is flagged ``uncertain``.

The two constants were chosen on the tuning scenario families of ``benchmarks/gating_accuracy.py``
and are checked there on held-out families (flag recall and precision are printed).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

#: threshold shift (gate coordinates) used to probe a gate: ~1.2x in linear signal on a 4.5-decade logicle
SHIFT = 0.02
#: a population whose % of parent moves more than this (pp) under a ±SHIFT move is flagged ``uncertain``
UNCERTAIN_PP = 1.5
#: rows used for the probe (a random subsample beyond this)
MAX_EVENTS = 20000


def threshold_sensitivity(X: np.ndarray, values: Sequence[float | None],
                          member: Callable[[np.ndarray, Sequence[float | None]], np.ndarray], *,
                          shift: float = SHIFT, seed: int = 0) -> float:
    """Largest |change in % of parent| (pp) when any one of ``values`` moves by ``±shift``.

    ``member(X, values)`` returns the boolean membership of the rows of ``X`` for thresholds ``values``
    (``None`` entries are open sides and are not moved).
    """
    if X.shape[0] == 0:
        return 0.0
    if X.shape[0] > MAX_EVENTS:
        rng = np.random.default_rng(seed)
        X = X[rng.choice(X.shape[0], size=MAX_EVENTS, replace=False)]
    base = float(member(X, values).mean())
    worst = 0.0
    for i, v in enumerate(values):
        if v is None:
            continue
        for d in (-shift, shift):
            moved = list(values)
            moved[i] = v + d
            worst = max(worst, abs(float(member(X, moved).mean()) - base))
    return 100.0 * worst
