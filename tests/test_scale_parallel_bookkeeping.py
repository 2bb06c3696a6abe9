"""Parallel bookkeeping gives exactly the one-process answer: header checks of preflight and table assembly."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from cytokit.pipeline import assemble, load_pipeline, preflight as preflight_module, run
from cytokit.pipeline.ledger import read_ledger
from cytokit.pipeline.runner import tube_lymphocytes
from cytokit.pipeline.store import ResultsStore
from test_pipeline_support import simulate_small_trial, write_pipeline


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("parallel")
    trial = simulate_small_trial(base / "trial", events=1500)
    path = write_pipeline(base / "cfg", trial)
    run(path, base / "out", jobs=2)
    return path, base / "out"


def test_parallel_header_checks_equal_serial_and_name_the_unreadable_file(tmp_path, monkeypatch):
    trial = simulate_small_trial(tmp_path / "trial", events=500, visits=("W0",))
    fcs = trial / "fcs"
    bad = sorted(fcs.glob("*.fcs"))[0]
    bad.write_bytes(b"FCS3.0    garbage" + bad.read_bytes()[17:200])  # truncated: its header cannot be read
    config = load_pipeline(write_pipeline(tmp_path / "cfg", trial))
    from cytokit.pipeline.manifest import build_manifest

    tubes = preflight_module.load_tube_definitions(config, [])
    samples, _ = build_manifest(config)
    items = [(str(r.path), tubes[r.tube]) for r in samples.itertuples()]
    serial = preflight_module.check_files(items, jobs=1)
    monkeypatch.setattr(preflight_module, "PARALLEL_MIN_FILES", 2)
    parallel = preflight_module.check_files(items, jobs=2)
    assert parallel == serial
    unreadable = [u for _, _, u in serial if u]
    assert len(unreadable) == 1 and bad.name in unreadable[0]      # that sample will fail alone
    assert not any(p for _, p, _ in serial)
    assert all(len(sha) == 64 for sha, _, _ in serial)


def test_parallel_assembly_equals_serial(study, monkeypatch):
    path, out = study
    config = load_pipeline(path)
    plan = preflight_module.preflight(config)
    ledger = read_ledger(out)
    states = ledger.samples()
    store = ResultsStore(out, ledger)
    lazy = store.verified({s: states[s]["key"] for s in plan.samples["sample_id"]}, states)
    assert len(lazy) == 8
    eager = {s: store.load(s) for s in lazy}
    lymphocytes = tube_lymphocytes(plan)
    assert set(lymphocytes.values()) == {"Singlets"} and set(lymphocytes) == set(plan.samples["tube"])
    serial = assemble.assemble_tables(config, plan.samples, eager, states, plan.clinical, jobs=1,
                                      lymphocytes=lymphocytes)
    monkeypatch.setattr(assemble, "PARALLEL_MIN_SAMPLES", 2)
    for results in (lazy, eager):
        parallel = assemble.assemble_tables(config, plan.samples, results, states, plan.clinical, jobs=2,
                                            lymphocytes=lymphocytes)
        for a, b in zip(serial, parallel):
            pd.testing.assert_frame_equal(a, b)
            assert a.to_csv(index=False) == b.to_csv(index=False)
    assert (out / "populations.csv").read_text() == serial[0].to_csv(index=False, lineterminator="\n")
    assert (out / "samples.csv").read_text() == serial[1].to_csv(index=False, lineterminator="\n")
    # the tables count the denominator they are given (the strategies'), in worker processes too
    other = {tube: "T cells" for tube in lymphocytes}
    pops, samples = assemble.assemble_tables(config, plan.samples, lazy, states, plan.clinical, jobs=2,
                                             lymphocytes=other)
    t_cells = pops[pops["population"] == "T cells"].set_index("sample_id")["count"]
    singlets = pops[pops["population"] == "Singlets"].set_index("sample_id")["count"]
    got = samples.set_index("sample_id")["lymphocytes"]
    assert (got == t_cells.reindex(got.index)).all() and (got < singlets.reindex(got.index)).all()
    assert (serial[1].set_index("sample_id")["lymphocytes"] == singlets.reindex(got.index)).all()


def test_run_with_parallel_bookkeeping_writes_identical_tables(study, tmp_path, monkeypatch):
    path, out = study
    monkeypatch.setattr(assemble, "PARALLEL_MIN_SAMPLES", 2)
    monkeypatch.setattr(preflight_module, "PARALLEL_MIN_FILES", 2)
    again = tmp_path / "out"
    shutil.copytree(out, again)
    (again / "populations.parquet").unlink()
    summary = run(path, again, jobs=2)
    assert summary.skipped == 8
    for name in ("populations.parquet", "populations.csv", "samples.parquet", "samples.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
