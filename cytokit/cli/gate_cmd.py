"""``cytokit gate FILE --strategy S [--panel P] [--tube T] [--plot out.png]``: gate one FCS file.

Prints the population table (count, % of parent, % of lymphocytes, estimated error of % of parent in pp,
REVIEW with the review flags where the estimate may be wrong, placement notes) and optionally writes the gate
plots (PNG), the table (CSV) and the fitted gates (Gating-ML 2.0). The file goes through the same
per-sample chain as the pipeline (QC included unless ``--no-qc``), so the counts are the pipeline's.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from ..results import schema as S

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import JustifyMethod


def _words(joined: str) -> str:
    """``;``-joined flag words for the terminal: escaped, with spaces so that a long list wraps."""
    from rich.markup import escape

    return escape(joined.replace(";", "; "))


def _print_table(result, console) -> None:  # noqa: ANN001 - rich/GatingResult types are internal
    from rich.markup import escape
    from rich.table import Table

    from ..gating.count_error import FEW_EVENTS
    from ..results.denominators import above_text, tube_denominator

    rows = result.population_rows  # the rows of result.populations, without loading pandas
    # gates above the strategy's lymphocyte population (Lymphocytes before Singlets) are not % of it:
    # named as in the patient reports instead of showing > 100 %
    den, above = tube_denominator(((r[S.POPULATION], r[S.PARENT], r[S.PCT_LYMPHOCYTES]) for r in rows),
                                  result.definition.lymphocytes)
    # names come from files and strategies: escaped so that "[...]" is shown, not read as rich markup
    table = Table(title=escape(f"{result.sample.name} — strategy {result.definition.name}"), show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        (S.POPULATION, "left"), (S.PARENT, "left"), (S.COUNT, "right"), ("% parent", "right"),
        ("% lymphocytes", "right"), (S.METHOD, "left"), ("± pp", "right"), ("count ± pp", "right"), (S.REVIEW, "left"),
        (S.NOTES, "left"))
    for col, justify in columns:
        # review words are folded, not cut: a reader must see which marker a flag names
        table.add_column(col, justify=justify, no_wrap=col in (S.POPULATION, S.PARENT, S.METHOD),
                         overflow="fold" if col == S.REVIEW else "ellipsis")
    for row in rows:
        pct_lymph, est = row[S.PCT_LYMPHOCYTES], row[S.EST_ERROR_PP]
        csd = row.get(S.COUNT_SD_PP, math.nan)
        pl = "" if math.isnan(pct_lymph) else f"{pct_lymph:.2f}"
        pl = escape(above_text(den)) if row[S.POPULATION] in above else pl
        table.add_row(escape(row[S.POPULATION]), escape(row[S.PARENT]), f"{row[S.COUNT]:,}",
                      f"{row[S.PCT_PARENT]:.2f}", pl, escape(row[S.METHOD]), "" if math.isnan(est) else f"{est:.1f}",
                      "" if math.isnan(csd) else f"{csd:.1f}",
                      f"[bold red]REVIEW[/bold red] [red]{_words(row[S.REVIEW_FLAGS])}[/red]" if row[S.REVIEW] else "",
                      f"[dim]{_words(row[S.NOTES])}[/dim]" if row[S.NOTES] else "")
    notes = ["REVIEW = the estimate may be wrong: check its gate before using the number (review flags)",
             "notes = how a gate was placed, not a statement that the estimate is wrong",
             "± pp = estimated error of % parent (percentage points) from its thresholds' uncertainty",
             "count ± pp = binomial SD of % parent from the event counts alone (few_events: parent below "
             f"{FEW_EVENTS} events)"]
    if den:
        notes.insert(0, f"% lymphocytes = % of {den}, the strategy's lymphocyte population")
    table.caption = escape("; ".join(notes))
    console.print(table)


def gate(
    file: Path = typer.Argument(..., help="FCS file to gate.", exists=False),
    strategy: str = typer.Option(..., "--strategy", "-s",
                                 help="Built-in strategy name (tmem, nkb...), strategy YAML, Gating-ML or FlowJo file."),
    panel: Optional[str] = typer.Option(None, "--panel", "-p", help="Panel name or YAML (default: the strategy's)."),
    tube: Optional[str] = typer.Option(None, "--tube", "-t", help="Tube of the panel (default: the strategy's)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write every population's gate plot to this PNG."),
    table: Optional[Path] = typer.Option(None, "--table", help="Write the population table to this CSV (review: "
                                         "True = the estimate may be wrong; review_flags, notes; flags = both; qc_flags = the "
                                         "sample's QC and data flags, as in the pipeline's populations.csv)."),
    gatingml: Optional[Path] = typer.Option(None, "--gatingml", help="Write the fitted gates as Gating-ML 2.0."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing --plot/--table/--gatingml files."),
    qc: bool = typer.Option(True, "--qc/--no-qc",
                            help="Remove QC-flagged events first, as the pipeline does (default)."),
) -> None:
    """Gate one FCS file with a strategy and print its population table."""
    from .startup import imports_outside_gc, one_blas_thread_at_load

    # what the command uses, imported before the work, numpy with one BLAS thread (see cli/startup.py)
    with imports_outside_gc(), one_blas_thread_at_load():
        from rich.console import Console
        from rich.markup import escape

        from .. import compensation, panel as _panel, qc as _qc, transforms  # noqa: F401 - used by the analysis
        from ..errors import PipelineError
        from ..fcs import read_fcs
        from ..gating import load_strategy
        from ..io_utils import write_table
        from ..results import denominators  # noqa: F401 - used to print the table
        import rich.table  # noqa: F401

    targets = [p for p in (plot, table.with_suffix(".csv") if table is not None else None, gatingml) if p is not None]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:  # checked before any work, so nothing is half-written
        raise PipelineError(f"output exists: {', '.join(existing)}; use --force to overwrite")
    strat = load_strategy(strategy)
    sample = read_fcs(file)
    result = strat.apply(sample, panel=panel, tube=tube, qc=qc)
    console = Console()
    if not console.is_terminal:  # piped/CI output: wide enough that names are not cut
        console = Console(width=140)
    _print_table(result, console)
    if result.qc is not None and result.qc.result is not None:
        flags = ";".join(result.qc.flags) or "no flags"
        console.print(f"QC kept {result.qc.n_kept:,} of {result.qc.n_events:,} events ({escape(flags)}); "
                      "--no-qc gates every event", highlight=False)
    if result.data_flags:  # markers from detector names, failed compensation check, clipped logicle
        from ..transforms.estimate import CLIPPED_WARNING_PREFIX

        console.print(f"[bold red]WARNING[/] {escape(';'.join(result.data_flags))}", highlight=False)
        for w in result.sample.warnings:
            if w.startswith(("compensation check:", "markers assigned from detector names",
                             CLIPPED_WARNING_PREFIX)):
                console.print(f"  {escape(w)}", highlight=False)
    if plot is not None:
        result.plot_all(plot)
        typer.echo(f"wrote {plot}")
    if table is not None:  # every row carries the sample's QC and data flags, as populations.csv does
        rows = result.populations.assign(**{S.QC_FLAGS: ";".join(result.summary()[S.QC_FLAGS])})
        write_table(rows, table.with_suffix(""), formats=("csv",))
        typer.echo(f"wrote {table.with_suffix('.csv')}")
    if gatingml is not None:
        result.to_gatingml(gatingml)
        typer.echo(f"wrote {gatingml}")


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)
