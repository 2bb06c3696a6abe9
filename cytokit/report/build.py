"""Write per-patient reports for a results folder: ``OUT/reports/<patient>.html`` and ``.pdf``."""
from __future__ import annotations

import hashlib
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


class ReportsIncomplete(ReportError):
    """Some patients' reports could not be written (the others were): ``written`` paths, ``failed``
    patient -> error message."""

    def __init__(self, written: list[Path], failed: dict[str, str], root: Path) -> None:
        self.written = written
        self.failed = failed
        lines = "\n  ".join(f"{p}: {e}" for p, e in failed.items())
        super().__init__(f"{len(failed)} patient report(s) could not be written:\n  {lines}", path=root)


def report_stem(patient: str) -> str:
    """File stem of a patient's report: the id itself when it is a safe file name, else the sanitised id
    plus 8 hex digits of its sha256 (so ``P/1`` and ``P_1`` never share a file, whatever is run first)."""
    safe = safe_name(patient, default="patient", max_len=100)
    if safe == patient:
        return safe
    return f"{safe}-{hashlib.sha256(patient.encode('utf-8')).hexdigest()[:8]}"


def build_reports(results_dir: str | Path, *, patients: list[str] | None = None,
                  options: ReportOptions | None = None, out_dir: str | Path | None = None,
                  generated: str | None = None, force: bool = True) -> list[Path]:
    """Render one HTML (and, when ``options.pdf``, one PDF) report per patient; returns the paths written.

    File names come from :func:`report_stem`, so manifest text can never escape ``out_dir`` and two ids
    never share a file. With ``force=False`` existing report files are refused before any work. A
    patient whose report fails is logged and the others are written; then :class:`ReportsIncomplete`
    (a :class:`ReportError`) lists the failed patients, or a plain :class:`ReportError` when every
    patient failed.
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
    suffixes = (".html", ".pdf") if options.pdf else (".html",)
    if not force:
        existing = [out / f"{report_stem(p)}{s}" for p in wanted for s in suffixes
                    if (out / f"{report_stem(p)}{s}").exists()]
        if existing:
            raise ReportError(f"{len(existing)} report file(s) exist, e.g. {existing[0]}; use --force to overwrite "
                              "them or choose another --out", path=out)
    written: list[Path] = []
    errors: dict[str, str] = {}
    for patient in wanted:
        stem = report_stem(patient)
        try:
            report = build_patient_report(store, patient, options, intervals)
            html = render_html(report, options, intervals, generated=generated)
            written.append(atomic_write_text(out / f"{stem}.html", html))
            if options.pdf:
                written.append(atomic_write_bytes(out / f"{stem}.pdf", render_pdf(html)))
            log.info("report for patient %s written", patient)
        except CytokitError as exc:  # e.g. StatsError from this patient's rows: skip, go on
            log.error("report for patient %s failed: %s", patient, exc)
            errors[patient] = str(exc)
    if errors and len(errors) == len(wanted):
        raise ReportError("no report could be written:\n  " + "\n  ".join(f"{p}: {e}" for p, e in errors.items()),
                          path=store.root)
    if errors:
        raise ReportsIncomplete(written, errors, store.root)
    return written
