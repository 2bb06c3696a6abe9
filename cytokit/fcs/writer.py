"""``write_fcs``: events to an FCS 3.1 file (float32 list mode, little endian), written atomically.

Contract: values are written exactly as given (float32, the linear scale). Standard keywords ($PAR,
$TOT, $DATATYPE, $BYTEORD, $MODE, $NEXTDATA, $BEGINDATA/$ENDDATA, $PnN, $PnB, $PnE, $PnR, $PnS) are
computed; ``metadata`` adds or overrides keywords (e.g. ``$SPILLOVER``, ``$CYT``, ``$PnG``, ``$PnR``,
``$DATE``, ``$BTIM``/``$ETIM``, ``$TIMESTEP``, ``$FIL``). Metadata keys are written as given, except
that a key without ``$`` naming a standard keyword (``"cyt"``, ``"p3g"``, ``"spillover"``) gets the
``$`` and upper case. Note that :func:`read_fcs` divides by $PnG, so a file written with ``$PnG = 2``
reads back as ``events / 2``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FCSError
from ..io_utils import atomic_write_bytes

_STANDARD = {
    "abrt", "beginanalysis", "begindata", "beginstext", "byteord", "cells", "com", "cyt", "cytsn",
    "datatype", "date", "endanalysis", "enddata", "endstext", "etim", "btim", "exp", "fil", "inst", "lost",
    "mode", "nextdata", "op", "par", "proj", "smno", "spillover", "src", "sys", "timestep", "tot", "tr",
    "vol", "originality", "last_modifier", "last_modified", "plateid", "platename", "wellid", "comp",
    "unicode", "gate", "csmode", "csvbits", "flowrate",
}
_PARAM = re.compile(r"^p\d+[a-z]$")
_PAD = 20  # digits reserved for offsets in TEXT so their length never changes


def _keyword(key: str) -> str:
    k = str(key).strip()
    if k.startswith("$"):
        return k.upper() if (k[1:].lower() in _STANDARD or _PARAM.match(k[1:].lower())) else k
    low = k.lower()
    if low in _STANDARD or _PARAM.match(low):
        return "$" + k.upper()
    return k


_DELIMITERS = (b"/", b"|", b"\\", b"!", b"~", b"^", b"\x0c", b"\x1e", b"\x1f", b"\x1d", b"\x1c")


def _choose_delimiter(pairs: list[tuple[str, str]], path: Path | None = None) -> bytes:
    """The first candidate delimiter that occurs in no keyword or value (so nothing needs escaping)."""
    text = b"".join(str(k).encode("utf-8") + str(v).encode("utf-8") for k, v in pairs)
    for d in _DELIMITERS:
        if d not in text:
            return d
    # every candidate is used: fall back to escaping (doubling) "/"; a field that starts with it cannot be
    # told apart from an empty field when read back, so it is refused rather than written corrupted
    bad = [str(k) for k, v in pairs if str(k).startswith("/") or str(v).startswith("/")]
    if bad:
        raise FCSError(f"keyword(s) {', '.join(bad[:5])} start with '/' while every candidate TEXT delimiter "
                       "also occurs in the text; they cannot be written unambiguously", path=path)
    return b"/"


def _text_segment(pairs: list[tuple[str, str]], delim: bytes = b"/") -> bytes:
    out = [delim]
    for key, value in pairs:
        for part in (key, value):
            raw = str(part).encode("utf-8")
            out.append(raw.replace(delim, delim + delim))
            out.append(delim)
    return b"".join(out)


def write_fcs(path: str | Path, events: np.ndarray, pnn: Sequence[str], pns: Sequence[str] | None = None,
              metadata: Mapping[str, Any] | None = None, *, allow_nonfinite: bool = False,
              force: bool = True) -> Path:
    """Write ``events`` (``n_events × len(pnn)``, linear scale) as an FCS 3.1 float32 file.

    ``pns`` gives the $PnS texts (empty strings are omitted). ``metadata`` keys/values are written as
    text (see module docstring). Non-finite values are refused unless ``allow_nonfinite``. The file is
    written atomically (``cytokit.io_utils``); ``force=False`` refuses to overwrite.
    """
    path = Path(path)
    data = fcs_bytes(events, pnn, pns, metadata, allow_nonfinite=allow_nonfinite, path=path)
    return atomic_write_bytes(path, data, force=force)


def fcs_bytes(events: np.ndarray, pnn: Sequence[str], pns: Sequence[str] | None = None,
              metadata: Mapping[str, Any] | None = None, *, allow_nonfinite: bool = False,
              path: Path | None = None) -> bytes:
    """The bytes of the FCS 3.1 file :func:`write_fcs` writes (``path`` only names it in errors)."""
    arr = np.asarray(events)
    if arr.ndim != 2 or arr.shape[1] != len(pnn):
        raise FCSError(f"events of shape {arr.shape} do not match {len(pnn)} channel names", path=path)
    if len(pnn) == 0:
        raise FCSError("cannot write an FCS file without channels", path=path)
    if pns is not None and len(pns) != len(pnn):
        raise FCSError(f"{len(pns)} $PnS texts for {len(pnn)} channels", path=path)
    if any(not str(n).strip() for n in pnn):
        raise FCSError("every channel needs a non-empty $PnN", path=path)
    data = np.ascontiguousarray(arr, dtype="<f4")
    if not allow_nonfinite and not np.isfinite(data).all():
        raise FCSError("events contain NaN/infinite values (pass allow_nonfinite=True to write them)",
                       path=path)
    n_events, n_par = data.shape
    kw: dict[str, str] = {}
    kw["$BEGINANALYSIS"] = "0"
    kw["$ENDANALYSIS"] = "0"
    kw["$BEGINSTEXT"] = "0"
    kw["$ENDSTEXT"] = "0"
    kw["$BEGINDATA"] = "0" * _PAD
    kw["$ENDDATA"] = "0" * _PAD
    kw["$BYTEORD"] = "1,2,3,4"
    kw["$DATATYPE"] = "F"
    kw["$MODE"] = "L"
    kw["$NEXTDATA"] = "0"
    kw["$PAR"] = str(n_par)
    kw["$TOT"] = str(n_events)
    finite_max = float(np.nanmax(np.where(np.isfinite(data), data, np.nan), axis=0).max()) \
        if n_events and np.isfinite(data).any() else 0.0
    default_range = str(int(max(262144, np.ceil(finite_max)))) if np.isfinite(finite_max) else "262144"
    for i, name in enumerate(pnn, start=1):
        kw[f"$P{i}N"] = str(name)
        kw[f"$P{i}B"] = "32"
        kw[f"$P{i}E"] = "0,0"
        kw[f"$P{i}R"] = default_range
        if pns is not None and str(pns[i - 1]).strip():
            kw[f"$P{i}S"] = str(pns[i - 1])
    protected = {"$BEGINDATA", "$ENDDATA", "$PAR", "$TOT", "$DATATYPE", "$BYTEORD", "$MODE", "$NEXTDATA"}
    for key, value in (metadata or {}).items():
        k = _keyword(key)
        if k.upper() in protected or re.fullmatch(r"\$P\d+[NB]", k.upper()):
            raise FCSError(f"keyword {k} is computed by write_fcs and cannot be set through metadata",
                           path=path)
        if value is None or str(value) == "":
            continue
        kw[k] = str(value)
    if any(not k.strip("$ ") for k in kw):
        raise FCSError("metadata has an empty keyword name", path=path)
    text_begin = 58
    data_len = data.nbytes
    delim = _choose_delimiter(list(kw.items()), path)
    text = _text_segment(list(kw.items()), delim)
    text_end = text_begin + len(text) - 1
    data_begin = text_end + 1 + (-(text_end + 1)) % 8  # DATA 8-byte aligned: readers can map it as is
    data_end = data_begin + data_len - 1 if data_len else 0
    kw["$BEGINDATA"] = str(data_begin).zfill(_PAD)
    kw["$ENDDATA"] = str(data_end).zfill(_PAD)
    text = _text_segment(list(kw.items()), delim)
    assert text_begin + len(text) == text_end + 1  # offsets padded to a fixed width
    gap = b" " * (data_begin - text_end - 1)

    def field(v: int) -> bytes:
        return (str(v).rjust(8) if v <= 99_999_999 else "0".rjust(8)).encode("ascii")

    header = b"FCS3.1    " + field(text_begin) + field(text_end) + (
        field(data_begin) + field(data_end) if data_end <= 99_999_999 else field(0) + field(0)
    ) + field(0) + field(0)
    return header + text + gap + data.tobytes()
