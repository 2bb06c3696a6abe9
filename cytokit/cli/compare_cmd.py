"""``cytokit compare RESULTS_DIR [--config pipeline.yaml]``: per-visit summaries and between-arm tests."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        results_dir: Path = typer.Argument(..., help="Results folder written by `cytokit run`."),
        config: Optional[Path] = typer.Option(
            None, "--config", "-c", help="Pipeline YAML with a `trial:` block (or the block alone); "
            "default: the IL-2 trial settings."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RESULTS_DIR/trial)."),
        force: bool = typer.Option(False, "--force", help="Overwrite existing trial results."),
        figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw PNG figures."),
    ) -> None:
        """Compare arms: medians (IQR), rank-sum / signed-rank, responders (Fisher), logistic and
        longitudinal models, multiplicity control; writes tables, figures and summary.html."""
        from ..pipeline.runner import require_finished_results
        from ..trial import load_trial_config, run_comparisons

        require_finished_results(results_dir)
        cfg = load_trial_config(config)
        if not figures:
            cfg = cfg.model_copy(update={"figures": False})
        target = out or results_dir / "trial"
        result = run_comparisons(results_dir, cfg, out_dir=target, force=force)
        head = result.headline
        for r in head.head(2).itertuples(index=False):
            p = f"P={r.p:.3g}" if r.p == r.p else f"P not computed ({r.note or 'see tests.csv'})"  # NaN != NaN
            typer.echo(f"{r.population} {r.endpoint} at {r.visit}: {r.treatment} vs {r.control}; {p}")
        typer.echo(f"wrote {target}")
