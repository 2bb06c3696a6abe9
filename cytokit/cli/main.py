"""Entry point: ``cytokit COMMAND ...``.

Commands live one per module in this package; each module exposes ``register(app: typer.Typer)``.
:data:`COMMAND_MODULES` is the single registry of commands.
"""
from __future__ import annotations

import importlib
import sys

import typer

from .. import __version__
from ..errors import CytokitError
from ..log import configure_cli_logging

USAGE_EXIT = 2

COMMAND_MODULES: tuple[str, ...] = (
    "inspect_cmd", "compensate_cmd", "simulate_cmd", "gate_cmd", "run_cmd", "compare_cmd", "report_cmd",
    "cluster_cmd", "learn_cmd", "compare_gates_cmd",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cytokit {__version__}")
        raise typer.Exit(0)


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Usage-error base classes: typer's vendored click and the click package (when imported)."""
    types: list[type[BaseException]] = []
    try:  # typer >= 0.20 vendors click; older versions use the click package
        from typer._click.exceptions import ClickException

        types.append(ClickException)
    except ImportError:  # pragma: no cover
        pass
    click = sys.modules.get("click")  # an exception of the click package exists only once it is imported
    if click is not None:
        types.append(click.ClickException)
    return tuple(types)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="cytokit", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
        help="Flow-cytometry immunophenotyping for clinical trials.",
    )

    @app.callback()
    def _root(
        verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
        version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                     help="Print the version and exit."),
    ) -> None:
        configure_cli_logging(verbose, quiet)

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code.

    0 success; 1 the command ran but something it was asked to do failed; 2 bad input or usage (a
    :class:`CytokitError`, a misspelt command or option, a missing argument, an invalid value) with a
    one-paragraph message and no traceback; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    """
    from .startup import imports_outside_gc, release

    try:
        with imports_outside_gc():  # start-up objects kept out of the collector's way (cli/startup.py)
            app = build_app()
        return _run(app, argv)
    finally:
        release()


def _run(app: typer.Typer, argv: list[str] | None) -> int:
    """The command's exit code (see :func:`main`)."""
    from .signals import Terminated, terminate_on_sigterm

    try:
        with terminate_on_sigterm():
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
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Terminated:
        typer.echo("terminated", err=True)
        return 143
    except SystemExit as exc:  # click usage errors in non-standalone mode
        return int(exc.code or 0) if not isinstance(exc.code, str) else USAGE_EXIT
    except Exception as exc:  # misspelt command, unknown option, missing argument, bad value
        if not isinstance(exc, _click_exception_types()):  # the types looked up after the command ran
            raise
        exc.show()  # type: ignore[attr-defined]
        code = getattr(exc, "exit_code", USAGE_EXIT)
        return USAGE_EXIT if code in (None, 1) else int(code)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
