"""Gated events of one stored sample, for cohort stages (clustering) and notebooks.

Contract: :func:`load_gated_events` re-reads the sample's FCS file, checks it is byte-identical to the
analysed one (sha256), re-applies the stored preprocessing (panel resolution, QC, compensation, the
stored per-channel transforms with their fitted parameters) and the stored concrete gates, and returns
the events of one population on the **transformed** scale as a float32 array plus the marker names.
Nothing is re-fitted, so the events are exactly those counted in the tables.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PipelineError
from ..gates import gate_from_dict
from ..io_utils import safe_name
from .ledger import read_ledger
from .store import ResultsStore


def load_gated_events(results_dir: str | Path, sample_id: str, population: str) -> tuple[np.ndarray, list[str]]:
    """Events of ``population`` in ``sample_id`` (transformed scale, float32) and their marker names."""
    from ..gating.engine import evaluate_gate
    from ..gating.preprocess import ChannelTransform, apply_transforms, compensate
    from ..gating.strategy import load_strategy
    from .analyse import apply_qc, read_and_resolve
    from .task import SampleJob

    results_dir = Path(results_dir)
    ledger = read_ledger(results_dir)
    try:
        state = ledger.samples().get(sample_id)
        inputs = ledger.inputs(state["run_id"]) if state else []
    finally:
        ledger.close()
    if not state or state.get("status") != "ok":
        raise PipelineError(f"sample {sample_id!r} has no successful result in this results folder",
                            path=results_dir)
    result = ResultsStore(results_dir, ledger).load(sample_id)
    names = [g["population"] for g in result["gates"]]
    if population not in names:
        raise PipelineError(f"sample {sample_id!r} has no population {population!r}; populations: "
                            f"{', '.join(names)}", path=results_dir)
    tube = result["tube"]
    defs = {(r["kind"], r["name"]): r["path"] for r in inputs}
    panel, strategy_path = defs.get(("panel", tube)), defs.get(("strategy", tube))
    if panel is None or strategy_path is None:
        raise PipelineError(f"the ledger does not record the panel/strategy of tube {tube!r}", path=results_dir)
    qc = result["summary"].get("qc_params")
    job = SampleJob(sample_id=sample_id, path=result["file"], sha256=result["sha256"], tube=tube, panel=panel,
                    panel_tube=result["summary"].get("panel_tube", tube), strategy=strategy_path,
                    qc=qc if qc is not None else {})
    sample = read_and_resolve(job)
    kept, _, _ = apply_qc(sample, job.qc)
    definition = load_strategy(strategy_path).definition
    if result["summary"].get("compensated"):
        kept = compensate(kept, definition)
    plan = [ChannelTransform(t["pnn"], t["marker"], t["name"], {k: float(v) for k, v in t["params"].items()})
            for t in result["summary"].get("transforms", [])]
    prepared = apply_transforms(kept, plan)
    masks: dict[str, np.ndarray] = {}
    for entry in result["gates"]:  # stored in strategy order: parents before children
        name = entry["population"]
        parent = masks.get(entry["parent"]) if entry["parent"] else np.ones(prepared.n_events, dtype=bool)
        if parent is None:
            raise PipelineError(f"stored gates of {sample_id!r}: parent {entry['parent']!r} of {name!r} missing",
                                path=results_dir / "samples" / safe_name(sample_id))
        rows = np.flatnonzero(parent)
        gate = gate_from_dict(entry["gate"])
        components = tuple(gate_from_dict(c) for c in entry.get("components", []))
        inside = evaluate_gate(gate, prepared, rows, components, masks)
        mask = np.zeros(prepared.n_events, dtype=bool)
        mask[rows[inside]] = True
        masks[name] = mask
        if name == population:
            break
    markers = [str(m) for m in prepared.channels["marker"]]
    return np.ascontiguousarray(prepared.events[masks[population]], dtype=np.float32), markers
