"""The built-in per-sample task ``analyse``: read → panel → QC → compensation → transforms → gating → statistics.

Contract
--------
:func:`analyse_sample` turns one :class:`~cytokit.pipeline.task.SampleJob` into a
:class:`~cytokit.pipeline.task.SampleOutput` without touching the output folder. Populations carry the
gating engine's columns (counts; ``pct_parent`` and ``pct_lymphocytes`` in percent) plus
``marker_medians``: JSON ``{marker: median}`` of the population's defining markers (its gate dimensions)
on the **transformed** scale the gates were fitted on. ``summary`` holds ``n_events`` (read),
``n_events_qc`` (kept by QC), ``qc_flags``, the per-channel transforms applied (numeric parameters, so
:func:`~cytokit.pipeline.events.load_gated_events` can re-apply them) and whether events were compensated.
The exported Gating-ML (:func:`export_gatingml`) puts the fitted gates below QC's keep mask written as
gates (root ``QC pass``), so evaluated on the whole FCS file it counts what the tables count.
Bad input raises a :class:`~cytokit.errors.CytokitError` (turned into a failed sample by the executor).
"""
from __future__ import annotations

import io
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import FCSError
from ..gating.cohort import fit_landmarks
from ..results import schema as S
from ..sample import Sample
from .task import SampleJob, SampleOutput

log = logging.getLogger(__name__)


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - t0, 6)


def read_and_resolve(job: SampleJob) -> Sample:
    """Read the FCS file (checking it is the file that was validated) and resolve its markers."""
    from ..fcs import read_fcs

    sample = read_fcs(job.path)
    if job.sha256 and sample.sha256 and sample.sha256 != job.sha256:
        raise FCSError("file changed while the run was in progress (sha256 differs from validation); "
                       "run again", path=job.path)
    return job_panel(job).resolve(sample, tube=job.panel_tube)


def job_panel(job: SampleJob) -> Any:
    """The job's Panel: from the validated definition it carries, else loaded from its YAML."""
    from ..panel import Panel, load_panel

    return Panel(job.panel_definition, path=job.panel) if job.panel_definition is not None else load_panel(job.panel)


def job_strategy(job: SampleJob) -> Any:
    """The job's gating Strategy: from the validated definition it carries, else loaded from its file.
    Imported (Gating-ML/FlowJo) strategies are always loaded from their file: their gates carry their own
    compensation and transforms, which the definition alone does not."""
    from ..gating.loading import IMPORT_SUFFIXES, load_strategy
    from ..gating.strategy import Strategy

    if job.strategy_definition is not None and Path(job.strategy).suffix.lower() not in IMPORT_SUFFIXES:
        return Strategy(job.strategy_definition.model_copy(deep=True), job.strategy)
    return load_strategy(job.strategy)


def data_flags(sample: Sample) -> list[str]:
    """Sample-level flags that go with ``qc_flags`` (:func:`cytokit.qc.data_flags`)."""
    from ..qc import data_flags as flags

    return flags(sample)


def median(values: np.ndarray) -> float:
    """Median of a 1-D array (mean of the two middle values when the length is even), computed with
    one in-place partition; ``values`` is reordered."""
    n = values.size
    k = n // 2
    values.partition(k)
    if n % 2:
        return float(values[k])
    return float((values[:k].max() + values[k]) / values.dtype.type(2))


def marker_medians(events: np.ndarray, columns: dict[str, int], masks: list[np.ndarray],
                   dims: list[list[str]]) -> list[str]:
    """Per population, JSON ``{marker: median}`` of its defining markers over its events (transformed
    scale; ``{}`` when empty). One marker column is extracted at a time and shared by every population
    gated on it; each population's event indices are found once."""
    out: list[dict[str, float]] = [{} for _ in masks]
    rows = [np.flatnonzero(m) if names else None for m, names in zip(masks, dims)]
    for marker, j in columns.items():
        col = np.ascontiguousarray(events[:, j])
        for k, (idx, names) in enumerate(zip(rows, dims)):
            if marker in names and idx is not None and idx.size:
                out[k][marker] = round(median(col.take(idx)), 6)
    return [json.dumps(d, sort_keys=True) for d in out]


