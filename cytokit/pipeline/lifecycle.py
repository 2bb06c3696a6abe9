"""Lifecycle of worker processes: they die with the process that started them.

Contract
--------
:func:`bind_to_parent` runs in a worker process at start-up (the pool initializer). Afterwards the worker
exits by itself when its parent dies, however the parent died (SIGTERM, ``kill -9``, a crash):

- on Linux the kernel sends it SIGKILL (``prctl(PR_SET_PDEATHSIG)``, set through ``ctypes``);
- everywhere a daemon watchdog thread checks once a second that its parent process is unchanged and the
  run's process (``parent_pid``; with the ``forkserver`` start method not the direct parent) is alive,
  and calls ``os._exit`` otherwise (also covers a parent that died before the ``prctl`` call).

It also closes the worker's inherited copies of output-folder lock descriptors (``fork`` copies every
descriptor), so the lock of a run is held by the run's own process only and is released the moment it
dies. :func:`stop_pool` stops a process pool without waiting for running tasks (interruptions).
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from ..errors import Terminated  # noqa: F401 - defined with the other errors: the CLI does not import this module

if TYPE_CHECKING:  # pragma: no cover - annotation only: concurrent.futures.process imports multiprocessing
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)

#: name of the lock file held by the process writing an output folder (see ``pipeline.runner``)
LOCK_FILE = ".cytokit.lock"
PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog alone applies
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by someone else
        return True
    return True


def _watchdog(parent_pid: int, ppid: int) -> None:
    while True:
        if os.getppid() != ppid or not _alive(parent_pid):
            os._exit(1)  # the run died: nothing will read this worker's results
        time.sleep(WATCHDOG_SECONDS)


def close_inherited_locks() -> None:
    """Close this process's descriptors of ``.cytokit.lock`` files (inherited through ``fork``)."""
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        return
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError, ValueError):
            if os.readlink(f"{fd_dir}/{name}").endswith("/" + LOCK_FILE):
                os.close(int(name))


def bind_to_parent(parent_pid: int) -> None:
    """Worker start-up: die with ``parent_pid``, default SIGTERM action, no inherited run locks."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # fork copied the CLI's graceful handler
    close_inherited_locks()
    _set_parent_death_signal()  # the direct parent: the run itself, or a forkserver that exits with it
    ppid = os.getppid()
    if ppid == 1 or not _alive(parent_pid):  # the run died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watchdog, args=(parent_pid, ppid), name="cytokit-parent-watchdog",
                     daemon=True).start()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: cancel queued tasks, kill its worker processes, release its resources."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    with contextlib.suppress(Exception):
        pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.kill()
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(5)
