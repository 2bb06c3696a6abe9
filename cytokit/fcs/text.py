"""The TEXT segment: delimiter handling, escaped delimiters and character decoding.

Contract: :func:`parse_text` turns the raw bytes of a TEXT segment (first byte = delimiter) into an
ordered list of ``(keyword, value)`` pairs plus warnings. Keywords keep their case here; the reader
normalises them. Values are decoded as UTF-8 (FCS 3.1) and, where that fails, as Latin-1 (older
instruments), with a warning. A doubled delimiter inside a keyword or value is an escaped delimiter.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import FCSError


def _decode(raw: bytes, warnings: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        note = "TEXT segment is not valid UTF-8; non-ASCII keyword text was decoded as Latin-1"
        if note not in warnings:
            warnings.append(note)
        return raw.decode("latin-1")


def _split_escaped(body: bytes, delim: bytes) -> list[bytes]:
    """Split on single delimiters; runs of 2k delimiters are k escaped literals, 2k+1 add a separator.

    Returned tokens still contain their doubled delimiters (callers unescape).
    """
    d = re.escape(delim)
    out: list[bytes] = []
    cur = b""
    for part in re.split(rb"(" + d + rb"+)", body):
        if part[:1] == delim and part == delim * len(part):
            n = len(part)
            cur += delim * (2 * (n // 2))
            if n % 2:
                out.append(cur)
                cur = b""
        else:
            cur += part
    out.append(cur)
    return out


def parse_text(raw: bytes, *, path: str | Path | None = None, segment: str = "TEXT",
               strict_end: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """Split a TEXT segment into keyword/value pairs.

    ``strict_end`` requires the segment to end with its delimiter (the standard); otherwise a missing
    final delimiter (segment end off by one, a common writer bug) is tolerated with a warning.
    """
    warnings: list[str] = []
    if len(raw) < 2:
        raise FCSError(f"{segment} segment is empty ({len(raw)} bytes)", path=path)
    delim = raw[:1]
    if delim.isalnum() or delim in (b"$",):
        raise FCSError(
            f"{segment} segment does not start with a delimiter (first byte {delim!r})", path=path
        )
    body = raw[1:]
    blanks = b" \t\r\n\x00"
    stripped = body if delim in blanks else body.rstrip(blanks)
    if stripped.endswith(delim):
        if stripped != body:
            warnings.append(f"{segment} segment has {len(body) - len(stripped)} blank padding byte(s) after "
                            "its closing delimiter")
        body = stripped[:-1]
    elif stripped != body:
        warnings.append(f"{segment} segment ends with blank padding instead of its closing delimiter")
        body = stripped
    elif strict_end:
        raise FCSError(f"{segment} segment has no closing delimiter {delim!r} (truncated TEXT or wrong "
                       "TEXT end offset)", path=path)
    else:
        warnings.append(f"{segment} segment does not end with its delimiter; last value may be cut")
    tokens = _split_escaped(body, delim)
    if any(delim * 2 in tokens[i] for i in range(0, len(tokens), 2)):
        # Keyword names never contain the delimiter: this writer used doubled delimiters for empty values.
        tokens = body.split(delim)
        warnings.append(f"{segment} segment has empty keyword values (doubled delimiters read as empty "
                        "values, not escapes)")
    else:
        tokens = [t.replace(delim * 2, delim) for t in tokens]
    if len(tokens) % 2:
        if tokens and tokens[-1].strip() == b"":
            tokens = tokens[:-1]
        else:
            warnings.append(
                f"{segment} segment has an odd number of fields ({len(tokens)}); the last keyword "
                f"{_decode(tokens[-1], warnings)[:40]!r} has no value and was dropped"
            )
            tokens = tokens[:-1]
    pairs = [(_decode(tokens[i], warnings).strip(), _decode(tokens[i + 1], warnings))
             for i in range(0, len(tokens), 2)]
    return pairs, warnings
