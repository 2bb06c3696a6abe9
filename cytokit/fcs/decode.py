"""Decoding the DATA segment (list mode) into a float32 event matrix on the raw (channel) scale.

Contract: :func:`decode_data` takes the exact bytes of the DATA segment for ``n_events`` events and a
:class:`DataLayout` and returns a C-contiguous ``float32`` array ``(n_events, n_channels)`` of raw
values: integers are masked to their $PnR range, floats are returned as stored. Scaling ($PnE/$PnG) is
applied afterwards by :func:`cytokit.fcs.channels.linearize`. Sizes are checked by the caller *before*
this is called, so nothing here allocates more than the segment can hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FCSError

_LITTLE = {"1,2,3,4", "1,2", "1", "1,2,3,4,5,6,7,8"}
_BIG = {"4,3,2,1", "2,1", "8,7,6,5,4,3,2,1"}


@dataclass(frozen=True)
class DataLayout:
    """How events are stored: $DATATYPE (I/F/D), byte order, per-channel bit widths and ranges."""

    datatype: str  # "I", "F", "D", or "mixed" (FCS 3.2 $PnDATATYPE; then ``types`` is per channel)
    little_endian: bool
    bits: tuple[int, ...]
    ranges: tuple[float, ...]
    types: tuple[str, ...] = ()

    @property
    def row_bits(self) -> int:
        return int(sum(self.bits))

    @property
    def row_bytes(self) -> float:
        """Bytes per event (fractional when bit widths do not add up to whole bytes)."""
        return self.row_bits / 8


def parse_byteord(value: str, *, path: str | Path | None = None) -> bool:
    """True for little endian, False for big endian; other (mixed) orders raise FCSError."""
    v = value.replace(" ", "")
    if v in _LITTLE:
        return True
    if v in _BIG:
        return False
    raise FCSError(f"unsupported $BYTEORD {value!r} (only little or big endian can be read)", path=path)


def _int_mask(rng: float, bits: int) -> int | None:
    """Mask to apply to an integer channel whose $PnR needs fewer bits than $PnB, else None."""
    if not np.isfinite(rng) or rng <= 1:
        return None
    needed = int(np.ceil(np.log2(rng)))
    if needed >= bits:
        return None
    return (1 << needed) - 1


def _unpack_bytes(buf: np.ndarray, n: int, row: int, start: int, width: int, little: bool) -> np.ndarray:
    """Integer values of ``width`` bytes at byte ``start`` of each ``row``-byte event."""
    cols = buf.reshape(n, row)[:, start:start + width].astype(np.uint64)
    order = range(width) if little else range(width - 1, -1, -1)
    out = np.zeros(n, dtype=np.uint64)
    for shift, k in enumerate(order):
        out |= cols[:, k] << np.uint64(8 * shift)
    return out


def _unpack_bits(buf: np.ndarray, n: int, bits: tuple[int, ...]) -> np.ndarray:
    """Generic bit-packed integers (widths not multiples of 8), most significant bit first."""
    row = sum(bits)
    allbits = np.unpackbits(buf)[: n * row].reshape(n, row)
    out = np.empty((n, len(bits)), dtype=np.float64)
    pos = 0
    for j, b in enumerate(bits):
        weights = (1 << np.arange(b - 1, -1, -1, dtype=np.uint64))
        out[:, j] = allbits[:, pos:pos + b].astype(np.uint64) @ weights
        pos += b
    return out


def _decode_mixed(raw: bytes | memoryview, n_events: int, layout: DataLayout) -> np.ndarray:
    """FCS 3.2 mixed per-channel data types (byte-aligned): one structured record per event."""
    endian = "<" if layout.little_endian else ">"
    codes = [(f"{endian}f{b // 8}" if t in ("F", "D") else f"{endian}u{b // 8}")
             for t, b in zip(layout.types, layout.bits)]
    rec = np.dtype([(f"c{j}", c) for j, c in enumerate(codes)])
    arr = np.frombuffer(raw, dtype=rec, count=n_events)
    out = np.empty((n_events, len(codes)), dtype=np.float32)
    for j, (t, b, r) in enumerate(zip(layout.types, layout.bits, layout.ranges)):
        col = arr[f"c{j}"]
        mask = _int_mask(r, b) if t == "I" else None
        out[:, j] = (col & col.dtype.type(mask)) if mask is not None else col
    return out


def decode_data(raw: bytes | memoryview, n_events: int, layout: DataLayout, *,
                path: str | Path | None = None) -> np.ndarray:
    """Decode ``n_events`` events from the DATA bytes ``raw`` (see module contract)."""
    n_ch = len(layout.bits)
    endian = "<" if layout.little_endian else ">"
    dt = layout.datatype
    if dt in ("F", "D"):
        itemsize = 4 if dt == "F" else 8
        arr = np.frombuffer(raw, dtype=f"{endian}f{itemsize}", count=n_events * n_ch)
        # native float32 in an aligned, writable buffer is returned as a view (no copy)
        return np.require(arr.reshape(n_events, n_ch), dtype=np.float32, requirements=["C", "A", "W"])
    if dt == "mixed":
        return _decode_mixed(raw, n_events, layout)
    if dt != "I":
        raise FCSError(f"unsupported $DATATYPE {dt!r}", path=path)
    bits = layout.bits
    if any(b <= 0 or b > 64 for b in bits):
        raise FCSError(f"invalid integer bit widths $PnB {list(bits)}", path=path)
    masks = [_int_mask(r, b) for r, b in zip(layout.ranges, bits)]
    if len(set(bits)) == 1 and bits[0] in (8, 16, 32, 64):
        b = bits[0]
        arr = np.frombuffer(raw, dtype=f"{endian}u{b // 8}", count=n_events * n_ch).reshape(n_events, n_ch)
        if any(m is not None for m in masks):
            arr = arr.copy()
            for j, m in enumerate(masks):
                if m is not None:
                    arr[:, j] &= m
        return np.ascontiguousarray(arr, dtype=np.float32)
    buf = np.frombuffer(raw, dtype=np.uint8)
    if all(b % 8 == 0 for b in bits):
        row = layout.row_bits // 8
        out = np.empty((n_events, n_ch), dtype=np.float32)
        start = 0
        for j, b in enumerate(bits):
            vals = _unpack_bytes(buf[: n_events * row], n_events, row, start, b // 8, layout.little_endian)
            mask = masks[j]
            if mask is not None:
                np.bitwise_and(vals, np.uint64(mask), out=vals)
            out[:, j] = vals
            start += b // 8
        return out
    out64 = _unpack_bits(buf, n_events, bits)
    for j, m in enumerate(masks):
        if m is not None:
            out64[:, j] = np.bitwise_and(out64[:, j].astype(np.uint64), np.uint64(m))
    return np.ascontiguousarray(out64, dtype=np.float32)
