"""``cytokit learn EXPERT FCS... --strategy S --mapping M --out DIR``: tune a strategy on expert gates.

EXPERT is a FlowJo workspace (``.wsp``) or Gating-ML file with the lab's gates on some of the FCS files
(files or folders). Writes the tuned strategy YAML (usable by ``cytokit run`` unchanged), the
leave-one-sample-out agreement table (``agreement.csv``: per-event F1 and |Δ%| per sample and population)
and ``agreement.html``, and prints the per-population summary worst first.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from ..results import schema as S


def _print_summary(summary, title: str) -> None:  # noqa: ANN001 - DataFrame
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 200
    table = Table(title=escape(title))
    for col in summary.columns:
        table.add_column(str(col), justify="left" if col in (S.POPULATION, "role") else "right")
    for row in summary.itertuples(index=False):
        cells = [f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row]
        table.add_row(*cells)
    console.print(table)


def learn(
    expert: Path = typer.Argument(..., help="FlowJo workspace (.wsp) or Gating-ML file with the expert's gates."),
    files: Optional[List[Path]] = typer.Argument(None, help="FCS files (or folders of them) the expert gated."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s",
                                           help="Base strategy (built-in name or YAML); default: derived from the "
                                                "expert's gate tree."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m",
                                           help="YAML 'expert population: strategy population' (default: same names)."),
    train: Optional[str] = typer.Option(None, "--train", help="Comma-separated FCS file stems to learn from "
                                                               "(default: every expert-gated file)."),
    panel: Optional[str] = typer.Option(None, "--panel", "-p", help="Panel name or YAML (default: the strategy's)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (tuned YAML, agreement.csv, agreement.html)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    no_loso: bool = typer.Option(False, "--no-loso", help="Skip the leave-one-sample-out evaluation."),
    no_unlabelled: bool = typer.Option(False, "--no-unlabelled",
                                       help="Do not let the files not trained on (their events, never expert gates) "
                                            "decide between equally fitting parameters (minimal change to the "
                                            "base strategy's gates); ties then keep the value closest to the base."),
    suggest: Optional[int] = typer.Option(None, "--suggest", min=1,
                                          help="Before (more) expert gating: propose this many samples of the study "
                                               "whose expert gates would best determine the strategy's thresholds "
                                               "(suggestion.csv/html in --out). All arguments are then FCS files or "
                                               "folders; a workspace given first names samples already gated."),
) -> None:
    """Learn a strategy's adaptive parameters from expert gates; report leave-one-sample-out agreement.
    With --suggest N: which N samples should the expert gate (no expert gates needed)."""
    if suggest is not None:
        _suggest(expert, list(files or []), suggest, strategy=strategy, mapping=mapping, panel=panel, out=out,
                 force=force)
        return
    if not files:
        from ..errors import ConfigError

        raise ConfigError("no FCS files given (cytokit learn EXPERT FCS...)")
    from ..learn import learn_strategy

    for name in ("agreement.csv", "agreement.html"):
        if (out / name).exists() and not force:  # checked before any work
            from ..errors import ConfigError

            raise ConfigError(f"output exists: {out / name}; use --force to overwrite")
    result = learn_strategy(expert, files, strategy=strategy, mapping=mapping, panel=panel,
                            train=[t.strip() for t in train.split(",") if t.strip()] if train else None,
                            loso=not no_loso, use_unlabelled=not no_unlabelled)
    paths = result.save(out, force=force)
    role = "loso" if (result.agreement.role == "loso").any() else "train"
    _print_summary(result.summary(role), f"agreement with the expert ({role}), worst first")
    typer.echo(f"tuned strategy: {paths['strategy']}\nagreement: {paths['agreement']}, {paths['html']}")


def _suggest(first: Path, files: List[Path], n: int, *, strategy: Optional[str], mapping: Optional[Path],
             panel: Optional[str], out: Path, force: bool) -> None:
    """``--suggest N``: :func:`cytokit.learn.suggest.suggest_samples` on the files; a FlowJo workspace or
    Gating-ML file given first names the samples already gated (they count as chosen)."""
    from ..errors import ConfigError
    from ..learn.expert import load_expert, load_mapping
    from ..learn.suggest import suggest_samples

    if strategy is None:
        raise ConfigError("--suggest needs a base strategy (--strategy)")
    gated: list[str] = []
    expert: Optional[Path] = None
    if first.is_file() and first.suffix.lower() in (".wsp", ".xml"):
        gated = [ex.name for ex in load_expert(first, files)]
        expert = first
    else:
        files = [first, *files]
    for name in ("suggestion.csv", "suggestion_reasons.csv", "suggestion.html"):
        if (out / name).exists() and not force:  # checked before any work
            raise ConfigError(f"output exists: {out / name}; use --force to overwrite")
    mapped = load_mapping(mapping)
    result = suggest_samples(files, n, strategy=strategy, gated=gated, panel=panel,
                             populations=sorted(set(mapped.values())) if mapped else None,
                             expert=expert, mapping=mapping)
    paths = result.save(out, force=force)
    _print_summary(result.table[result.table["rank"].notna()].drop(columns=["rank"]),
                   "samples to gate next (in order)")
    typer.echo(f"suggested: {', '.join(result.samples)}\nsuggestion: {paths['table']}, {paths['reasons']}, "
               f"{paths['html']}")


def register(app: typer.Typer) -> None:
    app.command("learn")(learn)
