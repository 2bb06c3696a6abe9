"""``cytokit simulate OUT``: write a synthetic IL-2 trial (FCS files, manifest, clinical tables, truth)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError


def _split(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"empty list {text!r}")
    return items


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        out: Path = typer.Argument(..., help="Output folder of the simulated trial."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="Simulation settings (YAML)."),
        patients_per_arm: Optional[int] = typer.Option(None, "--patients-per-arm", help="Patients in each arm."),
        visits: Optional[str] = typer.Option(None, "--visits", help="Comma-separated visits, e.g. W0,W24,W74."),
        tubes: Optional[str] = typer.Option(None, "--tubes", help="Comma-separated tubes: tmem,nkb."),
        events: Optional[int] = typer.Option(None, "--events", help="Events per FCS file."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same files)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing simulated trial in OUT."),
    ) -> None:
        """Simulate a two-arm IL-2 trial: FCS files, manifest, clinical table, IL-2 cycles and truth."""
        from ..simulate import load_config, simulate_trial

        if config is not None and not config.is_file():
            raise ConfigError("simulation config not found", path=config)
        cfg = load_config(config, patients_per_arm=patients_per_arm, visits=_split(visits),
                          tubes=_split(tubes), events=events, seed=seed)
        total = 2 * cfg.patients_per_arm * len(cfg.visits) * len(cfg.tubes)
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("simulating", total=total)
                result = simulate_trial(out, cfg, force=force,
                                        progress=lambda done, _n: bar.update(task, completed=done))
        else:
            result = simulate_trial(out, cfg, force=force)
        typer.echo(f"wrote {len(result.manifest)} FCS files for {2 * cfg.patients_per_arm} patients to {out}")
