"""Gated events of one stored sample, for cohort stages (clustering) and notebooks.

Contract: :func:`load_gated_events` re-reads the sample's FCS file, checks it is byte-identical to the
analysed one (sha256), re-runs the per-sample chain of :func:`cytokit.gating.preprocess.prepare` (the one
the pipeline and ``Strategy.apply`` run: panel resolution, QC, compensation) with the stored per-channel
transforms and their fitted parameters, evaluates the concrete gates the sample's tables report
(:meth:`cytokit.results.ResultsFolder.reported_gates`: the cohort gating's re-fit where the tables report one,
else the stored per-sample fit; :func:`cytokit.gating.fit_state.evaluate_stored`) and returns the events of one population on the
**transformed** scale as a float32 array plus the marker names. Nothing is re-fitted, so the events are
exactly those counted in the tables. Only samples of the folder's last run (its samples table, status ok)
are read.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GatingError, PipelineError
from ..io_utils import safe_name
from ..results import ResultsFolder
from ..results import schema as S
from ..results.schema import SAMPLES_DIR
from ..sample import Sample
from .ledger import read_ledger

if TYPE_CHECKING:  # pragma: no cover
    from ..gating.preprocess import Prepared


def prepared_from_store(results_dir: str | Path, sample_id: str) -> tuple[Sample, list[Any], dict[str, Any], str]:
    """The prepared events of a stored sample (chain re-run with its stored QC, compensation and
    transforms; transformed scale), its transform plan, its stored ``result.json`` and its strategy's path."""
    prepared, result, strategy_path = prepare_from_store(results_dir, sample_id)
    return prepared.sample, list(prepared.plan), result, strategy_path


def prepare_from_store(results_dir: str | Path, sample_id: str, raw: Sample | None = None
                       ) -> tuple["Prepared", dict[str, Any], str]:
    """The per-sample chain re-run for a stored sample as the run ran it (:class:`Prepared`: the events
    the tables count, and ``qc.keep`` = which events of the file they are), its stored ``result.json`` and
    its strategy's path. ``raw``: the FCS file already read (default: read from the stored path); it must be
    the file the run analysed (same sha256), else :class:`PipelineError`."""
    from ..gating.preprocess import ChannelTransform, prepare
    from ..gating.loading import load_strategy
    from .analyse import job_panel, read_and_resolve
    from .task import SampleJob

    results_dir = Path(results_dir)
    ledger = read_ledger(results_dir)
    try:
        state = ledger.samples().get(sample_id)
        inputs = ledger.inputs(state["run_id"]) if state else []
    finally:
        ledger.close()
    if not state or state.get(S.STATUS) != "ok":
        raise PipelineError(f"sample {sample_id!r} has no successful result in this results folder",
                            path=results_dir)
    result = ResultsFolder(results_dir).sample_result(sample_id)
    tube = result[S.TUBE]
    defs = {(r["kind"], r["name"]): r["path"] for r in inputs}
    panel, strategy_path = defs.get(("panel", tube)), defs.get(("strategy", tube))
    if panel is None or strategy_path is None:
        raise PipelineError(f"the ledger does not record the panel/strategy of tube {tube!r}", path=results_dir)
    summary = result["summary"]
    qc = summary.get("qc_params")
    job = SampleJob(sample_id=sample_id, path=result[S.FILE], sha256=result[S.SHA256], tube=tube, panel=panel,
                    panel_tube=summary.get("panel_tube", tube), strategy=strategy_path,
                    qc=qc if qc is not None else {})
    if raw is None:
        resolved = read_and_resolve(job)
    elif raw.sha256 and result[S.SHA256] and raw.sha256 != result[S.SHA256]:
        raise PipelineError(f"{raw.path}: not the file sample {sample_id!r} of this results folder was analysed "
                            f"from (sha256 differs)", path=results_dir)
    else:
        resolved = job_panel(job).resolve(raw, tube=job.panel_tube)
    plan = [ChannelTransform(t["pnn"], t["marker"], t["name"], {k: float(v) for k, v in t["params"].items()},
                             warning=t.get("warning"))  # a clipped logicle stays noted on the re-fitted rows
            for t in summary.get("transforms", [])]
    prepared = prepare(resolved, load_strategy(strategy_path).definition, panel=False, qc=job.qc,
                       plan=plan, compensate_events=bool(summary.get("compensated")))
    return prepared, result, strategy_path


def _require_current_sample(results_dir: Path, sample_id: str) -> None:
    """Raise PipelineError unless ``sample_id`` is a successfully analysed sample of the folder's last run
    (its samples table): a folder of an earlier run's sample is never read as if the tables had it."""
    table = ResultsFolder(results_dir).table(S.SAMPLES, required=True, error=PipelineError)
    assert table is not None
    ok = set(table.loc[table[S.STATUS] == "ok", S.SAMPLE_ID].astype(str))
    if sample_id not in ok:
        raise PipelineError(f"sample {sample_id!r} is not a successfully analysed sample of this run (its samples "
                            f"table); a folder of an earlier run's sample is not read", path=results_dir)


def load_gated_events(results_dir: str | Path, sample_id: str, population: str) -> tuple[np.ndarray, list[str]]:
    """Events of ``population`` in ``sample_id`` (transformed scale, float32) and their marker names."""
    from ..gating.fit_state import evaluate_stored

    results_dir = Path(results_dir)
    _require_current_sample(results_dir, sample_id)
    prepared, _, result, _ = prepared_from_store(results_dir, sample_id)
    gates = ResultsFolder(results_dir).reported_gates(sample_id, result).records()
    names = [g[S.POPULATION] for g in gates]
    if population not in names:
        raise PipelineError(f"sample {sample_id!r} has no population {population!r}; populations: "
                            f"{', '.join(names)}", path=results_dir)
    try:
        masks = evaluate_stored(gates, prepared, until=population)
    except GatingError as exc:
        raise PipelineError(f"stored gates of {sample_id!r}: {exc}",
                            path=results_dir / SAMPLES_DIR / safe_name(sample_id)) from None
    markers = [str(m) for m in prepared.channels["marker"]]
    return np.ascontiguousarray(prepared.events[masks[population]], dtype=np.float32), markers
