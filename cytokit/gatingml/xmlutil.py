"""Namespace-tolerant XML helpers shared by the Gating-ML and FlowJo readers/writers."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal, overload

from lxml import etree

from ..errors import GatingError

GATING_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATATYPE_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
#: Namespace of the original node id/name cytokit keeps in a gate's custom_info.
CYTOKIT_NS = "urn:cytokit:gating"


def gating_tag(tag: str) -> str:
    """Qualified name in the Gating-ML gating namespace."""
    return f"{{{GATING_NS}}}{tag}"


def transforms_tag(tag: str) -> str:
    """Qualified name in the Gating-ML transformations namespace."""
    return f"{{{TRANSFORMS_NS}}}{tag}"


def datatype_tag(tag: str) -> str:
    """Qualified name in the Gating-ML datatypes namespace."""
    return f"{{{DATATYPE_NS}}}{tag}"


def parse_xml(source: str | Path | bytes, *, what: str = "XML file") -> tuple[etree._Element, str | None]:
    """Parse XML safely (no network, no entity expansion); returns (root, path text or None)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=True)
    path = None
    try:
        if isinstance(source, (bytes, bytearray)):
            root = etree.fromstring(bytes(source), parser=parser)
        else:
            path = str(source)
            root = etree.parse(path, parser=parser).getroot()
    except OSError as exc:
        raise GatingError(f"cannot read {what}: {exc}", path=path) from None
    except etree.XMLSyntaxError as exc:
        raise GatingError(f"{what} is not well-formed XML: {exc}", path=path) from None
    if root is None:
        raise GatingError(f"{what} is empty", path=path)
    return root, path


def local(el: etree._Element) -> str:
    """Tag name without namespace."""
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def attr(el: etree._Element, name: str, default: str | None = None) -> str | None:
    """Attribute by local name, whatever its namespace prefix."""
    for key, value in el.attrib.items():
        if key == name or key.endswith("}" + name):
            return value
    return default


def children(el: etree._Element, name: str) -> Iterator[etree._Element]:
    """Direct children with local tag ``name``."""
    for c in el:
        if local(c) == name:
            yield c


def child(el: etree._Element, name: str) -> etree._Element | None:
    return next(children(el, name), None)


@overload
def float_attr(el: etree._Element, name: str, *, where: str, path: str | None, default: float,
               required: bool = ...) -> float: ...
@overload
def float_attr(el: etree._Element, name: str, *, where: str, path: str | None, default: None = ...,
               required: Literal[True]) -> float: ...
@overload
def float_attr(el: etree._Element, name: str, *, where: str, path: str | None, default: float | None = ...,
               required: bool = ...) -> float | None: ...
def float_attr(el: etree._Element, name: str, *, where: str, path: str | None,
               default: float | None = None, required: bool = False) -> float | None:
    """The attribute as a float; ``default`` when absent (a :class:`GatingError` when ``required``)."""
    text = attr(el, name)
    if text is None:
        if required:
            raise GatingError(f"{where}: missing attribute {name!r}", path=path)
        return default
    try:
        return float(text)
    except ValueError:
        raise GatingError(f"{where}: attribute {name!r} is not a number: {text!r}", path=path) from None


def line_of(el: etree._Element) -> str:
    return f"line {el.sourceline}" if getattr(el, "sourceline", None) else "?"
