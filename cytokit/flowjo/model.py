"""What a FlowJo workspace holds, in cytokit's neutral hierarchy structure.

Each :class:`FlowJoSample` carries a :class:`~cytokit.gatingml.GatingDocument` whose gates are already
in the coordinates FlowJo evaluates them in (its per-sample compensation and transforms applied; FlowJo
stores rectangle/polygon coordinates on the linear scale and ellipses in its 256-bin display space, the
reader converts both), so :func:`cytokit.gatingml.evaluate_document` applies it to the raw FCS Sample.
Node ids are population paths (``"Lymphocytes/Singlets"``), names are FlowJo's population names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote

from ..errors import GatingError
from ..gatingml.model import GatingDocument


@dataclass(frozen=True)
class FlowJoSample:
    """One sample of a workspace: file reference, compensation/transforms (inside ``document``),
    gate hierarchy and the event counts FlowJo stored for each population (node id -> count)."""

    sample_id: str
    name: str
    document: GatingDocument | None
    uri: str | None = None
    total_count: int | None = None
    flowjo_counts: Mapping[str, int] = field(default_factory=dict)
    keywords: Mapping[str, str] = field(default_factory=dict)
    matrix_id: str | None = None

    @property
    def file_name(self) -> str:
        """The FCS file name FlowJo knew the sample by (from the URI, else the sample node name)."""
        if self.uri:
            return Path(unquote(self.uri.replace("file:", ""))).name
        return self.name


@dataclass(frozen=True)
class FlowJoWorkspace:
    """Samples (in workspace order) and groups (group name -> sample ids) of a FlowJo workspace."""

    samples: tuple[FlowJoSample, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    version: str = ""
    source: str | None = None

    def sample(self, key: str) -> FlowJoSample:
        """A sample by sample id, sample node name, FCS file name or $FIL keyword."""
        for s in self.samples:
            if key in (s.sample_id, s.name, s.file_name, s.keywords.get("$FIL")):
                return s
        raise GatingError(f"workspace has no sample {key!r}; samples are: "
                          f"{', '.join(s.name for s in self.samples)}", path=self.source)
