"""A plain-data description of a read FCS data set (what ``cytokit inspect`` shows).

Contract: :func:`describe` returns JSON-serialisable built-ins only: file, sha256, FCS version, data set
index, instrument ($CYT), event and channel counts, the channel table (PnN, PnS, resolved marker, kind,
range), the keyword holding the acquisition spillover matrix and its size, and the reader's warnings.
"""
from __future__ import annotations

import math
from typing import Any

from ..sample import Sample
from .keywords import dfc_detectors, spillover_keyword


def _spill_size(text: str) -> int | None:
    head = text.strip().split(",", 1)[0].strip()
    return int(head) if head.isdigit() else None


def describe(sample: Sample) -> dict[str, Any]:
    """Summary of ``sample`` as plain data (see module contract)."""
    meta = sample.metadata
    key = spillover_keyword(meta)
    if key == "$DFCiTOj":
        spill_n: int | None = len(dfc_detectors(meta))
    else:
        spill_n = _spill_size(meta[key.lstrip("$").lower()]) if key else None
    channels = []
    for r in sample.channels.itertuples():
        rng = float(r.range)
        channels.append({
            "pnn": str(r.pnn), "pns": str(r.pns), "marker": str(r.marker), "kind": str(r.kind),
            "range": None if math.isnan(rng) else rng,
        })
    return {
        "file": str(sample.path) if sample.path else sample.name,
        "sha256": sample.sha256,
        "fcs_version": sample.fcs_version,
        "dataset": sample.dataset_index,
        "instrument": str(meta.get("cyt", "")).strip() or None,
        "n_events": sample.n_events,
        "n_channels": sample.n_channels,
        "channels": channels,
        "spillover_keyword": key,
        "spillover_size": spill_n,
        "warnings": list(sample.warnings),
    }
