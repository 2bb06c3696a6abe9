"""Run-level outputs beyond the tidy tables: the FlowJo review workspace and the AnnData export.

Contract: :data:`EXTRA_OUTPUTS` is the registry (switch in ``outputs`` -> writer ``(out, plan, samples,
results) -> None``). :func:`write_extra_outputs` runs the enabled writers and returns a
:class:`~cytokit.pipeline.stages.StageReport`: exports that failed (``errors``, logged; the tables are
already written), reused and rewritten.

The exports are incremental like the cohort stages (:func:`~cytokit.pipeline.stages.reuse_or_run`, ledger
table ``stages``): an export's fingerprint covers the samples table, every FCS file's path and sha256,
the stored per-sample file it reads (:data:`EXPORT_FILES`: ``gates.xml``, ``events.npz``), the
``outputs`` configuration and the code; it is not rewritten when the fingerprint and the files it wrote
(sha256) are unchanged.

* ``OUT/workspace.wsp``: one FlowJo 10 workspace with every analysed sample and its fitted gates, below
  the sample's QC gates (root ``QC pass``), so its counts are the tables' counts; each population's
  FlowJo annotation is its row's review split (:func:`review_annotation`: ``REVIEW: <review_flags>`` when
  the estimate may be wrong, then ``notes: <notes>``) and each sample has the keyword
  ``CYTOKIT_QC_FLAGS`` (its ``qc_flags``).
* ``OUT/events_<tube>.h5ad`` (AnnData): per tube, up to ``anndata_max_events_per_sample`` events per sample
  on the transformed scale (``X``, float32; ``var_names`` = markers), ``obs`` = sample_id, patient,
  visit, arm, tube and the deepest gated population of each event (``population``); ``uns["populations"]``
  = the populations table's rows of those samples (``sample_id``, ``population``, ``parent``, ``count``,
  ``pct_parent`` %, ``pct_lymphocytes`` %, ``flags`` and their split ``review`` / ``review_flags`` /
  ``notes``, ``est_error_pp``, ``qc_flags``), so a population's events are never read without its review
  flags; ``uns["scale"]`` names the scale of ``X``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import CytokitError, PipelineError
from ..io_utils import atomic_write_bytes, safe_name, sha256_file
from ..results import ResultsFolder
from ..results import schema as S
from ..results.schema import GATES_XML, SAMPLES_DIR
from .ledger import open_ledger
from .preflight import RunPlan
from .stages import StageReport, code_digest, reuse_or_run

log = logging.getLogger(__name__)

EVENTS_FILE = "events.npz"
#: above this many events in total the FlowJo workspace is written without counts (headers only)
WORKSPACE_COUNT_EVENTS = 20_000_000


#: FlowJo keyword of each sample of the workspace export holding its ``qc_flags``
QC_KEYWORD = "CYTOKIT_QC_FLAGS"


def review_annotation(row: Mapping[str, Any]) -> str:
    """A population row's review split as one line of text (the FlowJo annotation of the population):
    ``REVIEW: <review_flags>`` when ``review`` is True, then ``notes: <notes>``; ``""`` without either."""
    parts = []
    review = row.get(S.REVIEW)
    if review is not None and not pd.isna(review) and bool(review):
        parts.append(f"REVIEW: {row.get(S.REVIEW_FLAGS) or ''}")
    notes = row.get(S.NOTES)
    if isinstance(notes, str) and notes:
        parts.append(f"notes: {notes}")
    return " | ".join(parts)


def _workspace(out: Path, plan: RunPlan, samples: pd.DataFrame, results: Mapping[str, dict[str, Any]]) -> None:
    """One FlowJo workspace over every analysed sample, built from the stored Gating-ML of each sample
    (which starts with the QC gates, see :func:`~cytokit.pipeline.analyse.export_gatingml`); for a sample the
    cohort gating re-fitted, its ``gates_cohort.xml``, so the workspace counts what the tables count.

    The FCS files are referenced, not copied. Up to :data:`WORKSPACE_COUNT_EVENTS` events in total, the
    files are re-read so the workspace carries cytokit's counts; above that only headers are read.
    """
    from ..fcs import read_fcs
    from ..flowjo.writer import write_workspace
    from ..gatingml import read_gatingml
    from .preflight import read_header_sample

    from ..flowjo.writer import WorkspaceEntry
    from ..results import read_table

    paths = plan.samples.set_index(S.SAMPLE_ID)["path"]
    ok = samples[samples[S.STATUS] == "ok"].sort_values(S.SAMPLE_ID, kind="stable")
    with_counts = float(pd.to_numeric(ok[S.N_EVENTS], errors="coerce").fillna(0).sum()) <= WORKSPACE_COUNT_EVENTS
    populations = read_table(out, S.POPULATIONS)  # written before the exports (runner.write_outputs)
    rows = populations.groupby(populations[S.SAMPLE_ID].astype(str)) if populations is not None else None
    entries = []
    for sid, qc_flags in zip(ok[S.SAMPLE_ID], ok[S.QC_FLAGS] if S.QC_FLAGS in ok else [""] * len(ok)):
        gml = ResultsFolder(out).reported_gates(str(sid), results.get(str(sid))).gatingml  # a cohort re-fit's, if any
        if gml.is_file():
            sample = read_fcs(paths[sid]) if with_counts else read_header_sample(paths[sid])
            notes = {}
            if rows is not None and str(sid) in rows.groups:
                notes = {str(r[S.POPULATION]): review_annotation(r)
                         for r in rows.get_group(str(sid)).to_dict("records")}
            entries.append(WorkspaceEntry(sample, read_gatingml(gml), annotations=notes,
                                          keywords={QC_KEYWORD: "" if pd.isna(qc_flags) else str(qc_flags)}))
    if not entries:
        raise PipelineError("no sample has stored Gating-ML gates (outputs.gatingml is off or every sample "
                            "failed)", path=out / "workspace.wsp")
    write_workspace(out / "workspace.wsp", entries, with_counts=with_counts)


#: the populations table's columns an events export carries in ``uns["populations"]``
EXPORT_POPULATION_COLUMNS: tuple[str, ...] = (
    S.SAMPLE_ID, S.POPULATION, S.PARENT, S.COUNT, S.PCT_PARENT, S.PCT_LYMPHOCYTES, S.FLAGS, *S.REVIEW_COLUMNS,
    S.EST_ERROR_PP, S.QC_FLAGS)


def _review_rows(populations: pd.DataFrame, sample_ids: list[str]) -> pd.DataFrame:
    """The populations table's rows of ``sample_ids`` (columns :data:`EXPORT_POPULATION_COLUMNS` that it has),
    with plain dtypes h5ad stores (text, bool, float)."""
    rows = populations[populations[S.SAMPLE_ID].astype(str).isin(sample_ids)]
    rows = rows[[c for c in EXPORT_POPULATION_COLUMNS if c in rows.columns]].reset_index(drop=True)
    out = {}
    for col in rows.columns:
        kind = S.COLUMNS[col].kind if col in S.COLUMNS else "text"
        if col == S.REVIEW:
            out[col] = rows[col].fillna(False).astype(bool).to_numpy()
        elif kind == "text":
            out[col] = rows[col].fillna("").astype(str).to_numpy(dtype=object)
        else:
            out[col] = pd.to_numeric(rows[col], errors="coerce").astype(float).to_numpy()
    return pd.DataFrame(out)


def _reported_labels(out: Path, sample_id: str, result: dict[str, Any] | None, labels: np.ndarray) -> np.ndarray:
    """The per-event population labels of a sample's stored events export (``events.npz``, written with the
    per-sample fit) under the gates its tables report (:meth:`~cytokit.results.ResultsFolder.reported_gates`):
    ``labels`` as stored, or, for a sample the cohort gating re-fitted, re-evaluated on the same events (the
    file's chain re-run, the same reproducible rows) with the re-fitted gates."""
    from ..gating.fit_state import evaluate_stored
    from .analyse import deepest_labels, subsample_rows
    from .events import prepared_from_store

    reported = ResultsFolder(out).reported_gates(sample_id, result)
    if not reported.refitted:
        return labels
    prepared = prepared_from_store(out, sample_id)[0]
    sha256 = str((result if result is not None else ResultsFolder(out).sample_result(sample_id))[S.SHA256] or "")
    rows = subsample_rows(sha256, prepared.n_events, len(labels))
    return deepest_labels(evaluate_stored(reported.records(), prepared), rows)


def _anndata(out: Path, plan: RunPlan, samples: pd.DataFrame, results: Mapping[str, dict[str, Any]]) -> None:
    try:
        import anndata
    except ImportError:
        raise PipelineError("the AnnData export needs the optional extra: pip install 'cytokit[anndata]'") from None
    from ..results import read_table

    populations = read_table(out, S.POPULATIONS)  # written before the exports (runner.write_outputs)
    ok = samples[samples[S.STATUS] == "ok"].sort_values(S.SAMPLE_ID, kind="stable")
    for tube, group in ok.groupby(S.TUBE, sort=True):
        blocks, obs, markers = [], [], None
        for row in group.to_dict("records"):
            path = out / "samples" / safe_name(row[S.SAMPLE_ID]) / EVENTS_FILE
            if not path.is_file():
                continue
            with np.load(path, allow_pickle=False) as npz:
                X, names, labels = npz["X"], [str(m) for m in npz["markers"]], npz["population"]
            labels = _reported_labels(out, str(row[S.SAMPLE_ID]), results.get(str(row[S.SAMPLE_ID])), labels)
            if markers is None:
                markers = names
            if names != markers:  # same tube, different channel set: align on the first sample's markers
                idx = {m: i for i, m in enumerate(names)}
                X = np.column_stack([X[:, idx[m]] if m in idx else np.full(len(X), np.nan, np.float32)
                                     for m in markers])
            blocks.append(X.astype(np.float32))
            obs.append(pd.DataFrame({S.SAMPLE_ID: row[S.SAMPLE_ID], S.PATIENT: row.get(S.PATIENT, ""),
                                     S.VISIT: row.get(S.VISIT, ""), S.ARM: row.get(S.ARM, ""), S.TUBE: tube,
                                     S.POPULATION: [str(v) for v in labels]}))
        if not blocks:
            continue
        o = pd.concat(obs, ignore_index=True)
        o.index = [f"{s}:{i}" for s, i in zip(o[S.SAMPLE_ID], o.groupby(S.SAMPLE_ID).cumcount())]
        adata = anndata.AnnData(X=np.vstack(blocks), obs=o.astype("category"),
                                var=pd.DataFrame(index=list(markers or [])))
        adata.uns["scale"] = "transformed (strategy transforms, e.g. logicle 0..1)"
        if populations is not None:
            adata.uns[S.POPULATIONS] = _review_rows(populations, list(group[S.SAMPLE_ID]))
        target = out / f"events_{safe_name(str(tube))}.h5ad"
        tmp = target.with_name(f".{target.name}.writing")
        try:
            adata.write_h5ad(tmp)
            atomic_write_bytes(target, tmp.read_bytes())
        finally:
            tmp.unlink(missing_ok=True)


EXTRA_OUTPUTS: dict[str, Callable[[Path, RunPlan, pd.DataFrame, Mapping[str, dict[str, Any]]], None]] = {
    "flowjo_workspace": _workspace,
    "anndata": _anndata,
}


#: per export of :data:`EXTRA_OUTPUTS`: (files it writes in OUT, glob patterns; the stored file of each
#: analysed sample it reads, in ``OUT/samples/<sample_id>/``)
EXPORT_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "flowjo_workspace": (("workspace.wsp",), GATES_XML),
    "anndata": (("events_*.h5ad",), EVENTS_FILE),
}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def export_fingerprint(name: str, out: Path, plan: RunPlan, samples: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """(fingerprint, the inputs it was computed from) of one review export (see module contract)."""
    reads = EXPORT_FILES.get(name, ((), ""))[1]
    ok = sorted(samples.loc[samples[S.STATUS] == "ok", S.SAMPLE_ID]) if S.STATUS in samples else []
    stored = {}
    for sid in ok:
        path = out / SAMPLES_DIR / safe_name(sid) / reads
        stored[sid] = sha256_file(path) if reads and path.is_file() else ""
        refit = out / SAMPLES_DIR / safe_name(sid) / S.GATES_COHORT_JSON  # the gates the tables report, if re-fitted
        if refit.is_file():
            stored[sid] += ":" + sha256_file(refit)
    fcs = [(str(r[S.SAMPLE_ID]), str(r.get("path", "")), str(r.get(S.SHA256, "")))
           for r in plan.samples.to_dict("records")]
    tables = sorted(p for p in out.glob(f"{S.POPULATIONS}.*") if p.suffix in (".csv", ".parquet"))
    inputs = {"output": name, "samples_table": hashlib.sha256(samples.to_csv(index=False).encode()).hexdigest(),
              "populations_table": _digest({p.name: sha256_file(p) for p in tables}),
              "fcs": _digest(fcs), "stored": _digest(stored),
              "config": plan.config.outputs.model_dump(mode="json"), "code": code_digest()}
    return _digest(inputs), inputs


def export_outputs(name: str, out: Path) -> dict[str, str]:
    """{file: sha256} of the files an export wrote in ``out``."""
    patterns = EXPORT_FILES.get(name, ((), ""))[0]
    return {p.name: sha256_file(p) for pattern in patterns for p in sorted(out.glob(pattern)) if p.is_file()}


def write_extra_outputs(out: Path, plan: RunPlan, samples: pd.DataFrame,
                        results: Mapping[str, dict[str, Any]], *, force: bool = False) -> StageReport:
    """Write (or reuse, see module contract) the enabled exports of :data:`EXTRA_OUTPUTS`; ``force``
    rewrites them. Failed exports are in the report's ``errors`` ({output: error})."""
    report = StageReport()
    enabled = [(name, writer) for name, writer in EXTRA_OUTPUTS.items() if getattr(plan.config.outputs, name)]
    if not enabled:
        return report
    ledger = open_ledger(out)
    try:
        for name, writer in enabled:
            try:
                fingerprint, inputs = export_fingerprint(name, out, plan, samples)
                reused, _ = reuse_or_run(ledger, name, fingerprint, inputs, partial(export_outputs, name, out),
                                         partial(writer, out, plan, samples, results), force=force,
                                         label=f"output {name}")
            except Exception as exc:  # noqa: BLE001 - one export's defect must not lose the run (recorded, exit 1)
                log.error("output %s not written: %s", name, exc)
                report.errors[name] = str(exc) if isinstance(exc, CytokitError) else f"{type(exc).__name__}: {exc}"
                continue
            (report.reused if reused else report.run).append(name)
    finally:
        ledger.close()
    return report

