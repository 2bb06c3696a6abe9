"""The sample table of a run: manifest CSV (or file-name rules) checked against the files on disk.

Contract
--------
:func:`build_manifest` returns ``(table, problems)``: one row per sample with ``sample_id`` (unique,
file-name safe), ``file`` (as written in the manifest), ``path`` (absolute), ``patient``, ``visit``,
``arm``, ``tube`` and any further manifest columns as text; ``problems`` lists every issue found
(missing columns or values, missing files, duplicates, unknown tubes) as ``file:row: message`` so a run
can refuse to start with the full list. Input files are only read, never modified.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..io_utils import matching_files, safe_name
from ..results import schema as S
from .config import MANIFEST_FIELDS, PipelineConfig

log = logging.getLogger(__name__)


def read_csv_text(path: Path, what: str) -> pd.DataFrame:
    """A CSV read as text (no NA guessing); a missing or unreadable file raises ConfigError."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", path=path) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"cannot read {what}: {exc}", path=path) from exc


#: columns the run adds to the sample table and the results tables: a manifest column must not use them
RESERVED_COLUMNS: frozenset[str] = frozenset({S.SAMPLE_ID, "path", S.SHA256, "_where"})


def reserved_columns() -> frozenset[str]:
    """Manifest column names that would collide with columns cytokit writes (samples/populations tables)."""
    from ..results import schema

    own = {S.FILE, *MANIFEST_FIELDS, S.WEEK}  # manifest fields the tables carry on purpose
    return frozenset((set(schema.SAMPLE_RESULT_COLUMNS) - own) | RESERVED_COLUMNS)


def column_problems(columns: list[str], mapping: dict[str, str], where: Path) -> list[str]:
    """Collisions between the CSV's columns, ``manifest.columns`` and the columns cytokit writes."""
    problems = []
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        problems.append(f"{where}: column(s) {dup} appear more than once in the header")
    for field, csv_col in sorted(mapping.items()):
        if csv_col != field and field in columns:
            problems.append(f"{where}: manifest.columns maps {csv_col!r} to {field!r}, but the file also has a "
                            f"{field!r} column; remove one of them or map {field!r} to {field!r}")
    reserved = reserved_columns()
    renamed = [next((f for f, c in mapping.items() if c == col), col) for col in columns]
    clash = sorted({c for c in renamed if c in reserved})
    if clash:
        problems.append(f"{where}: column(s) {clash} are names cytokit writes in the results tables; "
                        "rename them in the manifest")
    return problems


def _from_csv(config: PipelineConfig, problems: list[str]) -> pd.DataFrame:
    m = config.manifest
    assert m.path is not None
    raw = read_csv_text(m.path, "manifest")
    rename = {csv_col: field for field, csv_col in m.columns.items()}
    missing = [m.columns.get(f, f) for f in MANIFEST_FIELDS if m.columns.get(f, f) not in raw.columns]
    if missing:
        problems.append(f"{m.path}: missing column(s) {missing}; columns are {list(raw.columns)} "
                        "(map other names under manifest.columns)")
        return pd.DataFrame(columns=list(MANIFEST_FIELDS))
    clashes = column_problems([str(c) for c in raw.columns], m.columns, m.path)
    if clashes:
        problems.extend(clashes)
        return pd.DataFrame(columns=list(MANIFEST_FIELDS))
    table = raw.rename(columns=rename)
    base = m.path.parent
    table["path"] = [str((base / f).resolve()) if f else "" for f in table[S.FILE]]
    table["_where"] = [f"{m.path}:{i + 2}" for i in range(len(table))]  # +2: header row, 1-based
    return table


def _from_rules(config: PipelineConfig, problems: list[str]) -> pd.DataFrame:
    m = config.manifest
    assert m.input is not None
    if not m.input.is_dir():
        problems.append(f"{m.input}: input folder not found")
        return pd.DataFrame(columns=list(MANIFEST_FIELDS))
    rows = []
    for path in matching_files(m.input, m.glob):
        row: dict[str, str] = {S.FILE: path.name}
        matched = not m.rules
        for rule in m.rules:
            hit = re.search(rule.pattern, path.name)
            if hit:
                row.update({k: v for k, v in hit.groupdict().items() if v is not None})
                row.update(rule.set)
                matched = True
                break
        if not matched:
            problems.append(f"{path}: file name matches no manifest rule")
            continue
        for k, v in m.defaults.items():
            row.setdefault(k, v)
        row["path"] = str(path.resolve())
        row["_where"] = str(path)
        rows.append(row)
    if not rows and not problems:
        problems.append(f"{m.input}: no files match {m.glob!r}")
    clash = sorted({k for r in rows for k in r} & (reserved_columns() - {"path", "_where"}))
    if clash:
        problems.append(f"manifest.rules/defaults: field(s) {clash} are names cytokit writes in the results "
                        "tables; use other group names")
        return pd.DataFrame(columns=list(MANIFEST_FIELDS))
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*MANIFEST_FIELDS, *(k for r in rows for k in r)])))


#: longest sample id (it names a folder); longer ids keep a prefix plus a hash of the whole text
MAX_SAMPLE_ID = 120


def sample_id_from_text(text: str) -> str:
    """The file-name safe sample id of ``text``; beyond :data:`MAX_SAMPLE_ID` characters the id is a
    prefix plus 8 hex digits of the text's sha256, so two long ids never become one by truncation."""
    full = safe_name(text, max_len=4 * len(text) + 8)  # never cut here (NFKD may lengthen text)
    if len(full) <= MAX_SAMPLE_ID:
        return full
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{full[:MAX_SAMPLE_ID - 9].rstrip('._-')}-{digest}"


