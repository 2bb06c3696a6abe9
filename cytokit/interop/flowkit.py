"""In-memory interoperability with FlowKit: Samples both ways, fitted gates as a FlowKit GatingStrategy.

Contract
--------
* :func:`to_flowkit` turns a **raw** cytokit :class:`~cytokit.sample.Sample` (as read, neither compensated
  nor transformed) into the ``flowkit.Sample`` FlowKit would build from the same FCS file: the events go
  over as FCS 3.1 float32 bytes in memory, with every keyword of the file ($SPILLOVER, $TIMESTEP, $PnR,
  $CYT...). Values are linear: $PnG/$PnE are already applied, so they are written as gain 1 / linear.
  FlowKit multiplies the time channel by $TIMESTEP, as it does for the file itself.
* :func:`from_flowkit` is the inverse: a ``flowkit.Sample``'s raw (pre-processed) events and keywords as a
  cytokit Sample equal to what :func:`cytokit.fcs.read_fcs` returns for the same file (time in the file's
  units, i.e. FlowKit's time divided by $TIMESTEP).
* :func:`to_flowkit_strategy` gives a fitted :class:`~cytokit.gating.GatingResult` as a
  ``flowkit.GatingStrategy`` holding the same gates with their compensation and per-file transforms, under
  the QC gates when QC ran (the Gating-ML 2.0 that :meth:`GatingResult.to_gatingml` writes, parsed in
  memory; time gates converted to FlowKit's time units). Applied by FlowKit to all events of the raw
  sample it reproduces cytokit's counts; :func:`flowkit_counts` lines both up per population.
  FlowKit names gates by their Gating-ML ids (``CD4 T`` -> ``CD4_T``): :func:`flowkit_gate_ids`.
* A Gating-ML file cytokit wrote (the pipeline's ``samples/<id>/gates.xml``) keeps time gates in the
  file's units, which FlowKit reads as $TIMESTEP x those units: handed to FlowKit as is, QC's removed
  time intervals select nothing and every population keeps the events QC removed for time.
  :func:`gatingml_for_flowkit` converts such a file for the FCS file it was fitted on, and
  :func:`flowkit_export_counts` counts its populations with FlowKit on that file.

FlowKit is imported inside these functions only (it loads slowly and is needed by nothing else).
"""
from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from ..errors import FCSError, GatingError
from ..gates import EllipsoidGate, Gate, PolygonGate, QuadrantGate, RectangleGate
from ..results import schema as S
from ..sample import Sample
from .flowkit_sample import flowkit_module, sample_fields, timestep, to_flowkit

if TYPE_CHECKING:  # pragma: no cover
    import flowkit

    from ..gating.result import GatingResult
    from ..gatingml.model import GatingDocument


def from_flowkit(fk_sample: "flowkit.Sample") -> "Sample":
    """A cytokit Sample of a ``flowkit.Sample``'s raw events and keywords (see module contract)."""
    return Sample(**sample_fields(fk_sample))


def flowkit_gate_ids(result: "GatingResult | GatingDocument") -> dict[str, str]:
    """Population name -> the FlowKit gate name (its Gating-ML id) of each exported gate, for a fitted
    result or a Gating-ML document cytokit wrote (read back with :func:`cytokit.gatingml.read_gatingml`)."""
    from ..gating.export import result_document
    from ..gatingml.model import GatingDocument
    from ..gatingml.writer import xml_ids

    doc = result if isinstance(result, GatingDocument) else result_document(result)
    ids = xml_ids(doc)
    return {node.name: ids[node.id] for node in doc.nodes}


def _scaled(gate: Gate, axis: int, factor: float) -> Gate:
    """``gate`` with its coordinates on dimension ``axis`` multiplied by ``factor`` (> 0)."""
    def times(v: float | None) -> float | None:
        return None if v is None else float(v) * factor

    if isinstance(gate, RectangleGate):
        return replace(gate, lower=tuple(times(v) if i == axis else v for i, v in enumerate(gate.lower)),
                       upper=tuple(times(v) if i == axis else v for i, v in enumerate(gate.upper)))
    if isinstance(gate, QuadrantGate):
        return replace(gate, dividers=tuple(float(v) * factor if i == axis else v
                                            for i, v in enumerate(gate.dividers)))
    if isinstance(gate, PolygonGate):
        return replace(gate, vertices=tuple((float(x) * factor, float(y)) if axis == 0
                                            else (float(x), float(y) * factor) for x, y in gate.vertices))
    if isinstance(gate, EllipsoidGate):
        f = np.ones(len(gate.mean))
        f[axis] = factor
        cov = np.asarray(gate.covariance, dtype=np.float64) * np.outer(f, f)
        return replace(gate, mean=tuple(float(m) * k for m, k in zip(gate.mean, f)),
                       covariance=tuple(tuple(float(c) for c in row) for row in cov))
    return gate


