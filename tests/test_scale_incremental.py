"""Incremental cohort stages: trial, clustering and reports are recomputed only when what they read changed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cytokit.pipeline import run, stages
from cytokit.pipeline.ledger import read_ledger
from test_pipeline_support import simulate_small_trial, write_pipeline

ALL = ["trial", "clustering", "reports"]


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=3000)


def _pipeline(folder: Path, trial: Path, **overrides) -> Path:
    options = dict(outputs={"trial": True, "clustering": True, "reports": True, "gatingml": True},
                   clustering={"population": "T cells", "tube": "tmem", "plots": False},
                   report={"pdf": False}, qc={"enabled": True, "min_events": 500},
                   executor={"jobs": 2, "task": "analyse"})
    options.update(overrides)
    return write_pipeline(folder, trial, name="incremental", **options)


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for name in ALL for p in (out / name).rglob("*")
            if p.is_file()}


def test_unchanged_rerun_reuses_every_stage_and_says_so(trial, tmp_path, caplog):
    own = Path(shutil.copytree(trial, tmp_path / "trial"))
    path = _pipeline(tmp_path / "cfg", own)
    out = tmp_path / "out"
    first = run(path, out)
    assert first.ok == 8 and first.stage_errors == {}, (first.failures, first.stage_errors)
    assert first.stages_run == ALL and first.stages_reused == []
    before = _mtimes(out)
    assert any(k.startswith("reports/") for k in before) and any(k.startswith("clustering/") for k in before)

    caplog.set_level("INFO", logger="cytokit.pipeline.stages")
    again = run(path, out)
    assert again.skipped == 8 and again.stages_reused == ALL and again.stages_run == []
    assert _mtimes(out) == before                                  # nothing was rewritten
    assert "cohort stage trial: reused" in caplog.text
    info = json.loads((out / "run_info.json").read_text())
    assert info["stages_reused"] == ALL and info["stages_run"] == []
    assert set(info["timings_s"]) >= {"preflight", "analyse", "store", "assemble", "outputs", "stages"}
    assert set(read_ledger(out).stages()) == set(ALL)

    # an output deleted by hand: only that stage runs again
    report = next((out / "reports").glob("*.html"))
    report.unlink()
    repaired = run(path, out)
    assert repaired.stages_reused == ["trial", "clustering"] and repaired.stages_run == ["reports"]
    assert report.is_file()

    # a changed input table (a lymphocyte count feeds the absolute counts): every stage runs again
    clinical = pd.read_csv(own / "clinical.csv")
    clinical["lymphocytes_per_uL"] = clinical["lymphocytes_per_uL"].astype(float)
    clinical.loc[0, "lymphocytes_per_uL"] *= 1.5
    clinical.to_csv(own / "clinical.csv", index=False)
    changed = run(path, out)
    assert changed.skipped == 8 and changed.stages_run == ALL, (changed.stages_run, changed.stages_reused)

    # --recompute ignores every stored result, stages included
    assert run(path, out, recompute=True).stages_run == ALL


def test_configuration_and_code_changes_rerun_the_stages_that_read_them(trial, tmp_path, monkeypatch):
    own = Path(shutil.copytree(trial, tmp_path / "trial"))
    out = tmp_path / "out"
    first = run(_pipeline(tmp_path / "cfg", own), out)
    assert first.stages_run == ALL, first.stage_errors
    # only the report block changed: trial and clustering are reused
    edited = _pipeline(tmp_path / "cfg", own, report={"pdf": False, "low_event_threshold": 50})
    second = run(edited, out)
    assert second.stages_reused == ["trial", "clustering"] and second.stages_run == ["reports"], second.stage_errors
    assert run(edited, out).stages_reused == ALL
    # a different code version (any file of the package, or a library version) reruns everything
    monkeypatch.setattr(stages, "code_digest", lambda: "another build")
    assert run(edited, out).stages_run == ALL


def test_a_failed_stage_is_not_recorded_and_runs_again(trial, tmp_path, monkeypatch):
    from cytokit.errors import CytokitError

    out = tmp_path / "out"
    path = _pipeline(tmp_path / "cfg", trial, outputs={"trial": True, "gatingml": False})
    calls = []

    def broken(plan, folder):
        calls.append(1)
        raise CytokitError("trial stage broke")

    monkeypatch.setitem(stages.STAGES, "trial", ("trial", broken, "trial"))
    summary = run(path, out)
    assert summary.stage_errors == {"trial": "trial stage broke"} and summary.stages_run == []
    assert "trial" not in read_ledger(out).stages()
    assert run(path, out).stage_errors and len(calls) == 2         # not reused: it failed
