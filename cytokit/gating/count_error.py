"""Counting uncertainty of a population's % of parent: what a share counted from few events can mean.

Contract
--------
A % of parent counted from ``n`` parent events differs from the share in the patient's blood by binomial
sampling alone, even when every gate is perfect: another tube of the same sample would count differently.
:func:`count_sd_pp` is that standard deviation in percentage points of % of parent,
``100 x sqrt(p~(1 - p~) / (n + 4))`` with the Agresti-Coull share ``p~ = (count + 2) / (n + 4)`` (so a
population of 0 of 40 events is not given an SD of 0: the plug-in ``sqrt(p(1 - p)/n)`` is 0 at p = 0 or 1).
For 40 parent events and 20 % that is ~6 pp; for 1,000 and 20 %, 1.3 pp; for 10,000, 0.4 pp.

It is a separate part of the error from ``est_error_pp`` (where the gate could plausibly lie, measured
against the file's own events): the error of % of parent against the patient's true share is about the root
sum of squares of the two (:func:`.methods.confidence.with_error`). Population tables carry it as ``count_sd_pp``.

A population whose **parent** holds fewer than :data:`FEW_EVENTS` events is flagged ``few_events`` (a review
flag: :data:`cytokit.gating.methods.REVIEW_FLAGS`): its % rests on too few events to be read as a number
without its counting SD, and its gate is fitted on a density drawn from few events. Below 20 parent events a
threshold is not fitted at all (``few_events`` + ``unreliable``, :func:`~.methods.density.fit_threshold`).
An empty parent gives no % (NaN) and no SD.
"""
from __future__ import annotations

import math

#: a population whose parent holds fewer events than this is flagged ``few_events`` (docs/gating.md,
#: "Few events and low CD4 counts": chosen on the untuned families with seeds 101/404/505 as the smallest limit
#: whose recall on estimates > 2 pp off reached 0.90, checked on 606/707/808; at 200 parent events the counting SD
#: of a 50 % share is 3.5 pp, of a 10 % share 2.1 pp)
FEW_EVENTS = 200
#: the flag word (shared with the fit's own "fewer than 20 events" case)
FEW_EVENTS_FLAG = "few_events"


def count_sd_pp(count: int, parent_count: int) -> float:
    """Binomial SD (percentage points of % of parent) of a share of ``count`` of ``parent_count`` events
    (Agresti-Coull share, see the module docstring); NaN when the parent is empty."""
    n = int(parent_count)
    if n <= 0:
        return float("nan")
    k = min(max(int(count), 0), n)
    p = (k + 2.0) / (n + 4.0)
    return 100.0 * math.sqrt(p * (1.0 - p) / (n + 4.0))


def few_events(parent_count: int, limit: int = FEW_EVENTS) -> bool:
    """True when a parent of ``parent_count`` events is below the ``few_events`` limit (an empty parent too)."""
    return int(parent_count) < limit
