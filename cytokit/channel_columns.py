"""Columns of the channel table every :class:`~cytokit.sample.Sample` carries (one row per channel; the
contract is in :mod:`cytokit.sample`). A module of its own so that the FCS decoding that builds the table
(:mod:`cytokit.fcs.channels`) sits below the Sample in the import graph.
"""
from __future__ import annotations

__all__ = ["CHANNEL_COLUMNS"]

CHANNEL_COLUMNS: tuple[str, ...] = (
    "pnn", "pns", "marker", "fluorochrome", "range", "gain", "log_decades", "log_offset", "bits", "kind",
)
