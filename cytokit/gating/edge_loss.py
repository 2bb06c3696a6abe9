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
review flag ``count_low`` (:mod:`cytokit.pipeline.counts`).

A dual-platform count (% of lymphocytes x the haematology lymphocyte count) holds the cells the scatter gate left
out as far as the lymphocyte denominator lost as many: it reads low by the population's loss *less the
denominator's*. :func:`lineage_loss_pct` is that difference, the denominator's loss read as the back-gating
reference's ring share (:data:`~.backgating.LEFT_OUT_KEY`; on lab B 13131 / lab A 13130 it is 0.2 % below the
true denominator loss on average, mean |error| 0.45 / 0.25 %, against 0.65 / 0.36 % for the lineages' weighted
ring shares). Above the same :data:`EDGE_LOSS_FLAG_PCT` the row gets the note :data:`LINEAGE_LOSS_NOTE`, and a
dual-platform count of it the same ``count_low`` (the same meaning: the count reads low by more than the
tolerance). A lineage the scatter gate loses more than the others (NK cells: large, high-SSC) is what it finds;
the ``scatter_cut`` part of the row's ``est_error_pp`` measures the same excess, but summed in quadrature with
the other parts it seldom lifts ``count_uncertain`` alone. docs/gating.md, "Dual-platform counts of a lineage the
scatter gate loses more". The tolerance is :data:`COUNT_TOLERANCE_PCT` % of the
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
#: note on a population row whose :func:`lineage_loss_pct` (its loss beyond the lymphocyte denominator's) is above
#: the flag level: a dual-platform count of it reads low
LINEAGE_LOSS_NOTE = "edge_loss_beyond_lymphocytes"


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


def lineage_loss_pct(info: Mapping[str, Any], left_out_pct: float | None) -> float | None:
    """Estimated share (% of the population's count) of its cells left out beyond the lymphocyte denominator's
    own share: :func:`edge_loss_pct` of its fit ``info`` less ``left_out_pct``, the back-gated scatter gate's
    reference cells in its ring per 100 inside (:data:`~.backgating.LEFT_OUT_KEY`, %). What a % of lymphocytes,
    and so a dual-platform count, misses. None when either is not measured."""
    loss = edge_loss_pct(info)
    if loss is None or left_out_pct is None:
        return None
    return loss - float(left_out_pct)


def lineage_loss_note(info: Mapping[str, Any], left_out_pct: float | None) -> bool:
    """True when :func:`lineage_loss_pct` is above :data:`EDGE_LOSS_FLAG_PCT`."""
    loss = lineage_loss_pct(info, left_out_pct)
    return loss is not None and loss > EDGE_LOSS_FLAG_PCT
