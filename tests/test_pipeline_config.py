"""Pipeline definitions and pre-flight validation: every problem is reported before anything is processed."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cytokit.errors import ConfigError, PipelineError
from cytokit.pipeline import adhoc_pipeline, load_pipeline, run
from cytokit.pipeline.manifest import build_manifest
from cytokit.pipeline.preflight import preflight, read_header_sample
from test_pipeline_support import simulate_small_trial, write_pipeline


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("trial") / "trial", events=1500)


@pytest.fixture()
def own_trial(trial, tmp_path) -> Path:
    """A private copy of the simulated trial that a test may damage."""
    return Path(shutil.copytree(trial, tmp_path / "trial"))


def test_builtin_pipeline_validates_and_resolves_relative_paths(repo_root):
    config = load_pipeline("il2_trial")
    assert config.source == (repo_root / "pipelines" / "il2_trial.yaml").resolve()
    assert config.manifest.path == (repo_root / "sample_data" / "manifest.csv").resolve()
    assert set(config.tubes) == {"tmem", "nkb"}
    assert config.trial is not None and config.trial.treatment_arm == "IL-2"
    assert len(config.hash()) == 64


def test_invalid_yaml_names_file_line_and_field(tmp_path, trial):
    path = write_pipeline(tmp_path, trial, executor={"jobs": 0}, counts={"method": "triple_platform"})
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "executor.jobs" in msg and "counts.method" in msg
    lines = path.read_text().splitlines()
    jobs_line = next(i + 1 for i, line in enumerate(lines) if line.strip().startswith("jobs:"))
    assert f"{path}:{jobs_line}: executor.jobs" in msg


def test_unknown_key_and_missing_source_are_rejected(tmp_path, trial):
    with pytest.raises(ConfigError, match="colour"):
        load_pipeline(write_pipeline(tmp_path, trial, colour="blue"))
    with pytest.raises(ConfigError, match="exactly one of 'path'"):
        load_pipeline(_no_manifest(tmp_path))


def _no_manifest(tmp_path: Path) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nmanifest: {}\ntubes: {tmem: {panel: il2_trial, strategy: tmem}}\n")
    return p


def test_manifest_column_mapping(tmp_path, own_trial):
    df = pd.read_csv(own_trial / "manifest.csv", dtype=str, keep_default_na=False)
    df.rename(columns={"patient": "subject_id", "visit": "timepoint"}).to_csv(own_trial / "manifest.csv", index=False)
    with pytest.raises(PipelineError, match="missing column"):
        preflight(load_pipeline(write_pipeline(tmp_path, own_trial)))
    cfg = load_pipeline(write_pipeline(tmp_path, own_trial, name="mapped",
                                       manifest={"path": f"{own_trial}/manifest.csv",
                                                 "columns": {"patient": "subject_id", "visit": "timepoint"}}))
    table, problems = build_manifest(cfg)
    assert problems == []
    assert set(table["patient"]) == set(df["patient"]) and set(table["visit"]) == set(df["visit"])


def test_filename_rules_without_manifest(tmp_path, trial):
    cfg = load_pipeline(write_pipeline(tmp_path, trial, name="rules", clinical=None, counts={"method": "none"},
                                       manifest={"input": str(trial / "fcs"), "rules": [
                                           {"pattern": r"^(?P<patient>P\d+)_(?P<visit>W\d+)_(?P<tube>tmem|nkb)\.fcs$",
                                            "set": {"arm": "unknown"}}]}))
    table, problems = build_manifest(cfg)
    assert problems == []
    assert len(table) == 8
    row = table.set_index("sample_id").loc["P001_W12_nkb"]
    assert (row["patient"], row["visit"], row["tube"], row["arm"]) == ("P001", "W12", "nkb", "unknown")


def test_preflight_lists_every_problem_and_processes_nothing(tmp_path, own_trial):
    manifest = pd.read_csv(own_trial / "manifest.csv", dtype=str, keep_default_na=False)
    (own_trial / "fcs" / "P001_W0_tmem.fcs").unlink()                               # missing file
    manifest.loc[1, "tube"] = "cd34"                                                 # unknown tube
    manifest.loc[2, "file"], manifest.loc[2, "tube"] = "fcs/P001_W0_nkb.fcs", "tmem"  # wrong panel tube
    manifest.loc[3, "file"] = "fcs/P001_W12_nkb.fcs"                                 # duplicate file
    manifest.to_csv(own_trial / "manifest.csv", index=False)
    (own_trial / "fcs" / "P002_W0_nkb.fcs").write_bytes(b"not an fcs file at all")  # corrupt header: not a run
    out = tmp_path / "out"                                                         # problem (fails alone)
    with pytest.raises(PipelineError) as err:
        run(write_pipeline(tmp_path, own_trial), out)
    msg = str(err.value)
    assert "nothing was processed" in msg
    assert "P001_W0_tmem.fcs" in msg and "not found" in msg
    assert "'cd34'" in msg
    assert "required marker" in msg and "tmem" in msg
    assert "listed more than once" in msg or "duplicate sample id" in msg
    assert "P002_W0_nkb.fcs" not in msg  # a bad file fails its sample alone (tests/test_robust_validation.py)
    assert not out.exists()


def test_preflight_reads_headers_only(trial, tmp_path, monkeypatch):
    import cytokit.fcs

    def no_full_read(*args, **kwargs):
        raise AssertionError("pre-flight validation must not read event data")

    monkeypatch.setattr(cytokit.fcs, "read_fcs", no_full_read)
    monkeypatch.setattr("cytokit.fcs.reader.read_fcs", no_full_read)
    plan = preflight(load_pipeline(write_pipeline(tmp_path, trial)))
    assert len(plan.samples) == 8 and plan.samples["sha256"].str.len().eq(64).all()


def test_header_only_read_has_channels_but_no_events(trial):
    sample = read_header_sample(trial / "fcs" / "P001_W0_tmem.fcs")
    assert sample.n_events == 0 and sample.n_channels >= 10
    assert "FSC-A" in set(sample.channels["pnn"]) or "FSC-A" in set(sample.channels["pns"])


def test_output_folder_rules(tmp_path, trial):
    path = write_pipeline(tmp_path, trial)
    with pytest.raises(PipelineError, match="never writes into input folders"):
        run(path, trial / "results")
    assert not (trial / "results").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's")
    with pytest.raises(PipelineError, match="not empty"):
        run(path, busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_adhoc_pipeline_for_a_bare_folder(trial):
    cfg = adhoc_pipeline(trial / "fcs", "il2_trial", "tmem", tube="tmem")
    table, problems = build_manifest(cfg)
    assert problems == [] and len(table) == 8 and set(table["tube"]) == {"tmem"}
    assert cfg.counts.method == "none" and cfg.clinical is None
    with pytest.raises(ConfigError, match="not found"):
        adhoc_pipeline(trial / "nope", "il2_trial", "tmem")


def test_preflight_rejects_unknown_clustering_options_before_processing(tmp_path, trial):
    path = write_pipeline(tmp_path, trial, outputs={"clustering": True},
                          clustering={"populaton": "T cells", "force": True, "params": {"xdim": 0}})
    out = tmp_path / "out"
    with pytest.raises(PipelineError) as err:
        run(path, out)
    msg = str(err.value)
    assert "nothing was processed" in msg
    assert "'force'" in msg and "'populaton'" in msg and "unknown option" in msg
    assert "clustering.params" in msg and "xdim" in msg
    assert not out.exists()