def _sample_id_texts(table: pd.DataFrame, fmt: str, problems: list[str]) -> list[str]:
    texts = []
    for row in table.to_dict("records"):
        fields = {k: str(v) for k, v in row.items()}
        fields["stem"] = Path(str(row.get(S.FILE, ""))).stem
        try:
            text = fmt.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(f"{row['_where']}: manifest.sample_id {fmt!r} cannot be formatted: {exc}")
            text = fields["stem"]
        texts.append(text)
    return texts


def build_manifest(config: PipelineConfig) -> tuple[pd.DataFrame, list[str]]:
    """The run's sample table and the list of problems found (empty when all is well)."""
    problems: list[str] = []
    table = _from_csv(config, problems) if config.manifest.path is not None else _from_rules(config, problems)
    if table.empty:
        return table.drop(columns=["_where"], errors="ignore"), problems
    table = table.fillna("")
    for field in MANIFEST_FIELDS:
        if field not in table.columns:
            table[field] = ""
    for row in table.to_dict("records"):
        where = row["_where"]
        for field in (S.FILE, S.PATIENT, S.TUBE):
            if not str(row[field]).strip():
                problems.append(f"{where}: empty {field!r}")
        if row[S.TUBE] and row[S.TUBE] not in config.tubes:
            problems.append(f"{where}: tube {row['tube']!r} has no panel/strategy in the pipeline "
                            f"(tubes: {sorted(config.tubes)})")
        if row[S.FILE] and not Path(row["path"]).is_file():
            problems.append(f"{where}: FCS file not found: {row['path']}")
    texts = _sample_id_texts(table, config.manifest.sample_id, problems)
    table.insert(0, S.SAMPLE_ID, [sample_id_from_text(t) for t in texts])
    table["_id_text"] = texts
    dup = table[S.SAMPLE_ID].duplicated(keep=False)
    for sid, group in table[dup].groupby(S.SAMPLE_ID):
        distinct = sorted(set(group["_id_text"]))
        if len(distinct) > 1:  # different ids that become the same file-safe name
            problems.append(f"sample ids {distinct} ({', '.join(group['_where'])}) all become {sid!r} once made "
                            "file-name safe; make them differ in letters, digits, '.', '_', '+' or '-'")
        else:
            problems.append(f"duplicate sample id {sid!r} for {', '.join(group['_where'])} "
                            "(set manifest.sample_id, e.g. '{patient}_{visit}_{tube}')")
    table = table.drop(columns=["_id_text"])
    dup_files = table["path"].duplicated(keep=False) & (table["path"] != "")
    for path, group in table[dup_files].groupby("path"):
        problems.append(f"file {path} is listed more than once ({', '.join(group['_where'])})")
    _warn_unlisted(config, table)
    table = table.drop(columns=["_where"]).sort_values(S.SAMPLE_ID, kind="stable").reset_index(drop=True)
    return table, problems


def _warn_unlisted(config: PipelineConfig, table: pd.DataFrame) -> None:
    """Log FCS files that sit next to listed ones but are not in the manifest."""
    listed = set(table["path"])
    folders = {Path(p).parent for p in listed if p}
    unlisted = sorted(str(f) for d in folders for f in matching_files(d) if str(f.resolve()) not in listed)
    if unlisted:
        log.warning("%d FCS file(s) are not in the manifest and will not be analysed: %s%s",
                    len(unlisted), ", ".join(unlisted[:5]), " ..." if len(unlisted) > 5 else "")


def read_clinical(config: PipelineConfig) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """The clinical table and IL-2 cycle table (or None) and the problems found in them."""
    problems: list[str] = []
    if config.clinical is None:
        return None, None, problems
    c = config.clinical
    clinical = read_csv_text(c.path, "clinical table")
    for field, csv_col in sorted(c.columns.items()):
        if csv_col != field and field in clinical.columns:
            problems.append(f"{c.path}: clinical.columns maps {csv_col!r} to {field!r}, but the table also has a "
                            f"{field!r} column; remove one of them")
        elif csv_col not in clinical.columns:
            problems.append(f"{c.path}: clinical.columns.{field}: no column {csv_col!r}; columns are "
                            f"{list(clinical.columns)}")
    clinical = clinical.rename(columns={csv_col: field for field, csv_col in c.columns.items()})
    need = [S.PATIENT, S.VISIT]
    if config.counts.method in ("auto", "dual_platform"):
        need.append(c.lymphocytes_column)
    missing = [col for col in need if col not in clinical.columns]
    if missing:
        problems.append(f"{c.path}: missing column(s) {missing}; columns are {list(clinical.columns)} "
                        "(map other names under clinical.columns)")
    elif c.lymphocytes_column in clinical.columns:
        values = pd.to_numeric(clinical[c.lymphocytes_column].replace("", "nan"), errors="coerce")
        bad = [i + 2 for i, (txt, v) in enumerate(zip(clinical[c.lymphocytes_column], values))
               if txt != "" and (pd.isna(v) or v < 0)]
        if bad:
            problems.append(f"{c.path}: {c.lymphocytes_column!r} is not a non-negative number on row(s) {bad[:10]}")
        dup = clinical.duplicated([S.PATIENT, S.VISIT], keep=False)
        if dup.any():
            problems.append(f"{c.path}: duplicate patient x visit rows {sorted(set(zip(clinical.patient[dup], clinical.visit[dup])))[:5]}")
    cycles = None
    if c.il2_cycles is not None:
        cycles = read_csv_text(c.il2_cycles, "IL-2 cycle table")
        if S.PATIENT not in cycles.columns:
            problems.append(f"{c.il2_cycles}: missing column 'patient'")
    return clinical, cycles, problems
