"""``read_fcs``: one data set of an FCS 2.0/3.0/3.1/3.2 file as a :class:`~cytokit.sample.Sample`.

Contract
--------
* Events are float32 on the linear scale ($PnE/$PnG decoded), integer channels masked to $PnR.
* Offsets are read strictly first (HEADER, else $BEGINDATA/$ENDDATA); when HEADER and TEXT disagree, or
  an offset is off by one byte (a common writer bug), the reader tolerates it only if the resulting
  segment is consistent with $TOT × $PAR and records a warning on the Sample.
* Every problem with the file raises :class:`~cytokit.errors.FCSError` naming the file and the problem;
  sizes are validated against the file length before anything is allocated, so a huge $TOT costs nothing.
* Non-finite values (NaN/inf, possible only in float data) are kept and reported as a warning;
  :func:`cytokit.qc.run_qc` removes those events.
* Files with several data sets ($NEXTDATA): data set 0 by default, with a warning that others exist.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import FCSError
from ..sample import Sample
from .channels import channel_table, linearize, needs_linearize
from .decode import DataLayout, decode_data, parse_byteord
from .header import HEADER_LEN, FCSHeader, parse_header
from .text import parse_text

log = logging.getLogger(__name__)

#: Keywords whose value decides how DATA is decoded: a conflicting duplicate is an error.
_LAYOUT_KEYS = {"par", "tot", "datatype", "byteord", "mode", "begindata", "enddata"}
_MAX_DATASETS = 64


@dataclass(frozen=True)
class DataSetText:
    """HEADER and normalised TEXT of one data set (keywords lower-case, without ``$``)."""

    start: int
    header: FCSHeader
    keywords: dict[str, str]
    warnings: tuple[str, ...]

    @property
    def nextdata(self) -> int:
        raw = self.keywords.get("nextdata", "0").strip()
        return int(raw) if raw.isdigit() else 0


def _read_text_segment(buf: bytes | memoryview, start: int, header: FCSHeader, path: Path) -> tuple[list, list[str]]:
    size = len(buf)
    tb, te = start + header.text_begin, start + header.text_end
    if header.text_begin == 0 and header.text_end == 0:
        raise FCSError("HEADER gives no TEXT segment offsets (header-only or blank header)", path=path)
    if tb >= size:
        raise FCSError(
            f"HEADER offsets point beyond the end of the file: TEXT starts at byte {tb}, file has {size} bytes",
            path=path,
        )
    if te > size:  # te == size (one past the end) is the off-by-one writer bug handled below
        raise FCSError(
            f"HEADER offsets point beyond the end of the file: TEXT ends at byte {te}, file has {size} bytes"
            " (file truncated?)",
            path=path,
        )
    if header.text_begin < HEADER_LEN or te < tb:
        raise FCSError(
            f"HEADER gives an invalid TEXT segment ({header.text_begin}-{header.text_end})", path=path
        )
    raw = bytes(buf[tb:te + 1])
    try:
        return parse_text(raw, path=path)
    except FCSError as strict_error:
        delim = raw[:1]
        # Tolerant pass: TEXT end off by one byte in either direction.
        if te + 1 < size and bytes(buf[te + 1:te + 2]) == delim:
            pairs, warns = parse_text(bytes(buf[tb:te + 2]), path=path)
            return pairs, warns + [f"TEXT end offset {header.text_end} is one byte short; read one more"]
        if len(raw) > 2 and raw[-2:-1] == delim:
            pairs, warns = parse_text(raw[:-1], path=path)
            return pairs, warns + [f"TEXT end offset {header.text_end} is one byte past the delimiter"]
        if te + 1 < size and bytes(buf[te + 1:te + 2]) in (b" ", b"\x00"):
            pairs, warns = parse_text(raw, path=path, strict_end=False)
            return pairs, [w for w in warns if "does not end with its delimiter" not in w] + [
                "TEXT segment has no closing delimiter but is followed by blank padding; last value kept"]
        raise strict_error


def _normalise(pairs: list[tuple[str, str]], path: Path) -> tuple[dict[str, str], list[str]]:
    keywords: dict[str, str] = {}
    warnings: list[str] = []
    for key, value in pairs:
        norm = key.strip().lstrip("$").lower()
        if not norm:
            warnings.append(f"empty keyword name with value {value[:40]!r} ignored")
            continue
        if norm in keywords:
            if keywords[norm] == value:
                warnings.append(f"keyword {key!r} appears more than once (same value)")
                continue
            if norm in _LAYOUT_KEYS or (norm[:1] == "p" and norm[-1:] in ("b", "n", "r", "e")
                                        and norm[1:-1].isdigit()):
                raise FCSError(
                    f"keyword {key!r} appears more than once with different values "
                    f"({keywords[norm]!r} and {value!r}); cannot tell which is right",
                    path=path,
                )
            warnings.append(f"keyword {key!r} appears more than once; kept the first value")
            continue
        keywords[norm] = value
    return keywords, warnings


def read_dataset_text(buf: bytes | memoryview, start: int, path: Path) -> DataSetText:
    """HEADER and TEXT (plus supplementary TEXT, if any) of the data set starting at byte ``start``."""
    header = parse_header(buf, path=path, at=start)
    pairs, warnings = _read_text_segment(buf, start, header, path)
    keywords, more = _normalise(pairs, path)
    warnings += more
    sb, se = (keywords.get("beginstext", "0").strip(), keywords.get("endstext", "0").strip())
    if sb.isdigit() and se.isdigit() and int(sb) > 0 and int(se) > int(sb):
        b, e = start + int(sb), start + int(se)
        if (b, e) != (start + header.text_begin, start + header.text_end) and e < len(buf):
            try:
                spairs, swarn = parse_text(bytes(buf[b:e + 1]), path=path, segment="supplementary TEXT",
                                           strict_end=False)
                skw, swarn2 = _normalise(spairs, path)
                for k, v in skw.items():
                    keywords.setdefault(k, v)
                warnings += swarn + swarn2
            except FCSError as exc:
                warnings.append(f"supplementary TEXT ignored: {exc}")
        elif e >= len(buf):
            warnings.append("supplementary TEXT offsets point beyond the end of the file; ignored")
    return DataSetText(start, header, keywords, tuple(warnings))


def list_datasets(buf: bytes | memoryview, path: Path) -> tuple[list[DataSetText], list[str]]:
    """All data sets reachable through $NEXTDATA (the first must parse; later failures are warnings)."""
    first = read_dataset_text(buf, 0, path)
    sets, warnings, seen = [first], [], {0}
    cur = first
    while cur.nextdata and len(sets) < _MAX_DATASETS:
        nxt = cur.start + cur.nextdata
        if nxt in seen or nxt >= len(buf):
            warnings.append(f"$NEXTDATA of data set {len(sets) - 1} points to byte {nxt}, "
                            f"outside the file or backwards; ignored")
            break
        seen.add(nxt)
        try:
            cur = read_dataset_text(buf, nxt, path)
        except FCSError as exc:
            warnings.append(f"data set {len(sets)} at byte {nxt} cannot be read: {exc}")
            break
        sets.append(cur)
    return sets, warnings


def _int_keyword(kw: dict[str, str], name: str, path: Path, *, required: bool = True) -> int | None:
    raw = kw.get(name)
    if raw is None or not raw.strip():
        if required:
            raise FCSError(f"required keyword ${name.upper()} is missing", path=path)
        return None
    txt = raw.strip()
    if not txt.isdigit():
        raise FCSError(f"keyword ${name.upper()} = {raw!r} is not a non-negative integer", path=path)
    return int(txt)


def _layout(kw: dict[str, str], n_par: int, path: Path, warnings: list[str]) -> DataLayout:
    datatype = kw.get("datatype", "").strip().upper()
    if not datatype:
        raise FCSError("required keyword $DATATYPE is missing", path=path)
    if datatype == "A":
        raise FCSError("$DATATYPE A (ASCII data) is not supported", path=path)
    if datatype not in ("I", "F", "D"):
        raise FCSError(f"unknown $DATATYPE {datatype!r} (expected I, F or D)", path=path)
    mode = kw.get("mode", "L").strip().upper() or "L"
    if mode != "L":
        raise FCSError(f"$MODE {mode!r} (histogram data) is not supported; only list mode (L)", path=path)
    if "byteord" not in kw:
        raise FCSError("required keyword $BYTEORD is missing", path=path)
    little = parse_byteord(kw["byteord"], path=path)
    bits, ranges, types = [], [], []
    for i in range(1, n_par + 1):
        raw = kw.get(f"p{i}b", "").strip()
        ctype = kw.get(f"p{i}datatype", datatype).strip().upper() or datatype  # FCS 3.2 per-channel type
        if ctype not in ("I", "F", "D"):
            raise FCSError(f"$P{i}DATATYPE {ctype!r} is not I, F or D", path=path)
        types.append(ctype)
        if ctype == "F":
            b = 32
        elif ctype == "D":
            b = 64
        elif raw.isdigit() and int(raw) > 0:
            b = int(raw)
        elif raw == "*":
            raise FCSError(f"$P{i}B = '*' (ASCII delimited data) is not supported", path=path)
        else:
            raise FCSError(f"$P{i}B (bits of channel {i}) is missing or invalid ({raw!r})", path=path)
        if ctype in ("F", "D") and raw and raw.isdigit() and int(raw) != b:
            warnings.append(f"$P{i}B = {raw} ignored for data type {ctype} ({b}-bit values)")
        bits.append(b)
        try:
            ranges.append(float(kw.get(f"p{i}r", "nan").strip() or "nan"))
        except ValueError:
            ranges.append(float("nan"))
    if len(set(types)) > 1:
        if any(t == "I" and b not in (8, 16, 32, 64) for t, b in zip(types, bits)):
            raise FCSError("mixed $PnDATATYPE with integer widths other than 8/16/32/64 bits is not supported",
                           path=path)
        return DataLayout("mixed", little, tuple(bits), tuple(ranges), tuple(types))
    return DataLayout(types[0] if types else datatype, little, tuple(bits), tuple(ranges))


def _data_bounds(ds: DataSetText, n_tot: int | None, layout: DataLayout, size: int, path: Path,
                 warnings: list[str]) -> tuple[int, int]:
    """(absolute begin, n_events) of the DATA segment, validated against the file size."""
    kw, hdr, start = ds.keywords, ds.header, ds.start
    cands: list[tuple[str, int, int]] = []
    if hdr.data_begin or hdr.data_end:
        cands.append(("HEADER", hdr.data_begin, hdr.data_end))
    tb = _int_keyword(kw, "begindata", path, required=False)
    te = _int_keyword(kw, "enddata", path, required=False)
    if tb is not None and te is not None and (tb or te):
        cands.append(("TEXT ($BEGINDATA/$ENDDATA)", tb, te))
    if not cands:
        raise FCSError("no DATA segment offsets in HEADER or TEXT", path=path)
    row_bits = layout.row_bits
    if n_tot is None:
        name, b, e = cands[0]
        n_tot = ((e - b + 1) * 8) // row_bits
        warnings.append(f"$TOT missing; {n_tot} events inferred from the DATA segment length")
    if n_tot == 0:
        raise FCSError("file holds no events ($TOT = 0)", path=path)
    need = (n_tot * row_bits + 7) // 8
    row_bytes = max(1, row_bits // 8)
    options = []
    for rank, (name, b, e) in enumerate(cands):
        length = e - b + 1
        if b < HEADER_LEN or e < b or (b <= hdr.text_end and b + need - 1 >= hdr.text_begin):
            continue
        if start + b + need > size:
            continue
        if length == need:
            score = 0
        elif abs(length - need) <= 1:
            score = 1
        elif need < length < need + row_bytes:
            score = 2
        else:
            continue
        options.append((score, rank, name, b, e))
    if options:
        score, rank, name, b, e = min(options)
        if len(cands) > 1 and (cands[0][1], cands[0][2]) != (cands[1][1], cands[1][2]):
            warnings.append(f"HEADER DATA offsets {cands[0][1]}-{cands[0][2]} and TEXT $BEGINDATA/$ENDDATA "
                            f"{cands[1][1]}-{cands[1][2]} disagree; used {name} (consistent with $TOT x $PAR)")
        if score == 1:
            warnings.append(f"DATA end offset {e} is off by one byte ($TOT x $PAR needs {need} bytes from {b})")
        elif score == 2:
            warnings.append(f"DATA segment has {e - b + 1 - need} padding byte(s) after the last event")
        return start + b, n_tot
    # Nothing consistent: explain the most likely problem.
    name, b, e = cands[0]
    available = max(0, size - (start + b))
    if b < HEADER_LEN or e < b or (b <= hdr.text_end and b + need - 1 >= hdr.text_begin):
        raise FCSError(f"{name} gives an invalid DATA segment ({b}-{e}; it overlaps HEADER or TEXT "
                       f"{hdr.text_begin}-{hdr.text_end})", path=path)
    if start + b >= size:
        raise FCSError(f"HEADER offsets point beyond the end of the file: DATA starts at byte {start + b}, "
                       f"file has only {size} bytes (truncated or header-only file)", path=path)
    if start + b + need > size and e - b + 1 >= need:
        raise FCSError(
            f"DATA segment is truncated: $TOT = {n_tot} events x $PAR = {len(layout.bits)} need {need} bytes "
            f"from byte {start + b}, but the file ends after {available} bytes "
            f"({(available * 8) // row_bits} complete events)", path=path)
    if start + b + need > size:
        raise FCSError(
            f"$TOT = {n_tot} events x $PAR = {len(layout.bits)} need {need} bytes but the DATA segment "
            f"({b}-{e}) holds {e - b + 1} and the file only {available} from byte {start + b}: $TOT/$PAR "
            f"do not match the DATA length (file truncated or keywords wrong)", path=path)
    raise FCSError(
        f"$TOT = {n_tot} events x $PAR = {len(layout.bits)} ({need} bytes) is inconsistent with the DATA "
        f"segment length {e - b + 1} bytes ({b}-{e}) = {((e - b + 1) * 8) / row_bits:.2f} events", path=path)


def _resolve_layout(ds: DataSetText, n_tot: int | None, layout: DataLayout, size: int, path: Path,
                    warnings: list[str]) -> tuple[int, int, DataLayout]:
    """DATA bounds, trying byte-aligned storage first for integer widths such as 10 bits ($PnB = 10 is
    usually stored in 16-bit words), then bit-packed storage."""
    if layout.datatype != "I" or all(b % 8 == 0 for b in layout.bits):  # incl. "mixed" (byte-aligned)
        return (*_data_bounds(ds, n_tot, layout, size, path, warnings), layout)
    rounded = tuple(8 if b <= 8 else 16 if b <= 16 else 32 if b <= 32 else 64 for b in layout.bits)
    ranges = tuple(r if np.isfinite(r) else float(2 ** b) for r, b in zip(layout.ranges, layout.bits))
    aligned = DataLayout("I", layout.little_endian, rounded, ranges)
    packed = DataLayout("I", layout.little_endian, layout.bits, ranges)
    trial: list[str] = []
    try:
        begin, n = _data_bounds(ds, n_tot, aligned, size, path, trial)
        warnings += trial + [f"integer widths $PnB {sorted(set(layout.bits))} are stored in "
                             f"{sorted(set(rounded))}-bit words (values masked to $PnB/$PnR)"]
        return begin, n, aligned
    except FCSError as first:
        try:
            begin, n = _data_bounds(ds, n_tot, packed, size, path, warnings)
        except FCSError:
            raise first from None
        warnings.append(f"integer widths $PnB {sorted(set(layout.bits))} are bit-packed")
        return begin, n, packed


def read_keywords(path: str | Path, *, dataset: int = 0) -> dict[str, str]:
    """TEXT keywords (lower-case, no ``$``) of one data set, without decoding DATA.

    For data set 0 only the HEADER and TEXT bytes are read, so this is cheap on large files.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_LEN)
            if dataset == 0 and len(head) == HEADER_LEN and head[18:26].strip().isdigit():
                fh.seek(0)
                buf = memoryview(fh.read(int(head[18:26]) + 2))  # TEXT plus one byte of tolerance
            else:
                fh.seek(0)
                buf = memoryview(fh.read())
    except OSError as exc:
        raise FCSError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    try:
        if dataset == 0:
            kw = read_dataset_text(buf, 0, path).keywords
            end = kw.get("endstext", "0").strip()
            if end.isdigit() and int(end) >= len(buf):  # supplementary TEXT lies beyond the bytes read
                try:
                    buf = memoryview(path.read_bytes())
                except OSError as exc:
                    raise FCSError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
                kw = read_dataset_text(buf, 0, path).keywords
            return dict(kw)
        sets, _ = list_datasets(buf, path)
    except FCSError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeError) as exc:
        raise FCSError(f"cannot decode TEXT ({type(exc).__name__}: {exc})", path=path) from exc
    if not 0 <= dataset < len(sets):
        raise FCSError(f"data set {dataset} requested but the file holds {len(sets)}", path=path)
    return dict(sets[dataset].keywords)