def _in_flowkit_time_units(doc: "GatingDocument", sample: "Sample") -> "GatingDocument":
    """``doc`` with gates on the time channel in FlowKit's time units: FlowKit multiplies a channel named
    'Time' by $TIMESTEP, cytokit (and the exported Gating-ML) keep the file's units. Multiplying the
    bounds by the same positive factor keeps every event on its side (rounding is monotonic)."""
    from ..gatingml.model import GatingDocument

    step = timestep(sample.metadata)
    time_names = {str(p) for p in sample.channels["pnn"] if str(p).strip().lower() == "time"}
    if step == 1.0 or not time_names:
        return doc
    nodes = []
    for node in doc.nodes:
        gate = node.gate
        for axis, dim in enumerate(node.dims):
            if dim.name in time_names and not dim.ratio and dim.transform is None:
                gate = _scaled(gate, axis, step)
        nodes.append(replace(node, gate=gate))
    return GatingDocument(nodes=tuple(nodes), transforms=doc.transforms, matrices=doc.matrices, source=doc.source)


def flowkit_gatingml(result: "GatingResult") -> bytes:
    """The Gating-ML 2.0 document (UTF-8 bytes) :func:`to_flowkit_strategy` hands to FlowKit: that of
    :meth:`GatingResult.to_gatingml` with gates on the time channel in FlowKit's time units."""
    from ..gating.export import result_document

    return gatingml_for_flowkit(result_document(result), result.sample)


def gatingml_for_flowkit(source: "str | Path | bytes | GatingDocument", sample: "Sample") -> bytes:
    """A Gating-ML document cytokit wrote (path, bytes or parsed), as FlowKit must be given it to count
    what cytokit counts on ``sample`` (the raw FCS file the gates were fitted on): the same gates with
    those on the time channel in FlowKit's time units (file units x $TIMESTEP). UTF-8 bytes."""
    from ..gatingml import gatingml_bytes, read_gatingml
    from ..gatingml.model import GatingDocument

    doc = source if isinstance(source, GatingDocument) else read_gatingml(source)
    return gatingml_bytes(_in_flowkit_time_units(doc, sample))


def flowkit_export_counts(fcs: str | Path, gatingml: str | Path) -> pd.DataFrame:
    """FlowKit's count of every population of a Gating-ML file cytokit wrote for the FCS file ``fcs``
    (e.g. a run's ``samples/<id>/gates.xml``), FlowKit reading the FCS file itself; time gates are
    converted by :func:`gatingml_for_flowkit`. Columns ``population``, ``gate_id``, ``flowkit_count``
    (events; for the pipeline's gates.xml, what the populations table counts). FlowKit reads the first
    data set of the file."""
    from ..fcs import read_fcs
    from ..gatingml import read_gatingml

    fk = flowkit_module()
    doc = read_gatingml(Path(gatingml))
    strategy = fk.parse_gating_xml(io.BytesIO(gatingml_for_flowkit(doc, read_fcs(fcs))))
    report = strategy.gate_sample(fk.Sample(str(fcs), sample_id=Path(fcs).name)).report
    theirs = dict(zip(report["gate_name"].astype(str), report["count"].astype(int)))
    rows = [{S.POPULATION: name, "gate_id": gid, "flowkit_count": theirs.get(gid)}
            for name, gid in flowkit_gate_ids(doc).items()]
    return pd.DataFrame(rows, columns=[S.POPULATION, "gate_id", "flowkit_count"])


def to_flowkit_strategy(result: "GatingResult") -> "flowkit.GatingStrategy":
    """The fitted gates of ``result`` as a ``flowkit.GatingStrategy`` (same gates, compensation and
    per-file transforms, under the QC gates when QC ran; evaluated by FlowKit on the raw sample). Gates on
    the time channel are given in FlowKit's time units (file units x $TIMESTEP)."""
    return flowkit_module().parse_gating_xml(io.BytesIO(flowkit_gatingml(result)))


def flowkit_counts(result: "GatingResult", fk_sample: "flowkit.Sample | None" = None,
                   strategy: "flowkit.GatingStrategy | None" = None) -> pd.DataFrame:
    """Per population: cytokit's ``count`` and FlowKit's ``flowkit_count`` of the same gates.

    ``fk_sample`` is the raw sample FlowKit gates (default: ``to_flowkit`` of the raw file the result was
    fitted on, read again from ``result.sample.path``); ``strategy`` default :func:`to_flowkit_strategy`.
    Columns ``population``, ``gate_id``, ``count``, ``flowkit_count``, ``difference``.
    """
    if fk_sample is None:
        if result.sample.path is None:
            raise GatingError("flowkit_counts needs fk_sample when the result's sample has no file path")
        from ..fcs import read_fcs

        fk_sample = to_flowkit(read_fcs(result.sample.path, dataset=result.sample.dataset_index))
    strategy = strategy if strategy is not None else to_flowkit_strategy(result)
    report = strategy.gate_sample(fk_sample).report
    fk = dict(zip(report["gate_name"].astype(str), report["count"].astype(int)))
    ours = result.counts()
    rows = [{S.POPULATION: name, "gate_id": gid, S.COUNT: ours[name], "flowkit_count": fk.get(gid)}
            for name, gid in flowkit_gate_ids(result).items() if name in ours]
    df = pd.DataFrame(rows, columns=[S.POPULATION, "gate_id", S.COUNT, "flowkit_count"])
    df["difference"] = df["flowkit_count"] - df[S.COUNT]
    return df
