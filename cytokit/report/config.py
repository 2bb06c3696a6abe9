"""Options of the per-patient reports (the pipeline YAML carries them under ``report:``)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from ..results import schema as S

Measure = Literal["pct_parent", "pct_lymphocytes", "abs_count_per_uL"]


class TrendPanel(BaseModel):
    """One small trend plot: a population's measure over visit weeks."""

    model_config = ConfigDict(extra="forbid")
    population: str
    measure: Measure = S.ABS_COUNT


class ReportOptions(BaseModel):
    """What a per-patient report shows and how it is written."""

    model_config = ConfigDict(extra="forbid")
    pdf: bool = True
    reference_intervals: str = "reference_intervals"
    low_event_threshold: int = Field(100, ge=0, description="events in a gate below which a value is flagged")
    trends: list[TrendPanel] = Field(default_factory=lambda: [
        TrendPanel(population="CD4 T"),
        TrendPanel(population="CD8 T"),
        TrendPanel(population="Naive CD4"),
        TrendPanel(population="Memory CD4"),
        TrendPanel(population="CD28+ CD4", measure=S.PCT_PARENT),
        TrendPanel(population="CD25+ CD4", measure=S.PCT_PARENT),
        TrendPanel(population="NK cells"),
        TrendPanel(population="B cells"),
    ])