def _alignment_shift(head: bytes) -> int:
    """Bytes to skip at the start of the read buffer so that DATA (per HEADER) starts 8-byte aligned."""
    field = head[26:34].strip()
    return (-int(field)) % 8 if len(head) >= 34 and field.isdigit() else 0


#: bytes read (and handed to the hashing thread) at a time by :func:`read_fcs`
READ_CHUNK = 4 << 20


def _hash_pieces(hasher: "hashlib._Hash", pieces: "queue.SimpleQueue[memoryview | None]") -> None:
    """Feed ``hasher`` the pieces of the file in order until the end marker (None)."""
    while (piece := pieces.get()) is not None:
        hasher.update(piece)


def read_fcs(path: str | Path, *, dataset: int = 0) -> Sample:
    """Read data set ``dataset`` (0-based) of an FCS file into a :class:`Sample` (see module contract).

    The file is read once into an aligned buffer; native-order float32 events are a view of that
    buffer (no copy), and the sha256 is computed in a background thread, piece by piece as the file is
    read (:data:`READ_CHUNK` bytes at a time), then while it is decoded.
    """
    path = Path(path)
    hasher = hashlib.sha256()
    pieces: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
    worker = threading.Thread(target=_hash_pieces, args=(hasher, pieces), daemon=True)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            shift = _alignment_shift(fh.read(HEADER_LEN))
            fh.seek(0)
            store = np.empty(size + shift, dtype=np.uint8)
            view = store.data[shift:]
            worker.start()
            got = 0
            while got < size:
                n = fh.readinto(view[got:got + READ_CHUNK])
                if not n:  # the file shrank while being read: what was read is decoded (and checked)
                    break
                pieces.put(view[got:got + n])
                got += n
    except OSError as exc:
        raise FCSError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    finally:
        pieces.put(None)  # the worker ends after the pieces read so far
    buf = store.data[shift:shift + got]
    try:
        sample = _read_buffer(buf, path, dataset, before_rewrite=worker.join)
    except FCSError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError,
            UnicodeError, ArithmeticError) as exc:  # defensive: never a bare traceback for bad input
        raise FCSError(f"cannot decode file ({type(exc).__name__}: {exc})", path=path) from exc
    finally:
        worker.join()
    return sample.replace(sha256=hasher.hexdigest())


