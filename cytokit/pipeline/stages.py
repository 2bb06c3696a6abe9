"""Cohort stages run after the per-sample analysis: trial comparisons, clustering, reports.

Contract
--------
:data:`STAGES` is the registry (name -> (switch in ``outputs``, function ``(plan, out) -> None``, output
folder)) in run order; a stage runs when its switch is on. :func:`run_cohort_stages` runs them and returns
a :class:`StageReport` (failed stages with their error, stages reused, stages recomputed); failures are
logged, never silently dropped, and the per-sample results and tables written before stay valid.

Stages are incremental (:func:`reuse_or_run`, also used by the review exports of
:mod:`cytokit.pipeline.outputs`). A stage's *fingerprint* is the sha256 of everything it reads: the tables and
clinical copies in the results folder, the sha256 of every stored per-sample result (its gates), the
stage's own configuration block (with the content of any file it names), the code (every file of the
installed ``cytokit`` package and the versions of the libraries the stages use) and the outputs of the
stages that ran before it. After a stage succeeds, its fingerprint and the sha256 of each file in its
output folder are recorded in the ledger (table ``stages``). The next run reuses the stage (does not run
it) only when the fingerprint is the same *and* its output folder still holds exactly the recorded files;
otherwise, or with ``force``, the stage runs again. A failed stage is never recorded, so it runs again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from ..errors import CytokitError
from ..results import schema as S
from ..results.schema import (CLINICAL, CLUSTERING_DIR, IL2_CYCLES, POPULATIONS, REPORTS_DIR, SAMPLES,
                              TRIAL_DIR)
from .ledger import Ledger, open_ledger
from .preflight import RunPlan

log = logging.getLogger(__name__)

#: files of the results folder that every cohort stage reads
STAGE_INPUT_FILES = (f"{POPULATIONS}.parquet", f"{POPULATIONS}.csv", f"{SAMPLES}.parquet", f"{SAMPLES}.csv",
                     f"{CLINICAL}.csv", f"{IL2_CYCLES}.csv")
#: libraries whose version can change a stage's output
STAGE_LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn", "statsmodels", "matplotlib", "seaborn", "jinja2",
                   "weasyprint", "pyarrow")


def _trial(plan: RunPlan, out: Path) -> None:
    from ..trial import run_trial

    run_trial(out, plan.config.trial, force=True)


def _clustering(plan: RunPlan, out: Path) -> None:
    from ..cluster.params import ClusterParams
    from ..cluster.stage import run_clustering

    options: dict[str, Any] = dict(plan.config.clustering or {})
    params = options.pop("params", None)
    run_clustering(out, params=ClusterParams(**params) if params else None, force=True, **options)


def _reports(plan: RunPlan, out: Path) -> None:
    from ..report import build_reports

    build_reports(out, options=plan.config.report)


def _stage_config(plan: RunPlan, name: str) -> Any:
    value = {"trial": plan.config.trial, "clustering": plan.config.clustering, "reports": plan.config.report}[name]
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


STAGES: dict[str, tuple[str, Callable[[RunPlan, Path], None], str]] = {
    "trial": ("trial", _trial, TRIAL_DIR),
    "clustering": ("clustering", _clustering, CLUSTERING_DIR),
    "reports": ("reports", _reports, REPORTS_DIR),
}


@dataclass
class StageReport:
    """What :func:`run_cohort_stages` did: ``errors`` (stage -> message), ``reused`` and ``run`` (names)."""

    errors: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over every file of the installed ``cytokit`` package (path + content) and the versions of
    :data:`STAGE_LIBRARIES`: a code change, even without a version bump, changes it."""
    from importlib import metadata

    from .. import __version__

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(__version__.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix not in (".pyc", ".pyo")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for lib in STAGE_LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=absent".encode())
    return h.hexdigest()


def _files_in(value: Any) -> dict[str, str]:
    """sha256 of every existing file named by a string anywhere in a configuration value."""
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for v in value.values():
            found.update(_files_in(v))
    elif isinstance(value, (list, tuple)):
        for v in value:
            found.update(_files_in(v))
    elif isinstance(value, str) and value and len(value) < 4096:
        try:
            path = Path(value).expanduser()
            if path.is_file():
                found[str(path.resolve())] = _sha256_file(path)
        except OSError:
            pass
    return found


def folder_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below ``folder`` (temporary ``.*`` files excluded)."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): _sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _table_digest(path: Path) -> str:
    """sha256 of a table file's content; for Parquet the data only, without the schema metadata (the
    ``cytokit.inputs`` record names the pipeline file, whose edits need not concern every stage)."""
    if path.suffix != ".parquet":
        return _sha256_file(path)
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table = table.replace_schema_metadata({k: v for k, v in (table.schema.metadata or {}).items()
                                           if k != b"cytokit.inputs"})
    buf = io.BytesIO()
    with pa.ipc.new_stream(buf, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def data_digest(out: Path, ledger: Ledger) -> dict[str, str]:
    """What every stage reads from the results folder: the tables, clinical copies and stored results."""
    files = {name: _table_digest(out / name) for name in STAGE_INPUT_FILES if (out / name).is_file()}
    results = {sid: row.get("result_sha256") or "" for sid, row in sorted(ledger.samples().items())
               if row.get(S.STATUS) == "ok"}
    files["stored_results"] = hashlib.sha256(json.dumps(results, sort_keys=True).encode()).hexdigest()
    return files


def stage_fingerprint(name: str, plan: RunPlan, data: dict[str, str], upstream: dict[str, str]) -> tuple[str, dict]:
    """(fingerprint, the inputs it was computed from) of one stage."""
    config = _stage_config(plan, name)
    inputs = {"stage": name, "data": data, "config": config, "config_files": _files_in(config),
              "code": code_digest(), "upstream": upstream}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest(), inputs


def _outputs_hash(digest: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(digest, sort_keys=True).encode()).hexdigest()


def reuse_or_run(ledger: Ledger, name: str, fingerprint: str, inputs: dict, outputs: Callable[[], dict[str, str]],
                 produce: Callable[[], None], *, force: bool = False, label: str = "") -> tuple[bool, str]:
    """One incremental step (a cohort stage or a review export) through the ledger's ``stages`` table.

    ``outputs()`` returns {file: sha256} of what the step writes. The step is reused (``produce`` not
    called) when the recorded fingerprint equals ``fingerprint`` and the recorded outputs hash equals
    the files now present; otherwise ``produce()`` runs (its exceptions propagate, leaving no record, so
    a failed step runs again next time) and the new fingerprint and outputs are recorded.
    ``label`` names the step in log lines (default: ``name``). Returns (reused, outputs hash)."""
    label = label or name
    before = ledger.stages().get(name)
    digest = outputs()
    if (not force and before and before["fingerprint"] == fingerprint
            and before["outputs_sha256"] == _outputs_hash(digest)):
        log.info("%s: reused (inputs, configuration and code unchanged since %s)", label, before["finished"])
        return True, _outputs_hash(digest)
    why = ("forced" if force else "first run" if not before else
           "inputs changed" if before["fingerprint"] != fingerprint else "outputs missing or altered")
    log.info("%s: running (%s)", label, why)
    ledger.forget_stage(name)  # a step that fails half-way must not leave the old record valid
    produce()
    done = _outputs_hash(outputs())
    ledger.record_stage(name, fingerprint, done, json.dumps(inputs, sort_keys=True, default=str))
    return False, done


def run_cohort_stages(plan: RunPlan, out: Path, *, force: bool = False) -> StageReport:
    """Run (or reuse, see module contract) the enabled cohort stages in order."""
    report = StageReport()
    outputs = plan.config.outputs
    enabled = [(n, fn, folder) for n, (switch, fn, folder) in STAGES.items() if getattr(outputs, switch)]
    if not enabled:
        return report
    ledger = open_ledger(out)
    try:
        data = data_digest(out, ledger)
        upstream: dict[str, str] = {}
        for name, fn, folder in enabled:
            fingerprint, inputs = stage_fingerprint(name, plan, data, upstream)
            try:
                reused, upstream[name] = reuse_or_run(
                    ledger, name, fingerprint, inputs, partial(folder_digest, out / folder), partial(fn, plan, out),
                    force=force, label=f"cohort stage {name}")
            except Exception as exc:  # noqa: BLE001 - a stage's defect must not lose the run (recorded, exit 1)
                log.error("cohort stage %s failed: %s", name, exc)
                report.errors[name] = str(exc) if isinstance(exc, CytokitError) else f"{type(exc).__name__}: {exc}"
                upstream[name] = "failed"
                continue
            (report.reused if reused else report.run).append(name)
    finally:
        ledger.close()
    return report
