"""Every per-event output reads the gates the tables report, and only samples of the current run.

With cohort gating re-fitting a sample, the populations tables report the re-fit, but the per-event labels of
``events_<tube>.h5ad`` and ``load_gated_events`` (the clustering stage's events) came from the original
per-sample fit: the same input gave two answers. And after the manifest shrank, the folders of samples no
longer in it stayed under ``samples/``, where ``load_gated_events`` could still read them."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import PipelineError
from cytokit.pipeline import load_gated_events, run
from cytokit.results import ResultsFolder
from cytokit.results import schema as S
from test_pipeline_support import simulate_small_trial
from test_robust_stale_outputs import _pipeline

anndata = pytest.importorskip("anndata", reason="anndata is in the test extra: pip install 'cytokit[test]'")


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("reported") / "trial", events=3000, patients_per_arm=2)


def test_per_event_outputs_use_the_cohort_refit_the_tables_report(trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run(_pipeline(tmp_path / "cfg", trial, {"gatingml": True, "anndata": True, "cohort_gating": True}),
                  out)
    assert summary.failed == 0 and summary.stage_errors == {} and summary.output_errors == {}
    pops = pd.read_csv(out / "populations.csv")
    refitted = sorted(pops.loc[pops[S.METHOD].astype(str).str.endswith("+cohort"), S.SAMPLE_ID].unique())
    assert refitted, "the cohort gating re-fitted no sample: the test checks nothing"
    folder = ResultsFolder(out)
    for sid in refitted:
        reported = folder.reported_gates(sid)
        assert reported.refitted and reported.gatingml.name == S.GATES_COHORT_XML
        assert reported.records() != folder.sample_result(sid)["gates"]
    samples = pd.read_csv(out / "samples.csv")
    tube = samples.set_index(S.SAMPLE_ID).loc[refitted[0], S.TUBE]
    adata = anndata.read_h5ad(out / f"events_{tube}.h5ad")
    obs = adata.obs
    moved = 0
    for sid in refitted:
        table = pops[pops[S.SAMPLE_ID] == sid].set_index(S.POPULATION)
        mine = obs[S.SAMPLE_ID] == sid
        X = np.asarray(adata.X)[mine.to_numpy()]
        assert len(X) == samples.set_index(S.SAMPLE_ID).loc[sid, S.N_EVENTS_QC]  # every QC-kept event exported
        index = {row.tobytes(): i for i, row in enumerate(X)}
        expected = np.full(len(X), "", dtype=object)
        for population in table.index:  # strategy order: a later (deeper) population's label wins
            # load_gated_events (the clustering stage's events) gives the tables' count ...
            events, _ = load_gated_events(out, sid, population)
            assert len(events) == table.loc[population, S.COUNT], (sid, population)
            stored = next(p for p in folder.sample_result(sid)["populations"] if p[S.POPULATION] == population)
            moved += int(stored[S.COUNT] != len(events))
            expected[[index[row.tobytes()] for row in events]] = population
        # ... and the h5ad labels the same events with the same populations
        got = obs.loc[mine, S.POPULATION].astype(str).to_numpy()
        assert (got == expected.astype(str)).all(), (sid, int((got != expected.astype(str)).sum()))
    assert moved > 0, "no re-fit changed a count: the test could not tell the fits apart"


def test_samples_no_longer_in_the_manifest_are_not_read(trial: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "out"
    cfg = _pipeline(tmp_path / "cfg", trial, {})
    assert run(cfg, out).failed == 0
    manifest = pd.read_csv(trial / "manifest.csv")
    ids = [Path(f).stem for f in manifest[S.FILE]]  # sample id: the file's stem
    dropped = ids[0]
    assert (out / S.SAMPLES_DIR / dropped / S.RESULT_FILE).is_file()
    events, _ = load_gated_events(out, dropped, "Lymphocytes")
    assert len(events) > 0

    # the manifest shrinks: the dropped sample's folder goes with it, and it cannot be read
    manifest.iloc[1:].to_csv(trial / "manifest_shrunk.csv", index=False)
    cfg.write_text(cfg.read_text().replace("manifest.csv", "manifest_shrunk.csv"))
    second = run(cfg, out)
    assert second.failed == 0
    assert not (out / S.SAMPLES_DIR / dropped).exists()
    assert "not in the manifest" in caplog.text
    kept = ids[1]
    assert (out / S.SAMPLES_DIR / kept / S.RESULT_FILE).is_file()
    assert all((trial / f).is_file() for f in manifest[S.FILE])  # no input touched
    with pytest.raises(PipelineError, match="not a successfully analysed sample of this run"):
        load_gated_events(out, dropped, "Lymphocytes")

    # a sample folder the samples table does not list (copied in by hand) is refused too
    shutil.copytree(out / S.SAMPLES_DIR / kept, out / S.SAMPLES_DIR / "GHOST")
    with pytest.raises(PipelineError, match="not a successfully analysed sample of this run"):
        load_gated_events(out, "GHOST", "Lymphocytes")
    assert np.isfinite(load_gated_events(out, kept, "Lymphocytes")[0]).all()


def test_force_over_another_run_removes_the_samples_it_does_not_have(trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(_pipeline(tmp_path / "cfg", trial, {}), out).failed == 0
    manifest = pd.read_csv(trial / "manifest.csv")
    ids = [Path(f).stem for f in manifest[S.FILE]]
    manifest.iloc[2:].to_csv(trial / "manifest_other.csv", index=False)
    other = _pipeline(tmp_path / "other", trial, {})
    other.write_text(other.read_text().replace("manifest.csv", "manifest_other.csv").replace("name: stale",
                                                                                            "name: other"))
    assert run(other, out, force=True).failed == 0
    folders = sorted(p.name for p in (out / S.SAMPLES_DIR).iterdir())
    assert folders == sorted(ids[2:])
    with pytest.raises(PipelineError):
        load_gated_events(out, ids[0], "Lymphocytes")