def _read_buffer(buf: memoryview, path: Path, dataset: int,
                 before_rewrite: Callable[[], None] | None = None) -> Sample:
    """Decode data set ``dataset`` of the file bytes ``buf``. ``before_rewrite`` is called before values are
    decoded in place ($PnG, $PnE): the events may be a view of ``buf``, whose bytes must not change while
    they are still being hashed."""
    sets, set_warnings = list_datasets(buf, path)
    if not 0 <= dataset < len(sets):
        raise FCSError(f"data set {dataset} requested but the file holds {len(sets)}", path=path)
    ds = sets[dataset]
    warnings = list(ds.warnings) + set_warnings
    if len(sets) > 1:
        warnings.append(f"file holds {len(sets)} data sets; read data set {dataset} (choose with dataset=)")
    kw = ds.keywords
    n_par = _int_keyword(kw, "par", path)
    if not n_par:
        raise FCSError("$PAR = 0: the file declares no channels", path=path)
    if n_par > 10000:
        raise FCSError(f"$PAR = {n_par} is implausibly large", path=path)
    layout = _layout(kw, n_par, path, warnings)
    channels, ch_warn = channel_table(kw, n_par, kw["datatype"].strip().upper(), path=path)
    warnings += ch_warn
    n_tot = _int_keyword(kw, "tot", path, required=ds.header.version != "2.0")
    begin, n_tot, layout = _resolve_layout(ds, n_tot, layout, len(buf), path, warnings)
    nbytes = (n_tot * layout.row_bits + 7) // 8
    events = decode_data(memoryview(buf)[begin:begin + nbytes], n_tot, layout, path=path)
    if not events.flags.writeable:  # pragma: no cover - buffers are writable; kept for safety
        events = events.copy()
    if before_rewrite is not None and needs_linearize(channels):
        before_rewrite()
    linearize(events, channels)
    if events.size and not (np.isfinite(events.min()) and np.isfinite(events.max())):  # no temporary mask
        bad = ~np.isfinite(events)
        n_bad = int(bad.any(axis=1).sum())
        cols = [channels.column("pnn")[j] for j in np.flatnonzero(bad.any(axis=0))]
        warnings.append(f"{n_bad} event(s) have NaN/infinite values (channels {', '.join(cols[:5])}); "
                        "kept; QC removes them")
    for w in warnings:
        log.debug("%s: %s", path.name, w)
    return Sample(
        events=events,
        channels=channels,
        metadata=kw,
        path=path,
        fcs_version=ds.header.version,
        dataset_index=dataset,
        warnings=tuple(warnings),
        provenance=(f"read {path.name} data set {dataset} (FCS{ds.header.version}, {n_tot} events)",),
    )
