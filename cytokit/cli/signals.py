"""SIGTERM handling for CLI commands: a terminated command unwinds like Ctrl-C.

Contract: inside :func:`terminate_on_sigterm` a SIGTERM raises :class:`Terminated` in the main thread, so
``finally`` blocks run (worker processes are stopped, the run ledger records the interruption, temporary
files are removed) before the process exits with code 143. A second SIGTERM while unwinding is not caught: it terminates
the process at once (default action).

A SIGTERM that arrives while a module is being imported is not raised inside the import (an exception
inside a C extension's initialisation surfaces as ``ImportError: initialization failed``, which an
``except Exception`` would take for an ordinary failure): it is delivered again
:data:`IMPORT_RETRY_SECONDS` later, once the import has finished. Likewise one that lands in a finaliser (a
``__del__`` or a weakref callback run by the garbage collector, e.g. matplotlib's): Python cannot raise out of
those, so it would print the exception's traceback and carry on as if nothing had been asked; inside the block
:func:`sys.unraisablehook` takes such a :class:`Terminated`, puts the handler back and delivers the signal again
:data:`IMPORT_RETRY_SECONDS` later, in the code the finaliser interrupted.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Iterator

from ..errors import Terminated

__all__ = ["Terminated", "terminate_on_sigterm", "IMPORT_RETRY_SECONDS"]

#: delay before a SIGTERM received during an import or a finaliser is delivered again (seconds)
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

    def _again_later(signum: int) -> None:
        timer = threading.Timer(IMPORT_RETRY_SECONDS, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()

    def _handler(signum: int, frame: FrameType | None) -> None:
        if _inside_import(frame):  # let the import finish; the signal comes back shortly
            _again_later(signum)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM terminates at once
        raise Terminated(f"terminated by signal {signum}")

    previous_hook = sys.unraisablehook

    def _unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
        if isinstance(unraisable.exc_value, Terminated):  # raised inside a finaliser: not lost, not printed
            signal.signal(signal.SIGTERM, _handler)
            _again_later(signal.SIGTERM)
            return
        previous_hook(unraisable)

    previous = signal.signal(signal.SIGTERM, _handler)
    sys.unraisablehook = _unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous)
