"""``cytokit compare-gates EXPERT FCS... --gates S|RUN``: agreement of automated gates with expert gates.

``--gates`` is a strategy (built-in name, YAML) applied to each file, or a finished ``cytokit run``
results folder whose stored per-sample gates are evaluated. Prints one row per sample x population, worst
first (per-event F1, % of parent on each side, |Δ%| in percentage points); ``--table``/``--html`` write it.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from ..results import schema as S


def compare_gates_command(
    expert: Path = typer.Argument(..., help="FlowJo workspace (.wsp) or Gating-ML file with the expert's gates."),
    files: List[Path] = typer.Argument(..., help="FCS files (or folders of them) the expert gated."),
    gates: str = typer.Option(..., "--gates", "-g", help="Strategy (name or YAML) or a cytokit run results folder."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m",
                                           help="YAML 'expert population: strategy population' (default: same names)."),
    panel: Optional[str] = typer.Option(None, "--panel", "-p", help="Panel name or YAML (default: the strategy's)."),
    table: Optional[Path] = typer.Option(None, "--table", help="Write the agreement table to this CSV."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the agreement page to this HTML file."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing --table/--html files."),
) -> None:
    """Compare a strategy's or a run's gates with expert gates, per population and sample, worst first."""
    from ..errors import ConfigError
    from ..io_utils import atomic_write_text
    from ..learn import compare_gates
    from ..learn.report import agreement_html
    from .learn_cmd import _print_summary

    existing = [str(p) for p in (table, html) if p is not None and p.exists()]
    if existing and not force:
        raise ConfigError(f"output exists: {', '.join(existing)}; use --force to overwrite")
    result = compare_gates(expert, files, gates, mapping=mapping, panel=panel)
    cols = ["sample", S.POPULATION, "expert_population", "f1", "pct_expert", "pct_auto", "abs_delta_pct"]
    _print_summary(result[cols], f"gates {gates} vs expert, worst first")
    if table is not None:
        atomic_write_text(table, result.to_csv(index=False))
    if html is not None:
        atomic_write_text(html, agreement_html(result, title=f"Gates {gates} compared with expert gates"))


def register(app: typer.Typer) -> None:
    app.command("compare-gates")(compare_gates_command)
