"""Start-up of a CLI command: its imports made outside the cyclic garbage collector.

Importing numpy, pydantic, typer, rich and cytokit's modules creates a few hundred thousand long-lived
objects (modules, classes, function objects, validation schemas) and no garbage. With the collector
running, the imports themselves trigger full collections, and every later full collection while the
command works walks all of them again (about 50 ms of CPU in a 1M-event ``cytokit gate``).
:func:`imports_outside_gc` pauses the collector while a command imports what it needs, then moves
everything alive to the permanent generation (:func:`gc.freeze`); :func:`cytokit.cli.main.main` calls
:func:`release` when the command returns, so a program that calls ``main()`` in-process (tests, notebooks)
keeps ordinary collection of its own objects.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator

__all__ = ["imports_outside_gc", "release"]


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
