"""In-memory interoperability: FlowKit (:mod:`.flowkit`) and AnnData/scanpy (:mod:`.anndata`).

The thin methods :meth:`cytokit.sample.Sample.to_flowkit`, :meth:`~cytokit.sample.Sample.from_flowkit`,
:meth:`cytokit.gating.GatingResult.to_flowkit` and :meth:`~cytokit.gating.GatingResult.to_anndata`
delegate here. FlowKit and anndata are imported inside the functions that use them. See docs/interop.md.
"""
from .anndata import to_anndata
from .flowkit import (flowkit_counts, flowkit_export_counts, flowkit_gate_ids, flowkit_gatingml, from_flowkit,
                      gatingml_for_flowkit, to_flowkit, to_flowkit_strategy)

__all__ = ["to_anndata", "to_flowkit", "from_flowkit", "to_flowkit_strategy", "flowkit_counts",
           "flowkit_gate_ids", "flowkit_gatingml", "gatingml_for_flowkit", "flowkit_export_counts"]
