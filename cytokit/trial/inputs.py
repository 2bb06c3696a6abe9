"""Read and check the results-store tables the trial analysis needs.

Contract (:mod:`cytokit.results.schema`, read by :func:`cytokit.results.read_table`):
``RESULTS_DIR/populations.{parquet,csv}`` one row per sample ×
population (``patient``, ``visit``, ``week``, ``arm``, ``tube``, ``population`` and the measures
``pct_parent`` %, ``pct_lymphocytes`` %, ``abs_count_per_uL`` cells/µL); ``RESULTS_DIR/clinical.csv`` one
row per patient × visit; ``RESULTS_DIR/il2_cycles.csv`` and ``RESULTS_DIR/samples`` (status of each sample) optional. Inputs are only read. Problems with the
tables raise :class:`~cytokit.errors.StatsError` (populations) or :class:`~cytokit.errors.ConfigError`
(clinical table) naming the file and what is wrong.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, StatsError
from ..results import read_table, table_path
from ..results import schema as S
from .config import MEASURES

log = logging.getLogger(__name__)

POPULATION_KEYS: tuple[str, ...] = (S.PATIENT, S.VISIT, S.WEEK, S.ARM, S.TUBE, S.POPULATION)
CLINICAL_KEYS: tuple[str, ...] = (S.PATIENT, S.VISIT)


@dataclass(frozen=True)
class TrialInputs:
    """The tables of one trial analysis (copies; the caller's frames are never modified)."""

    populations: pd.DataFrame
    clinical: pd.DataFrame = field(default_factory=pd.DataFrame)
    cycles: pd.DataFrame = field(default_factory=pd.DataFrame)
    source: str = "<memory>"
    clinical_source: str = "<clinical table>"
    #: the results folder's samples table (``status`` ok | failed, ``error``): failed samples have no population
    #: rows, so the analysis names them instead of losing them without a word; empty = not known
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)


def check_populations(df: pd.DataFrame, source: str = "<populations>") -> pd.DataFrame:
    """A checked copy of a populations table: key columns present and text, measures numeric.

    Missing measure columns are added as NaN (at least one must be present); ``week`` must be numeric.
    """
    missing = [c for c in POPULATION_KEYS if c not in df.columns]
    if missing:
        raise StatsError(f"populations table lacks columns {missing} (see docs/architecture.md)", path=source)
    present = [m for m in MEASURES if m in df.columns]
    if not present:
        raise StatsError(f"populations table has none of the measure columns {list(MEASURES)}", path=source)
    out = df.copy()
    for col in (S.PATIENT, S.VISIT, S.ARM, S.TUBE, S.POPULATION):
        out[col] = out[col].astype("string").str.strip()
        if out[col].isna().any():
            bad = int(out[col].isna().sum())
            raise StatsError(f"populations table has {bad} rows with an empty {col!r}", path=source)
    out[S.WEEK] = pd.to_numeric(out[S.WEEK], errors="coerce")
    if out[S.WEEK].isna().any():
        bad = out[out[S.WEEK].isna()]
        visits = sorted({str(v) for v in bad[S.VISIT]})[:10]
        where = (f"samples {sorted({str(v) for v in bad[S.SAMPLE_ID]})[:5]}, " if S.SAMPLE_ID in bad.columns
                 else f"rows {bad.index[:5].tolist()}, ")
        raise StatsError(f"populations table has a non-numeric or empty 'week' for {len(bad)} row(s) ({where}"
                         f"visits {visits}); the comparisons and reports need each visit's week: give the "
                         "manifest a numeric 'week' column and re-run", path=source)
    for m in MEASURES:
        if m not in out.columns:
            out[m] = float("nan")
            continue
        numeric = pd.to_numeric(out[m], errors="coerce")
        bad = numeric.isna() & out[m].notna() & (out[m].astype("string").str.strip() != "")
        if bad.any():
            log.warning("%s: %d non-numeric %s values treated as missing (e.g. %r)", source, int(bad.sum()), m,
                        str(out.loc[bad, m].iloc[0]))
        out[m] = numeric.astype(float)
    for opt in (S.PARENT_COUNT, S.COUNT):
        if opt in out.columns:
            out[opt] = pd.to_numeric(out[opt], errors="coerce")
    arms = out.groupby(S.PATIENT)[S.ARM].nunique()
    mixed = arms[arms > 1].index.tolist()
    if mixed:
        raise StatsError(f"patients assigned to more than one arm: {mixed[:10]}", path=source)
    weeks = out.groupby(S.VISIT)[S.WEEK].nunique()
    if (weeks > 1).any():
        log.warning("%s: visits with more than one nominal week %s; the median week orders them",
                    source, weeks[weeks > 1].index.tolist())
    return out


def check_clinical(df: pd.DataFrame, source: str = "<clinical>") -> pd.DataFrame:
    """A checked copy of a clinical table (``patient`` and ``visit`` text; one row per patient × visit)."""
    if df is None or df.empty:
        return pd.DataFrame(columns=list(CLINICAL_KEYS))
    missing = [c for c in CLINICAL_KEYS if c not in df.columns]
    if missing:
        raise ConfigError(f"clinical table lacks columns {missing}", path=source)
    out = df.copy()
    for col in (S.PATIENT, S.VISIT):
        out[col] = out[col].astype("string").str.strip()
    if S.ARM in out.columns:
        out[S.ARM] = out[S.ARM].astype("string").str.strip()
    dup = out.duplicated([S.PATIENT, S.VISIT], keep=False)
    if dup.any():
        pairs = out.loc[dup, [S.PATIENT, S.VISIT]].drop_duplicates().head(5).values.tolist()
        raise ConfigError(f"clinical table has more than one row per patient × visit, e.g. {pairs}", path=source)
    if "date" in out.columns:
        dates = pd.to_datetime(out["date"], errors="coerce")
        bad = dates.isna() & out["date"].notna() & (out["date"].astype("string").str.strip() != "")
        if bad.any():
            raise ConfigError(f"clinical table has unreadable dates, e.g. {out.loc[bad, 'date'].head(3).tolist()}",
                              path=source)
        out["date"] = dates
    for col in (S.LYMPHOCYTES_PER_UL, S.WEEK):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


def load_inputs(results_dir: str | Path) -> TrialInputs:
    """Read ``populations`` (required), ``clinical`` and ``il2_cycles`` (optional) from a results folder."""
    root = Path(results_dir)
    if not root.is_dir():
        raise StatsError("results folder not found", path=root)
    pops = read_table(root, S.POPULATIONS, required=True, error=StatsError)
    pops_src = str(table_path(root, S.POPULATIONS) or root)
    clinical = read_table(root, S.CLINICAL, error=ConfigError)
    if clinical is None:
        log.warning("%s: no clinical.csv; logistic regression, baseline characteristics and date-based AUC "
                    "are skipped", root)
    cycles = read_table(root, S.IL2_CYCLES, error=ConfigError)
    samples = read_table(root, S.SAMPLES, error=StatsError)
    return TrialInputs(
        populations=check_populations(pops, pops_src),
        clinical=check_clinical(clinical if clinical is not None else pd.DataFrame(), str(root / "clinical.csv")),
        cycles=cycles if cycles is not None else pd.DataFrame(),
        source=pops_src,
        clinical_source=str(root / "clinical.csv"),
        samples=samples if samples is not None else pd.DataFrame(),
    )


def visit_order(populations: pd.DataFrame) -> list[str]:
    """Visits sorted by their (median) nominal week, then by name."""
    weeks = populations.groupby(S.VISIT)[S.WEEK].median()
    return sorted(weeks.index.astype(str), key=lambda v: (weeks[v], v))
