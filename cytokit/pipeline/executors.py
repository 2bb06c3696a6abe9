"""Executors: how the per-sample task is mapped over the samples of a run.

Contract
--------
An :class:`Executor` has one method, :meth:`Executor.map`, which runs ``execute(task, job)`` for every
job and yields one :class:`~cytokit.pipeline.task.SampleOutput` per job, in completion order. It never
raises because of one sample: a task exception, an unpicklable result or a worker process that dies
(segfault, ``os._exit``, OOM kill) becomes a failed output for that sample only. :data:`EXECUTORS` is the
registry (``local`` process pool, ``serial`` in-process, ``dask`` distributed); :func:`make_executor`
builds one by name.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import sys
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Callable, ClassVar, Generator, Iterator, Sequence

from ..errors import ConfigError
from .lifecycle import bind_to_parent, stop_pool
from .task import SampleJob, SampleOutput, execute

log = logging.getLogger(__name__)

Task = Callable[[SampleJob], SampleOutput]
WORKER_DIED = "worker process died while analysing this file (crash, os._exit or out-of-memory kill)"
#: runs alone on the cluster a Dask sample whose worker died gets before it is recorded as failed
SOLO_ATTEMPTS = 2
#: seconds a solo run waits for a Dask worker (every worker may have died) before the sample fails
WORKER_WAIT_SECONDS = 120


def _glibc_mmap_large_arrays() -> None:
    """Serve every allocation above 1 MiB with mmap (glibc only), so the event arrays of one sample are
    returned to the system when freed instead of fragmenting the heap of a long-lived worker."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (fixed; disables the dynamic threshold)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def worker_init(threads: int | None, parent_pid: int | None = None) -> None:
    """Initializer of local worker processes: die with the parent (``parent_pid``), thread limits and
    large arrays served by mmap."""
    if parent_pid is not None:
        bind_to_parent(parent_pid)
    limit_threads(threads)
    _glibc_mmap_large_arrays()


def limit_threads(n: int | None) -> None:
    """Worker initializer: at most ``n`` BLAS/OpenMP threads per worker process (None = leave).

    Processes are the unit of parallelism; letting each worker also start one thread per core
    oversubscribes the machine (``jobs`` workers x cores threads).
    """
    if not n:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # this worker process only: libraries loaded later read it
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def execute_pinned(threads: int | None, task: Task, job: SampleJob) -> SampleOutput:
    """:func:`~.task.execute` in a process whose BLAS/OpenMP pools are limited to ``threads`` first
    (:func:`limit_threads`): a Dask worker is not started by cytokit, so each task pins its process as the
    local executor's initializer pins its workers; the same limits on every executor."""
    limit_threads(threads)
    return execute(task, job)


