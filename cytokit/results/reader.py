"""The one reader of a results folder (layout and columns in :mod:`cytokit.results.schema`).

Contract
--------
:func:`read_table` reads ``OUT/<name>.parquet`` (preferred) or ``OUT/<name>.csv``. The store's own tables
(``populations``, ``samples``) come back with the schema's dtypes whichever format was read
(:func:`coerce`: the same function the pipeline applies before writing), so CSV and Parquet give equal
frames. Other tables (clinical copy, IL-2 cycles, trial outputs) keep the identifier columns
(:data:`~cytokit.results.schema.ID_COLUMNS`) as text and let pandas infer the rest. A damaged table
raises the caller's error class (``error=``) naming the file; a missing required table says to run
``cytokit run`` first. A ``populations`` table of a folder written before results schema 2
(``run_info.json`` without ``results_schema`` or with ``1``) is read as schema 2: no ``pct_lymphocytes``
or absolute count for the gates above the lymphocyte denominator
(:func:`cytokit.results.denominators.blank_above_denominator`). Nothing is ever written here.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence, overload

import numpy as np
import pandas as pd

from ..errors import CytokitError, PipelineError
from ..io_utils import safe_name
from . import schema as S
from .review import review_columns

log = logging.getLogger(__name__)


_TRUE_TEXT = frozenset({"true", "1", "yes"})
_FALSE_TEXT = frozenset({"false", "0", "no"})


def _as_bool(value: Any) -> bool | None:
    """A stored ``review`` value as bool; None when missing or not a boolean."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip().lower()
    return True if text in _TRUE_TEXT else False if text in _FALSE_TEXT else None


def _review_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``review``, ``review_flags``, ``notes`` of a table with ``flags``: as stored, and derived from
    ``flags`` (:func:`cytokit.results.review.review_columns`) for rows without a stored ``review`` (tables
    written before these columns existed)."""
    at = df.columns.get_loc(S.FLAGS)
    for col in S.REVIEW_COLUMNS:  # absent columns where the schema puts them: after flags, in order
        if col in df.columns:
            at = max(at, df.columns.get_loc(col))
        else:
            at += 1
            df.insert(min(at, len(df.columns)), col, None if col == S.REVIEW else "")
    stored = df[S.REVIEW].map(_as_bool)
    missing = stored.isna().to_numpy()
    if missing.any():
        derived = pd.DataFrame([review_columns(f if isinstance(f, str) else "") for f in df.loc[missing, S.FLAGS]],
                               index=df.index[missing], columns=list(S.REVIEW_COLUMNS))
        for col in S.REVIEW_COLUMNS:
            values = df[col].astype(object)
            values[missing] = derived[col].to_numpy()
            df[col] = values
        stored = df[S.REVIEW].map(_as_bool)
    df[S.REVIEW] = stored.astype(bool)
    return df


def _count_flags_column(df: pd.DataFrame) -> pd.DataFrame:
    """A populations table (one with ``flags``) without ``count_flags`` (folders written before it) gets it
    empty where the schema puts it: after ``abs_method`` (no count flag was recorded then)."""
    if S.COUNT_FLAGS not in df.columns:
        at = df.columns.get_loc(S.ABS_METHOD) + 1 if S.ABS_METHOD in df.columns else len(df.columns)
        df.insert(at, S.COUNT_FLAGS, "")
    return df


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with stable dtypes (in place, returned): schema ``int`` columns nullable Int64, ``float``
    float64, ``week`` Int64 (rounded) when every value is numeric, ``bool`` (``review``) bool, every other
    column text ("" = missing). A table with ``flags`` gets ``review``, ``review_flags`` and ``notes`` derived
    from it where ``review`` is missing (older results folders: one definition, the gating's), and an empty
    ``count_flags`` where that column is missing. The pipeline
    applies it before writing, the reader after reading, so both formats agree."""
    if S.FLAGS in df.columns:
        df = _count_flags_column(_review_columns(df))
    for col in df.columns:
        kind = S.COLUMNS[col].kind if col in S.COLUMNS else "text"
        if kind == "bool":
            continue  # made bool above
        if kind == "int":
            df[col] = pd.array(pd.to_numeric(df[col], errors="coerce").round(), dtype="Int64")
        elif kind == "float":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif kind == "week":
            text = df[col].astype(str).str.strip()
            num = pd.to_numeric(text, errors="coerce")
            if (num.notna() == (text != "")).all():  # every value numeric: whole weeks
                df[col] = pd.array(num.round(), dtype="Int64")
        else:
            df[col] = df[col].fillna("").astype(str)
    return df


def _read_csv(path: Path, store_table: bool) -> pd.DataFrame:
    if store_table:  # written by the pipeline: every value as text, then the schema's dtypes
        return coerce(pd.read_csv(path, dtype=str, keep_default_na=False))
    return pd.read_csv(path, dtype={c: str for c in S.ID_COLUMNS})


def table_path(root: str | Path, name: str) -> Path | None:
    """The file holding table ``name`` (Parquet preferred), or None."""
    for suffix in (".parquet", ".csv"):
        path = Path(root) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


@overload
def read_table(root: str | Path, name: str, *, required: Literal[True],
               error: type[CytokitError] = ...) -> pd.DataFrame: ...
@overload
def read_table(root: str | Path, name: str, *, required: bool = ...,
               error: type[CytokitError] = ...) -> pd.DataFrame | None: ...
