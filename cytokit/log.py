"""Logging setup for the CLI. The library itself only uses ``logging.getLogger(__name__)``.

Untrusted text (patient and sample ids, file names, FCS keywords) reaches log messages as arguments;
:class:`OneLineFilter` escapes line breaks and other control characters in them so that one log call is
one log line (a newline in an id cannot forge a line of its own). :func:`one_line` does the same for
text a command echoes itself. An error message of several lines (an exception given as an argument, a failure a
command lists) reads as one line of its parts joined with ``; `` (:func:`message_line`), not as escaped ``\\n``.
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]")


def one_line(text: Any) -> str:
    """``str(text)`` with line breaks and control characters escaped (``\\n``, ``\\x1b``...); tabs kept."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def message_line(text: Any) -> str:
    """A message of one or more lines (e.g. ``"2 reports could not be written:\\n  P1: ...\\n  P2: ..."``) as one
    readable line: its lines stripped, empty ones dropped, joined with ``; `` (with a space only after a line
    ending in ``:``); other control characters escaped as by :func:`one_line`."""
    out = ""
    for line in (part.strip() for part in str(text).splitlines()):
        if line:
            out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return one_line(out)


class OneLineFilter(logging.Filter):
    """Escapes control characters in the arguments of a log record (never drops a record); an exception
    argument's lines are joined by :func:`message_line`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_escape_arg(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _escape_arg(v) for k, v in args.items()}
        return True


def _escape_arg(value: Any) -> Any:
    if isinstance(value, (int, float)) or value is None:
        return value
    if isinstance(value, BaseException):
        return message_line(value)
    text = str(value)
    return one_line(text) if _CONTROL.search(text) else value


class CurrentStderrHandler(logging.StreamHandler):
    """Plain log lines to whatever ``sys.stderr`` is when a record is emitted, not the stream that was
    current when logging was configured (tests, notebooks and the CLI runner swap and close streams)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns one: always follow sys.stderr
        pass


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
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OneLineFilter())
    root.addHandler(handler)
    root.propagate = False
