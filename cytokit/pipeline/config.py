"""Pipeline definitions: the validated model of a ``pipelines/*.yaml`` file.

Contract
--------
:func:`load_pipeline` reads a pipeline YAML with the safe loader and validates it into a
:class:`PipelineConfig`; every problem is reported as ``file:line: field: message`` in one
:class:`~cytokit.errors.ConfigError`. Relative paths in the YAML are resolved against the YAML file's
folder, so a pipeline can be run from anywhere. :func:`adhoc_pipeline` builds the same model for a bare
folder of FCS files (``cytokit run --input DIR --panel P --strategy S``).

Units: absolute counts are cells/µL (= 10^6 cells/L); percentages in tolerances are percent (0-100).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from ..qc import QCParams
from ..report.config import ReportOptions
from ..results import schema as S
from ..trial.config import TrialConfig
from ..yamlio import load_model

#: manifest fields every sample needs (after column mapping)
MANIFEST_FIELDS: tuple[str, ...] = (S.FILE, S.PATIENT, S.VISIT, S.ARM, S.TUBE)

#: clinical-table fields that ``clinical.columns`` may map from other CSV column names
CLINICAL_FIELDS: tuple[str, ...] = (S.PATIENT, S.VISIT, S.ARM, S.WEEK, "date", "stratum", "age", "sex")

TableFormat = Literal["parquet", "csv"]
#: table formats written by default
TABLE_FORMATS: tuple[TableFormat, ...] = ("parquet", "csv")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilenameRule(_Model):
    """Derive manifest fields from file names: a regex with named groups, plus fixed values."""

    pattern: str
    set: dict[str, str] = Field(default_factory=dict)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return v


class ManifestConfig(_Model):
    """Where the samples come from: a manifest CSV, or a folder plus file-name rules."""

    path: Path | None = None
    columns: dict[str, str] = Field(
        default_factory=dict, description="manifest field -> CSV column name, for files that use other names")
    input: Path | None = Field(None, description="folder of FCS files when there is no manifest")
    glob: str = "*.fcs"
    rules: list[FilenameRule] = Field(default_factory=list)
    defaults: dict[str, str] = Field(default_factory=dict, description="values for fields no rule sets")
    sample_id: str = Field("{stem}", description="format of the sample id from manifest fields and {stem}")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        extra = (S.WEEK, "sample_date", "instrument", "beads_per_tube", "sample_volume_uL")
        unknown = sorted(set(v) - set(MANIFEST_FIELDS) - set(extra))
        if unknown:
            raise ValueError(f"unknown manifest field(s) {unknown}; known: {list(MANIFEST_FIELDS + extra)}")
        twice = sorted({c for c in v.values() if list(v.values()).count(c) > 1})
        if twice:
            fields = {c: sorted(f for f, col in v.items() if col == c) for c in twice}
            raise ValueError(f"one CSV column mapped to several fields {fields}; map each column once")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "ManifestConfig":
        if (self.path is None) == (self.input is None):
            raise ValueError("give exactly one of 'path' (a manifest CSV) or 'input' (a folder of FCS files)")
        if self.input is not None and not self.rules and not self.defaults:
            raise ValueError("a manifest from a folder needs 'rules' (file-name patterns) or 'defaults'")
        return self


class ClinicalConfig(_Model):
    """The clinical table (one row per patient x visit) and the optional IL-2 cycle table."""

    path: Path
    il2_cycles: Path | None = None
    lymphocytes_column: str = Field(S.LYMPHOCYTES_PER_UL, description="lymphocyte count, cells/µL")
    columns: dict[str, str] = Field(
        default_factory=dict, description="clinical field -> CSV column name, for tables that use other names "
        "(patient, visit, arm, week, date, stratum, age, sex)")

    @field_validator("columns")
    @classmethod
    def _known_clinical_fields(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(CLINICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown clinical field(s) {unknown}; known: {list(CLINICAL_FIELDS)}")
        twice = sorted({c for c in v.values() if list(v.values()).count(c) > 1})
        if twice:
            raise ValueError(f"one CSV column mapped to several fields: {twice}; map each column once")
        return v

    def rename_map(self) -> dict[str, str]:
        """CSV column -> store column (mapped fields and the lymphocyte count as ``lymphocytes_per_uL``)."""
        out = {csv_col: field for field, csv_col in self.columns.items() if csv_col != field}
        if self.lymphocytes_column != S.LYMPHOCYTES_PER_UL:
            out[self.lymphocytes_column] = S.LYMPHOCYTES_PER_UL
        return out


class TubeConfig(_Model):
    """The panel and gating strategy analysing one tube (built-in names or paths)."""

    panel: str
    strategy: str
    panel_tube: str | None = Field(None, description="tube name inside the panel (default: this tube's key)")
    any_tube: bool = Field(False, description="resolve against all the panel's markers, not one tube")


class QCConfig(QCParams):
    """The ``qc:`` block: every :class:`cytokit.qc.QCParams` field, plus ``enabled`` and ``min_events``
    (a file with fewer events left after QC fails)."""

    enabled: bool = True
    min_events: int = Field(1000, ge=0, description="a file with fewer events (after QC) fails")

class CountsConfig(_Model):
    """How absolute counts (cells/µL) are computed and which consistency checks are flagged."""

    method: Literal["auto", "dual_platform", "single_platform", "none"] = Field(
        "auto", description="auto = single-platform where the manifest gives beads, else dual-platform")
    bead_population: str = "Beads"
    beads_per_tube_column: str = "beads_per_tube"
    sample_volume_column: str = "sample_volume_uL"
    lymphosum_tolerance_pct: float = Field(10.0, ge=0, description="T + B + NK must be 100 ± this % of lymphocytes")
    cd4_cd8_vs_cd3_range: tuple[float, float] = Field(
        (80.0, 110.0), description="CD4 T + CD8 T as % of T cells must fall in this range")
    min_lymphocyte_events: int = Field(1000, ge=0, description="fewer events in the strategy's lymphocyte population "
                                       "(e.g. Singlets) is flagged")


class OutputsConfig(_Model):
    """What a run writes besides the tidy tables."""

    tables: list[TableFormat] = Field(default_factory=lambda: list(TABLE_FORMATS))
    gatingml: bool = True
    thumbnails: bool = False
    flowjo_workspace: bool = True
    anndata: bool = False
    anndata_max_events_per_sample: int = Field(5000, ge=1)
    reports: bool = False
    trial: bool = False
    clustering: bool = False
    cohort_gating: bool = Field(False, description="compare each file's gate positions with its cohort (tube x "
                                                   "instrument), re-fit outliers within the cohort's range")


class CohortGatingConfig(_Model):
    """The ``cohort_gating:`` block: how gate positions are compared across a cohort (run when
    ``outputs.cohort_gating`` is on; see :mod:`cytokit.pipeline.cohort`). Positions are on the gates'
    transformed scale (logicle 0..1)."""

    k: float = Field(4.0, gt=0, description="robust SDs (1.4826 x MAD) from the cohort median that make an outlier")
    min_shift: float = Field(0.05, ge=0, description="an outlier is also at least this far from the median")
    min_samples: int = Field(5, ge=3, description="smaller cohorts are not compared")
    frame: Literal["modes", "sd", "offset", "absolute"] = Field(
        "modes", description="frame relative to each file's own landmarks that an outlier must also be outlying in: "
                             "modes = between the file's lowest and highest mode (sd when a file has one mode), "
                             "sd = distance from the lowest (negative) mode in SDs of that mode, offset = distance "
                             "from that mode, absolute = the positions only")
    min_change_pp: float = Field(0.5, ge=0, description="a re-fit replaces a population's numbers when its % of "
                                                         "parent moves by at least this (percentage points)")
    accept_flags: tuple[str, ...] | None = Field(
        (), description="an outlier's re-fit replaces the file's numbers only when the file's own fit carries one "
                        "of these flags (default none: outliers are flagged and both fits recorded; null: always)")
    group_columns: tuple[str, ...] = Field((S.TUBE, "instrument"),
                                           description="manifest columns defining a cohort (absent ones ignored)")


class ExecutorConfig(_Model):
    """Which executor maps the per-sample task: local processes by default, Dask with a scheduler."""

    kind: Literal["local", "serial", "dask"] = "local"
    jobs: int = Field(2, ge=1, description="worker processes of the local executor")
    scheduler: str | None = Field(None, description="tcp://HOST:PORT of a Dask scheduler")
    task: str = Field("analyse", description="per-sample task (registry name or 'module:function')")

    @field_validator("scheduler")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(tcp|tls|inproc|ucx)://[^\s]+$", v):
            raise ValueError("scheduler must look like tcp://HOST:PORT")
        return v


class PipelineConfig(_Model):
    """A validated pipeline definition (paths are absolute after :func:`load_pipeline`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    manifest: ManifestConfig
    clinical: ClinicalConfig | None = None
    tubes: dict[str, TubeConfig] = Field(min_length=1)
    qc: QCConfig = Field(default_factory=QCConfig)
    counts: CountsConfig = Field(default_factory=CountsConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    trial: TrialConfig | None = Field(None, description="between-arm comparisons (cytokit.trial)")
    clustering: dict[str, Any] | None = Field(None, description="clustering stage settings (cytokit.cluster)")
    cohort_gating: CohortGatingConfig = Field(default_factory=CohortGatingConfig,
                                              description="cohort gating stage settings (cytokit.pipeline.cohort)")
    report: ReportOptions = Field(default_factory=ReportOptions, description="per-patient report options (cytokit.report)")
    source: Path | None = Field(None, description="the YAML file this was loaded from (set by the loader)")

    @model_validator(mode="after")
    def _counts_need_clinical(self) -> "PipelineConfig":
        if self.counts.method == "dual_platform" and self.clinical is None:
            raise ValueError("counts.method dual_platform needs a 'clinical' table with lymphocyte counts")
        return self

    def hash(self) -> str:
        """sha256 of the canonical JSON of this configuration (paths as written, source excluded)."""
        data = self.model_dump(mode="json", exclude={"source"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _resolve(base: Path, p: Path | None) -> Path | None:
    if p is None:
        return None
    p = Path(p).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_name(base: Path, name: str) -> str:
    """A definition name stays a name; a path (has a suffix or a separator) becomes absolute."""
    if name.endswith((".yaml", ".yml", ".csv")) or "/" in name or "\\" in name:
        return str(_resolve(base, Path(name)))
    return name


def resolve_paths(config: PipelineConfig, base: Path) -> PipelineConfig:
    """A copy of ``config`` whose relative paths are resolved against ``base`` (the YAML's folder)."""
    m = config.manifest
    manifest = m.model_copy(update={"path": _resolve(base, m.path), "input": _resolve(base, m.input)})
    clinical = None
    if config.clinical is not None:
        c = config.clinical
        clinical = c.model_copy(update={"path": _resolve(base, c.path), "il2_cycles": _resolve(base, c.il2_cycles)})
    report = config.report.model_copy(update={
        "reference_intervals": _resolve_name(base, config.report.reference_intervals)})
    clustering = config.clustering
    if clustering and isinstance(clustering.get("phenotypes"), str):
        clustering = {**clustering, "phenotypes": _resolve_name(base, clustering["phenotypes"])}
    tubes = {k: t.model_copy(update={"panel": _resolve_name(base, t.panel),
                                      "strategy": _resolve_name(base, t.strategy)})
             for k, t in config.tubes.items()}
    return config.model_copy(update={"manifest": manifest, "clinical": clinical, "tubes": tubes, "report": report,
                                      "clustering": clustering})


def load_pipeline(name_or_path: str | Path) -> PipelineConfig:
    """Load and validate a pipeline YAML (a path or a built-in name such as ``"il2_trial"``).

    Raises :class:`ConfigError` naming file, line and field for every problem.
    """
    from ..definitions import resolve_definition

    path = Path(resolve_definition(name_or_path, "pipelines")).resolve()
    config = load_model(path, PipelineConfig)
    if config.source is not None:
        raise ConfigError("'source' is set by the loader, not in the YAML", path=path)
    config = resolve_paths(config, path.parent)
    return config.model_copy(update={"source": path})


def adhoc_pipeline(input_dir: str | Path, panel: str, strategy: str, *, tube: str | None = None,
                   name: str = "adhoc", **overrides: Any) -> PipelineConfig:
    """A pipeline over a bare folder of FCS files: one tube, no clinical table, no absolute counts.

    Every ``*.fcs`` file is one sample whose patient is the file stem; ``tube`` (default: the file
    stem is not parsed) names the panel tube to resolve, or ``None`` to resolve against all markers.
    """
    input_dir = Path(input_dir).expanduser().resolve()
    if not input_dir.is_dir():
        raise ConfigError("input folder not found", path=input_dir)
    cwd = Path.cwd()
    tube_key = tube or "all"
    data: dict[str, Any] = {
        "name": name,
        "manifest": {"input": str(input_dir), "rules": [{"pattern": r"^(?P<patient>.+)\.(?i:fcs)$"}],
                     "defaults": {S.VISIT: "", S.ARM: "", S.TUBE: tube_key}},
        "tubes": {tube_key: {"panel": _resolve_name(cwd, panel), "strategy": _resolve_name(cwd, strategy),
                             "any_tube": tube is None}},
        "counts": {"method": "none"},
    }
    for key, value in overrides.items():
        data[key] = value
    try:
        return PipelineConfig.model_validate(data)
    except Exception as exc:  # pydantic.ValidationError -> one clear message
        raise ConfigError(f"invalid ad-hoc pipeline options: {exc}", path=input_dir) from exc
