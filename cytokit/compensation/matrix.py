"""Spillover matrices: the :class:`SpilloverMatrix` value and the ways to get one.

Convention: ``values[i, j]`` is the fraction of fluorochrome ``i``'s signal (row = the fluorochrome whose
primary detector is ``channels[i]``) measured in detector ``channels[j]`` (column), so the diagonal is 1
and observed = true @ values. This is the FCS ``$SPILLOVER`` convention; compensation multiplies the
observed events by ``inv(values)``.

Sources:

* the acquisition matrix in a file's TEXT segment (:func:`matrix_from_metadata`): ``$SPILLOVER``,
  ``$SPILL``/``SPILL``, ``$COMP`` (with or without channel names; channels given as parameter numbers,
  as Accuri C6 writes them, are mapped to $PnN) and FCS 2.0 / Beckman Coulter ``$DFCiTOj`` keywords
  (percent of detector i's fluorochrome in detector j);
* a matrix file (:func:`read_matrix`): FlowJo-style CSV/TSV (optional title lines, header row of
  channel names, optional row labels; CR, LF or CRLF line ends), or whitespace-separated R output;
* single-stain controls (:func:`cytokit.compensation.estimate_spillover`).
"""
from __future__ import annotations

import csv
import io
import logging
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..errors import CompensationError
from ..io_utils import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

#: TEXT keywords (normalised: lower-case, no ``$``) holding a spillover matrix, in order of preference.
MATRIX_KEYWORDS: tuple[str, ...] = ("spillover", "spill", "comp", "spillover matrix", "compensation")
_DFC = re.compile(r"^dfc(\d+)to(\d+)$")


