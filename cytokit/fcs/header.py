"""The fixed-width HEADER segment of an FCS data set (first 58 bytes).

Contract: :func:`parse_header` takes the bytes of one data set starting at its first byte and returns an
:class:`FCSHeader` with the version and the segment offsets **relative to the data set's start**
(inclusive byte positions, as the standard defines them). Offsets that are blank or 0 are returned as 0
(meaning "look in TEXT"). Anything that is not an FCS header raises :class:`~cytokit.errors.FCSError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import FCSError

HEADER_LEN = 58
SUPPORTED_VERSIONS = ("FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2")


@dataclass(frozen=True)
class FCSHeader:
    """Version string (e.g. ``"3.1"``) and segment offsets (bytes, relative to the data set start)."""

    version: str
    text_begin: int
    text_end: int
    data_begin: int
    data_end: int
    analysis_begin: int
    analysis_end: int


def _offset(raw: bytes, name: str, path: str | Path | None) -> int:
    text = raw.decode("ascii", errors="replace").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise FCSError(f"HEADER field {name} is not a number ({text!r}); the file is not a valid FCS file",
                       path=path)
    return int(text)


def parse_header(buf: bytes | memoryview, *, path: str | Path | None = None, at: int = 0) -> FCSHeader:
    """Parse the HEADER of the data set starting at byte ``at`` of ``buf``."""
    head = bytes(buf[at:at + HEADER_LEN])
    where = f" at byte {at}" if at else ""
    if len(head) < 10 or not head.startswith(b"FCS"):
        raise FCSError(
            f"not an FCS file{where}: it does not start with 'FCS' (first bytes {head[:10]!r})"
            if len(head) >= 3 else f"not an FCS file{where}: only {len(head)} bytes long",
            path=path,
        )
    version_tag = head[:6].decode("ascii", errors="replace")
    if version_tag not in SUPPORTED_VERSIONS:
        raise FCSError(
            f"unsupported FCS version {version_tag!r}{where}; supported: {', '.join(SUPPORTED_VERSIONS)}",
            path=path,
        )
    if len(head) < HEADER_LEN:
        raise FCSError(f"HEADER{where} is truncated: {len(head)} of {HEADER_LEN} bytes present", path=path)
    names = ("TEXT begin", "TEXT end", "DATA begin", "DATA end", "ANALYSIS begin", "ANALYSIS end")
    values = [_offset(head[10 + 8 * i:18 + 8 * i], names[i], path) for i in range(6)]
    return FCSHeader(version_tag[3:], *values)
