"""Review exports (FlowJo workspace) are incremental like the cohort stages: reused when nothing they read
changed, rewritten when an input, the stored gates or the file itself changed, and never reused after a failure."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cytokit.cli.main import main as cli_main
from cytokit.pipeline import outputs, run
from cytokit.pipeline.ledger import read_ledger
from test_pipeline_support import simulate_small_trial, write_pipeline


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("exports")
    trial = simulate_small_trial(base / "trial", events=1500)
    pipeline = write_pipeline(base / "cfg", trial, name="exports", outputs={"gatingml": True, "flowjo_workspace": True},
                              executor={"jobs": 2, "task": "analyse"}, qc={"enabled": True, "min_events": 500})
    return trial, pipeline


def _stages(out: Path) -> set[str]:
    ledger = read_ledger(out)
    try:
        return set(ledger.stages())
    finally:
        ledger.close()


def test_unchanged_rerun_reuses_the_workspace_and_says_so(study, tmp_path, capsys):
    _, pipeline = study
    out = tmp_path / "out"
    first = run(pipeline, out)
    assert first.ok == 8 and first.outputs_run == ["flowjo_workspace"] and first.outputs_reused == []
    wsp = out / "workspace.wsp"
    written, mtime = wsp.read_bytes(), wsp.stat().st_mtime_ns
    assert b"<Workspace" in written and "flowjo_workspace" in _stages(out)

    again = run(pipeline, out)
    assert again.skipped == 8 and again.outputs_reused == ["flowjo_workspace"] and again.outputs_run == []
    assert wsp.stat().st_mtime_ns == mtime  # not rewritten
    info = json.loads((out / "run_info.json").read_text())
    assert info["outputs_reused"] == ["flowjo_workspace"] and info["outputs_run"] == []
    assert cli_main(["run", str(pipeline), "--out", str(out)]) == 0
    assert "review exports: reused flowjo_workspace (inputs unchanged)" in capsys.readouterr().out

    wsp.unlink()  # deleted by hand: written again, the same bytes
    repaired = run(pipeline, out)
    assert repaired.outputs_run == ["flowjo_workspace"] and wsp.read_bytes() == written

    wsp.write_bytes(written.replace(b"<Workspace", b"<Workspace edited=\"1\"", 1))  # altered: rewritten
    assert run(pipeline, out).outputs_run == ["flowjo_workspace"] and wsp.read_bytes() == written

    assert run(pipeline, out, recompute=True).outputs_run == ["flowjo_workspace"]  # --recompute rewrites it


def test_changed_stored_gates_rewrite_the_workspace(study, tmp_path):
    _, pipeline = study
    out = tmp_path / "out"
    assert run(pipeline, out).outputs_run == ["flowjo_workspace"]
    gates = sorted((out / "samples").glob("*/gates.xml"))[0]
    gates.write_text(gates.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # what the workspace reads
    assert run(pipeline, out).outputs_run == ["flowjo_workspace"]
    assert run(pipeline, out).outputs_reused == ["flowjo_workspace"]


def test_a_failed_export_is_not_recorded_and_runs_again(study, tmp_path, monkeypatch):
    _, pipeline = study
    out = tmp_path / "out"
    real = outputs.EXTRA_OUTPUTS["flowjo_workspace"]

    def crash(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(outputs.EXTRA_OUTPUTS, "flowjo_workspace", crash)
    failed = run(pipeline, out)
    assert "flowjo_workspace" in failed.output_errors and not failed.complete
    assert failed.outputs_run == [] and "flowjo_workspace" not in _stages(out)
    monkeypatch.setitem(outputs.EXTRA_OUTPUTS, "flowjo_workspace", real)
    fixed = run(pipeline, out)
    assert fixed.complete and fixed.outputs_run == ["flowjo_workspace"] and (out / "workspace.wsp").is_file()


def test_results_made_by_other_code_are_analysed_again(study, tmp_path, monkeypatch):
    """A sample's stored result is reused only by the code that made it: a re-run after a code change (the
    package digest, even with the same version number) analyses every sample again."""
    from cytokit.pipeline import runner

    _, pipeline = study
    out = tmp_path / "out"
    assert run(pipeline, out).ok == 8
    assert run(pipeline, out).skipped == 8  # same code: reused
    monkeypatch.setattr(runner, "code_digest", lambda: "another build of cytokit")
    again = run(pipeline, out)
    assert again.skipped == 0 and again.ok == 8
