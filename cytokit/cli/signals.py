"""SIGTERM handling for CLI commands: a terminated command unwinds like Ctrl-C.

Contract: inside :func:`terminate_on_sigterm` a SIGTERM raises :class:`Terminated` in the main thread, so
``finally`` blocks run (worker processes are stopped, the run ledger records the interruption, temporary
files are removed) before the process exits with code 143. A second SIGTERM while unwinding is not caught: it terminates
the process at once (default action).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from ..pipeline.lifecycle import Terminated

__all__ = ["Terminated", "terminate_on_sigterm"]


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM terminates at once
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
