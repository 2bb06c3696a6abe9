"""``cytokit report RESULTS_DIR [--patient P ...]``: per-patient HTML + PDF reports."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        results_dir: Path = typer.Argument(..., help="Results folder written by `cytokit run`."),
        patient: Optional[list[str]] = typer.Option(None, "--patient", "-p", help="Patient id (repeatable); default all."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RESULTS_DIR/reports)."),
        pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="Also write a PDF per patient."),
        reference: str = typer.Option("reference_intervals", "--reference", help="Reference-interval YAML (path or built-in)."),
    ) -> None:
        """Write one self-contained HTML report (and a PDF) per patient."""
        from ..report import ReportOptions, build_reports

        options = ReportOptions(pdf=pdf, reference_intervals=reference)
        paths = build_reports(results_dir, patients=patient or None, options=options, out_dir=out)
        for p in paths:
            typer.echo(str(p))
