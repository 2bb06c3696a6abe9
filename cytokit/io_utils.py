"""Atomic output writing, hashing and safe file names.

Contract: every file cytokit writes goes through :func:`atomic_writer` (temporary file in the target
folder, flushed and fsynced, then ``os.replace``), so a crash never leaves a partial file under the final
name; its mode follows the umask like any ``open()`` (``0666 & ~umask``). :func:`safe_name` turns untrusted text (FCS keywords, manifest fields) into a file-name component.
:func:`matching_files` / :func:`fcs_paths` list the FCS files of a folder (``.fcs`` in any case) for every
entry point that takes a folder.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator

from .errors import PipelineError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def matching_files(folder: str | Path, pattern: str = "*.fcs") -> list[Path]:
    """The files of ``folder`` whose name matches ``pattern``, sorted; the name is matched case-insensitively
    (instruments write ``.FCS`` as often as ``.fcs``). A pattern with a ``/`` is a path glob, as given."""
    root = Path(folder)
    if "/" in pattern:
        return sorted(p for p in root.glob(pattern) if p.is_file())
    if not root.is_dir():
        return []
    want = pattern.lower()
    return sorted(p for p in root.iterdir() if p.is_file() and fnmatch.fnmatchcase(p.name.lower(), want))


def fcs_paths(items: Iterable[str | Path]) -> list[Path]:
    """Files and folders -> FCS paths: a folder gives its ``*.fcs`` files (any case, sorted), a file itself."""
    return [q for f in items for q in (matching_files(f) if Path(f).is_dir() else [Path(f)])]


def safe_name(text: str, *, default: str = "unnamed", max_len: int = 120) -> str:
    """A file-name component from untrusted text.

    Path separators, '..', control characters and anything outside ``[A-Za-z0-9._+-]`` become '_';
    leading dots are stripped so the result is never hidden, relative ('..') or absolute.
    """
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", text).strip("._ ")
    text = re.sub(r"_+", "_", text)
    return (text or default)[:max_len]


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - other systems: read by setting it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb", *, force: bool = True, sync: bool = True) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    With ``force=False`` an existing ``path`` raises :class:`PipelineError`. On any exception the
    temporary file is removed and ``path`` is left as it was. ``sync=False`` skips the fsync before the
    rename: the file is still replaced atomically for every reader (no partial file under the final name
    while the system runs), but it is durable only once the caller has passed it to :func:`sync_paths`.
    """
    path = Path(path)
    if not force and path.exists():
        raise PipelineError("output exists; use --force to overwrite", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PipelineError(f"cannot write output: {exc.strerror or exc}", path=path) from exc
    try:
        text_options: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **text_options) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # like open(): mkstemp's files are 0600
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PipelineError(f"cannot write output: {exc.strerror or exc}", path=path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary files that :func:`atomic_writer` left under ``folder`` when its process was killed.

    Only for a folder the caller has locked (no other writer); returns the files removed.
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        if _TEMPORARY.match(path.name) and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes, *, force: bool = True, sync: bool = True) -> Path:
    with atomic_writer(path, "wb", force=force, sync=sync) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, force: bool = True, sync: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), force=force, sync=sync)


def _fsync(path: Path, folder: bool) -> None:
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (getattr(os, "O_DIRECTORY", 0) if folder else 0)
    try:
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise PipelineError(f"cannot make output durable: {exc.strerror or exc}", path=path) from exc


def sync_paths(files: Iterable[str | Path], folders: Iterable[str | Path] = (), *, threads: int = 8) -> None:
    """Make files written with ``sync=False`` durable: fsync each file, then each folder (so the renames
    and new folder entries are durable too). The fsyncs of a group run concurrently in up to ``threads``
    threads so the file system can serve them with few journal commits. Raises :class:`PipelineError`
    naming a path that could not be synced; the caller must then not record those files as complete."""
    from concurrent.futures import ThreadPoolExecutor

    for group, folder in (([Path(f) for f in files], False), ([Path(d) for d in folders], True)):
        if len(group) <= 1 or threads <= 1:
            for path in group:
                _fsync(path, folder)
            continue
        with ThreadPoolExecutor(max_workers=min(threads, len(group))) as pool:
            for _ in pool.map(_fsync, group, [folder] * len(group)):
                pass


def write_table(df: "pd.DataFrame", stem: str | Path, *, formats: tuple[str, ...] = ("parquet", "csv"),
                force: bool = True) -> list[Path]:
    """Write ``df`` atomically as ``stem.parquet`` and/or ``stem.csv``; returns the paths written.

    Rows and columns are written in the order given (callers sort for determinism).
    """
    stem = Path(stem)
    written = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        if fmt == "csv":
            text = io.StringIO()
            df.to_csv(text, index=False, lineterminator="\n")
            atomic_write_text(target, text.getvalue(), force=force)
        elif fmt == "parquet":
            data = io.BytesIO()
            df.to_parquet(data, index=False, engine="pyarrow")
            atomic_write_bytes(target, data.getvalue(), force=force)
        else:
            raise ValueError(f"unknown table format {fmt!r}")
        written.append(target)
    return written
