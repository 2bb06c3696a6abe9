"""Start-up of a CLI command: its imports made outside the cyclic garbage collector, numpy's BLAS loaded
without a thread pool when the command uses one BLAS thread.

Importing numpy, pydantic, typer, rich and cytokit's modules creates a few hundred thousand long-lived
objects (modules, classes, function objects, validation schemas) and no garbage. With the collector
running, the imports themselves trigger full collections, and every later full collection while the
command works walks all of them again (about 50 ms of CPU in a 1M-event ``cytokit gate``).
:func:`imports_outside_gc` pauses the collector while a command imports what it needs, then moves
everything alive to the permanent generation (:func:`gc.freeze`); :func:`cytokit.cli.main.main` calls
:func:`release` when the command returns, so a program that calls ``main()`` in-process (tests, notebooks)
keeps ordinary collection of its own objects.

OpenBLAS (numpy's BLAS) starts one worker thread per CPU when it is loaded, and those threads spin for a
while after each call (about 30 ms of CPU for ``import numpy`` on 2 cores). A command that only works
with one BLAS thread (``cytokit gate``: :meth:`cytokit.gating.Strategy.apply` runs under
``threadpool_limits(1)``) imports numpy inside :func:`one_blas_thread_at_load`, so OpenBLAS starts none.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import Iterator

__all__ = ["BLAS_THREADS_VARIABLE", "imports_outside_gc", "one_blas_thread_at_load", "release"]

#: the environment variable OpenBLAS reads, once, when it is loaded
BLAS_THREADS_VARIABLE = "OPENBLAS_NUM_THREADS"


@contextlib.contextmanager
def imports_outside_gc() -> Iterator[None]:
    """No collections while the block runs; what is alive at its end is frozen (see the module docstring)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def release() -> None:
    """Hand frozen objects back to the collector (their normal, oldest generation)."""
    gc.unfreeze()


@contextlib.contextmanager
def one_blas_thread_at_load() -> Iterator[None]:
    """numpy first imported inside the block loads OpenBLAS with one thread (see the module docstring).

    Nothing changes when numpy is already imported or the user set :data:`BLAS_THREADS_VARIABLE`; the
    variable is removed again at the end of the block, so processes started later do not inherit it."""
    if "numpy" in sys.modules or BLAS_THREADS_VARIABLE in os.environ:
        yield
        return
    os.environ[BLAS_THREADS_VARIABLE] = "1"
    try:
        yield
    finally:
        os.environ.pop(BLAS_THREADS_VARIABLE, None)
