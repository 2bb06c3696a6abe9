"""Settings of the trial simulator: one validated pydantic model, loadable from YAML.

Units: absolute counts are cells/µL (= 10^6/L); fractions are 0–1 (``*_fraction``, ``*_change``) except
``pct_reaching_80`` which is a percentage (0–100); signal levels are linear detector units; times in
seconds or weeks as named.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..yamlio import load_model
from .acquisition import AnomalyConfig
from .channels import STYLES, TUBES

ARMS: tuple[str, str] = ("IL-2", "control")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentConfig(_Model):
    """One cytometer: its channel-naming style and how its scales differ from the reference."""

    name: str = Field(min_length=1)
    style: str
    fluorescence_scale: float = Field(1.0, gt=0, description="detector gain relative to reference")
    fsc_scale: float = Field(1.0, gt=0)
    ssc_scale: float = Field(1.0, gt=0)
    spillover_scale: float = Field(1.0, ge=0, description="multiplies all reference spillover values")

    @field_validator("style")
    @classmethod
    def _known_style(cls, v: str) -> str:
        if v not in STYLES:
            raise ValueError(f"unknown channel style {v!r}; expected one of {sorted(STYLES)}")
        return v


class AcquisitionConfig(_Model):
    """Flow, clogs, per-file instrument/staining variation and detector noise."""

    events_per_second: float = Field(1000.0, gt=0)
    time_step_s: float = Field(0.01, gt=0, description="$TIMESTEP: seconds per Time-channel unit")
    clog_probability: float = Field(0.25, ge=0, le=1, description="chance that a file has one clog")
    clog_duration_fraction: tuple[float, float] = (0.05, 0.12)
    clog_rate_factor: float = Field(0.3, gt=0, le=1, description="event rate during a clog / normal rate")
    clog_signal_factor: float = Field(0.7, gt=0, description="fluorescence multiplier during a clog")
    clog_scatter_factor: float = Field(0.9, gt=0, description="scatter multiplier during a clog")
    gain_cv: float = Field(0.10, ge=0, description="per-file detector gain variation (log-sd)")
    staining_cv: float = Field(0.18, ge=0, description="per-file positive-mode location variation (log-sd)")
    scatter_cv: float = Field(0.06, ge=0, description="per-file FSC/SSC gain variation (log-sd)")
    electronic_noise: float = Field(40.0, ge=0, description="detector noise SD, linear units")
    photon_noise: float = Field(6.0, ge=0, description="shot-noise variance per unit of signal")
    range: int = Field(262144, gt=1024, description="$PnR of every channel; values saturate at range - 1")
    anomalies: AnomalyConfig | None = Field(
        None, description="clog/interruption/burst/drift families (cytokit.simulate.acquisition); "
                          "None = the single-clog model above")

    @field_validator("clog_duration_fraction")
    @classmethod
    def _clog_fraction(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 0.5:
            raise ValueError("needs 0 < low <= high <= 0.5 (fractions of the acquisition time)")
        return v


class PhenotypeConfig(_Model):
    """Scenario options for marker expression (what differs between labs' panels and patients).

    The defaults reproduce the bundled trial. ``marker_levels`` replaces states of
    :data:`~cytokit.simulate.phenotypes.MARKER_LEVELS` (``{"CD25": {"cont": [3000, 0.4]}}`` turns the
    CD25 dim-to-bright continuum into a lognormal mode: a bimodal activation marker);
    ``marker_brightness`` multiplies every positive level of a marker (a dimmer or brighter
    fluorochrome); ``negative_spread`` is the log-sd of autofluorescence (broad negative peaks) and
    ``autofluorescence_scale`` multiplies its level; ``absent_markers`` are not stained and their channels
    are left out of the files (a panel without CD127). Linear units at reference detector gain.
    """

    marker_levels: dict[str, dict[str, tuple[float | str, ...]]] = Field(default_factory=dict)
    marker_brightness: dict[str, float] = Field(default_factory=dict)
    absent_markers: list[str] = Field(
        default_factory=list, description="markers the lab's panel does not stain: no signal, channel left out")
    negative_spread: float = Field(0.35, gt=0, description="log-sd of autofluorescence")
    autofluorescence_scale: float = Field(1.0, gt=0)
    cell_scatter: dict[str, tuple[float, float, float, float]] = Field(
        default_factory=dict, description="cell type -> (FSC-A median, FSC-A log-sd, SSC-A median, SSC-A "
        "log-sd), linear units: replaces the scatter of CELL_TYPES (lymphocyte, monocyte, granulocyte, debris)")

    @field_validator("cell_scatter")
    @classmethod
    def _scatter(cls, v: dict) -> dict:
        from .phenotypes import CELL_TYPES

        for kind, values in v.items():
            if kind not in CELL_TYPES:
                raise ValueError(f"unknown cell type {kind!r}; expected one of {sorted(CELL_TYPES)}")
            if len(values) != 4 or min(values) <= 0:
                raise ValueError(f"{kind}: cell_scatter needs four positive numbers (FSC median, FSC log-sd, "
                                 "SSC median, SSC log-sd)")
        return v

    @field_validator("marker_levels")
    @classmethod
    def _levels(cls, v: dict) -> dict:
        from .phenotypes import MARKER_LEVELS

        for marker, states in v.items():
            if marker not in MARKER_LEVELS:
                raise ValueError(f"unknown marker {marker!r}; expected one of {sorted(MARKER_LEVELS)}")
            for state, level in states.items():
                if state not in MARKER_LEVELS[marker]:
                    raise ValueError(f"{marker}: unknown state {state!r}; expected one of "
                                     f"{sorted(MARKER_LEVELS[marker])}")
                ok = (len(level) == 3 and level[0] == "cont" and not isinstance(level[1], str)
                      and not isinstance(level[2], str) and 0 < level[1] < level[2]) or (
                    len(level) == 2 and not any(isinstance(x, str) for x in level) and level[0] > 0 and level[1] >= 0)
                if not ok:
                    raise ValueError(f"{marker}.{state}: give [median, log_sd] or ['cont', low, high]")
        return v

    @field_validator("absent_markers")
    @classmethod
    def _absent(cls, v: list[str]) -> list[str]:
        from .phenotypes import MARKER_LEVELS

        unknown = sorted(set(v) - set(MARKER_LEVELS))
        if unknown:
            raise ValueError(f"unknown markers {unknown}; expected some of {sorted(MARKER_LEVELS)}")
        return v

    @field_validator("marker_brightness")
    @classmethod
    def _brightness(cls, v: dict[str, float]) -> dict[str, float]:
        from .phenotypes import MARKER_LEVELS

        for marker, f in v.items():
            if marker not in MARKER_LEVELS:
                raise ValueError(f"unknown marker {marker!r}; expected one of {sorted(MARKER_LEVELS)}")
            if not f > 0:
                raise ValueError(f"{marker}: brightness must be > 0")
        return v

    def level(self, marker: str, state: str) -> tuple:
        """The (median, log-sd) or ("cont", low, high) of ``marker`` in ``state``, brightness applied."""
        from .phenotypes import MARKER_LEVELS

        level = tuple(self.marker_levels.get(marker, {}).get(state, MARKER_LEVELS[marker][state]))
        f = self.marker_brightness.get(marker, 1.0)
        if level[0] == "cont":
            return ("cont", float(level[1]) * f, float(level[2]) * f)
        return (float(level[0]) * f, float(level[1]))


class EventMixConfig(_Model):
    """Relative share of each event class among all events other than counting beads."""

    lymphocytes: float = Field(0.44, gt=0)
    monocytes: float = Field(0.10, ge=0)
    granulocytes: float = Field(0.30, ge=0)
    debris: float = Field(0.12, ge=0)
    lymphocyte_debris_doublets: float = Field(0.015, ge=0)
    cell_doublets: float = Field(0.025, ge=0)
    aggregates: float = Field(0.002, ge=0, description="saturating clumps (scatter at the top of range)")


class BeadsConfig(_Model):
    """Counting beads in the nkb tube for single-platform absolute counts."""

    enabled: bool = True
    beads_per_tube: int = Field(20000, gt=0)
    sample_volume_uL: float = Field(50.0, gt=0)


class ArmConfig(_Model):
    """Designed effect of one arm by ``CourseConfig.reference_week`` (ramping in from week 0)."""

    cd4_gain_median: float = Field(description="median CD4 gain, cells/µL")
    pct_reaching_80: float = Field(gt=0, lt=100, description="% of patients with CD4 >= 1.8 x baseline")
    time_constant_weeks: float = Field(20.0, gt=0)
    naive_cd4_change: float = 0.0
    cd28_cd4_change: float = 0.0
    cd28_cd8_change: float = 0.0
    cd25_cd4_change: float = 0.0
    treg_change: float = 0.0
    cd56bright_change: float = 0.0
    nk_fold: float = Field(1.0, gt=0)
    cd8_change_per_uL: float = 0.0
    b_change_per_uL: float = 0.0
    tetanus_fold: float = Field(1.0, gt=0)


def _default_arms() -> dict[str, ArmConfig]:
    return {
        "IL-2": ArmConfig(cd4_gain_median=865, pct_reaching_80=89, time_constant_weeks=16,
                          naive_cd4_change=0.08, cd28_cd4_change=0.07, cd28_cd8_change=0.10,
                          cd25_cd4_change=0.25, treg_change=0.06, cd56bright_change=0.20, nk_fold=2.0,
                          cd8_change_per_uL=-50, b_change_per_uL=40, tetanus_fold=1.5),
        "control": ArmConfig(cd4_gain_median=262, pct_reaching_80=47, time_constant_weeks=30,
                             naive_cd4_change=0.03, cd28_cd4_change=0.03, cd28_cd8_change=0.04,
                             cd25_cd4_change=0.01, nk_fold=1.1, cd8_change_per_uL=-80,
                             b_change_per_uL=40),
    }


class CourseConfig(_Model):
    """Baseline immunology (population medians; patients vary around them) and the arms' effects."""

    reference_week: int = Field(74, gt=0, description="week at which the arm targets hold")
    baseline_cd4_median: float = Field(340.0, gt=0, description="cells/µL")
    baseline_cd4_log_sd: float = Field(0.18, gt=0)
    baseline_cd8_median: float = Field(850.0, gt=0)
    baseline_b_median: float = Field(150.0, gt=0)
    baseline_nk_median: float = Field(150.0, gt=0)
    count_log_sd: float = Field(0.25, ge=0, description="between-patient log-sd of CD8, B and NK counts")
    fraction_logit_sd: float = Field(0.3, ge=0, description="between-patient logit-sd of subset fractions")
    naive_cd4_fraction: float = Field(0.35, gt=0, lt=1)
    temra_cd4_fraction: float = Field(0.04, gt=0, lt=1)
    cm_share_of_memory: float = Field(0.55, gt=0, lt=1)
    cd28_cd4_fraction: float = Field(0.85, gt=0, lt=1)
    cd28_cd8_fraction: float = Field(0.45, gt=0, lt=1)
    cd25_cd4_fraction: float = Field(0.18, gt=0, lt=1)
    treg_fraction: float = Field(0.05, gt=0, lt=1, description="Treg as a fraction of CD4")
    cd8_subset_fractions: tuple[float, float, float, float] = (0.25, 0.10, 0.40, 0.25)
    dn_t_fraction: float = Field(0.04, ge=0, lt=1, description="CD4-CD8- among T cells")
    nkt_fraction: float = Field(0.04, ge=0, lt=1, description="CD56+ among T cells")
    cd56bright_fraction: float = Field(0.08, gt=0, lt=1, description="of NK cells")
    cd56neg_fraction: float = Field(0.05, ge=0, lt=1, description="CD56- CD16+ of NK cells")
    other_lymphocyte_fraction: float = Field(0.02, ge=0, lt=1)
    arms: dict[str, ArmConfig] = Field(default_factory=_default_arms)

    @field_validator("arms")
    @classmethod
    def _two_arms(cls, v: dict[str, ArmConfig]) -> dict[str, ArmConfig]:
        if set(v) != set(ARMS):
            raise ValueError(f"arms must be exactly {list(ARMS)}, got {sorted(v)}")
        return v


class ClinicalConfig(_Model):
    """Calendar, IL-2 cycles and the clinical variables."""

    start_date: dt.date = dt.date(2001, 3, 5)
    enrolment_days: int = Field(180, ge=0, description="patients enrol uniformly over this many days")
    visit_jitter_days: int = Field(3, ge=0)
    il2_cycle_days: int = Field(5, gt=0)
    il2_cycle_interval_weeks: int = Field(8, gt=0)
    responder_intercept: float = Field(-0.5, description="log-odds of a control at baseline CD4 350")
    responder_arm_log_or: float = Field(1.2, description="log odds ratio IL-2 vs control")
    responder_cd4_log_or_per_100: float = Field(0.6, description="per 100 cells/µL of baseline CD4")
    viral_load_limit: float = Field(50.0, gt=0, description="copies/mL; values at or below are reported as the limit")
    tetanus_median_IU_per_mL: float = Field(0.4, gt=0)


class SimulationConfig(_Model):
    """Everything that determines a simulated trial (same config + seed -> byte-identical files)."""

    seed: int = Field(2003, ge=0)
    patients_per_arm: int = Field(4, ge=1)
    visits: list[str] = Field(default_factory=lambda: ["W0", "W12", "W24", "W48", "W74"])
    tubes: list[str] = Field(default_factory=lambda: ["tmem", "nkb"])
    events: int = Field(10000, ge=100, description="events per FCS file")
    acquisition_time: str = Field("10:00:00", pattern=r"^\d\d:\d\d:\d\d$", description="fixed $BTIM")
    instruments: list[InstrumentConfig] = Field(default_factory=lambda: [
        InstrumentConfig(name="BD FACSCanto II", style="bd"),
        InstrumentConfig(name="Attune NxT", style="attune", fluorescence_scale=0.65, fsc_scale=0.8,
                         ssc_scale=1.25, spillover_scale=1.2),
    ])
    event_mix: EventMixConfig = EventMixConfig()
    beads: BeadsConfig = BeadsConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    phenotype: PhenotypeConfig = PhenotypeConfig()
    course: CourseConfig = CourseConfig()
    clinical: ClinicalConfig = ClinicalConfig()

    @field_validator("visits")
    @classmethod
    def _visits(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one visit is needed")
        for name in v:
            if not re.fullmatch(r"W\d+", name):
                raise ValueError(f"visit {name!r} must look like W0, W24, W74")
        weeks = [visit_week(x) for x in v]
        if len(set(weeks)) != len(weeks):
            raise ValueError("visits must be distinct")
        if 0 not in weeks:
            raise ValueError("visit W0 (baseline) is required")
        return sorted(v, key=visit_week)

    @field_validator("tubes")
    @classmethod
    def _tubes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one tube is needed")
        for t in v:
            if t not in TUBES:
                raise ValueError(f"unknown tube {t!r}; expected some of {list(TUBES)}")
        if len(set(v)) != len(v):
            raise ValueError("tubes must be distinct")
        return v

    @model_validator(mode="after")
    def _instruments(self) -> "SimulationConfig":
        if not self.instruments:
            raise ValueError("at least one instrument is needed")
        return self

    @property
    def weeks(self) -> list[int]:
        return [visit_week(v) for v in self.visits]


def visit_week(visit: str) -> int:
    """``"W24"`` -> 24."""
    return int(visit[1:])


def _merge(base: dict, changes: dict) -> dict:
    """``base`` updated by ``changes``; nested dicts are merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path | None = None, **overrides: object) -> SimulationConfig:
    """The config from a YAML file (or defaults), with fields overridden (None = keep; dicts merge).

    Invalid settings raise :class:`~cytokit.errors.ConfigError` naming file, line and field.
    """
    from ..errors import ConfigError

    base = load_model(path, SimulationConfig) if path is not None else SimulationConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return base
    try:
        return SimulationConfig.model_validate(_merge(base.model_dump(), changes))
    except ValidationError as exc:
        where = f" (base config {path})" if path else ""
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid simulation setting{where}: {problems}") from exc