class Executor(ABC):
    """Maps a per-sample task over jobs; yields outputs as they complete (see module contract)."""

    name: ClassVar[str]

    @abstractmethod
    def map(self, task: Task, jobs: Sequence[SampleJob]) -> Generator[SampleOutput, None, None]:
        """Yield one output per job, in completion order (a generator: closing it stops the workers)."""

    def close(self) -> None:
        """Release workers and connections."""

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs every task in this process, one after the other (debugging, notebooks, tiny batches)."""

    name = "serial"

    def __init__(self, **_: Any) -> None:
        pass

    def map(self, task: Task, jobs: Sequence[SampleJob]) -> Generator[SampleOutput, None, None]:
        for job in jobs:
            yield execute(task, job)


class LocalExecutor(Executor):
    """A pool of ``jobs`` worker processes on this machine.

    Each worker is limited to ``threads_per_worker`` BLAS threads (default 1). The pool starts
    on first use and is reused by later :meth:`map` calls until :meth:`close` (a
    notebook or benchmark can keep warm workers). At most ``2 * jobs`` tasks are queued at once
    (bounded memory). When a worker dies the pool breaks;
    the tasks that were in flight are re-run one at a time in a fresh single-worker pool so that only
    the sample that kills its worker is recorded as failed.
    """

    name = "local"

    def __init__(self, jobs: int = 2, start_method: str | None = None, threads_per_worker: int | None = 1,
                 **_: Any) -> None:
        if jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.threads_per_worker = threads_per_worker
        self.context = multiprocessing.get_context(start_method)
        self._pool: ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return f"local ({self.jobs} worker process{'es' if self.jobs > 1 else ''})"

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=self.context, initializer=worker_init,
                                   initargs=(self.threads_per_worker, os.getpid()))

    def _main_pool(self) -> ProcessPoolExecutor:
        """The worker pool, started on first use and kept across :meth:`map` calls until :meth:`close`."""
        if self._pool is None:
            self._pool = self._new_pool(self.jobs)
        return self._pool

    def _drop_pool(self, *, now: bool = False) -> None:
        """Shut the pool down; ``now`` kills its workers instead of waiting for running tasks."""
        if self._pool is not None:
            if now:
                stop_pool(self._pool)
            else:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, task: Task, jobs: Sequence[SampleJob]) -> Generator[SampleOutput, None, None]:
        pending = list(jobs)[::-1]  # pop() from the end keeps submission in the given order
        suspects: list[SampleJob] = []
        run = partial(execute, task)
        while pending:
            pool = self._main_pool()
            in_flight: dict[Future, SampleJob] = {}
            broken = False
            try:
                while pending or in_flight:
                    while pending and len(in_flight) < 2 * self.jobs and not broken:
                        job = pending.pop()
                        try:
                            in_flight[pool.submit(run, job)] = job
                        except BrokenProcessPool:
                            pending.append(job)
                            broken = True
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = in_flight.pop(fut)
                        try:
                            yield fut.result()
                        except BrokenProcessPool:
                            broken = True
                            suspects.append(job)
                        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                            yield SampleOutput.failed(job.sample_id, f"{job.path}: {type(exc).__name__}: {exc}")
                    if broken:
                        suspects.extend(in_flight.values())
                        in_flight.clear()
                        break
            except BaseException:
                self._drop_pool(now=True)  # interrupted: do not leave tasks running
                raise
            if broken:
                self._drop_pool()
            if suspects:
                log.warning("a worker process died; re-running %d in-flight sample(s) one at a time", len(suspects))
                yield from self._isolate(run, suspects)
                suspects = []

    def _isolate(self, run: Callable[[SampleJob], SampleOutput], jobs: list[SampleJob]) -> Iterator[SampleOutput]:
        """Run each job alone in a fresh one-worker pool; a job that kills that worker fails."""
        for job in sorted(jobs, key=lambda j: j.sample_id):
            pool = self._new_pool(1)
            stopped = False
            try:
                yield pool.submit(run, job).result()
            except BrokenProcessPool:
                yield SampleOutput.failed(job.sample_id, f"{job.path}: {WORKER_DIED}")
            except Exception as exc:  # noqa: BLE001
                yield SampleOutput.failed(job.sample_id, f"{job.path}: {type(exc).__name__}: {exc}")
            except BaseException:
                stop_pool(pool)  # interrupted: do not leave the task running
                stopped = True
                raise
            finally:
                if not stopped:
                    pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._drop_pool()


class DaskExecutor(Executor):
    """Tasks run on a Dask distributed cluster (``scheduler='tcp://HOST:PORT'``).

    Needs the optional extra ``cytokit[distributed]``. Results travel back to this process, which alone
    writes the output folder, so workers need read access to the FCS files but not to the output. A
    ``KilledWorker`` may hit innocent tasks queued on the same worker, so those samples are re-run one
    at a time; a sample whose worker dies on each of :data:`SOLO_ATTEMPTS` runs alone is recorded as
    failed (a crashing file costs three workers; a nanny restarts them). Each task limits its worker
    process's BLAS/OpenMP threads to ``threads_per_worker`` (default 1, as the local executor's workers)
    before it runs (:func:`execute_pinned`).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, threads_per_worker: int | None = 1, **_: Any) -> None:
        if not scheduler:
            raise ConfigError("the dask executor needs a scheduler address (--scheduler tcp://HOST:PORT)")
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError("the dask executor needs the optional extra: pip install 'cytokit[distributed]'") from None
        self.scheduler = scheduler
        self.threads_per_worker = threads_per_worker
        try:
            self.client = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot connect to Dask scheduler {scheduler}: {exc}") from exc

    def describe(self) -> str:
        return f"dask ({self.scheduler})"

    def map(self, task: Task, jobs: Sequence[SampleJob]) -> Generator[SampleOutput, None, None]:
        if not jobs:
            return
        run = partial(execute_pinned, self.threads_per_worker, task)
        suspects: list[SampleJob] = []
        with self.client.as_current():
            for job, output in self._submit(run, list(jobs)):
                if output is None:  # its worker died: maybe it, maybe a neighbour on that worker
                    suspects.append(job)
                else:
                    yield output
            if suspects:
                log.warning("Dask workers died; re-running %d sample(s) one at a time", len(suspects))
            for job in sorted(suspects, key=lambda j: j.sample_id):
                yield self._alone(run, job)

    def _alone(self, run: Callable[[SampleJob], SampleOutput], job: SampleJob) -> SampleOutput:
        """Run ``job`` alone on the cluster, up to :data:`SOLO_ATTEMPTS` times: failed when its worker died on
        every attempt (a worker restarted or closed by the cluster right after another sample's crash can
        take an innocent sample with it), or when no worker is left to run it."""
        for attempt in range(1, SOLO_ATTEMPTS + 1):
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                return SampleOutput.failed(job.sample_id, f"{job.path}: no Dask worker left to analyse this file "
                                                          f"(waited {WORKER_WAIT_SECONDS} s)")
            for _, output in self._submit(run, [job], attempt=attempt):
                if output is not None:
                    return output
            log.warning("%s: its worker died while it ran alone (attempt %d of %d)", job.sample_id, attempt,
                        SOLO_ATTEMPTS)
        return SampleOutput.failed(job.sample_id, f"{job.path}: {WORKER_DIED}")

    def _submit(self, run: Callable[[SampleJob], SampleOutput], jobs: list[SampleJob], attempt: int = 0
                ) -> Iterator[tuple[SampleJob, SampleOutput | None]]:
        """Submit ``jobs``; yield (job, output), output None when the task's worker was killed."""
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]  # keys never collide with an earlier run's results on the scheduler
        keys = [f"cytokit-{j.sample_id}-{token}-{attempt}" for j in jobs]
        futures = self.client.map(run, jobs, pure=False, key=keys)
        by_key = {f.key: j for f, j in zip(futures, jobs)}
        for fut in as_completed(futures):
            job = by_key[fut.key]
            try:
                yield job, fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connection, unpicklable result
                if type(exc).__name__ == "KilledWorker":
                    yield job, None
                else:
                    yield job, SampleOutput.failed(job.sample_id, f"{job.path}: {type(exc).__name__}: {exc}")
            finally:
                fut.release()

    def close(self) -> None:
        self.client.close()


EXECUTORS: dict[str, type[Executor]] = {cls.name: cls for cls in (LocalExecutor, SerialExecutor, DaskExecutor)}


def make_executor(kind: str, **options: Any) -> Executor:
    """Build the executor registered under ``kind`` with its options (jobs, scheduler, start_method)."""
    cls = EXECUTORS.get(kind)
    if cls is None:
        raise ConfigError(f"unknown executor {kind!r}; known: {sorted(EXECUTORS)}")
    return cls(**options)
