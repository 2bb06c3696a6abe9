"""Read what the per-patient reports need from a results folder (see :mod:`cytokit.results`).

Tables are read by :func:`cytokit.results.read_table` (Parquet when present, else CSV; identifiers as
text). Only ``populations`` is required; everything else (samples, clinical table, IL-2 cycles, run info,
trial values) enriches the report when present.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ReportError
from ..results import read_run_info
from ..results import read_table as read_results_table
from ..results import schema as S


def read_table(stem: Path) -> pd.DataFrame | None:
    """``stem.parquet`` or ``stem.csv`` as a DataFrame (schema dtypes, identifiers as text); None when
    neither exists. A damaged table raises ReportError naming the file."""
    return read_results_table(stem.parent, stem.name, error=ReportError)


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
        return sorted(self.populations[S.PATIENT].dropna().astype(str).unique())


def load_results(results_dir: str | Path) -> ResultsStore:
    """Load a results folder written by ``cytokit run``; raises ReportError when it has no populations."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError("results folder not found", path=root)
    populations = read_results_table(root, S.POPULATIONS, error=ReportError)
    if populations is None:
        raise ReportError("no populations table (populations.parquet/.csv): run `cytokit run` first", path=root)
    missing = {S.PATIENT, S.VISIT, S.POPULATION, S.COUNT} - set(populations.columns)
    if missing:
        raise ReportError(f"populations table lacks columns {sorted(missing)}", path=root / S.POPULATIONS)
    populations = populations.copy()
    populations[S.PATIENT] = populations[S.PATIENT].astype(str)

    def optional(name: str) -> pd.DataFrame:
        df = read_results_table(root, name, error=ReportError)
        if df is None:
            return pd.DataFrame()
        if S.PATIENT in df.columns:
            df = df.copy()
            df[S.PATIENT] = df[S.PATIENT].astype(str)
        return df

    return ResultsStore(
        root=root,
        populations=populations,
        samples=optional(S.SAMPLES),
        clinical=optional(S.CLINICAL),
        cycles=optional(S.IL2_CYCLES),
        patient_values=optional(f"{S.TRIAL_DIR}/{S.PATIENT_VISIT_VALUES}"),
        run_info=read_run_info(root),
    )
