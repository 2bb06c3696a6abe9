"""Gating-ML 2.0: read, write and evaluate gate hierarchies (see docs/interop.md)."""
from .evaluate import DimensionResolver, evaluate_document, population_counts
from .model import (DimensionSpec, GateNode, GatingDocument, SpectrumMatrixSpec, TransformSpec,
                    FCS_COMPENSATION, UNCOMPENSATED)
from .reader import read_gatingml
from .writer import gatingml_bytes, write_gatingml

__all__ = [
    "DimensionResolver", "DimensionSpec", "FCS_COMPENSATION", "GateNode", "GatingDocument",
    "SpectrumMatrixSpec", "TransformSpec", "UNCOMPENSATED", "evaluate_document", "population_counts",
    "read_gatingml", "gatingml_bytes", "write_gatingml",
]
