"""Validation happens before any sample is processed; bad files and odd ids fail alone and clearly."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cytokit.errors import ConfigError, PipelineError
from cytokit.pipeline import load_pipeline, run
from cytokit.pipeline.manifest import build_manifest
from cytokit.pipeline.preflight import preflight
from test_pipeline_support import simulate_small_trial, write_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=2000)


@pytest.fixture()
def own_trial(trial, tmp_path) -> Path:
    return Path(shutil.copytree(trial, tmp_path / "trial"))


def _with_trial_block(cfg: Path, block: dict, key: str = "trial") -> Path:
    data = yaml.safe_load(cfg.read_text())
    data[key] = block
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def _edit_csv(path: Path, fn) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(df).to_csv(path, index=False)


@pytest.mark.parametrize("column", ["status", "error", "check_flags", "lymphocytes", "sample_id"])
def test_manifest_columns_that_collide_with_results_are_refused_up_front(own_trial, tmp_path, column):
    _edit_csv(own_trial / "manifest.csv", lambda df: df.assign(**{column: "x"}))
    with pytest.raises(PipelineError, match=rf"\['{column}'\] are names cytokit writes") as err:
        run(write_pipeline(tmp_path / "cfg", own_trial), tmp_path / "out")
    assert "nothing was processed" in str(err.value) and not (tmp_path / "out").exists()


def test_mapped_column_next_to_a_column_of_that_name_is_refused(own_trial, tmp_path):
    _edit_csv(own_trial / "manifest.csv", lambda df: df.assign(subject_id=df["patient"]))
    cfg = write_pipeline(tmp_path / "cfg", own_trial, manifest={"path": "../trial/manifest.csv",
                                                               "columns": {"patient": "subject_id"}})
    with pytest.raises(PipelineError, match="maps 'subject_id' to 'patient', but the file also has a 'patient'"):
        preflight(load_pipeline(cfg))


def test_one_csv_column_mapped_to_two_fields_is_refused(own_trial, tmp_path):
    cfg = write_pipeline(tmp_path / "cfg", own_trial, manifest={"path": "../trial/manifest.csv",
                                                               "columns": {"visit": "week", "week": "week"}})
    with pytest.raises(ConfigError, match="one CSV column mapped to several fields"):
        load_pipeline(cfg)


def test_long_sample_ids_are_not_cut_into_false_duplicates(own_trial, tmp_path):
    long = "X" * 130
    _edit_csv(own_trial / "manifest.csv", lambda df: df.assign(patient=long + "_" + df["patient"]))
    cfg = load_pipeline(write_pipeline(tmp_path / "cfg", own_trial, manifest={
        "path": "../trial/manifest.csv", "sample_id": "{patient}_{visit}_{tube}"}))
    table, problems = build_manifest(cfg)
    assert problems == [] and table["sample_id"].is_unique and len(table) == 8
    assert all(len(s) <= 120 for s in table["sample_id"])
    _edit_csv(own_trial / "manifest.csv", lambda df: df.assign(patient=df["patient"].str.replace("_P", "/P")))
    cfg = load_pipeline(write_pipeline(tmp_path / "cfg2", own_trial, manifest={
        "path": "../trial/manifest.csv", "sample_id": "{patient}_{visit}"}))
    table, problems = build_manifest(cfg)  # ids that differ only by the tube: a true duplicate, told as such
    assert problems and all("duplicate sample id" in p for p in problems)


def test_ids_that_sanitise_alike_are_explained(own_trial, tmp_path):
    def two_spellings(df):
        df.loc[df["patient"] == "P002", "patient"] = "P/001"
        df.loc[df["patient"] == "P001", "patient"] = "P_001"
        return df

    _edit_csv(own_trial / "manifest.csv", two_spellings)
    cfg = load_pipeline(write_pipeline(tmp_path / "cfg", own_trial, manifest={
        "path": "../trial/manifest.csv", "sample_id": "{patient}_{visit}_{tube}"}))
    _, problems = build_manifest(cfg)
    assert problems and "become 'P_001_W0_tmem' once made file-name safe" in " ".join(problems)


def test_a_corrupt_header_fails_that_sample_alone(own_trial, tmp_path):
    victim = own_trial / "fcs" / "P002_W0_nkb.fcs"
    data = bytearray(victim.read_bytes())
    data[10:26] = b"  garbage!garbag"  # HEADER offsets no longer numbers
    victim.write_bytes(bytes(data))
    summary = run(write_pipeline(tmp_path / "cfg", own_trial), tmp_path / "out")
    assert summary.total == 8 and summary.ok == 7 and summary.failed == 1
    assert "P002_W0_nkb" in summary.failures


def test_reference_intervals_checked_first_and_resolved_from_the_yaml_folder(trial, tmp_path, monkeypatch):
    cfg_dir = tmp_path / "cfg"
    cfg = write_pipeline(cfg_dir, trial, outputs={"reports": True}, report={"pdf": False,
                                                                          "reference_intervals": "my_ri.yaml"})
    monkeypatch.chdir(tmp_path)  # not the YAML's folder
    with pytest.raises(PipelineError, match="report.reference_intervals") as err:
        run(cfg, tmp_path / "out")
    assert "nothing was processed" in str(err.value)
    shutil.copy(ROOT / "pipelines" / "reference_intervals.yaml", cfg_dir / "my_ri.yaml")
    config = load_pipeline(cfg)
    assert config.report.reference_intervals == str(cfg_dir / "my_ri.yaml")
    preflight(config)


@pytest.mark.parametrize("trial_block, message", [
    ({"treatment_arm": "IL2"}, "trial.treatment_arm: 'IL2' is not an arm"),
    ({"baseline_visit": "W00"}, "trial.baseline_visit: 'W00' is not a visit"),
    ({"tubes": {"preference": ["tmem", "nkbb"]}}, "trial.tubes.preference: ['nkbb']"),
])
def test_trial_settings_checked_before_any_sample(trial, tmp_path, trial_block, message):
    cfg = _with_trial_block(write_pipeline(tmp_path / "cfg", trial, outputs={"trial": True}), trial_block)
    with pytest.raises(PipelineError) as err:
        run(cfg, tmp_path / "out")
    assert message in str(err.value) and "nothing was processed" in str(err.value)


def test_default_tube_preference_must_match_the_pipeline_tubes(own_trial, tmp_path):
    _edit_csv(own_trial / "manifest.csv", lambda df: df.assign(tube=df["tube"].map({"tmem": "A", "nkb": "B"})))
    cfg = _with_trial_block(write_pipeline(tmp_path / "cfg", own_trial, outputs={"trial": True}),
                            {"A": {"panel": "il2_trial", "strategy": "tmem", "panel_tube": "tmem"},
                             "B": {"panel": "il2_trial", "strategy": "nkb", "panel_tube": "nkb"}}, key="tubes")
    with pytest.raises(PipelineError, match=r"trial.tubes.preference: \['tmem', 'nkb'\] are not a tube"):
        preflight(load_pipeline(cfg))


def test_unknown_clustering_population_is_found_first(trial, tmp_path, monkeypatch):
    cfg = write_pipeline(tmp_path / "cfg", trial, outputs={"clustering": True},
                         clustering={"population": "T-cells", "tube": "tmem", "phenotypes": "my_phenotypes.yaml"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match="clustering.population: 'T-cells' is not a population") as err:
        preflight(load_pipeline(cfg))
    # a path in the pipeline YAML is relative to the YAML's folder, not to the current one
    assert f"clustering.phenotypes: file not found: {tmp_path / 'cfg' / 'my_phenotypes.yaml'}" in str(err.value)


def test_clinical_columns_mapping_and_trial_without_stratum(own_trial, tmp_path):
    _edit_csv(own_trial / "clinical.csv",
              lambda df: df.rename(columns={"patient": "subject", "visit": "timepoint"}).drop(columns=["stratum"]))
    cfg = write_pipeline(tmp_path / "cfg", own_trial, outputs={"trial": True},
                         clinical={"columns": {"patient": "subject", "visit": "timepoint"}})
    summary = run(cfg, tmp_path / "out")
    assert summary.complete, (summary.failures, summary.stage_errors)
    copy = pd.read_csv(tmp_path / "out" / "clinical.csv", dtype=str)
    assert {"patient", "visit"} <= set(copy.columns)
    pops = pd.read_csv(tmp_path / "out" / "populations.csv")
    tmem = pops[(pops["tube"] == "tmem") & (pops["population"] == "CD4 T")]
    assert tmem["abs_count_per_uL"].notna().all()  # lymphocyte counts found through the mapping
    bad = write_pipeline(tmp_path / "cfg2", own_trial, clinical={"columns": {"patient": "subj"}})
    with pytest.raises(PipelineError, match="clinical.columns.patient: no column 'subj'"):
        preflight(load_pipeline(bad))


def test_strategy_panel_path_is_relative_to_the_strategy_file(tmp_path, monkeypatch):
    from cytokit.gating import load_strategy

    folder = tmp_path / "defs"
    folder.mkdir()
    shutil.copy(ROOT / "panels" / "il2_trial.yaml", folder / "my_panel.yaml")
    data = yaml.safe_load((ROOT / "gating" / "tmem.yaml").read_text())
    data["panel"] = "my_panel.yaml"
    (folder / "my_tmem.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    strategy = load_strategy(folder / "my_tmem.yaml")
    assert strategy.definition.panel == str(folder / "my_panel.yaml")


def test_rule_fields_that_collide_with_results_are_refused(trial, tmp_path):
    cfg = load_pipeline(write_pipeline(tmp_path / "cfg", trial, clinical=None, counts={"method": "none"},
                                       manifest={"input": str(trial / "fcs"), "rules": [
                                           {"pattern": r"^(?P<patient>P\d+)_(?P<status>W\d+)_(?P<tube>tmem|nkb)",
                                            "set": {"arm": "a", "visit": "v"}}]}))
    _, problems = build_manifest(cfg)
    assert problems and "['status'] are names cytokit writes" in problems[0]


def test_a_newline_in_a_patient_id_cannot_forge_log_lines(own_trial, tmp_path, capsys):
    from cytokit.cli.main import main as cli_main

    forged = "P002\nERROR cytokit.pipeline.runner: forged line"
    for name in ("manifest.csv", "clinical.csv"):
        _edit_csv(own_trial / name, lambda df: df.assign(patient=df["patient"].replace("P002", forged)))
    cfg = write_pipeline(tmp_path / "cfg", own_trial, outputs={"reports": True}, report={"pdf": False})
    assert cli_main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "P002\\nERROR cytokit.pipeline.runner: forged line" in err
    assert not any(line.startswith("ERROR cytokit.pipeline.runner: forged") for line in err.splitlines())
    reports = sorted(p.name for p in (tmp_path / "out" / "reports").iterdir())
    assert reports[0] == "P001.html" and reports[1].startswith("P002_ERROR_cytokit.pipeline.runner_forged_line-")


def test_trial_and_reports_need_a_week_for_every_sample_before_any_is_analysed(own_trial, tmp_path):
    """docs/pipeline.md lists `week` as an optional manifest column; the trial and report stages order the
    visits by it, so without it the run must stop up front, not fail both stages after every sample."""
    stages = {"trial": True, "reports": True}
    _edit_csv(own_trial / "manifest.csv", lambda df: df.drop(columns=["week"]))
    cfg = write_pipeline(tmp_path / "cfg", own_trial, outputs=stages, report={"pdf": False})
    with pytest.raises(PipelineError, match="manifest: no 'week' column; outputs.trial and outputs.reports") as err:
        run(cfg, tmp_path / "out")
    assert "nothing was processed" in str(err.value) and not (tmp_path / "out" / "populations.csv").exists()
    preflight(load_pipeline(write_pipeline(tmp_path / "cfg0", own_trial, outputs={"trial": False, "reports": False})))

    _edit_csv(own_trial / "manifest.csv",
              lambda df: df.assign(week=df["visit"].str[1:]).assign(week=lambda d: d["week"].mask(d.index == 0, "")))
    first = pd.read_csv(own_trial / "manifest.csv", dtype=str, keep_default_na=False).iloc[0]
    with pytest.raises(PipelineError, match=r"manifest: 'week' is empty or not a number for 1 sample\(s\)") as err:
        preflight(load_pipeline(write_pipeline(tmp_path / "cfg1", own_trial, outputs={"reports": True},
                                               report={"pdf": False})))
    assert Path(first["file"]).stem in str(err.value) and f"visits ['{first['visit']}']" in str(err.value)


def test_one_file_saved_as_two_samples_is_flagged_on_both(own_trial, tmp_path, caplog):
    """A copy of W0's file saved as W12 gives W12 W0's numbers: both samples say so (check_flags) and the
    run warns up front; samples with their own files are not flagged."""
    fcs = own_trial / "fcs"
    shutil.copyfile(fcs / "P001_W0_tmem.fcs", fcs / "P001_W12_tmem.fcs")
    caplog.set_level("WARNING", logger="cytokit.pipeline.preflight")
    summary = run(write_pipeline(tmp_path / "cfg", own_trial), tmp_path / "out")
    assert summary.complete
    samples = pd.read_csv(tmp_path / "out" / "samples.csv", dtype=str, keep_default_na=False).set_index("sample_id")
    flags = {sid: [f for f in text.split(";") if f.startswith("same_data_as")]
             for sid, text in samples["check_flags"].items()}
    assert flags.pop("P001_W0_tmem") == ["same_data_as:P001_W12_tmem"]
    assert flags.pop("P001_W12_tmem") == ["same_data_as:P001_W0_tmem"]
    assert all(not f for f in flags.values()) and len(flags) == 6
    warned = [r.getMessage() for r in caplog.records if "byte-identical FCS files" in r.getMessage()]
    assert len(warned) == 1 and "P001_W0_tmem and P001_W12_tmem" in warned[0]


def test_a_strategy_marker_the_files_lack_is_found_before_any_sample(trial, tmp_path):
    """A population gating on a marker no channel carries would fail every sample of its tube after the
    run started; preflight names it. An `optional` population without its marker is fine (it is skipped)."""
    strategy = yaml.safe_load((ROOT / "gating" / "nkb.yaml").read_text())
    strategy["name"] = "my_nkb"
    extra = {"name": "CD57+ NK", "parent": "NK cells", "dims": ["CD57"], "method": "threshold",
             "params": {"sign": "+", "threshold": {"bounds": [0.3, 0.7]}}}
    below = {**extra, "name": "CD57+ CD56dim", "parent": "CD57+ NK", "dims": ["CD56"]}
    strategy["populations"] += [extra, below]
    (tmp_path / "my_nkb.yaml").write_text(yaml.safe_dump(strategy, sort_keys=False))
    tubes = {"nkb": {"panel": "il2_trial", "strategy": str(tmp_path / "my_nkb.yaml")}}
    cfg = write_pipeline(tmp_path / "cfg", trial, tubes={**tubes, "tmem": {"panel": "il2_trial", "strategy": "tmem"}})
    with pytest.raises(PipelineError) as err:
        run(cfg, tmp_path / "out")
    text = str(err.value)
    assert "nothing was processed" in text and "strategy 'my_nkb': population 'CD57+ NK' gates on 'CD57'" in text
    assert "_nkb.fcs" in text and "_tmem.fcs" not in text and not (tmp_path / "out" / "populations.csv").exists()
    extra["optional"] = True  # skipped, and the population below it with it
    (tmp_path / "my_nkb.yaml").write_text(yaml.safe_dump(strategy, sort_keys=False))
    preflight(load_pipeline(cfg))