def read_table(root: str | Path, name: str, *, required: bool = False,
               error: type[CytokitError] = PipelineError) -> pd.DataFrame | None:
    """Table ``name`` (e.g. ``"populations"``, ``"trial/patient_visit_values"``) of a results folder,
    or None when absent and not ``required`` (see module contract)."""
    path = table_path(root, name)
    if path is None:
        if required:
            stem = Path(name).name
            raise error(f"results folder has no {stem}.parquet or {stem}.csv; run `cytokit run` first",
                        path=Path(root) / Path(name).parent)
        return None
    store_table = name in S.STORE_TABLES
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            df = coerce(df) if store_table else df
        else:
            df = _read_csv(path, store_table)
    except Exception as exc:  # pyarrow / pandas raise many types for damaged or foreign files
        raise error(f"cannot read table: {exc}", path=path) from exc
    return _as_current_schema(root, df) if name == S.POPULATIONS else df


def _as_current_schema(root: str | Path, pops: pd.DataFrame) -> pd.DataFrame:
    """A populations table of a folder written before results schema 2, read as schema 2 (module contract)."""
    path = Path(root) / S.RUN_INFO
    if not path.is_file():  # not a run's folder (a table on its own): as written
        return pops
    info = read_run_info(root)
    if str(info.get(S.RUN_INFO_SCHEMA_KEY, "1")) not in ("1",):
        return pops
    from .denominators import blank_above_denominator, recorded_lymphocytes

    out, n = blank_above_denominator(pops, recorded_lymphocytes(info))
    if n:
        log.info("%s: results schema 1: %d rows above the lymphocyte denominator read without %% of lymphocytes "
                 "or absolute count", root, n)
    return out


def read_run_info(root: str | Path) -> dict[str, Any]:
    """``run_info.json`` as a dict ({} when absent or unreadable, with a warning for the latter)."""
    path = Path(root) / S.RUN_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable run info (%s)", path, exc)
        return {}
    if not isinstance(info, dict):
        log.warning("%s: run info is not a JSON object", path)
        return {}
    version = info.get(S.RUN_INFO_SCHEMA_KEY)
    if version is not None and str(version) != S.SCHEMA_VERSION:
        log.warning("%s: results schema %s, this cytokit reads schema %s; columns may differ", path, version,
                    S.SCHEMA_VERSION)
    return info


@dataclass(frozen=True)
class ReportedGates:
    """The gates a sample's tables report (see :meth:`ResultsFolder.reported_gates`): ``refitted`` whether they
    are the cohort gating's re-fit, ``gatingml`` the path of them as Gating-ML under the QC gates and
    ``thumbnails`` of their picture (either may not exist: written only with ``outputs.gatingml`` /
    ``outputs.thumbnails``); :meth:`records` reads them as stored records."""

    folder: "ResultsFolder"
    sample_id: str
    refitted: bool
    result: dict[str, Any] | None = None

    @property
    def gatingml(self) -> Path:
        return self.folder.sample_dir(self.sample_id) / (S.GATES_COHORT_XML if self.refitted else S.GATES_XML)

    @property
    def thumbnails(self) -> Path:
        return self.folder.sample_dir(self.sample_id) / (S.GATES_COHORT_PNG if self.refitted else S.GATES_PNG)

    def records(self) -> list[dict[str, Any]]:
        """The gates as stored in ``result.json`` (``gates``: population, parent, gate, components; transformed
        scale), in strategy order; PipelineError naming the file when unreadable."""
        if not self.refitted:
            stored = self.folder.sample_result(self.sample_id) if self.result is None else self.result
            return list(stored.get("gates", []))
        path = self.folder.sample_dir(self.sample_id) / S.GATES_COHORT_JSON
        try:
            return list(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise PipelineError(f"cannot read the cohort re-fitted gates: {exc}", path=path) from exc


@dataclass(frozen=True)
class ResultsFolder:
    """A results folder: paths and readers of its tables and per-sample results (read only)."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    def table(self, name: str, *, required: bool = False,
              error: type[CytokitError] = PipelineError) -> pd.DataFrame | None:
        return read_table(self.root, name, required=required, error=error)

    def run_info(self) -> dict[str, Any]:
        return read_run_info(self.root)

    def sample_dir(self, sample_id: str) -> Path:
        return self.root / S.SAMPLES_DIR / safe_name(sample_id)

    def result_path(self, sample_id: str) -> Path:
        return self.sample_dir(sample_id) / S.RESULT_FILE

    def sample_result(self, sample_id: str) -> dict[str, Any]:
        """The stored ``result.json`` of a sample (raises PipelineError naming the file)."""
        path = self.result_path(sample_id)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PipelineError(f"cannot read stored result: {exc}", path=path) from exc

    def reported_gates(self, sample_id: str, result: dict[str, Any] | None = None) -> ReportedGates:
        """The gates this sample's tables report: the cohort gating's re-fit where the run's tables report one
        (``samples/<id>/gates_cohort.json``, written by the cohort stage with the tables; Gating-ML
        ``gates_cohort.xml``), else the stored per-sample fit (``result.json``; ``gates.xml``). Every per-event
        reader (events export, ``load_gated_events``, FlowJo workspace, ``compare-gates``, clustering
        thresholds) and the patient reports' gate pictures take their gates from here. ``result``: the sample's stored result when already read."""
        return ReportedGates(self, sample_id, (self.sample_dir(sample_id) / S.GATES_COHORT_JSON).is_file(), result)

    def gate_records(self, sample_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The concrete gates these samples' tables report (:meth:`reported_gates`), in order (unreadable
        results are skipped)."""
        records: list[dict[str, Any]] = []
        for sid in sample_ids:
            try:
                records += self.reported_gates(sid).records()
            except (PipelineError, AttributeError) as exc:
                log.debug("no stored gates for %s (%s)", sid, exc)
        return records
