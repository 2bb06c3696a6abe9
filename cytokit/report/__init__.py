"""Per-patient immunophenotype reports (self-contained HTML and PDF) from a results folder."""
from .build import build_reports
from .config import ReportOptions, TrendPanel
from .reference import ReferenceInterval, ReferenceIntervals, flag, load_reference_intervals

__all__ = ["build_reports", "ReportOptions", "TrendPanel", "ReferenceInterval", "ReferenceIntervals", "flag",
           "load_reference_intervals"]
