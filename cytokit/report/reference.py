"""Reference intervals for per-patient reports.

Intervals live in an editable YAML file (built-in: ``pipelines/reference_intervals.yaml``), each with a
population, a measure (``pct_lymphocytes``/``pct_parent`` in percent 0–100, ``abs_count_per_uL`` in
cells/µL, or ``ratio``), inclusive limits, the sex it applies to and the source it was taken from.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..definitions import resolve_definition
from ..yamlio import load_model

Measure = Literal["pct_lymphocytes", "pct_parent", "abs_count_per_uL", "ratio"]


class ReferenceInterval(BaseModel):
    """One interval: ``low <= value <= high`` is within range (units follow ``measure``)."""

    model_config = ConfigDict(extra="forbid")
    population: str
    measure: Measure
    low: float | None = None
    high: float | None = None
    sex: Literal["M", "F", "any"] = "any"
    unit: str | None = None
    source: str = Field(min_length=3)

    @model_validator(mode="after")
    def _limits(self) -> "ReferenceInterval":
        if self.low is None and self.high is None:
            raise ValueError("an interval needs low and/or high")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self

    def text(self) -> str:
        lo = "" if self.low is None else f"{self.low:g}"
        hi = "" if self.high is None else f"{self.high:g}"
        return f"{lo}–{hi}"


class ReferenceIntervals(BaseModel):
    """A named set of intervals (the YAML file)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str | None = None
    default_source: str | None = None
    intervals: list[ReferenceInterval]

    def lookup(self, population: str, measure: str, sex: str | None = None) -> ReferenceInterval | None:
        """The interval for a population/measure, preferring one specific to ``sex`` (M/F)."""
        sex_key = (sex or "").strip().upper()[:1]
        best = None
        for iv in self.intervals:
            if iv.population.casefold() != population.casefold() or iv.measure != measure:
                continue
            if iv.sex == sex_key:
                return iv
            if iv.sex == "any":
                best = iv
        return best


def load_reference_intervals(name_or_path: str | Path = "reference_intervals") -> ReferenceIntervals:
    """Load a reference-interval YAML (a path, or the built-in ``reference_intervals``)."""
    return load_model(resolve_definition(name_or_path, "pipelines"), ReferenceIntervals)


def flag(value: float | None, interval: ReferenceInterval | None) -> str:
    """``"L"`` below, ``"H"`` above the interval, ``""`` within it or when either is missing."""
    if interval is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if interval.low is not None and value < interval.low:
        return "L"
    if interval.high is not None and value > interval.high:
        return "H"
    return ""
