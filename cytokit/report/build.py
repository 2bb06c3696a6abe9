"""Write per-patient reports for a results folder: ``OUT/reports/<patient>.html`` and ``.pdf``."""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import CytokitError, ReportError
from ..io_utils import atomic_write_bytes, atomic_write_text, safe_name
from .config import ReportOptions
from .patient import build_patient_report
from .reference import load_reference_intervals
from .render import render_html, render_pdf
from .store import load_results

log = logging.getLogger(__name__)


def build_reports(results_dir: str | Path, *, patients: list[str] | None = None,
                  options: ReportOptions | None = None, out_dir: str | Path | None = None,
                  generated: str | None = None) -> list[Path]:
    """Render one HTML (and, when ``options.pdf``, one PDF) report per patient; returns the paths written.

    File names are the sanitised patient identifier, so manifest text can never escape ``out_dir``.
    A patient whose report fails is logged and skipped; the error is re-raised at the end only when
    every patient failed.
    """
    options = options or ReportOptions()
    store = load_results(results_dir)
    intervals = load_reference_intervals(options.reference_intervals)
    out = Path(out_dir) if out_dir is not None else store.root / "reports"
    wanted = [str(p) for p in patients] if patients else store.patients
    unknown = sorted(set(wanted) - set(store.patients))
    if unknown:
        raise ReportError(f"unknown patient(s) {unknown}; patients are: {', '.join(store.patients)}",
                          path=store.root)
    written: list[Path] = []
    errors: list[str] = []
    used: set[str] = set()
    for patient in wanted:
        stem = safe_name(patient, default="patient")
        while stem in used:  # two ids that sanitise alike must not overwrite each other
            stem += "_"
        used.add(stem)
        try:
            report = build_patient_report(store, patient, options, intervals)
            html = render_html(report, options, intervals, generated=generated)
            written.append(atomic_write_text(out / f"{stem}.html", html))
            if options.pdf:
                written.append(atomic_write_bytes(out / f"{stem}.pdf", render_pdf(html)))
            log.info("report for patient %s written", patient)
        except CytokitError as exc:  # e.g. StatsError from this patient's rows: skip, go on
            log.error("report for patient %s failed: %s", patient, exc)
            errors.append(f"{patient}: {exc}")
    if errors and len(errors) == len(wanted):
        raise ReportError("no report could be written:\n  " + "\n  ".join(errors), path=store.root)
    return written
