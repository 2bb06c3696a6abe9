"""``cytokit report RESULTS_DIR [--patient P ...]``: per-patient HTML + PDF reports.

Refuses a results folder whose last run did not finish (exit 2) and existing report files without
``--force`` (exit 2); exit 1 when some patients' reports could not be written (the others are).
"""
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
        force: bool = typer.Option(False, "--force", help="Overwrite existing report files."),
    ) -> None:
        """Write one self-contained HTML report (and a PDF) per patient."""
        from ..log import message_line, one_line
        from ..pipeline.runner import require_finished_results
        from ..report import ReportOptions, build_reports
        from ..report.build import ReportsIncomplete

        require_finished_results(results_dir)
        options = ReportOptions(pdf=pdf, reference_intervals=reference)
        try:
            paths = build_reports(results_dir, patients=patient or None, options=options, out_dir=out, force=force)
        except ReportsIncomplete as exc:
            for p in exc.written:
                typer.echo(str(p))
            for who, err in exc.failed.items():
                typer.echo(f"  FAILED report for {one_line(who)}: {message_line(err)}", err=True)
            raise typer.Exit(1) from None
        for p in paths:
            typer.echo(str(p))
