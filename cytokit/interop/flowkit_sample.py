"""A cytokit :class:`~cytokit.sample.Sample` to and from a ``flowkit.Sample`` (the contract is in
:mod:`cytokit.interop.flowkit`, which re-exports these functions).

This module sits below :mod:`cytokit.sample` in the import graph: :meth:`Sample.to_flowkit` and
:meth:`Sample.from_flowkit` call it, so it imports no :mod:`cytokit.sample` at run time and builds Sample
fields (:func:`sample_fields`), not the Sample itself. FlowKit is imported on first use.
"""
from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import FCSError, GatingError
from ..fcs.channels import channel_table, linearize
from ..fcs.writer import fcs_bytes

if TYPE_CHECKING:  # pragma: no cover
    import flowkit

    from ..sample import Sample

#: keywords computed by the FCS writer or describing the file's own encoding (not carried over)
_ENCODING = re.compile(r"^(p\d+[nbeg]|p\d+datatype|begin.*|end.*|byteord|datatype|mode|nextdata|par|tot)$")


def flowkit_module() -> Any:
    """The ``flowkit`` package (imported on first use: it loads slowly)."""
    try:
        import flowkit
    except ImportError:  # pragma: no cover - FlowKit is a dependency
        raise GatingError("FlowKit interop needs the flowkit package: pip install flowkit") from None
    return flowkit


def to_flowkit(sample: "Sample") -> "flowkit.Sample":
    """The ``flowkit.Sample`` of a raw cytokit Sample (see module contract); ``sample_id`` = its name."""
    if sample.compensated or sample.transforms:
        raise FCSError("only a raw Sample (as read, not compensated or transformed) can become a FlowKit "
                       "Sample: FlowKit applies compensation and transforms itself", path=sample.path)
    meta = {k: v for k, v in sample.metadata.items() if not _ENCODING.match(k.lower().lstrip("$"))}
    data = fcs_bytes(sample.events, list(sample.channels["pnn"].astype(str)),
                     list(sample.channels["pns"].fillna("").astype(str)), meta, allow_nonfinite=True,
                     path=sample.path)
    return flowkit_module().Sample(io.BytesIO(data), sample_id=sample.name)


def sample_fields(fk_sample: "flowkit.Sample") -> dict[str, Any]:
    """The :class:`~cytokit.sample.Sample` fields (keyword arguments) of a ``flowkit.Sample``'s raw events and
    keywords: ``Sample(**sample_fields(fk))`` equals what :func:`cytokit.fcs.read_fcs` returns for the same file
    (linear scale, time in the file's units)."""
    meta = {str(k).lower().lstrip("$"): str(v) for k, v in dict(fk_sample.metadata).items()}
    n_channels = len(fk_sample.pnn_labels)
    channels, warnings = channel_table(meta, n_channels, meta.get("datatype", "F").strip().upper())
    events = np.array(fk_sample.get_events(source="raw"), dtype=np.float64)
    if events.shape != (int(fk_sample.event_count), n_channels):
        raise FCSError(f"FlowKit sample {fk_sample.id!r}: events of shape {events.shape} for "
                       f"{fk_sample.event_count} events x {n_channels} channels")
    time_index = getattr(fk_sample, "time_index", None)
    if getattr(fk_sample, "is_preprocessed", True):
        factor = timestep(meta)
        if time_index is not None and factor != 1.0:
            events[:, time_index] /= factor  # back to the file's time units
        out = events.astype(np.float32)
    else:  # FlowKit kept the stored values: decode $PnE/$PnG as read_fcs does
        out = linearize(events.astype(np.float32), channels)
    return dict(events=np.ascontiguousarray(out), channels=channels, metadata=meta,
                fcs_version=str(fk_sample.version), warnings=tuple(warnings),
                provenance=(f"from FlowKit Sample {fk_sample.id!r} ({out.shape[0]} events)",))


def timestep(metadata: Mapping[str, str]) -> float:
    """$TIMESTEP of a keyword mapping (1.0 when absent or not a positive number)."""
    try:
        step = float(str(metadata.get("timestep", "")).strip() or 1.0)
    except ValueError:
        return 1.0
    return step if np.isfinite(step) and step > 0 else 1.0
