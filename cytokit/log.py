"""Logging setup for the CLI. The library itself only uses ``logging.getLogger(__name__)``."""
from __future__ import annotations

import logging
import sys


def configure_cli_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Rich log lines on a TTY, plain lines otherwise (CI, pipes). Idempotent."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    root = logging.getLogger("cytokit")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.propagate = False
