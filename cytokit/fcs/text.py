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
    if not body.endswith(delim):
        if strict_end:
            raise FCSError(f"{segment} segment has no closing delimiter {delim!r}", path=path)
        warnings.append(f"{segment} segment does not end with its delimiter; last value may be cut")
    else:
        body = body[:-1]
    # Split on single delimiters; a doubled delimiter is an escaped literal delimiter.
    d = re.escape(delim)
    tokens = re.split(rb"(?<!" + d + rb")" + d + rb"(?!" + d + rb")", body)
    # A run of an odd number (>=3) of delimiters is "escaped literal(s) + a separator": the lookarounds
    # above leave such runs unsplit, so split them explicitly.
    fixed: list[bytes] = []
    for tok in tokens:
        if delim * 3 in tok:
            parts = re.split(rb"((?:" + d + rb")+)", tok)
            cur = b""
            for part in parts:
                if part.startswith(delim) and part == delim * len(part):
                    n = len(part)
                    cur += delim * (n // 2)
                    if n % 2:
                        fixed.append(cur)
                        cur = b""
                else:
                    cur += part
            fixed.append(cur)
        else:
            fixed.append(tok)
    tokens = [t.replace(delim * 2, delim) for t in fixed]
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
