"""Entry point: ``cytokit COMMAND ...``.

Commands live one per module in this package; each module exposes ``register(app: typer.Typer)``.
:data:`COMMAND_MODULES` is the single registry of commands.
"""
from __future__ import annotations

import importlib
import sys

import typer

from ..errors import CytokitError
from ..log import configure_cli_logging

COMMAND_MODULES: tuple[str, ...] = (
    "inspect_cmd", "compensate_cmd", "simulate_cmd", "gate_cmd", "run_cmd", "compare_cmd", "report_cmd",
    "cluster_cmd",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="cytokit", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
        help="Flow-cytometry immunophenotyping for clinical trials.",
    )

    @app.callback()
    def _root(
        verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    ) -> None:
        configure_cli_logging(verbose, quiet)

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a :class:`CytokitError` prints its message (no traceback) and exits 2."""
    app = build_app()
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):  # click returns typer.Exit(code) codes in non-standalone mode
            return rv
    except CytokitError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except SystemExit as exc:  # click usage errors in non-standalone mode
        return int(exc.code or 0)
    except Exception as exc:  # click.UsageError and friends
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
