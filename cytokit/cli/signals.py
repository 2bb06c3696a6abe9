"""SIGTERM handling for CLI commands: a terminated command unwinds like Ctrl-C.

Contract: inside :func:`terminate_on_sigterm` a SIGTERM raises :class:`Terminated` in the main thread, so
``finally`` blocks run (worker processes are stopped, the run ledger records the interruption, temporary
files are removed) before the process exits with code 143. A second SIGTERM while unwinding is not caught: it terminates
the process at once (default action).

A SIGTERM that arrives while a module is being imported is not raised inside the import (an exception
inside a C extension's initialisation surfaces as ``ImportError: initialization failed``, which an
``except Exception`` would take for an ordinary failure): it is delivered again
:data:`IMPORT_RETRY_SECONDS` later, once the import has finished.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Iterator

from ..errors import Terminated

__all__ = ["Terminated", "terminate_on_sigterm", "IMPORT_RETRY_SECONDS"]

#: delay before a SIGTERM received during an import is delivered again (seconds)
IMPORT_RETRY_SECONDS = 0.05


def _inside_import(frame: FrameType | None) -> bool:
    """True when the interrupted code runs below the import machinery (importlib's frozen bootstrap)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, frame: FrameType | None) -> None:
        if _inside_import(frame):  # let the import finish; the signal comes back shortly
            timer = threading.Timer(IMPORT_RETRY_SECONDS, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM terminates at once
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