@dataclass(frozen=True, eq=False)
class SpilloverMatrix:
    """``channels`` ($PnN of the detectors, in matrix order) and ``values`` (n × n, spillover convention)."""

    channels: tuple[str, ...]
    values: np.ndarray
    source: str = ""
    fluorochromes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        chans = tuple(str(c).strip() for c in self.channels)
        object.__setattr__(self, "channels", chans)
        try:
            vals = np.array(self.values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise CompensationError(f"spillover matrix {self.source or ''} has non-numeric values: {exc}") from None
        n = len(chans)
        where = f" ({self.source})" if self.source else ""
        if vals.shape != (n, n):
            raise CompensationError(f"spillover matrix{where} is {vals.shape}, expected {n}x{n} for {n} channels")
        if n == 0:
            raise CompensationError(f"spillover matrix{where} has no channels")
        if len(set(chans)) != n:
            dup = sorted({c for c in chans if chans.count(c) > 1})
            raise CompensationError(f"spillover matrix{where} names channel(s) twice: {dup}")
        if not np.all(np.isfinite(vals)):
            raise CompensationError(f"spillover matrix{where} contains NaN or infinite values")
        vals.setflags(write=False)
        object.__setattr__(self, "values", vals)

    # -- views --------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.channels)

    def to_dataframe(self) -> "pd.DataFrame":
        """Rows = source fluorochrome (by primary detector), columns = detector."""
        import pandas as pd

        return pd.DataFrame(self.values, index=list(self.channels), columns=list(self.channels))

    def compensation_matrix(self) -> np.ndarray:
        """``inv(values)``: observed events @ this = compensated events."""
        cond = np.linalg.cond(self.values)
        if not np.isfinite(cond) or cond > 1e12:
            raise CompensationError(f"spillover matrix {self.source or ''} is singular (condition number {cond:.3g})")
        return np.linalg.inv(self.values)

    def reorder(self, channels: Sequence[str]) -> "SpilloverMatrix":
        """The same matrix with rows/columns in the order of ``channels`` (a permutation or subset)."""
        idx = []
        for c in channels:
            if c not in self.channels:
                raise CompensationError(f"channel {c!r} is not in the spillover matrix ({', '.join(self.channels)})")
            idx.append(self.channels.index(c))
        return SpilloverMatrix(tuple(channels), self.values[np.ix_(idx, idx)], source=self.source)

    def allclose(self, other: "SpilloverMatrix", atol: float = 1e-9) -> bool:
        return set(self.channels) == set(other.channels) and bool(
            np.allclose(self.values, other.reorder(self.channels).values, atol=atol))

    # -- text forms ---------------------------------------------------------------------------------
    def to_keyword(self) -> str:
        """The FCS ``$SPILLOVER`` value: ``n,ch1,...,chn,v11,v12,...``."""
        vals = ",".join(repr(float(v)) for v in self.values.ravel())
        return f"{self.n}," + ",".join(self.channels) + "," + vals

    def to_csv(self) -> str:
        """CSV with a header of channel names and one labelled row per fluorochrome (FlowJo-compatible)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([""] + list(self.channels))
        for name, row in zip(self.channels, self.values):
            w.writerow([name] + [f"{v:.10g}" for v in row])
        return buf.getvalue()

    def write(self, path: str | Path, *, force: bool = True) -> Path:
        """Write :meth:`to_csv` atomically (``force=False`` refuses to overwrite)."""
        return atomic_write_text(path, self.to_csv(), force=force)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"SpilloverMatrix({self.n} channels, source={self.source!r})"


# ------------------------------------------------------------------------------------------------------
# FCS keywords
# ------------------------------------------------------------------------------------------------------
def parse_spillover_text(text: str, *, pnn: Sequence[str] | None = None, source: str = "") -> SpilloverMatrix:
    """Parse ``n,ch1..chn,v11..vnn`` (``$SPILLOVER``/``SPILL``) or ``n,v11..vnn`` (FCS 3.0 ``$COMP``
    without names, then the first ``n`` parameters ``pnn`` are the channels)."""
    parts = [p.strip() for p in str(text).strip().split(",")]
    where = f"{source}: " if source else ""
    try:
        n = int(float(parts[0]))
    except (ValueError, IndexError):
        raise CompensationError(f"{where}spillover keyword does not start with the channel count: {text[:60]!r}") from None
    if n <= 0:
        raise CompensationError(f"{where}spillover keyword declares {n} channels")
    if len(parts) == 1 + n + n * n:
        names, raw = parts[1:1 + n], parts[1 + n:]
    elif len(parts) == 1 + n * n and pnn is not None and len(pnn) >= n:
        names, raw = list(pnn[:n]), parts[1:]
    else:
        raise CompensationError(
            f"{where}spillover keyword has {len(parts) - 1} fields after n={n}; expected {n + n * n} "
            f"(names + values) or {n * n} (values only)"
        )
    try:
        vals = np.array([float(v) for v in raw]).reshape(n, n)
    except ValueError as exc:
        raise CompensationError(f"{where}spillover keyword has a non-numeric value ({exc})") from None
    return SpilloverMatrix(tuple(names), vals, source=source)


_FL_NUMBER = re.compile(r"^fl(\d+)\b", re.I)


def _dfc_detectors(pnn: Sequence[str]) -> dict[int, int]:
    """DFC detector number → parameter index (0-based).

    Beckman Coulter writes ``$DFCiTOj`` with ``i``/``j`` = FL detector numbers; when a detector is
    recorded both log- and linear-amplified (``FL1 Log``, ``FL1 Lin``) the log parameter (decoded to
    linear by the reader) is used. Files without ``FL<n>`` names use parameter numbers (FCS 2.0 text).
    """
    by_fl: dict[int, list[int]] = {}
    for idx, name in enumerate(pnn):
        m = _FL_NUMBER.match(str(name).strip())
        if m:
            by_fl.setdefault(int(m.group(1)), []).append(idx)
    if not by_fl:
        return {i + 1: i for i in range(len(pnn))}
    out = {}
    for fl, idxs in by_fl.items():
        logs = [i for i in idxs if "log" in str(pnn[i]).lower()]
        out[fl] = (logs or idxs)[0]
    return out


def _dfc_matrix(metadata: Mapping[str, str], pnn: Sequence[str], source: str) -> SpilloverMatrix | None:
    pairs = {}
    for key, value in metadata.items():
        m = _DFC.match(key)
        if m:
            try:
                pairs[(int(m.group(1)), int(m.group(2)))] = float(str(value).strip() or 0)
            except ValueError:
                raise CompensationError(f"{source}: ${key.upper()} is not a number: {value!r}") from None
    if not pairs:
        return None
    detectors = _dfc_detectors(pnn)
    dropped = sorted({i for ij, v in pairs.items() for i in ij if i not in detectors and v != 0})
    if dropped:
        log.warning("%s: ignoring compensation of detectors %s that the file does not record", source, dropped)
    used = sorted({i for ij in pairs for i in ij if i in detectors})
    if not used:
        return None
    vals = np.eye(len(used))
    for (i, j), pct in pairs.items():
        if i != j and i in detectors and j in detectors:
            vals[used.index(i), used.index(j)] = pct / 100.0
    return SpilloverMatrix(tuple(str(pnn[detectors[d]]) for d in used), vals, source=source)


def _numbered_channels(m: SpilloverMatrix, pnn: Sequence[str]) -> SpilloverMatrix:
    """Matrices naming channels by parameter number ("3,4,5...", e.g. Accuri C6) get the $PnN names."""
    names = [str(p) for p in pnn]
    if any(c in names for c in m.channels) or not all(c.isdigit() for c in m.channels):
        return m
    idx = [int(c) for c in m.channels]
    if not all(1 <= i <= len(names) for i in idx):
        raise CompensationError(f"{m.source}: parameter numbers {idx} outside 1..{len(names)}")
    return SpilloverMatrix(tuple(names[i - 1] for i in idx), m.values, source=m.source)


def matrix_from_metadata(metadata: Mapping[str, str], pnn: Sequence[str], *, path: str | Path | None = None
                         ) -> SpilloverMatrix | None:
    """The acquisition matrix stored in a data set's keywords, or None when there is none.

    ``metadata`` uses normalised keys (lower-case, no ``$``); ``pnn`` are the file's $PnN in order.
    An identity matrix is returned as is (it compensates nothing). A malformed keyword raises
    :class:`CompensationError` naming the file and keyword.
    """
    name = Path(path).name if path is not None else "sample"
    for key in MATRIX_KEYWORDS:
        text = metadata.get(key)
        if text is None or not str(text).strip() or str(text).strip() == "0":
            continue
        label = f"${key.upper()}" if key in ("spillover", "comp") else key.upper()
        return _numbered_channels(parse_spillover_text(str(text), pnn=pnn, source=f"{label} of {name}"), pnn)
    return _dfc_matrix(metadata, pnn, source=f"$DFCiTOj of {name}")


# ------------------------------------------------------------------------------------------------------
# matrix files
# ------------------------------------------------------------------------------------------------------
def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _split(line: str, delim: str | None) -> list[str]:
    if delim is None:
        try:
            return shlex.split(line)
        except ValueError:
            return line.split()
    return [f.strip().strip('"').strip("'").strip() for f in next(csv.reader([line], delimiter=delim))]


def parse_matrix_text(text: str, *, source: str = "matrix") -> SpilloverMatrix:
    """Parse a matrix file's text (see :func:`read_matrix`)."""
    lines = [ln for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if ln.strip()]
    if not lines:
        raise CompensationError(f"{source}: matrix file is empty")
    sample_line = "\n".join(lines[:5])
    delim = "\t" if "\t" in sample_line else ("," if "," in sample_line else (";" if ";" in sample_line else None))
    rows = [_split(ln, delim) for ln in lines]

    def numeric_row(fields: list[str]) -> bool:
        vals = fields[1:] if fields and not _is_number(fields[0]) else fields
        return len(vals) > 0 and all(_is_number(v) for v in vals if v != "")

    first_num = next((i for i, r in enumerate(rows) if numeric_row(r)), None)
    if first_num is None or first_num == 0:
        raise CompensationError(f"{source}: no header row of channel names followed by numeric rows")
    header = list(rows[first_num - 1])
    while header and header[-1] == "":
        header.pop()
    if header and header[0] in ("", "<>"):
        header = header[1:]  # the corner cell above the row labels
    n = len(header)
    body = []
    labels = []
    for r in rows[first_num:]:
        if not numeric_row(r):
            raise CompensationError(f"{source}: unexpected non-numeric row after the matrix: {r[:4]}")
        if len(r) == n + 1 and not _is_number(r[0]):
            labels.append(r[0])
            r = r[1:]
        elif len(r) == n + 1 and r[0] == "":
            r = r[1:]
        if len(r) != n:
            raise CompensationError(f"{source}: a matrix row has {len(r)} values but the header names {n} channels")
        body.append([float(v) for v in r])
    if len(body) != n:
        raise CompensationError(f"{source}: {len(body)} rows for {n} channels; a spillover matrix is square")
    vals = np.array(body)
    if labels:
        if len(labels) != n or set(labels) != set(header):
            raise CompensationError(f"{source}: row labels {labels} do not match the header {header}")
        order = [labels.index(h) for h in header]
        vals = vals[order]
    return SpilloverMatrix(tuple(header), vals, source=source)


def read_matrix(path: str | Path) -> SpilloverMatrix:
    """Read a spillover matrix file (FlowJo CSV/TSV with or without row labels, or R table output).

    Values are fractions (spillover convention); a file whose diagonal is 100 is read as percent.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise CompensationError(f"cannot read matrix file: {exc.strerror or exc}", path=path) from None
    m = parse_matrix_text(text, source=str(path))
    diag = np.diag(m.values)
    if np.allclose(diag, 100.0):
        log.info("%s: diagonal is 100, reading values as percent", path)
        m = SpilloverMatrix(m.channels, m.values / 100.0, source=str(path))
    elif not np.allclose(diag, 1.0):
        log.warning("%s: spillover matrix diagonal is not 1: %s", path, np.round(diag, 4).tolist())
    return m
