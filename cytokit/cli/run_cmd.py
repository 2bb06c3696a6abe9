"""``cytokit run``: analyse a study (pipeline YAML) or a bare folder of FCS files.

Thin: builds a validated :class:`~cytokit.pipeline.config.PipelineConfig` and calls
:func:`cytokit.pipeline.run`; exit code 0 when every requested output was written, 1 when anything
was not (a failed sample, a failed cohort stage, a patient report, a review export such as the FlowJo
workspace), 2 when the run could not start (see ``cli.main``). With ``--allow-failures`` the exit code
is 0 and what was not written is still listed.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        pipeline: Optional[Path] = typer.Argument(None, help="Pipeline YAML (or a built-in name such as il2_trial)."),
        out: Path = typer.Option(Path("results"), "--out", "-o", help="Output folder."),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Local worker processes."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler, tcp://HOST:PORT."),
        force: bool = typer.Option(False, "--force", help="Overwrite another run's results in --out."),
        allow_failures: bool = typer.Option(False, "--allow-failures",
                                            help="Exit 0 even if samples or outputs failed (they are listed)."),
        recompute: bool = typer.Option(False, "--recompute", help="Ignore stored results; analyse every sample."),
        input_dir: Optional[Path] = typer.Option(None, "--input", help="Ad-hoc: a folder of FCS files."),
        panel: Optional[str] = typer.Option(None, "--panel", help="Ad-hoc: panel name or YAML."),
        strategy: Optional[str] = typer.Option(None, "--strategy", help="Ad-hoc: gating strategy name or YAML."),
        tube: Optional[str] = typer.Option(None, "--tube", help="Ad-hoc: the panel tube (default: detect)."),
    ) -> None:
        """Validate everything, analyse every sample in parallel, write tables, gates and the ledger."""
        from ..errors import ConfigError
        from ..log import message_line, one_line
        from ..pipeline import adhoc_pipeline, load_pipeline, run
        from ..pipeline.progress import LogProgress, RichProgress

        if (pipeline is None) == (input_dir is None):
            raise ConfigError("give a PIPELINE.yaml or --input DIR (with --panel and --strategy), not both")
        if input_dir is not None:
            if not panel or not strategy:
                raise ConfigError("--input needs --panel and --strategy")
            config = adhoc_pipeline(input_dir, panel, strategy, tube=tube)
        else:
            config = load_pipeline(pipeline)
        progress = RichProgress() if sys.stderr.isatty() else LogProgress()
        summary = run(config, out, jobs=jobs, scheduler=scheduler, force=force, recompute=recompute,
                      progress=progress)
        typer.echo(f"{summary.total} sample(s): {summary.ok} ok, {summary.failed} failed, "
                   f"{summary.skipped} reused from earlier runs; {summary.seconds:.1f}s; results in {summary.out}")
        if summary.stages_reused or summary.stages_run:
            reused = f"{', '.join(summary.stages_reused)} (inputs unchanged)" if summary.stages_reused else "none"
            typer.echo(f"cohort stages: reused {reused}; recomputed {', '.join(summary.stages_run) or 'none'}")
        if summary.outputs_reused or summary.outputs_run:
            reused = f"{', '.join(summary.outputs_reused)} (inputs unchanged)" if summary.outputs_reused else "none"
            typer.echo(f"review exports: reused {reused}; rewritten {', '.join(summary.outputs_run) or 'none'}")
        for sid, err in summary.failures.items():
            typer.echo(f"  FAILED {one_line(sid)}: {message_line(err)}", err=True)
        for stage, err in summary.stage_errors.items():
            typer.echo(f"  {one_line(stage)} stage FAILED: {message_line(err)}", err=True)
        for name, err in summary.output_errors.items():
            typer.echo(f"  NOT WRITTEN {one_line(name)}: {message_line(err)}", err=True)
        if not summary.complete:
            if allow_failures:
                typer.echo("some requested outputs were not written (listed above); exit 0 (--allow-failures)",
                           err=True)
            else:
                raise typer.Exit(1)