def analyse_sample(job: SampleJob) -> SampleOutput:
    """The full per-sample analysis (see module contract): the chain of
    :func:`cytokit.gating.preprocess.prepare` (the one ``Strategy.apply`` runs), then statistics."""
    from ..gating.preprocess import prepare

    timer = _Timer()
    strategy = job_strategy(job)
    definition = strategy.definition
    # each stage replaces the previous Sample (dropped at once) so a worker holds at most two copies
    # of the events at a time: peak memory stays near 2-3x the event array
    with timer("read"):
        read = [read_and_resolve(job)]
    warnings = list(read[0].warnings)
    prep = prepare(read.pop(), definition, panel=False, qc=job.qc, timer=timer)  # hands over the only reference
    prepared, plan, qc = prep.sample, list(prep.plan), prep.qc
    with timer("gating"):
        result = strategy.apply_prepared(prepared, plan, qc=qc)
    with timer("statistics"):
        table = result.populations
        masks = result.masks
        dims = [[d for d in str(v).split(";") if d] for v in table["dims"]]
        columns = {d: prepared.channel_index(d) for d in dict.fromkeys(d for names in dims for d in names)}
        table[S.MARKER_MEDIANS] = marker_medians(prepared.events, columns,
                                                 [masks[p] for p in table[S.POPULATION]], dims)
        populations = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}
                       for rec in table.to_dict("records")]
    gates = gate_records(result)
    summary = {
        S.N_EVENTS: qc.n_events, S.N_EVENTS_QC: qc.n_kept, S.QC_FLAGS: [*qc.flags, *data_flags(prepared)],
        "qc": qc.info,
        "compensated": bool(prepared.compensated),
        "transforms": [{"pnn": t.pnn, "marker": t.marker, "name": t.name, "params": t.params,
                        **({"warning": t.warning} if t.warning else {}),
                        **({"W_estimated": t.W_estimated} if t.W_estimated is not None else {})} for t in plan],
        "skipped_populations": result.skipped, "qc_params": job.qc, "panel_tube": job.panel_tube,
        "warnings": warnings,
    }
    out = SampleOutput(sample_id=job.sample_id, populations=populations, summary=summary, gates=gates)
    with timer("export"):
        if job.gatingml:
            out.gatingml = export_gatingml(result)
        if job.thumbnails:
            out.thumbnails = _thumbnails(result)
        n_keep = int(job.options.get("anndata_events", 0))
        if n_keep:
            out.files["events.npz"] = _events_subsample(job, prepared, result, n_keep)
    out.timings = timer.timings
    return out


def gate_records(result: Any) -> list[dict[str, Any]]:
    """The concrete gates of a :class:`~cytokit.gating.result.GatingResult` as stored in ``result.json``
    (``gates``; the cohort stage's ``gates_cohort.json``): population, parent, gate, components and landmarks
    (transformed scale), in strategy order; :func:`cytokit.gating.fit_state.evaluate_stored` evaluates them."""
    fits = result.fits
    return [{S.POPULATION: spec.name, S.PARENT: spec.parent or "", "gate": fits[spec.name].gate.to_dict(),
             "components": [c.to_dict() for c in fits[spec.name].components],
             "landmarks": fit_landmarks(fits[spec.name].info, spec.dims)}
            for spec in result.definition.populations if spec.name in fits]


def export_gatingml(result: Any) -> str:
    """Gating-ML text of the fitted gates under a root population ``QC pass`` that expresses QC's keep
    mask on the raw file (:func:`cytokit.gating.export.result_document`), so the exported gates,
    evaluated on all events of the FCS file, count what the tables count. Without QC the fitted gates alone."""
    from ..gating.export import result_document
    from ..gatingml import gatingml_bytes

    return gatingml_bytes(result_document(result)).decode("utf-8")


def _thumbnails(result: Any) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..gating.plotting import figure_png

    fig = result.plot_all()
    png = figure_png(fig)
    plt.close(fig)
    return png


def events_npz(X: np.ndarray, markers: list[str], population: np.ndarray) -> bytes:
    """The bytes of a per-sample ``events.npz`` (X float32, marker names, per-event population label)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, X=np.asarray(X, dtype=np.float32), markers=np.asarray(markers, dtype=str),
                        population=np.asarray(population, dtype=str))
    return buf.getvalue()


def subsample_rows(sha256: str, n_events: int, n_keep: int) -> np.ndarray:
    """The rows (sorted indices into the QC-kept events) of the reproducible events export of a file: at most
    ``n_keep`` of its ``n_events``, drawn with a generator seeded by the file's sha256."""
    rng = np.random.default_rng(int(sha256[:16] or "0", 16))
    if not n_events:
        return np.zeros(0, dtype=int)
    return np.sort(rng.choice(n_events, size=min(n_keep, n_events), replace=False))


def deepest_labels(masks: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Per row, the name of the deepest population containing it ("" for none); ``masks`` in strategy order
    (parents first), so a later population wins."""
    labels = np.full(rows.size, "", dtype=object)
    for name, mask in masks.items():
        labels[mask[rows]] = name
    return labels.astype(str)


def _events_subsample(job: SampleJob, prepared: Sample, result: Any, n_keep: int) -> bytes:
    """A reproducible subsample of events (:func:`subsample_rows`) with each event's deepest population."""
    rows = subsample_rows(job.sha256, prepared.n_events, n_keep)
    markers = [str(m) for m in prepared.channels["marker"]]
    return events_npz(prepared.events[rows], markers, deepest_labels(result.masks, rows))
