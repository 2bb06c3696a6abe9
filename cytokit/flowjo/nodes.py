"""Pieces of the FlowJo workspace XML shared by the FlowJo 9 and FlowJo 10 readers (and the dialect
dispatcher): the major version of a ``<Workspace>`` and the event counts FlowJo stores on its nodes."""
from __future__ import annotations

from lxml import etree

from ..errors import GatingError
from ..gatingml.xmlutil import line_of


def workspace_major(root: etree._Element) -> int:
    """Major FlowJo version of a ``<Workspace>`` root (``flowJoVersion`` or ``version``; 0 when unknown)."""
    version = root.get("flowJoVersion") or root.get("version") or ""
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def stored_count(el: etree._Element, *, where: str, path: str | None) -> int | None:
    """The event ``count`` FlowJo stored on a node (None when absent; FlowJo writes -1 when it has not
    computed the count)."""
    text = el.get("count")
    if text in (None, ""):
        return None
    try:
        count = int(text)
    except ValueError:
        raise GatingError(f"{where}: count {text!r} is not an integer ({line_of(el)})", path=path) from None
    return count if count >= 0 else None
