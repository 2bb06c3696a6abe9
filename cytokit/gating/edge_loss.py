"""Cells of a population the gates above it left out: what an events-based (single-platform) count misses.

A bead-based absolute count is ``events x beads per tube / (bead events x µL)``: every cell of the population
that a gate above it leaves out is missing from the count, whatever happens to the other populations. A % of
lymphocytes does not see a loss all lineages share (the denominator loses the same share), so the % rows'
``est_error_pp`` (and the ``scatter_cut`` note, the loss *beyond* the back-gating reference's) does not say how
low a count of events is. Measured per population on each file:

* the scatter gate's edge -- :data:`~.methods.scatter_cut.RING_KEY`: the population's events in the ring just
  outside the back-gated scatter gate per 100 inside (:func:`~.backgating.record_scatter_cuts`; a lower bound:
  the ring reaches 1.5 x the gate's radius);
* its own divider -- half its ``edge_share`` (:mod:`.methods.edge`: the share of its events within 0.03 of
  its threshold; a population in the valley between a dim and a bright mode leaves about as many of its cells
  just beyond the divider as half those just inside), for a gate on one marker (:data:`ONE_MARKER_METHODS`). A
  phenotype gate's ``edge_share`` counts events near any of its dividers, and a cell near one is mostly held by
  another (NK cells: CD56+ or CD16+): on lab C its half share was ~2.5 % against 0.0-0.2 % lost at the gate.

:func:`edge_loss_pct` is their sum (% of the population's count). Above :data:`EDGE_LOSS_FLAG_PCT` the row gets
the note :data:`EDGE_LOSS_NOTE` (the % rows are not wrong for it), and a single-platform count of that row the
review flag ``count_low`` (:mod:`cytokit.pipeline.counts`). The tolerance is :data:`COUNT_TOLERANCE_PCT` % of the
count; the flag level sits :data:`UNMEASURED_PCT` below it for what is not measured (true singlets the singlet
gate drops, cells beyond the ring). docs/gating.md, "Absolute counts: cells the gates above leave out".

Units: every share here is percent of the population's own events (count), not percentage points.
"""
from __future__ import annotations

from typing import Any, Mapping

from .methods.scatter_cut import RING_KEY

#: a clinical lab's tolerance for an absolute count: % of the count
COUNT_TOLERANCE_PCT = 10.0
#: % of the count not measured by :func:`edge_loss_pct`: singlets the singlet gate drops (0.6 % median on lab C)
#: and cells beyond the ring (the ring holds 0.3-1 % less than the true edge loss of NK and B cells on lab C
#: tuning seeds 3434-3636)
UNMEASURED_PCT = 2.0
#: :func:`edge_loss_pct` above this gives the note :data:`EDGE_LOSS_NOTE`
EDGE_LOSS_FLAG_PCT = COUNT_TOLERANCE_PCT - UNMEASURED_PCT
#: gate methods whose ``edge_share`` is the share at the divider(s) of one marker (:func:`edge_loss_pct`)
ONE_MARKER_METHODS = frozenset({"threshold", "interval"})
#: note on a population row whose cells the gates above it (and its own divider) leave out beyond the flag level
EDGE_LOSS_NOTE = "edge_loss"


def edge_loss_pct(info: Mapping[str, Any]) -> float | None:
    """Estimated share (% of the population's count) of its cells left out by the scatter gate's edge and its
    own divider, from its fit ``info``: :data:`RING_KEY` + 50 x ``edge_share`` (fraction 0..1; for a gate of
    :data:`ONE_MARKER_METHODS`, ``info["gate_method"]``); None when the scatter edge was not measured (no
    back-gated scatter gate above it, or it is the back-gating reference or below it)."""
    ring = info.get(RING_KEY)
    if ring is None:
        return None
    share = info.get("edge_share") if info.get("gate_method") in ONE_MARKER_METHODS else None
    return float(ring) + (50.0 * float(share) if share is not None else 0.0)


def edge_loss_note(info: Mapping[str, Any]) -> bool:
    """True when :func:`edge_loss_pct` is above :data:`EDGE_LOSS_FLAG_PCT`."""
    loss = edge_loss_pct(info)
    return loss is not None and loss > EDGE_LOSS_FLAG_PCT
