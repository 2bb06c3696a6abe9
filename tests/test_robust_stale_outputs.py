"""The cohort gating's re-fits reach every output that shows gates, and none outlives the run that made it.

Re-running a results folder with an output switched off removes that output of the earlier run instead of
leaving it to read as this run's: before, `trial/` (computed from the earlier tables), `gating_cohort/` (re-fits
the new tables no longer report) and `samples/<id>/gates_cohort.png` (which the reports show instead of
`gates.png`) stayed after `outputs.trial` / `outputs.cohort_gating` were turned off, and the run exited 0."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cytokit.fcs import read_fcs
from cytokit.flowjo import read_workspace, workspace_counts
from cytokit.learn import compare_gates
from cytokit.pipeline import run
from cytokit.results import schema as S
from test_pipeline_support import simulate_small_trial, write_pipeline

COHORT = dict(qc={"enabled": True, "min_events": 100},
              cohort_gating={"k": 1.0, "min_shift": 0.01, "min_samples": 3, "group_columns": ["tube"],
                             "accept_flags": None},
              executor={"jobs": 2, "task": "analyse"})


def _pipeline(folder: Path, trial: Path, outputs: dict) -> Path:
    path = write_pipeline(folder, trial, name="stale", outputs=outputs, **COHORT)
    data = yaml.safe_load(path.read_text())  # `trial:` block (a keyword write_pipeline takes for the data)
    data["trial"] = {"treatment_arm": "IL-2", "control_arm": "control", "baseline_visit": "W0"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _workspace_counts_are_the_tables(out: Path, trial: Path, sample_ids: list[str]) -> None:
    """The FlowJo workspace of a sample the cohort gating re-fitted counts what the tables count (before, its
    gates were the original fit's: P002_W12_tmem Treg 15 events in the workspace, 13 in the tables), and so
    does compare-gates on the run."""
    ws = read_workspace(out / "workspace.wsp")
    pops = pd.read_csv(out / "populations.csv")
    refits = pd.read_csv(out / S.COHORT_DIR / "refits.csv")
    moved = refits[refits["changed"] & refits[S.SAMPLE_ID].isin(sample_ids)]
    assert len(moved) > 0 and (moved[S.COUNT] != moved["refit_count"]).any()
    for sid in sample_ids:
        assert (out / S.SAMPLES_DIR / sid / S.GATES_COHORT_XML).is_file()
        sample = next(s for s in ws.samples if Path(s.file_name).stem == sid)
        counts = workspace_counts(ws, read_fcs(next(trial.rglob(sample.file_name))))
        table = pops[pops[S.SAMPLE_ID] == sid].set_index(S.POPULATION)[S.COUNT]
        got = counts.set_index("population")["count"].reindex(table.index)
        assert (got == table).all(), pd.DataFrame({"workspace": got, "tables": table})[got != table]
    # compare-gates on the run scores the re-fit too (its automated side is the tables'; before, the original fit)
    files = [next(trial.rglob(f"{sid}.fcs")) for sid in sample_ids]
    scored = compare_gates(out / "workspace.wsp", files, out).set_index(["sample", "population"])
    for sid in sample_ids:
        table = pops[pops[S.SAMPLE_ID] == sid].set_index(S.POPULATION)[S.COUNT]
        assert (scored.loc[sid, "n_auto"].reindex(table.index) == table).all()
        assert (scored.loc[sid, "f1"] > 0.999).all()


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("stale") / "trial", events=3000, patients_per_arm=2)


def test_switched_off_outputs_of_an_earlier_run_are_removed(trial: Path, tmp_path: Path, caplog) -> None:
    on = {"gatingml": True, "thumbnails": True, "flowjo_workspace": True, "cohort_gating": True, "trial": True}
    out = tmp_path / "out"
    first = run(_pipeline(tmp_path / "cfg", trial, on), out)
    assert first.failed == 0 and first.stage_errors == {} and first.output_errors == {}
    refit_pngs = sorted(out.glob(f"{S.SAMPLES_DIR}/*/{S.GATES_COHORT_PNG}"))
    assert refit_pngs and (out / S.COHORT_DIR).is_dir() and (out / "trial").is_dir()
    assert (out / "workspace.wsp").is_file()
    _workspace_counts_are_the_tables(out, trial, [p.parent.name for p in refit_pngs])

    # thumbnails and Gating-ML off under cohort gating: the re-fit's files go, the stage's tables stay
    run(_pipeline(tmp_path / "cfg", trial, {**on, "thumbnails": False, "gatingml": False,
                                            "flowjo_workspace": False}), out)
    assert not list(out.glob(f"{S.SAMPLES_DIR}/*/{S.GATES_COHORT_PNG}"))
    assert not list(out.glob(f"{S.SAMPLES_DIR}/*/{S.GATES_COHORT_XML}"))
    # the re-fitted gates as records stay: the tables still report the re-fit (every per-event reader uses them)
    assert sorted(p.parent for p in out.glob(f"{S.SAMPLES_DIR}/*/{S.GATES_COHORT_JSON}")) == \
        [p.parent for p in refit_pngs]
    assert (out / S.COHORT_DIR).is_dir() and (out / "trial").is_dir()

    off = {**on, "cohort_gating": False, "trial": False, "flowjo_workspace": False}
    second = run(_pipeline(tmp_path / "cfg", trial, off), out)
    assert second.failed == 0 and second.stage_errors == {}
    assert not (out / S.COHORT_DIR).exists() and not (out / "trial").exists()
    assert not (out / "workspace.wsp").exists()
    assert "removed the outputs of an earlier run" in caplog.text

    # switched on again, each is produced anew (not 'reused' from a forgotten record)
    third = run(_pipeline(tmp_path / "cfg", trial, on), out)
    assert "trial" in third.stages_run and "flowjo_workspace" in third.outputs_run
    assert sorted(out.glob(f"{S.SAMPLES_DIR}/*/{S.GATES_COHORT_PNG}")) == refit_pngs
