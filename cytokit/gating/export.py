"""Export a :class:`GatingResult`'s fitted gates as a Gating-ML 2.0 document.

Each population becomes a gate node whose dimensions name the file's $PnN channel, the compensation used
(``FCS`` = the file's acquisition matrix, or uncompensated) and the transform fitted for this sample
(logicle with its per-file W, ...), so any Gating-ML 2.0 tool reproduces the memberships from the raw
file. Gate ids are the population names made XML-safe and unique (``CD4 T`` -> ``CD4_T``, ``CD28+ CD4`` ->
``CD28pos_CD4``); node names keep the population names.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..gates import BooleanGate, Gate

if TYPE_CHECKING:  # pragma: no cover
    from ..gatingml import GatingDocument
    from .result import GatingResult


log = logging.getLogger(__name__)

#: ids the Gating-ML writer accepts as they are (XML NCNames of letters, digits and ``._-``)
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


def xml_id(name: str) -> str:
    """An XML NCName from a population name (deterministic, readable)."""
    s = name.replace("+", "pos").replace("-", "neg")
    s = re.sub(r"[^A-Za-z0-9_.]+", "_", s).strip("_")
    return s if s and (s[0].isalpha() or s[0] == "_") else f"g_{s}"


def to_document(result: "GatingResult") -> "GatingDocument":
    """The fitted gates of ``result`` as a :class:`cytokit.gatingml.GatingDocument`."""
    from ..gatingml import FCS_COMPENSATION, UNCOMPENSATED, DimensionSpec, GateNode, GatingDocument, TransformSpec

    sample = result.sample
    comp = FCS_COMPENSATION if sample.compensated else UNCOMPENSATED
    transforms: dict[str, TransformSpec] = {}
    by_pnn: dict[str, str] = {}
    for ct in result.transforms:
        tid = xml_id(f"{ct.name}_{ct.pnn}")
        transforms[tid] = TransformSpec(id=tid, kind=ct.name, params=dict(ct.params))
        by_pnn[ct.pnn] = tid

    def dim_spec(dim: str) -> DimensionSpec:
        # the channel the engine gated on (marker, else $PnN, else $PnS) and the transform applied to it
        idx = sample.channel_index(dim)
        pnn = str(sample.channels["pnn"].iloc[idx])
        tid = by_pnn.get(pnn)
        kind = str(sample.channels["kind"].iloc[idx])
        return DimensionSpec(name=pnn, compensation=comp if kind == "fluorescence" else UNCOMPENSATED,
                             transform=tid)

    used: set[str] = set()

    def unique_id(name: str) -> str:  # distinct names can map to one XML id ("CD4 T", "CD4_T")
        candidate, k = xml_id(name), 2
        while candidate in used:
            candidate, k = f"{xml_id(name)}_{k}", k + 1
        used.add(candidate)
        return candidate

    ids = {name: unique_id(name) for name in result.state.fits}
    nodes = []

    def rename(gate: Gate, new_id: str, comp_ids: dict[str, str]) -> Gate:
        changes: dict = {"id": new_id}
        if isinstance(gate, BooleanGate):
            changes["operands"] = tuple((comp_ids.get(g, ids.get(g, g)), c) for g, c in gate.operands)
            changes["dims"] = ()
        return dataclasses.replace(gate, **changes)

    for spec in result.definition.populations:
        fit = result.state.fits.get(spec.name)
        if fit is None:
            continue
        parent = ids.get(spec.parent) if spec.parent else None
        comp_ids = {c.id: unique_id(f"{spec.name}_{i + 1}") for i, c in enumerate(fit.components)}
        for c in fit.components:
            nodes.append(GateNode(name=c.id, parent=parent, gate=rename(c, comp_ids[c.id], comp_ids),
                                  dims=tuple(dim_spec(d) for d in c.dims)))
        gate = rename(fit.gate, ids[spec.name], comp_ids)
        dims = () if isinstance(gate, BooleanGate) else tuple(dim_spec(d) for d in fit.gate.dims)
        nodes.append(GateNode(name=spec.name, parent=parent, gate=gate, dims=dims))
    return GatingDocument(nodes=tuple(nodes), transforms=transforms, source=str(sample.path or sample.name))


def under_root(document: "GatingDocument", root_nodes: list) -> "GatingDocument":
    """``document`` with ``root_nodes`` (e.g. the QC gates of :meth:`cytokit.qc.QCResult.to_gates`) in
    front and every top-level gate of ``document`` moved under the last of them; unchanged when
    ``root_nodes`` is empty."""
    from ..gatingml import GatingDocument

    if not root_nodes:
        return document
    root = root_nodes[-1].id
    moved = tuple(dataclasses.replace(n, parent=root) if n.parent is None else n for n in document.nodes)
    return GatingDocument(nodes=tuple(root_nodes) + moved, transforms=document.transforms,
                          matrices=document.matrices, source=document.source)


def with_xml_refs(document: "GatingDocument") -> "GatingDocument":
    """``document`` with transformation and matrix ids made XML NCNames (an imported FlowJo workspace names
    them ``flin:FSC-A``, ``logicle:Comp-FITC-A``...), the dimensions that refer to them updated."""
    from ..gatingml import FCS_COMPENSATION, UNCOMPENSATED, GatingDocument

    refs = [*document.transforms, *document.matrices]
    if all(_NCNAME.fullmatch(r) for r in refs):
        return document
    used = {r for r in refs if _NCNAME.fullmatch(r)} | {FCS_COMPENSATION, UNCOMPENSATED}

    def new_ids(ids: list[str]) -> dict[str, str]:
        out = {}
        for r in ids:
            candidate, k = r, 2
            if not _NCNAME.fullmatch(r):
                candidate = xml_id(r)
                while candidate in used:
                    candidate, k = f"{xml_id(r)}_{k}", k + 1
                used.add(candidate)
            out[r] = candidate
        return out

    t_ids, m_ids = new_ids(list(document.transforms)), new_ids(list(document.matrices))

    def dim(d):  # noqa: ANN001, ANN202 - DimensionSpec
        return dataclasses.replace(d, compensation=m_ids.get(d.compensation, d.compensation),
                                   transform=t_ids.get(d.transform, d.transform) if d.transform else None,
                                   name=t_ids.get(d.name, d.name) if d.ratio else d.name)

    return GatingDocument(
        nodes=tuple(dataclasses.replace(n, dims=tuple(dim(d) for d in n.dims)) for n in document.nodes),
        transforms={t_ids[k]: dataclasses.replace(v, id=t_ids[k]) for k, v in document.transforms.items()},
        matrices={m_ids[k]: dataclasses.replace(v, id=m_ids[k]) for k, v in document.matrices.items()},
        source=document.source)


def result_document(result: "GatingResult") -> "GatingDocument":
    """The Gating-ML document of ``result``: its fitted (or imported) gates, below the QC gates (root
    ``QC pass``, :meth:`cytokit.qc.QCResult.to_gates`) when QC ran, so the document evaluated on all the
    events of the raw FCS file counts what the result counts."""
    doc = with_xml_refs(result.document) if result.document is not None else to_document(result)
    qc = result.qc.result if result.qc is not None else None
    if qc is None:
        return doc
    if qc.rules is not None and not qc.rules.exact:
        log.warning("%s: the exported QC gates do not reproduce QC exactly (%s)", result.sample.name,
                    qc.rules.note)
    return under_root(doc, qc.to_gates(taken=tuple(doc.ids)))


def to_gatingml(result: "GatingResult", path: str | Path | None = None) -> str:
    """Gating-ML 2.0 text of :func:`result_document`; written atomically to ``path`` when given."""
    from ..gatingml import gatingml_bytes
    from ..io_utils import atomic_write_bytes

    data = gatingml_bytes(result_document(result))
    if path is not None:
        atomic_write_bytes(path, data)
    return data.decode("utf-8")
