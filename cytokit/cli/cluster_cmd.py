"""``cytokit cluster RESULTS_DIR``: FlowSOM-style clustering of one gated population across samples.

A thin layer: it builds validated :class:`~cytokit.cluster.ClusterParams` and calls
:func:`cytokit.cluster.run_clustering`, which writes ``RESULTS_DIR/clustering/``.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer

log = logging.getLogger(__name__)


def _split_markers(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [m.strip() for v in values for m in v.split(",") if m.strip()]
    return out or None


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich bar over sample loading on a terminal; nothing in CI / pipes (the library logs instead)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("loading events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("load", total=None)

        def update(done: int, total: int, sample_id: str) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def cluster(
    results_dir: Path = typer.Argument(..., help="Results folder written by 'cytokit run'."),
    population: str = typer.Option("T cells", "--population", "-p", help="Gated population to cluster."),
    markers: Optional[list[str]] = typer.Option(
        None, "--markers", "-m", help="Markers to cluster on (repeat or comma-separate); default: all "
        "fluorescence markers of the population's events."),
    grid: str = typer.Option("14x14", "--grid", help="SOM grid, WxH."),
    metaclusters: int = typer.Option(10, "--metaclusters", "-k", help="Number of metaclusters."),
    tube: Optional[str] = typer.Option(None, "--tube", help="Tube to use when the study has several."),
    seed: int = typer.Option(42, "--seed", help="Seed of subsampling and consensus resampling."),
    n_train: int = typer.Option(200_000, "--n-train", help="Training events in total (balanced per sample)."),
    phenotypes: Optional[str] = typer.Option(
        None, "--phenotypes", help="Panel or strategy YAML (or built-in name) with population phenotypes "
        "(default: the run's strategy, else the built-in table)."),
    thresholds: Optional[Path] = typer.Option(
        None, "--thresholds", help="YAML of marker thresholds on the transformed scale (default: from "
        "marker modes)."),
    margin: float = typer.Option(5.0, "--margin", help="Flag gating-vs-clustering differences above this (pp)."),
    level: str = typer.Option("node", "--level", help="Named-population abundances from 'node' or 'metacluster'."),
    da_test: str = typer.Option("quasibinomial", "--da-test",
                                help="Between-arm test: quasibinomial (GLM on counts) or rank_sum."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write heatmap, map and abundance PNGs."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing clustering results."),
) -> None:
    """Cluster a gated population across all samples (shared SOM + consensus metaclusters)."""
    from ..cluster import DA_TESTS, make_params, parse_grid, run_clustering
    from ..cluster.thresholds import load_thresholds
    from ..errors import ClusterError

    if level not in ("node", "metacluster"):
        raise ClusterError(f"--level must be 'node' or 'metacluster', not {level!r}")
    if da_test not in DA_TESTS:
        raise ClusterError(f"--da-test must be one of {sorted(DA_TESTS)}, not {da_test!r}")
    xdim, ydim = parse_grid(grid)
    params = make_params(xdim=xdim, ydim=ydim, n_metaclusters=metaclusters, seed=seed, n_train=n_train,
                         margin_pp=margin)
    with _progress_bar() as progress:
        run = run_clustering(
            results_dir, population=population, markers=_split_markers(markers), tube=tube, params=params,
            phenotypes=phenotypes, thresholds=load_thresholds(thresholds) if thresholds else None,
            level=level, plots=plots, force=force, progress=progress, da_test=da_test)
    mc = run.tables["metaclusters"]
    typer.echo(f"{population}: {run.result.info['n_samples']} samples, {run.result.info['n_events']} events, "
               f"{len(mc)} metaclusters on {', '.join(run.result.markers)}")
    for r in mc.itertuples():
        typer.echo(f"  {r.metacluster:>3}  {r.pct_events:5.1f}%  {r.name}")
    if "agreement_summary" in run.tables:
        flagged = int(run.tables["agreement"]["flagged"].sum())
        typer.echo(f"gating vs clustering: {flagged} sample x population differences above {margin:g} pp")
    if run.skipped:
        typer.echo(f"skipped {len(run.skipped)} sample(s): see clustering.json")
    typer.echo(f"results in {Path(results_dir) / 'clustering'}")


def register(app: typer.Typer) -> None:
    app.command("cluster")(cluster)
