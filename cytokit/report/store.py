"""Read what the per-patient reports need from a results folder (see docs/architecture.md).

Tables are read as Parquet when present, else CSV. Only ``populations`` is required; everything else
(samples, clinical table, IL-2 cycles, run info, trial values) enriches the report when present.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ReportError

log = logging.getLogger(__name__)


#: identifier columns read as text from CSV, so "007" stays "007" and matches the Parquet tables
TEXT_COLUMNS = {c: str for c in ("patient", "visit", "tube", "arm", "sample_id")}


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=TEXT_COLUMNS)


def read_table(stem: Path) -> pd.DataFrame | None:
    """``stem.parquet`` or ``stem.csv`` as a DataFrame; None when neither exists.

    From CSV, identifier columns (patient, visit, tube, arm, sample_id) are text, never numbers.
    """
    for suffix, reader in ((".parquet", pd.read_parquet), (".csv", _read_csv)):
        path = stem.with_suffix(suffix)
        if path.is_file():
            try:
                return reader(path)
            except Exception as exc:  # pyarrow/pandas parser errors on a damaged table
                raise ReportError(f"cannot read table: {exc}", path=path) from exc
    return None


@dataclass(frozen=True)
class ResultsStore:
    """The tables of one results folder."""

    root: Path
    populations: pd.DataFrame
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    clinical: pd.DataFrame = field(default_factory=pd.DataFrame)
    cycles: pd.DataFrame = field(default_factory=pd.DataFrame)
    patient_values: pd.DataFrame = field(default_factory=pd.DataFrame)
    run_info: dict = field(default_factory=dict)

    @property
    def patients(self) -> list[str]:
        return sorted(self.populations["patient"].dropna().astype(str).unique())


def load_results(results_dir: str | Path) -> ResultsStore:
    """Load a results folder written by ``cytokit run``; raises ReportError when it has no populations."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError("results folder not found", path=root)
    populations = read_table(root / "populations")
    if populations is None:
        raise ReportError("no populations table (populations.parquet/.csv): run `cytokit run` first", path=root)
    missing = {"patient", "visit", "population", "count"} - set(populations.columns)
    if missing:
        raise ReportError(f"populations table lacks columns {sorted(missing)}", path=root / "populations")
    populations = populations.copy()
    populations["patient"] = populations["patient"].astype(str)
    run_info: dict = {}
    info_path = root / "run_info.json"
    if info_path.is_file():
        try:
            run_info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable run info (%s); methods block will be incomplete", info_path, exc)

    def optional(stem: Path) -> pd.DataFrame:
        df = read_table(stem)
        if df is None:
            return pd.DataFrame()
        if "patient" in df.columns:
            df = df.copy()
            df["patient"] = df["patient"].astype(str)
        return df

    return ResultsStore(
        root=root,
        populations=populations,
        samples=optional(root / "samples"),
        clinical=optional(root / "clinical"),
        cycles=optional(root / "il2_cycles"),
        patient_values=optional(root / "trial" / "patient_visit_values"),
        run_info=run_info,
    )
