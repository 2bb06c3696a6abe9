"""The channel table of a data set and the linear-scale decoding of its values ($PnE, $PnG).

Contract: :func:`channel_table` builds the channel table (:class:`~cytokit.channel_columns.ChannelTable`
with the :data:`~cytokit.channel_columns.CHANNEL_COLUMNS`) from normalised
keywords (lower-case, no ``$``); :func:`linearize` maps raw channel values to the linear scale in place:
for log-amplified integer channels (``$PnE = f1,f2`` with f1 > 0) ``value = f2 * 10**(f1 * raw / $PnR)``
(f2 = 0 is read as 1, as FCS 3.1 recommends); for linear channels ``value = raw / $PnG``.
:func:`guess_kind` classifies a channel as scatter, fluorescence, time or other from its names.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import FCSError
from ..channel_columns import CHANNEL_COLUMNS, ChannelTable

_TIME = re.compile(r"^time|^(hdr-tm?|clock)\b|\btime\b", re.IGNORECASE)
_SCATTER = re.compile(r"^(fsc|ssc|fs|ss|sc|fwd|side|forward|bsc|lss|lfs|eccentric)(\b|[-_ ]|\d|$)|scatter|\b\d*ssc\b",
                      re.IGNORECASE)
_OTHER = re.compile(
    r"event|index|sort|classif|^hdr-|^doublet|^ev$|^unused|saturat|^well|^tray|^x$|^y$|^drop|^width$|^count|^bead|^cells|^w$|^h$|trigger"
    r"|pulse\s*width$|^fl\d*[- ]?peak\s*pos",
    re.IGNORECASE,
)


#: FCS 3.2 $PnTYPE values -> channel kind
_PNTYPE = {
    "forward_scatter": "scatter", "side_scatter": "scatter", "raw_fluorescence": "fluorescence",
    "unmixed_fluorescence": "fluorescence", "mass": "fluorescence", "time": "time",
    "electronic_volume": "scatter", "index": "other", "classification": "other", "other": "other",
}


def guess_kind(pnn: str, pns: str = "", pntype: str = "") -> str:
    """``"time"``, ``"scatter"``, ``"fluorescence"`` or ``"other"``: from the FCS 3.2 $PnTYPE when it
    is given, else from $PnN (and $PnS) text."""
    declared = _PNTYPE.get(pntype.strip().casefold())
    if declared:
        return declared
    name = pnn.strip()
    if _TIME.search(name) or _TIME.search(pns.strip()):
        return "time"
    if _SCATTER.search(name):
        return "scatter"
    if _OTHER.search(name):
        return "other"
    return "fluorescence"


def _number(meta: Mapping[str, str], key: str, default: float, path: str | Path | None,
            warnings: list[str]) -> float:
    raw = meta.get(key)
    if raw is None or not str(raw).strip():
        return default
    try:
        return float(str(raw).strip().replace(",", "."))
    except ValueError:
        warnings.append(f"${key.upper()} = {raw!r} is not a number; using {default}")
        return default


def _log_params(meta: Mapping[str, str], i: int, path: str | Path | None,
                warnings: list[str]) -> tuple[float, float]:
    raw = meta.get(f"p{i}e")
    if raw is None or not raw.strip():
        return 0.0, 0.0
    parts = [p.strip() for p in raw.replace(";", ",").split(",")]
    try:
        f1, f2 = float(parts[0]), float(parts[1]) if len(parts) > 1 and parts[1] else 0.0
    except (ValueError, IndexError):
        raise FCSError(f"$P{i}E = {raw!r} is not 'decades,offset'", path=path) from None
    return f1, f2


def unique_names(names: list[str]) -> tuple[list[str], list[str]]:
    """Make $PnN values unique by suffixing ``_2``, ``_3``...; returns (names, warnings)."""
    seen: dict[str, int] = {}
    out, warnings = [], []
    taken = {n.casefold() for n in names}
    for n in names:
        key = n.casefold()
        if key in seen:
            seen[key] += 1
            new = f"{n}_{seen[key]}"
            while new.casefold() in taken:
                seen[key] += 1
                new = f"{n}_{seen[key]}"
            taken.add(new.casefold())
            warnings.append(f"duplicate channel name {n!r} renamed to {new!r}")
            out.append(new)
        else:
            seen[key] = 1
            out.append(n)
    return out, warnings


def channel_table(meta: Mapping[str, str], n_channels: int, datatype: str, *,
                  path: str | Path | None = None) -> tuple[ChannelTable, list[str]]:
    """The channel table (see :data:`cytokit.sample.CHANNEL_COLUMNS`) and any warnings."""
    warnings: list[str] = []
    rows = []
    missing = [i for i in range(1, n_channels + 1) if not str(meta.get(f"p{i}n", "")).strip()]
    if missing:
        raise FCSError(
            "required channel name keyword(s) missing or empty: "
            + ", ".join(f"$P{i}N" for i in missing[:10]) + (" ..." if len(missing) > 10 else ""),
            path=path,
        )
    pnns, dup_warn = unique_names([str(meta[f"p{i}n"]).strip() for i in range(1, n_channels + 1)])
    warnings += dup_warn
    for i in range(1, n_channels + 1):
        pnn = pnns[i - 1]
        pns = str(meta.get(f"p{i}s", "")).strip()
        bits_raw = str(meta.get(f"p{i}b", "")).strip()
        bits = int(bits_raw) if bits_raw.isdigit() else 0
        rng = _number(meta, f"p{i}r", float("nan"), path, warnings)
        gain = _number(meta, f"p{i}g", 1.0, path, warnings)
        if gain <= 0 or not np.isfinite(gain):
            warnings.append(f"$P{i}G = {meta.get(f'p{i}g')!r} is not a positive gain; using 1")
            gain = 1.0
        f1, f2 = _log_params(meta, i, path, warnings)
        ctype = str(meta.get(f"p{i}datatype", datatype)).strip().upper() or datatype
        if ctype in ("F", "D") and f1 > 0:
            warnings.append(f"$P{i}E = {meta.get(f'p{i}e')!r} ignored: floating-point data are already linear")
            f1, f2 = 0.0, 0.0
        if f1 > 0 and f2 == 0:
            f2 = 1.0
        rows.append({
            "pnn": pnn, "pns": pns, "marker": pns or pnn, "fluorochrome": "",
            "range": rng, "gain": gain, "log_decades": f1, "log_offset": f2, "bits": bits,
            "kind": guess_kind(pnn, pns, str(meta.get(f"p{i}type", ""))),
        })
    return ChannelTable.from_records(rows, CHANNEL_COLUMNS), warnings


def needs_linearize(channels: ChannelTable) -> bool:
    """True when :func:`linearize` rewrites any value (a channel with $PnE log decades or $PnG != 1)."""
    return any(row.log_decades > 0 or row.gain != 1.0 for row in channels.rows())


def linearize(events: np.ndarray, channels: ChannelTable) -> np.ndarray:
    """Apply $PnE (log amplification) and $PnG (gain) decoding in place; returns ``events``."""
    for j, row in enumerate(channels.rows()):
        if row.log_decades > 0:
            rng = row.range if np.isfinite(row.range) and row.range > 0 else 2.0 ** row.bits
            col = events[:, j].astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, reported by the reader
                events[:, j] = row.log_offset * np.power(10.0, row.log_decades * col / rng)
        elif row.gain != 1.0:
            events[:, j] /= np.float32(row.gain)
    return events
