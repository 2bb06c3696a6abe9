"""Progress reporting of a run: a rich bar on a terminal, plain log lines otherwise.

Contract: the runner calls ``start(total, skipped)``, then ``update(output)`` once per finished sample,
then ``finish()``. :class:`LogProgress` (the library default) logs one line per sample with counts and
an ETA; :class:`RichProgress` (used by the CLI on a TTY) shows a bar with done/total, failures so far
and ETA.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from .task import SampleOutput

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.progress import TaskID

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, total: int, skipped: int) -> None: ...

    def update(self, output: SampleOutput) -> None: ...

    def finish(self) -> None: ...


class _Counts:
    def __init__(self) -> None:
        self.total = self.done = self.failed = self.skipped = 0
        self.t0 = time.monotonic()

    def eta(self) -> str:
        if not self.done:
            return "?"
        left = (time.monotonic() - self.t0) / self.done * (self.total - self.done)
        return f"{left:.0f}s"


class LogProgress:
    """One log line per finished sample: ``[done/total] sample ok|FAILED (failures so far, ETA)``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self.c = _Counts()

    def start(self, total: int, skipped: int) -> None:
        self.c = _Counts()
        self.c.total, self.c.skipped = total, skipped
        self.log.info("analysing %d sample(s)%s", total,
                      f"; {skipped} unchanged sample(s) reused from earlier runs" if skipped else "")

    def update(self, output: SampleOutput) -> None:
        self.c.done += 1
        if output.status != "ok":
            self.c.failed += 1
            self.log.warning("[%d/%d] %s FAILED: %s", self.c.done, self.c.total, output.sample_id, output.error)
        else:
            self.log.info("[%d/%d] %s ok (%.1fs; %d failed so far; ETA %s)", self.c.done, self.c.total,
                          output.sample_id, output.seconds, self.c.failed, self.c.eta())

    def finish(self) -> None:
        self.log.info("analysed %d sample(s): %d ok, %d failed", self.c.done, self.c.done - self.c.failed,
                      self.c.failed)


class RichProgress:
    """A rich progress bar (counts, failures so far, elapsed, ETA) for interactive terminals."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._bar = Progress(TextColumn("[bold]analysing"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                             TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
        self._task: TaskID | None = None
        self.failed = 0

    def start(self, total: int, skipped: int) -> None:
        self._bar.start()
        if skipped:
            self._bar.console.print(f"{skipped} unchanged sample(s) reused from earlier runs")
        self._task = self._bar.add_task("samples", total=total, failed=0)

    def update(self, output: SampleOutput) -> None:
        if output.status != "ok":
            self.failed += 1
            from rich.text import Text  # untrusted text: never parsed as markup

            self._bar.console.print(Text.assemble(("FAILED ", "bold red"), f"{output.sample_id}: {output.error}"))
        if self._task is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)

    def finish(self) -> None:
        self._bar.stop()
