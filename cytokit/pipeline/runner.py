"""``run(config, out)``: validate, analyse every sample in parallel, store, assemble, run cohort stages.

Contract
--------
:func:`run` is what ``cytokit run`` calls and what a notebook calls. It

1. validates everything (:func:`~cytokit.pipeline.preflight.preflight`) and refuses to start with the
   full list of problems;
2. checks the output folder: never an input folder; an existing folder holding another pipeline's
   results needs ``force=True``; the same pipeline's folder is resumed;
3. maps the per-sample task with an executor (local processes, Dask with ``scheduler=``), skipping samples
   whose stored result was made from the same file and definitions (the *key*), and stores every
   result atomically and durably before recording it in the ledger (group commit: one fsync pass and one
   ledger transaction per batch of finished samples, see :mod:`~cytokit.pipeline.store`);
4. assembles the tidy tables (sorted, byte-identical for identical inputs) and the other outputs, then
   runs the cohort stages that are switched on (trial comparisons, clustering, reports).

It returns a :class:`RunSummary`; failed samples do not raise (the CLI turns them into a non-zero exit
code). A :class:`~cytokit.errors.PipelineError` is raised when the run cannot start or when results
cannot be written (disk full, unwritable folder); results stored before that point stay valid.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from .. import __version__
from ..errors import CytokitError, PipelineError
from ..io_utils import atomic_write_bytes, atomic_write_text, remove_stale_temporaries, safe_name, write_table
from ..results import schema as S
from .assemble import assemble_tables
from .config import PipelineConfig, load_pipeline
from .executors import Executor, make_executor
from .ledger import Ledger, open_ledger, utc_now
from .lifecycle import LOCK_FILE, Terminated  # LOCK_FILE: flock'ed by the writing process; holds its pid
from .outputs import EXPORT_FILES, write_extra_outputs
from .preflight import RunPlan, preflight
from .progress import LogProgress, Progress
from .stages import STAGES, StageReport, code_digest, run_cohort_stages
from ..results.schema import LYMPHOCYTES_PER_UL, RUN_INFO_SCHEMA_KEY, SCHEMA_VERSION
from .store import ResultsStore
from .task import SampleJob, SampleOutput, resolve_task

log = logging.getLogger(__name__)

#: how long to wait for a lock whose owner process is dead (its workers exit within about a second)
STALE_LOCK_WAIT_SECONDS = 10.0
PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "pyarrow", "pydantic", "flowkit", "flowio", "flowutils",
            "statsmodels", "matplotlib", "dask", "distributed", "anndata")


@dataclass
class RunSummary:
    """What a run did: counts, failures (sample_id -> reason), output folder and timing (seconds).

    ``stage_errors``: cohort stages (trial, clustering, reports; a failed patient report is the stage
    ``reports: PATIENT``) that failed; ``output_errors``: review exports (FlowJo workspace, AnnData) that
    could not be written. Both are logged and recorded in ``run_info.json``. Failed samples and failed
    stages make :attr:`success` false; :attr:`complete` is false when anything requested was not written.
    """

    out: Path
    total: int
    ok: int
    failed: int
    skipped: int
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    stage_errors: dict[str, str] = field(default_factory=dict)
    output_errors: dict[str, str] = field(default_factory=dict)
    config_hash: str = ""
    #: wall-clock seconds per phase: preflight, analyse (mapping the task, including storing results),
    #: store (the part of analyse the parent spent writing results and ledger rows), assemble, outputs,
    #: stages; and the cohort stages reused / recomputed (``stages_reused``, ``stages_run``) and the
    #: review exports (FlowJo workspace, AnnData) reused / rewritten (``outputs_reused``, ``outputs_run``)
    timings: dict[str, float] = field(default_factory=dict)
    stages_reused: list[str] = field(default_factory=list)
    stages_run: list[str] = field(default_factory=list)
    outputs_reused: list[str] = field(default_factory=list)
    outputs_run: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.failed == 0 and not self.stage_errors

    @property
    def complete(self) -> bool:
        """Every requested output was written: no failed sample, stage or review export."""
        return self.success and not self.output_errors


def package_versions() -> dict[str, str]:
    """Installed versions of cytokit's main dependencies (name -> version; absent ones omitted)."""
    from importlib import metadata

    out = {"cytokit": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def sample_key(row: dict[str, Any], plan: RunPlan, task_name: str) -> str:
    """Hash of everything that determines a sample's stored result: file bytes, definitions, QC, task and the
    code (:func:`~.stages.code_digest`: every file of the cytokit package and the versions of the libraries the
    analysis uses), so a results folder analysed by other code is re-analysed, not reused, even without a
    version bump."""
    cfg = plan.config
    tube = plan.tubes[row[S.TUBE]]
    data = {S.SHA256: row[S.SHA256], S.TUBE: row[S.TUBE], "panel": tube.panel_hash, "panel_tube": tube.panel_tube,
            "strategy": tube.strategy_hash, "qc": cfg.qc.model_dump(mode="json"), "task": task_name,
            "outputs": cfg.outputs.model_dump(mode="json", include={"gatingml", "thumbnails", "anndata",
                                                                    "anndata_max_events_per_sample"}),
            "bead_population": cfg.counts.bead_population, "cytokit": __version__, "code": code_digest()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def make_jobs(plan: RunPlan, task_name: str) -> list[SampleJob]:
    cfg = plan.config
    jobs = []
    for row in plan.samples.to_dict("records"):
        tube = plan.tubes[row[S.TUBE]]
        jobs.append(SampleJob(
            sample_id=row[S.SAMPLE_ID], path=row["path"], sha256=row[S.SHA256], tube=row[S.TUBE],
            panel=tube.panel_path, panel_tube=tube.panel_tube, strategy=tube.strategy_path,
            qc=cfg.qc.model_dump(mode="json"), gatingml=cfg.outputs.gatingml, thumbnails=cfg.outputs.thumbnails,
            bead_population=cfg.counts.bead_population, key=sample_key(row, plan, task_name),
            options={"anndata_events": cfg.outputs.anndata_max_events_per_sample if cfg.outputs.anndata else 0},
            panel_definition=getattr(tube.panel, "definition", None),
            strategy_definition=getattr(tube.strategy, "definition", None),
        ))
    return jobs


def _input_folders(plan: RunPlan) -> set[Path]:
    cfg = plan.config
    folders = {Path(p).parent for p in plan.samples.get("path", []) if p}
    for p in (cfg.manifest.path, cfg.manifest.input and cfg.manifest.input / "x",
              cfg.clinical and cfg.clinical.path, cfg.clinical and cfg.clinical.il2_cycles):
        if p:
            folders.add(Path(p).parent)
    return {f.resolve() for f in folders}


def pipeline_identity(config: PipelineConfig) -> str:
    """What makes two runs 'the same run' for resuming: the pipeline file, or the ad-hoc input folder."""
    return str(config.source) if config.source else f"ad hoc: {config.manifest.input or config.manifest.path}"


def check_output_folder(out: Path, plan: RunPlan, *, force: bool) -> None:
    """Refuse input folders, and folders holding another pipeline's results unless ``force``."""
    out = out.resolve()
    for folder in sorted(_input_folders(plan)):
        if out == folder or folder in out.parents or out in folder.parents:
            raise PipelineError(f"output folder {out} overlaps the input folder {folder}; "
                                "cytokit never writes into input folders: choose another --out")
    if out.exists() and not out.is_dir():
        raise PipelineError("output path exists and is not a folder", path=out)
    if not out.exists() or not [p for p in out.iterdir() if p.name != LOCK_FILE]:
        return
    ledger_path = out / "ledger.sqlite"
    if not ledger_path.is_file():
        if not force:
            raise PipelineError(f"output folder {out} is not empty and holds no cytokit run; "
                                "choose an empty folder or use --force")
        return
    ledger = Ledger(ledger_path)
    try:
        last = ledger.last_run()
    finally:
        ledger.close()
    if last is None:
        # a run stopped between creating the ledger and recording itself: nothing in the folder is trusted
        # (results count only through ledger rows of a recorded run), so it is this run's to continue
        log.info("output folder %s holds a ledger without any recorded run (an interrupted start); using it", out)
        return
    same = last.get("pipeline_name") == plan.config.name and last.get("pipeline") == pipeline_identity(plan.config)
    if not same and not force:
        who = f"pipeline {last.get('pipeline_name')!r} ({last.get('pipeline') or 'ad hoc'})"
        raise PipelineError(f"output folder {out} holds the results of {who}; use --force to overwrite them "
                            "or choose another --out")


def _executor_for(config: PipelineConfig, jobs: int | None, scheduler: str | None, start_method: str | None
                  ) -> Executor:
    ex = config.executor
    scheduler = scheduler or ex.scheduler
    kind = "dask" if scheduler else ex.kind
    if kind == "dask":
        return make_executor("dask", scheduler=scheduler)
    return make_executor(kind, jobs=jobs or ex.jobs, start_method=start_method)


def tube_lymphocytes(plan: RunPlan) -> dict[str, str]:
    """Tube -> its strategy's lymphocyte population (the denominator of ``pct_lymphocytes``), for the
    tubes whose strategy declares one (recorded in ``run_info.json`` and used by the tables)."""
    out = {}
    for name, t in plan.tubes.items():
        strategy = t.strategy.definition if hasattr(t.strategy, "definition") else t.strategy
        lymphocytes = getattr(strategy, "lymphocytes", None)
        if isinstance(lymphocytes, str) and lymphocytes:
            out[name] = lymphocytes
    return out


def _run_info(plan: RunPlan, config_hash: str, started: str, status: str, summary: dict[str, Any]) -> str:
    tubes = {}
    lymphocytes = tube_lymphocytes(plan)
    for name, t in sorted(plan.tubes.items()):
        strategy = t.strategy.definition if hasattr(t.strategy, "definition") else t.strategy
        comp = getattr(strategy, "compensation", "file")
        tubes[name] = {
            "panel": t.panel_path, "panel_hash": t.panel_hash, "strategy": t.strategy_path,
            "strategy_hash": t.strategy_hash,
            "compensation": {"file": "acquisition matrix ($SPILLOVER)", "file_if_present":
                             "acquisition matrix ($SPILLOVER) when present", "none": "none"}.get(comp, str(comp)),
            "transforms": _describe_transforms(strategy),
            "reagents": _reagents(t.panel, t.panel_tube),
        }
        if name in lymphocytes:  # denominator of pct_lymphocytes in this tube
            tubes[name]["lymphocytes"] = lymphocytes[name]
    info = {"cytokit_version": __version__, RUN_INFO_SCHEMA_KEY: SCHEMA_VERSION,
            "package_versions": package_versions(), "config_hash": config_hash,
            "pipeline": str(plan.config.source or "ad hoc"), "name": plan.config.name, "started": started,
            "finished": utc_now() if status != "running" else None, "status": status, "tubes": tubes, **summary}
    return json.dumps(info, indent=1, sort_keys=True)


def _describe_transforms(strategy: Any) -> str:
    t = getattr(strategy, "transforms", None)
    if t is None:
        return ""
    parts = [f"scatter: {t.scatter.name}", f"fluorescence: {t.fluorescence.name}"]
    parts += [f"{m}: {c.name}" for m, c in sorted(t.markers.items())]
    return "; ".join(parts)


def _reagents(panel: Any, tube: str | None) -> dict[str, str]:
    try:
        return dict(panel.reagents(tube)) if tube else {m: panel.fluorochrome(m) or "" for m in panel.markers}
    except CytokitError:
        return {}


def _inputs(plan: RunPlan) -> list[tuple[str, str, str, str]]:
    """(kind, name, path, sha256) of every input of the run."""
    from ..io_utils import sha256_file

    cfg = plan.config
    rows = [("fcs", r[S.SAMPLE_ID], r["path"], r[S.SHA256]) for r in plan.samples.to_dict("records")]
    for kind, path in (("pipeline", cfg.source), ("manifest", cfg.manifest.path),
                       ("clinical", cfg.clinical and cfg.clinical.path),
                       ("il2_cycles", cfg.clinical and cfg.clinical.il2_cycles)):
        if path:
            rows.append((kind, Path(path).name, str(path), sha256_file(path)))
    for name, t in sorted(plan.tubes.items()):
        rows.append(("panel", name, t.panel_path, t.panel_hash))
        rows.append(("strategy", name, t.strategy_path, t.strategy_hash))
    return rows


def run(config: PipelineConfig | str | Path, out: str | Path, *, jobs: int | None = None,
        scheduler: str | None = None, force: bool = False, recompute: bool = False,
        task: str | Callable[[SampleJob], SampleOutput] | None = None, progress: Progress | None = None,
        executor: Executor | None = None, start_method: str | None = None, stages: bool = True) -> RunSummary:
    """Run a pipeline into ``out`` (see module contract); returns a :class:`RunSummary`.

    ``config`` is a :class:`PipelineConfig`, a YAML path or a built-in name. ``jobs`` overrides the
    number of local worker processes, ``scheduler`` (``tcp://HOST:PORT``) selects Dask. ``recompute``
    ignores stored results; ``task`` replaces the per-sample task (registry name, ``module:function``
    or a picklable function); ``stages=False`` skips the cohort stages.
    """
    t0 = time.perf_counter()
    if not isinstance(config, PipelineConfig):
        config = load_pipeline(config)
    out = Path(out).expanduser().absolute()
    task_spec = task if task is not None else config.executor.task
    task_fn = resolve_task(task_spec)
    task_name = task_spec if isinstance(task_spec, str) else f"{task_fn.__module__}:{task_fn.__qualname__}"
    t_pre = time.perf_counter()
    plan = preflight(config)
    t_pre = time.perf_counter() - t_pre
    check_output_folder(out, plan, force=force)
    config_hash = config.hash()
    started = utc_now()
    lock = lock_output_folder(out)
    try:
        summary = _run_locked(plan, out, config_hash, started, t0, task_fn, task_name, jobs=jobs,
                              scheduler=scheduler, recompute=recompute, progress=progress, executor=executor,
                              start_method=start_method, stages=stages, preflight_seconds=t_pre)
        return summary
    finally:
        os.close(lock)


def lock_output_folder(out: Path) -> int:
    """Hold an exclusive lock on ``OUT/.cytokit.lock`` for the run (released by the OS even on kill -9).

    The lock file records the owner's pid. Worker processes never hold it (see
    :mod:`~cytokit.pipeline.lifecycle`); when the recorded owner is dead but the lock is still held for a
    moment (workers of a killed run exiting), this waits up to :data:`STALE_LOCK_WAIT_SECONDS`.
    """
    import fcntl

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise PipelineError(f"cannot write output: {exc.strerror or exc}", path=out) from exc
    deadline = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            owner = _lock_owner(fd)
            if owner is not None and not _pid_alive(owner):
                deadline = deadline or time.monotonic() + STALE_LOCK_WAIT_SECONDS
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                os.close(fd)
                raise PipelineError(f"the run that locked this output folder (pid {owner}) is no longer running, "
                                    "but processes it left behind still hold the lock; stop them or choose "
                                    "another --out", path=out) from None
            os.close(fd)
            who = f" (pid {owner})" if owner is not None else ""
            raise PipelineError(f"another cytokit run is writing to this output folder{who}; wait for it to "
                                "finish or choose another --out", path=out) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:  # the pid is a hint for error messages only
        pass
    return fd


def require_finished_results(out: str | Path) -> None:
    """Refuse a results folder whose last ``cytokit run`` did not finish (for ``cytokit report``/``compare``).

    Its tables would be those of an earlier run, or missing. A folder without ``run_info.json`` or without
    a run status in it (tables written by other means) is accepted.
    """
    import fcntl

    out = Path(out)
    info_path = out / "run_info.json"
    if not info_path.is_file():
        return
    try:
        status = json.loads(info_path.read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError) as exc:
        raise PipelineError(f"cannot read run_info.json: {exc}", path=out) from exc
    if status in (None, "complete"):  # None: not written by `cytokit run`
        return
    if status == "running":
        try:
            fd = os.open(out / LOCK_FILE, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise PipelineError("a cytokit run is still writing to this results folder; wait for it to finish",
                                    path=out) from None
            finally:
                os.close(fd)
        status = "interrupted"
    raise PipelineError(f"the last cytokit run into this folder did not finish (status: {status}); its tables "
                        "may be those of an earlier run or missing. Run `cytokit run` again to complete it",
                        path=out)


def _lock_owner(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_locked(plan: RunPlan, out: Path, config_hash: str, started: str, t0: float,
                task_fn: Callable[[SampleJob], SampleOutput], task_name: str, *, jobs: int | None,
                scheduler: str | None, recompute: bool, progress: Progress | None, executor: Executor | None,
                start_method: str | None, stages: bool, preflight_seconds: float = 0.0) -> RunSummary:
    config = plan.config
    stale = remove_stale_temporaries(out)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    ledger = open_ledger(out)
    remove_switched_off_outputs(out, config, ledger)
    store = ResultsStore(out, ledger)
    all_jobs = make_jobs(plan, task_name)
    progress = progress or LogProgress()
    inputs = _inputs(plan)
    try:
        own_executor = executor is None
        executor = executor or _executor_for(config, jobs, scheduler, start_method)
        atomic_write_text(out / "run_info.json", _run_info(plan, config_hash, started, "running", {}))
        run_id = ledger.start_run(pipeline=pipeline_identity(config), pipeline_name=config.name,
                                  config_hash=config_hash, cytokit_version=__version__,
                                  package_versions=package_versions(), executor=executor.describe(),
                                  inputs=inputs)
        _forget_stale(store, {j.sample_id for j in all_jobs}, {Path(j.path) for j in all_jobs})
        states = ledger.samples()
        todo = [j for j in all_jobs if recompute or not store.trusted(j.sample_id, j.key, states.get(j.sample_id))]
        skipped = len(all_jobs) - len(todo)
        log.info("%s: %d sample(s), %d to analyse with %s", config.name, len(all_jobs), len(todo), executor.describe())
        by_id = {j.sample_id: j for j in todo}
        failures: dict[str, str] = {}
        progress.start(len(todo), skipped)

        def mark(status: str) -> None:
            atomic_write_text(out / "run_info.json", _run_info(plan, config_hash, started, status, {}))

        timings = {"preflight": preflight_seconds, "store": 0.0}
        t_map = time.perf_counter()
        outputs = executor.map(task_fn, todo)
        try:
            for output in outputs:
                t_save = time.perf_counter()
                store.save(by_id[output.sample_id], output, run_id)
                timings["store"] += time.perf_counter() - t_save
                if output.status != "ok":
                    failures[output.sample_id] = output.error
                progress.update(output)
            t_save = time.perf_counter()
            store.commit()  # the last group of finished samples
            timings["store"] += time.perf_counter() - t_save
        except PipelineError as exc:
            outputs.close()  # stops the workers (see Executor.map)
            _commit_finished(store)
            _abort(ledger, run_id, exc, mark)
            raise PipelineError(f"{exc}\nthe run stopped; results stored before this point are kept and "
                                "will be reused when the run is started again") from exc
        except BaseException as exc:
            outputs.close()
            _commit_finished(store)
            _abort(ledger, run_id, exc, mark)
            raise
        finally:
            progress.finish()
            store.close()
            if own_executor:
                executor.close()
        timings["analyse"] = time.perf_counter() - t_map
        try:
            summary = _finish(plan, out, store, all_jobs, failures, skipped, inputs, stages, timings,
                              recompute=recompute)
        except BaseException as exc:  # e.g. the disk filled up while writing the tables, or SIGTERM
            _abort(ledger, run_id, exc, mark)
            raise
        summary.config_hash = config_hash
        summary.seconds = time.perf_counter() - t0
        counts = {"n_samples": summary.total, "n_ok": summary.ok, "n_failed": summary.failed,
                  "n_skipped": summary.skipped, "failures": summary.failures,
                  "stage_errors": summary.stage_errors, "outputs_not_written": summary.output_errors,
                  "stages_reused": summary.stages_reused, "stages_run": summary.stages_run,
                  "outputs_reused": summary.outputs_reused, "outputs_run": summary.outputs_run,
                  "timings_s": {k: round(v, 3) for k, v in summary.timings.items()}}
        atomic_write_text(out / "run_info.json", _run_info(plan, config_hash, started, "complete", counts))
        ledger.finish_run(run_id, status="complete", n_ok=summary.ok, n_failed=summary.failed,
                          n_skipped=summary.skipped)
        return summary
    finally:
        ledger.close()


def _finish(plan: RunPlan, out: Path, store: ResultsStore, jobs: list[SampleJob], failures: dict[str, str],
            skipped: int, inputs: list[tuple[str, str, str, str]], stages: bool, timings: dict[str, float], *,
            recompute: bool = False) -> RunSummary:
    """After the samples: collect the trusted results, write tables and outputs, run cohort stages.

    Stored results are read one at a time while the tables are assembled (never all held at once)."""
    t = time.perf_counter()
    states = store.ledger.samples()
    results: Mapping[str, dict[str, Any]] = store.verified({j.sample_id: j.key for j in jobs}, states)
    for job in jobs:
        if job.sample_id not in results:
            failures[job.sample_id] = states.get(job.sample_id, {}).get(S.ERROR) or "no valid stored result"
    summary = RunSummary(out, len(jobs), len(results), len(failures), skipped, dict(sorted(failures.items())))
    cohort_errors: dict[str, str] = {}
    if plan.config.outputs.cohort_gating and results:  # before the tables: they report the re-fits
        from .cohort import run_cohort_gating

        try:
            analysed = plan.samples[plan.samples[S.SAMPLE_ID].isin(list(results))]
            results = run_cohort_gating(out, samples=analysed, stored=results,
                                        thumbnails=plan.config.outputs.thumbnails,
                                        gatingml=plan.config.outputs.gatingml,
                                        records=True,
                                        **plan.config.cohort_gating.model_dump()).apply(results)
        except Exception as exc:  # noqa: BLE001 - like a cohort stage: recorded (exit 1), the tables still written
            log.error("cohort gating failed: %s", exc)
            removed = remove_cohort_gating_outputs(out)  # an earlier run's re-fits: not this run's tables
            if removed:
                log.warning("removed the cohort gating outputs of an earlier run: %s", ", ".join(removed))
            cohort_errors["cohort_gating"] = str(exc) if isinstance(exc, CytokitError) else f"{type(exc).__name__}: {exc}"
        timings["cohort_gating"] = time.perf_counter() - t
        t = time.perf_counter()
    populations, samples = assemble_tables(plan.config, plan.samples, results, states, plan.clinical,
                                           jobs=min(8, os.cpu_count() or 1), lymphocytes=tube_lymphocytes(plan))
    timings["assemble"] = time.perf_counter() - t
    t = time.perf_counter()
    exports = write_outputs(out, plan, populations, samples, results, inputs, force=recompute)
    summary.output_errors, summary.outputs_reused, summary.outputs_run = exports.errors, exports.reused, exports.run
    timings["outputs"] = time.perf_counter() - t
    if stages:
        t = time.perf_counter()
        report = run_cohort_stages(plan, out, force=recompute)
        summary.stage_errors, summary.stages_reused, summary.stages_run = report.errors, report.reused, report.run
        timings["stages"] = time.perf_counter() - t
    summary.stage_errors = {**cohort_errors, **summary.stage_errors}
    summary.timings = timings
    return summary


def write_table_with_inputs(df: pd.DataFrame, stem: Path, formats: tuple[str, ...], inputs_digest: str) -> None:
    """Write a table (atomically); its Parquet file carries ``cytokit.inputs`` metadata (input -> sha256).

    CSV rows carry the FCS file's ``sha256`` column; the full input list is ``OUT/inputs.csv``.
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    if "csv" in formats:
        write_table(df, stem, formats=("csv",))
    if "parquet" in formats:
        table = pa.Table.from_pandas(df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"cytokit.inputs"] = inputs_digest.encode()
        buf = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(meta), buf)
        atomic_write_bytes(stem.with_suffix(".parquet"), buf.getvalue())


def _abort(ledger: Ledger, run_id: int, exc: BaseException, run_info: Callable[[str], None] | None = None) -> None:
    """Record in the ledger (and ``run_info.json``) that the run stopped: interrupted or failed."""
    status = "interrupted" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "failed"
    try:
        ledger.finish_run(run_id, status=status, n_ok=0, n_failed=0, n_skipped=0, message=str(exc)[:2000])
    except CytokitError:
        log.error("could not record the failure in the ledger either")
    if run_info is not None:
        try:
            run_info(status)
        except CytokitError:
            log.error("could not record the failure in run_info.json either")


def _commit_finished(store: ResultsStore) -> None:
    """On the way out of an interrupted or failed run: record the samples finished so far (group commit)."""
    try:
        n = store.commit()
    except CytokitError as exc:  # e.g. the disk is full: those samples are analysed again on resume
        log.error("%d finished sample(s) could not be recorded and will be analysed again: %s", store.pending, exc)
        return
    if n:
        log.info("recorded %d finished sample(s) before stopping", n)


def remove_cohort_gating_outputs(out: Path) -> list[str]:
    """Delete what the cohort gating stage wrote (``gating_cohort/``, every ``samples/<id>/gates_cohort.json``,
    ``gates_cohort.png`` and ``gates_cohort.xml``, which every per-event output, the reports and the FlowJo
    workspace use instead of the stored fit, ``gates.png`` / ``gates.xml``); returns the paths removed, relative to ``out``."""
    removed = []
    folder = out / S.COHORT_DIR
    if folder.is_dir():
        shutil.rmtree(folder)
        removed.append(f"{S.COHORT_DIR}/")
    return removed + _remove_cohort_thumbnails(out)


def _remove_cohort_thumbnails(out: Path, names: tuple[str, ...] = (S.GATES_COHORT_JSON, S.GATES_COHORT_PNG,
                                                                   S.GATES_COHORT_XML)
                              ) -> list[str]:
    removed = []
    for name in names:
        files = sorted((out / S.SAMPLES_DIR).glob(f"*/{name}"))
        for f in files:
            f.unlink(missing_ok=True)
        if files:
            removed.append(f"{S.SAMPLES_DIR}/*/{name} ({len(files)})")
    return removed


def remove_switched_off_outputs(out: Path, config: PipelineConfig, ledger: Ledger) -> list[str]:
    """Delete the outputs of an earlier run of this results folder that the configuration no longer
    produces (a cohort stage, review export or the cohort gating switched off, thumbnails switched off
    or Gating-ML switched off under cohort gating): left in place they would read as this run's. Only in a folder that holds an
    earlier cytokit run. Returns the paths removed, relative to ``out``."""
    if ledger.last_run() is None:
        return []
    outputs = config.outputs
    removed: list[str] = []
    for name, (switch, _fn, folder) in STAGES.items():
        if not getattr(outputs, switch) and (out / folder).is_dir():
            shutil.rmtree(out / folder)
            ledger.forget_stage(name)
            removed.append(f"{folder}/")
    for name, (patterns, _stored) in EXPORT_FILES.items():
        if getattr(outputs, name):
            continue
        files = sorted(p for pattern in patterns for p in out.glob(pattern) if p.is_file())
        for f in files:
            f.unlink()
            removed.append(f.name)
        if files:
            ledger.forget_stage(name)
    if not outputs.cohort_gating:
        removed += remove_cohort_gating_outputs(out)
    else:
        removed += _remove_cohort_thumbnails(out, tuple(name for name, on in ((S.GATES_COHORT_PNG, outputs.thumbnails),
                                                                            (S.GATES_COHORT_XML, outputs.gatingml))
                                                       if not on))
    if removed:
        log.warning("removed the outputs of an earlier run that this configuration no longer produces: %s",
                    ", ".join(removed))
    return removed


def _forget_stale(store: ResultsStore, keep: set[str], inputs: set[Path]) -> None:
    """Samples no longer in the manifest: drop them from the ledger so they never reach the tables, and
    remove their folders under ``samples/`` (:func:`remove_stale_sample_folders`) so no per-event reader finds
    them either."""
    stale = store.ledger.forget_samples(keep)
    if stale:
        log.info("%d sample(s) of earlier runs are no longer in the manifest and are ignored: %s",
                 len(stale), ", ".join(stale[:5]))
    removed = remove_stale_sample_folders(store.out, keep, inputs)
    if removed:
        log.warning("removed %d sample folder(s) of earlier runs whose samples are not in the manifest: %s",
                    len(removed), ", ".join(removed[:5]) + (" ..." if len(removed) > 5 else ""))


def remove_stale_sample_folders(out: Path, keep: set[str], inputs: set[Path]) -> list[str]:
    """Delete ``out/samples/<id>/`` folders of samples not in ``keep`` (the current manifest's sample ids), so
    ``load_gated_events``, the exports and the reports cannot read a sample the tables no longer have (after
    the manifest shrank, or ``--force`` over another run). Only folders cytokit wrote (holding its
    ``result.json``) and holding none of ``inputs`` (the manifest's files) are removed; returns their names."""
    root = out / S.SAMPLES_DIR
    if not root.is_dir():
        return []
    wanted = {safe_name(s) for s in keep}
    resolved = {p.resolve() for p in inputs}
    removed = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in wanted):
        if not (folder / S.RESULT_FILE).is_file():
            continue  # not a cytokit sample folder: never touched
        if any(f.resolve() in resolved for f in folder.rglob("*") if f.is_file()):
            log.warning("%s: not a sample of this manifest, but it holds an input file; left in place", folder)
            continue
        shutil.rmtree(folder)
        removed.append(folder.name)
    return removed


def write_outputs(out: Path, plan: RunPlan, populations: pd.DataFrame, samples: pd.DataFrame,
                  results: Mapping[str, dict[str, Any]], inputs: list[tuple[str, str, str, str]], *,
                  force: bool = False) -> StageReport:
    """Tables (Parquet/CSV), clinical copies, input list, then the FlowJo/AnnData extras (reused when
    unchanged unless ``force``, see :mod:`~cytokit.pipeline.outputs`).

    Returns the extras' report: ``errors`` ({output: error}) for those that could not be written,
    ``reused`` and ``run``."""
    formats = tuple(plan.config.outputs.tables)
    table = pd.DataFrame(inputs, columns=["kind", "name", "path", S.SHA256])
    table = table.sort_values(["kind", "name"], kind="stable").reset_index(drop=True)
    digest = json.dumps({f"{k}:{n}": h for k, n, h in zip(table["kind"], table["name"], table[S.SHA256])},
                        sort_keys=True)
    for df, stem in ((populations, "populations"), (samples, "samples")):
        write_table_with_inputs(df, out / stem, formats, digest)
    write_table(table, out / "inputs", formats=("csv",))
    clinical = plan.config.clinical
    if clinical is not None:
        copy_clinical_table(Path(clinical.path), out / "clinical.csv", clinical.rename_map())
        if clinical.il2_cycles:
            atomic_write_bytes(out / "il2_cycles.csv", Path(clinical.il2_cycles).read_bytes())
    return write_extra_outputs(out, plan, samples, results, force=force)


def copy_clinical_table(src: Path, dest: Path, rename: dict[str, str] | str) -> None:
    """Copy the clinical table into the results folder under the store's column names.

    ``rename`` maps the site table's column names to the store's (``clinical.columns`` and the lymphocyte
    count, cells/µL, as ``lymphocytes_per_uL``; a plain string names the lymphocyte column only). A table
    that needs no renaming is copied byte for byte.
    """
    if isinstance(rename, str):
        rename = {rename: STORE_LYMPHOCYTES_COLUMN} if rename != STORE_LYMPHOCYTES_COLUMN else {}
    if not rename:
        atomic_write_bytes(dest, src.read_bytes())
        return
    table = pd.read_csv(src, dtype=str, keep_default_na=False)
    replaced = [new for old, new in rename.items() if new in table.columns and old in table.columns]
    if replaced:
        log.warning("%s: column(s) %s replaced by the configured column(s) in the results copy", src, replaced)
        table = table.drop(columns=replaced)
    table = table.rename(columns=rename)
    atomic_write_text(dest, table.to_csv(index=False, lineterminator="\n"))


STORE_LYMPHOCYTES_COLUMN = LYMPHOCYTES_PER_UL

__all__ = ["run", "RunSummary", "check_output_folder", "package_versions", "copy_clinical_table",
           "require_finished_results"]
