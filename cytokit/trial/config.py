"""Configuration of the trial analysis (``trial:`` block of a pipeline YAML).

:class:`TrialConfig` is a validated pydantic model; its defaults describe the founding IL-2 + ART trial
(arms ``IL-2`` vs ``control``, baseline ``W0``, final visit = last visit, CD4 responder = an increase of at
least 80 % over baseline in absolute CD4 count). Every threshold states its unit: absolute counts are
cells/µL (= 10^6/L), percentages are percent (0-100), never fractions.

Load one on its own with :func:`load_trial_config` (a YAML file holding either the block itself or a
whole pipeline with a ``trial:`` key), or embed it in a pipeline model as ``trial: TrialConfig``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from ..results import schema as S
from ..results.schema import TRIAL_CONFIG, TRIAL_DIR

log = logging.getLogger(__name__)

#: events per variable below which a logistic model is reported as unreliable (Peduzzi et al. 1996)
EPV_MIN = 10.0
#: measures carried per sample × population in the results store (see docs/architecture.md)
MEASURES: tuple[str, ...] = (S.PCT_PARENT, S.PCT_LYMPHOCYTES, S.ABS_COUNT)

#: human-readable unit of each measure, used in tables, figures and the HTML summary
MEASURE_UNITS: dict[str, str] = {
    S.PCT_PARENT: "% of parent",
    S.PCT_LYMPHOCYTES: "% of lymphocytes",
    S.ABS_COUNT: "cells/µL",
}

Measure = Literal["pct_parent", "pct_lymphocytes", "abs_count_per_uL"]
#: measures compared between arms by default
DEFAULT_MEASURES: tuple[Measure, ...] = (S.ABS_COUNT, S.PCT_PARENT)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TubeSelection(_Model):
    """How to pick one value when a population is measured in several tubes of the same visit.

    ``rule``:
      * ``preference`` - the first tube of ``preference`` that measured the population (then any other
        tube, alphabetically);
      * ``most_events`` - the tube with the largest parent count (most precise estimate);
      * ``mean`` - the mean over tubes (``tube`` is reported as the ``+``-joined tube names).
    ``per_population`` pins a population to one tube (``{"T cells": "tmem"}``) whatever the rule.
    """

    rule: Literal["preference", "most_events", "mean"] = "preference"
    preference: list[str] = Field(default_factory=lambda: ["tmem", "nkb"])
    per_population: dict[str, str] = Field(default_factory=dict)


class ResponderConfig(_Model):
    """Patient-level responder definitions (all on the CD4/CD8 populations named in :class:`TrialConfig`).

    ``cd4_increase_pct``: a CD4 responder has an increase of at least this many **percent** over baseline
    (80 = +80 %) in ``cd4_measure`` at ``visit`` (None = the final visit).
    ``cd4_cd8_ratio``: ratio threshold (CD4/CD8 absolute counts, or % of lymphocytes when counts are
    missing) - responder when strictly above.
    ``cd4_thresholds_per_uL``: absolute CD4 thresholds (cells/µL); responder when strictly above.
    """

    visit: str | None = None
    cd4_increase_pct: float = Field(80.0, gt=0)
    cd4_cd8_ratio: float = Field(1.0, gt=0)
    cd4_thresholds_per_uL: list[float] = Field(default_factory=lambda: [200.0, 350.0, 500.0])

    @field_validator("cd4_thresholds_per_uL")
    @classmethod
    def _positive_sorted(cls, v: list[float]) -> list[float]:
        if any(t <= 0 for t in v):
            raise ValueError("thresholds are cells/µL and must be > 0")
        return sorted(set(v))


class LogisticConfig(_Model):
    """Logistic regression of binary clinical outcomes on arm and covariates.

    ``outcomes``: 0/1 columns of the clinical table (read at ``visit``; None = the last visit at which the
    outcome is recorded). ``covariates``: ``baseline_cd4`` (baseline CD4 in units of ``cd4_scale_per_uL``
    cells/µL) and/or clinical column names read at the baseline visit (text columns become categorical).
    """

    outcomes: list[str] = Field(default_factory=lambda: ["recall_antigen_responder"])
    covariates: list[str] = Field(default_factory=lambda: ["baseline_cd4", "stratum"])
    visit: str | None = None
    cd4_scale_per_uL: float = Field(100.0, gt=0)
    max_iter: int = Field(200, ge=10)


class LongitudinalConfig(_Model):
    """Longitudinal model ``value ~ arm * visit`` with a random intercept per patient (``mixedlm``) or
    GEE with an exchangeable working correlation (``gee``); ``none`` switches it off.

    ``populations``: None = the headline populations of :class:`TrialConfig`; ``measures``: None = all
    comparison measures. ``log10``: model log10(value + 1) instead of the value (counts are skewed).
    """

    model: Literal["mixedlm", "gee", "none"] = "mixedlm"
    populations: list[str] | None = None
    measures: list[Measure] | None = None
    log10: bool = False


class MultiplicityConfig(_Model):
    """Multiplicity control across populations and visits.

    ``method``: ``holm`` (family-wise error) or ``fdr_bh`` (Benjamini-Hochberg false discovery rate) or
    ``none``. ``family``: ``test_measure`` adjusts within each (test, measure) across populations and visits;
    ``test`` within each test across measures too; ``all`` over every P of the run.
    """

    method: Literal["holm", "fdr_bh", "none"] = "holm"
    family: Literal["test_measure", "test", "all"] = "test_measure"


class TrialConfig(_Model):
    """What the trial analysis compares and how (defaults: the IL-2 + ART trial).

    ``treatment_arm`` / ``control_arm`` are the ``arm`` labels of the results store; the odds ratios and
    differences are treatment vs control. ``baseline_visit`` is the reference of every change;
    ``final_visit`` None = the visit with the largest week. ``populations`` None = every population of the
    results store. ``measures`` are the values compared (``pct_parent`` %, ``pct_lymphocytes`` %,
    ``abs_count_per_uL`` cells/µL). ``auc_time`` says whether the area under the curve uses actual sample
    dates (``date``, from the clinical table; falls back to weeks when dates are missing) or the nominal
    ``week`` of each visit; the AUC is in measure-unit × weeks.
    """

    treatment_arm: str = "IL-2"
    control_arm: str = "control"
    baseline_visit: str = "W0"
    final_visit: str | None = None
    populations: list[str] | None = None
    headline_populations: list[str] = Field(
        default_factory=lambda: ["CD4 T", "Naive CD4", "Memory CD4", "CD28+ CD4", "CD25+ CD4", "NK cells"]
    )
    cd4_population: str = "CD4 T"
    cd8_population: str = "CD8 T"
    cd4_measure: Measure = S.ABS_COUNT
    measures: list[Measure] = Field(default_factory=lambda: list(DEFAULT_MEASURES))
    tubes: TubeSelection = Field(default_factory=TubeSelection)
    abs_from_lymphocytes: bool = Field(
        True,
        description="when a sample has no absolute count, derive it as pct_lymphocytes/100 x the clinical "
        "lymphocytes_per_uL (dual platform)",
    )
    auc_time: Literal["date", "week"] = "date"
    responders: ResponderConfig = Field(default_factory=ResponderConfig)
    logistic: LogisticConfig = Field(default_factory=LogisticConfig)
    longitudinal: LongitudinalConfig = Field(default_factory=LongitudinalConfig)
    multiplicity: MultiplicityConfig = Field(default_factory=MultiplicityConfig)
    min_per_arm: int = Field(3, ge=2, description="fewer patients than this in an arm: the test is not run")
    figures: bool = True
    html: bool = True

    @field_validator("measures")
    @classmethod
    def _unique_measures(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one measure is needed")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _distinct_arms(self) -> "TrialConfig":
        if self.treatment_arm == self.control_arm:
            raise ValueError("treatment_arm and control_arm must differ")
        return self

    @property
    def arms(self) -> tuple[str, str]:
        """(treatment, control) arm labels."""
        return (self.treatment_arm, self.control_arm)


def load_trial_config(path: str | Path | None) -> TrialConfig:
    """The :class:`TrialConfig` of a YAML file (its ``trial:`` block if it has one), or the defaults.

    Raises :class:`~cytokit.errors.ConfigError` naming file, line and field when the block is invalid.
    """
    if path is None:
        return TrialConfig()
    from pydantic import ValidationError

    from ..yamlio import format_validation_error, read_yaml

    data, lines = read_yaml(path)
    if data is None:
        return TrialConfig()
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping (a pipeline with a `trial:` block, or the block itself)", path=path)
    prefix: tuple = ()
    if "trial" in data:
        block, prefix = data["trial"], ("trial",)
    elif set(data) & set(TrialConfig.model_fields):
        block = data  # the block on its own (unknown keys are then reported, not ignored)
    else:
        log.info("%s has no `trial:` block: IL-2 trial defaults", path)
        return TrialConfig()
    if block is None:
        return TrialConfig()
    try:
        return TrialConfig.model_validate(block)
    except ValidationError as exc:
        shifted = {k[len(prefix):]: v for k, v in lines.items() if k[: len(prefix)] == prefix}
        raise ConfigError(format_validation_error(exc, path, shifted)) from exc


def recorded_arm_order(results_dir: str | Path, present: Iterable[str]) -> list[str]:
    """The arms in ``present`` ordered as the run's trial configuration orders them (treatment, control);
    arms it does not name follow alphabetically. Without a recorded configuration the pipeline defaults
    (``TrialConfig()``) decide, then alphabetical order."""
    present = sorted({str(a) for a in present})
    order: list[str] = []
    path = Path(results_dir) / TRIAL_DIR / TRIAL_CONFIG
    try:
        cfg = json.loads(path.read_text(encoding="utf-8")).get("config", {}) if path.is_file() else {}
        order = [str(cfg[k]) for k in ("treatment_arm", "control_arm") if k in cfg]
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable trial configuration (%s); arm colours by name", path, exc)
    if not order:
        order = list(TrialConfig().arms)
    known = [a for a in order if a in present]
    return known + [a for a in present if a not in known]
