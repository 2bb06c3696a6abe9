"""Failures are reported as failures: exit codes, stage errors, flags, interrupted results, report files."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cytokit.cli.main import main as cli_main
from cytokit.errors import ReportError
from cytokit.pipeline import run
from test_pipeline_support import simulate_small_trial, write_pipeline


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=2000)


def test_a_review_export_that_crashes_is_a_failure_not_a_crash(trial, tmp_path, monkeypatch, capsys):
    from cytokit.pipeline import outputs

    def crash(*_args):
        raise TypeError("'numpy.float64' object does not support item assignment")

    monkeypatch.setitem(outputs.EXTRA_OUTPUTS, "flowjo_workspace", crash)
    pipeline = write_pipeline(tmp_path / "cfg", trial, outputs={"flowjo_workspace": True, "reports": True},
                              report={"pdf": False})
    assert cli_main(["run", str(pipeline), "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "NOT WRITTEN flowjo_workspace" in err and "item assignment" in err
    info = json.loads((tmp_path / "a" / "run_info.json").read_text())
    assert info["status"] == "complete" and "flowjo_workspace" in info["outputs_not_written"]
    assert (tmp_path / "a" / "reports" / "P001.html").is_file()  # the stages after it still ran
    assert cli_main(["run", str(pipeline), "--out", str(tmp_path / "b"), "--allow-failures"]) == 0
    assert "NOT WRITTEN flowjo_workspace" in capsys.readouterr().err


def test_a_failed_patient_report_fails_the_run(trial, tmp_path, monkeypatch, capsys):
    from cytokit.report import build

    real = build.build_patient_report

    def flaky(store, patient, *args, **kwargs):
        if patient == "P002":
            raise ReportError("no space left on device (simulated)\nP002.pdf was not written")  # two lines
        return real(store, patient, *args, **kwargs)

    monkeypatch.setattr(build, "build_patient_report", flaky)
    pipeline = write_pipeline(tmp_path / "cfg", trial, outputs={"reports": True}, report={"pdf": False})
    summary = run(pipeline, tmp_path / "out")
    assert "reports" in summary.stage_errors and "P002" in summary.stage_errors["reports"]
    assert not summary.success and not summary.complete
    assert (tmp_path / "out" / "reports" / "P001.html").is_file()
    assert cli_main(["run", str(pipeline), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    # the multi-line error reads as one line of its parts (the log record and the failure listed at the end)
    said = "1 patient report(s) could not be written: P002: no space left on device (simulated); P002.pdf was not written"
    assert "\\n" not in err
    assert [line for line in err.splitlines() if "reports stage FAILED: " in line and line.endswith(said)]
    assert [line for line in err.splitlines() if "cohort stage reports failed: " in line and line.endswith(said)]
    # the report command: the other patient is written, exit 1, the failure listed
    code = cli_main(["report", str(tmp_path / "out"), "--no-pdf", "--out", str(tmp_path / "rep")])
    assert code == 1 and (tmp_path / "rep" / "P001.html").is_file()
    err = capsys.readouterr().err
    assert "FAILED report for P002: no space left on device (simulated); P002.pdf was not written" in err
    assert "\\n" not in err


def test_patient_without_clinical_row_is_flagged(trial, tmp_path):
    own = Path(shutil.copytree(trial, tmp_path / "trial"))
    clinical = pd.read_csv(own / "clinical.csv", dtype=str, keep_default_na=False)
    clinical[clinical["patient"] != "P002"].to_csv(own / "clinical.csv", index=False)
    run(write_pipeline(tmp_path / "cfg", own), tmp_path / "out")
    samples = pd.read_csv(tmp_path / "out" / "samples.csv", dtype=str, keep_default_na=False).set_index("sample_id")
    pops = pd.read_csv(tmp_path / "out" / "populations.csv", dtype={"sample_id": str}).set_index("sample_id")
    assert pops.loc["P002_W0_tmem", "abs_count_per_uL"].isna().all()
    assert "no_absolute_count" in samples.at["P002_W0_tmem", "check_flags"]
    assert "no_absolute_count" not in samples.at["P001_W0_tmem", "check_flags"]


def test_report_and_compare_refuse_an_interrupted_run(trial, tmp_path, capsys):
    pipeline = write_pipeline(tmp_path / "cfg", trial, outputs={"reports": True}, report={"pdf": False})
    out = tmp_path / "out"
    run(pipeline, out)
    info = json.loads((out / "run_info.json").read_text())
    (out / "run_info.json").write_text(json.dumps({**info, "status": "running"}))  # as after kill -9
    assert cli_main(["report", str(out), "--no-pdf", "--force"]) == 2
    assert "did not finish (status: interrupted)" in capsys.readouterr().err
    assert cli_main(["compare", str(out), "--force"]) == 2
    assert run(pipeline, out).complete  # resumed: the report command works again
    assert cli_main(["report", str(out), "--no-pdf", "--force", "--patient", "P001"]) == 0


def test_report_files_never_collide_and_need_force(tmp_path, capsys):
    from cytokit.report.build import report_stem

    assert report_stem("P_1") == "P_1" and report_stem("P/1").startswith("P_1-")
    assert len({report_stem(p) for p in ("P/1", "P_1", "P 1", "P\n1")}) == 4
    from test_report import make_results

    results = make_results(tmp_path / "res")
    out = tmp_path / "out"
    assert cli_main(["report", str(results), "--patient", "P02", "--no-pdf", "--out", str(out)]) == 0
    before = (out / "P02.html").read_bytes()
    (out / "P02.html").write_bytes(b"edited by hand")
    assert cli_main(["report", str(results), "--patient", "P02", "--no-pdf", "--out", str(out)]) == 2
    assert "use --force" in capsys.readouterr().err and (out / "P02.html").read_bytes() == b"edited by hand"
    assert cli_main(["report", str(results), "--patient", "P02", "--no-pdf", "--out", str(out), "--force"]) == 0
    assert (out / "P02.html").read_bytes() == before
