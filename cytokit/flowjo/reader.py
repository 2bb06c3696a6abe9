"""Read a gating workspace in any supported dialect: one registry (:data:`DIALECTS`) of the XML dialects
cytokit reads, each a test on the parsed root element and a function that builds the
:class:`~cytokit.flowjo.model.FlowJoWorkspace` from it.

Dialects: FlowJo 10 ``.wsp`` (:mod:`cytokit.flowjo.flowjo10`), FlowJo 9 XML workspaces
(:mod:`cytokit.flowjo.flowjo9`) and FACSDiva XML exports (:mod:`cytokit.flowjo.diva`). The dialect modules
import nothing from here; adding a dialect = one module + one entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lxml import etree

from ..errors import GatingError
from ..gatingml.xmlutil import local, parse_xml
from .diva import diva_workspace
from .flowjo9 import flowjo9_workspace
from .flowjo10 import flowjo10_workspace
from .model import FlowJoWorkspace
from .nodes import workspace_major


@dataclass(frozen=True)
class Dialect:
    """One workspace dialect: ``recognises(root)`` on the parsed root element, ``build(root, path)``."""

    name: str
    recognises: Callable[[etree._Element], bool]
    build: Callable[[etree._Element, str | None], FlowJoWorkspace]


def _workspace_of(major: Callable[[int], bool]) -> Callable[[etree._Element], bool]:
    return lambda root: local(root) == "Workspace" and major(workspace_major(root))


#: the dialects, tried in order (the first that recognises the root element reads the file)
DIALECTS: tuple[Dialect, ...] = (
    Dialect("FACSDiva XML", lambda root: local(root) == "bdfacs", diva_workspace),
    Dialect("FlowJo 9", _workspace_of(lambda major: major == 9), flowjo9_workspace),
    Dialect("FlowJo 10", _workspace_of(lambda major: major >= 10), flowjo10_workspace),
)


def is_workspace(source: str | Path | bytes) -> bool:
    """Whether ``source`` is a gating workspace (any dialect, or a FlowJo ``<Workspace>`` of a version not
    read), whatever its file name says: FlowJo 9 and FACSDiva workspaces are ``.xml`` like Gating-ML."""
    root, _path = parse_xml(source, what="gates file")
    return local(root) == "Workspace" or any(dialect.recognises(root) for dialect in DIALECTS)


def read_workspace(source: str | Path | bytes) -> FlowJoWorkspace:
    """Parse a FlowJo 10 workspace file (or its bytes); FlowJo 9 and FACSDiva XML are recognised too."""
    root, path = parse_xml(source, what="FlowJo workspace")
    for dialect in DIALECTS:
        if dialect.recognises(root):
            return dialect.build(root, path)
    if local(root) != "Workspace":
        raise GatingError(f"not a FlowJo workspace (root element is <{local(root)}>)", path=path)
    version = root.get("flowJoVersion") or root.get("version") or ""
    raise GatingError(f"FlowJo version {version or 'unknown'} workspace: only FlowJo 9 and 10 workspaces are "
                      "supported", path=path)
