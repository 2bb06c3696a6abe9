"""Expert gates as per-event masks: a FlowJo workspace or Gating-ML file applied to its FCS files.

Contract
--------
:func:`load_expert` reads a FlowJo workspace (``.wsp``; every sample with gates) or a Gating-ML file (one
hierarchy applied to every file given) and pairs each gated sample with its FCS file (by file name or
$FIL). :func:`expert_masks` evaluates the expert's gates on the **raw** Sample with
:func:`cytokit.gatingml.evaluate_document` (the gates carry their own compensation and transforms) and
returns one boolean array over all the sample's events per strategy population, through a mapping of
expert population names (or paths ``A/B/C``) to strategy population names (:func:`load_mapping`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from ..io_utils import fcs_paths
from ..gatingml.model import GatingDocument
from ..sample import Sample


@dataclass(frozen=True)
class ExpertSample:
    """One expert-gated sample: its FCS path, the gate hierarchy drawn on it, and a display name."""

    name: str
    path: Path
    document: GatingDocument


def load_expert(source: str | Path, files: Iterable[str | Path]) -> list[ExpertSample]:
    """Pair the gated samples of ``source`` (a workspace: FlowJo ``.wsp``, FlowJo 9 or FACSDiva ``.xml``; or
    a Gating-ML file) with ``files``.

    A workspace sample is matched to the FCS file of the same name (or $FIL; a workspace with one gated
    sample and a single file are paired whatever the file is called); workspace samples without a file and
    files without gates are left out. A Gating-ML file gates every file. Raises
    :class:`ConfigError` when no gated sample has a file.
    """
    source = Path(source)
    paths = fcs_paths(files)
    if not source.exists():
        raise ConfigError("expert gates file not found", path=source)
    from ..flowjo import is_workspace, read_workspace

    if source.suffix.lower() == ".wsp" or is_workspace(source):  # FlowJo 9 and FACSDiva workspaces are .xml
        ws = read_workspace(source)
        by_name = {p.name: p for p in paths}
        gated = [s for s in ws.samples if s.document is not None and len(s.document)]
        out = []
        for s in gated:
            match = by_name.get(s.file_name) or by_name.get(s.keywords.get("$FIL", "")) or by_name.get(s.name)
            if match is None and len(gated) == 1 and len(paths) == 1:  # one gated sample, one file (renamed)
                match = paths[0]
            if match is not None and s.document is not None:
                out.append(ExpertSample(match.stem, match, s.document))
        if not out:
            raise ConfigError(f"none of the workspace's gated samples "
                              f"({', '.join(s.file_name for s in ws.samples if s.document is not None)}) "
                              f"is among the FCS files given ({len(paths)})", path=source)
        return out
    from ..gatingml import read_gatingml

    doc = read_gatingml(source)
    if not paths:
        raise ConfigError("no FCS files given for the Gating-ML gates", path=source)
    return [ExpertSample(p.stem, p, doc) for p in paths]


def load_mapping(source: str | Path | Mapping[str, str] | None) -> dict[str, str] | None:
    """Expert population (name or path) -> strategy population, from a dict or a YAML file
    (top-level mapping, or under ``populations:``). None = map populations of the same name."""
    if source is None:
        return None
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = None
    else:
        from ..yamlio import read_yaml

        where = Path(source)
        data, _lines = read_yaml(where)
        if isinstance(data, dict) and isinstance(data.get("populations"), dict):
            data = data["populations"]
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in data.items()):
        raise ConfigError("the population mapping must be 'expert population: strategy population' pairs",
                          path=where)
    return {str(k): str(v) for k, v in data.items()}


def resolve_nodes(document: GatingDocument, mapping: Mapping[str, str] | None,
                  strategy_populations: Iterable[str], *, where: str | Path | None = None) -> dict[str, str]:
    """Strategy population -> expert node id, for the mapping (or same-name matches when None)."""
    names = list(strategy_populations)
    by_key: dict[str, list[str]] = {}
    for n in document.nodes:
        for key in {n.id, n.name, "/".join(document.path(n.id))}:
            by_key.setdefault(key, []).append(n.id)
    out: dict[str, str] = {}
    pairs = mapping.items() if mapping is not None else ((p, p) for p in names if p in by_key)
    for expert, pop in pairs:
        if pop not in names:
            raise ConfigError(f"mapping names strategy population {pop!r}, which is not in the strategy "
                              f"({', '.join(names)})", path=where)
        ids = sorted(set(by_key.get(expert, [])))
        if not ids:
            raise ConfigError(f"mapping names expert population {expert!r}, which is not among the expert's "
                              f"gates ({', '.join(sorted({n.name for n in document.nodes}))})", path=where)
        if len(ids) > 1:
            raise ConfigError(f"expert population {expert!r} is ambiguous ({', '.join(ids)}); "
                              f"give its path", path=where)
        out[pop] = ids[0]
    if not out:
        raise ConfigError("no strategy population matches an expert population; give a mapping", path=where)
    return out


def expert_masks(document: GatingDocument, sample: Sample, nodes: Mapping[str, str]
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
    """Strategy population -> expert membership (bool over all events of the raw ``sample``), and the
    membership of the expert gate's parent (None for a top-level gate: all events)."""
    from ..gatingml import evaluate_document

    masks = evaluate_document(document, sample, ids=list(nodes.values()))
    out = {pop: np.asarray(masks[nid], dtype=bool) for pop, nid in nodes.items()}
    parents: dict[str, np.ndarray | None] = {}
    for pop, nid in nodes.items():
        parent = document.node(nid).parent
        parents[pop] = masks[parent] if parent is not None else None
    return out, parents
