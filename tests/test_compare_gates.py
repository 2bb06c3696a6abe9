"""``cytokit compare-gates`` on a finished run scores the run's stored gates on the events its tables count
(the run's own QC), so its automated side equals the run's populations table."""
from __future__ import annotations

import logging
import math
import shutil

import pandas as pd
import pytest

from cytokit.cli.main import main
from cytokit.fcs import read_fcs
from cytokit.flowjo import write_workspace
from cytokit.gating import load_strategy
from cytokit.gatingml import read_gatingml
from cytokit.learn import compare_gates
from cytokit.simulate import simulate_file


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory):
    """Two 20,000-event tmem files whose time QC removes an interval, an "expert" workspace gating every
    event (the tmem strategy without QC, as a FlowJo user gates), and a finished run of the files."""
    base = tmp_path_factory.mktemp("compare")
    fcs = base / "fcs"
    fcs.mkdir()
    for i in range(2):
        simulate_file(fcs / f"S{i}_W0_tmem.fcs", n_events=20_000, tube="tmem", instrument="bd", seed=100 + i,
                      arm="control", week=0)
    files = sorted(fcs.glob("*.fcs"))
    strategy = load_strategy("tmem")
    entries = []
    for f in files:
        sample = read_fcs(f)
        entries.append((sample, read_gatingml(strategy.apply(sample, qc=False).to_gatingml().encode())))
    write_workspace(base / "expert.wsp", entries)
    assert main(["-q", "run", "--input", str(fcs), "--panel", "il2_trial", "--strategy", "tmem", "--tube", "tmem",
                 "--out", str(base / "run")]) == 0
    return base, files


def test_run_side_equals_the_populations_table(gated_run):
    base, files = gated_run
    samples = pd.read_csv(base / "run" / "samples.csv")
    assert (samples["n_events_qc"] < samples["n_events"] - 100).all(), "precondition: QC removed events"
    pops = pd.read_csv(base / "run" / "populations.csv").set_index(["sample_id", "population"])
    table = compare_gates(base / "expert.wsp", files, base / "run").set_index(["sample", "population"])
    assert len(table) == len(pops) == 28
    for key, row in pops.iterrows():
        got = table.loc[key]
        assert got["n_auto"] == row["count"], key
        assert math.isclose(got["pct_auto"], row["pct_parent"], rel_tol=1e-12), (key, got["pct_auto"], row["pct_parent"])
    # the expert gated every event; on the run's events its Lymphocytes are a % of the events QC kept
    lymph = table.xs("Lymphocytes", level="population")
    kept = samples.set_index("sample_id")["n_events_qc"]
    assert (lymph["n_expert"] / kept[lymph.index] * 100 - lymph["pct_expert"]).abs().max() < 1e-9


def test_run_and_strategy_modes_score_the_same_events(gated_run):
    base, files = gated_run
    run = compare_gates(base / "expert.wsp", files, base / "run").set_index(["sample", "population"])
    direct = compare_gates(base / "expert.wsp", files, "tmem").set_index(["sample", "population"])
    pd.testing.assert_frame_equal(run.sort_index()[["n_auto", "n_expert", "pct_auto", "pct_expert", "f1"]],
                                  direct.sort_index()[["n_auto", "n_expert", "pct_auto", "pct_expert", "f1"]])


def test_cli_table_is_the_run_side(gated_run, tmp_path):
    base, files = gated_run
    out = tmp_path / "agreement.csv"
    assert main(["-q", "compare-gates", str(base / "expert.wsp"), *map(str, files), "--gates", str(base / "run"),
                 "--table", str(out)]) == 0
    cli = pd.read_csv(out).set_index(["sample", "population"])
    pops = pd.read_csv(base / "run" / "populations.csv").set_index(["sample_id", "population"])
    assert (cli.loc[pops.index, "pct_auto"].to_numpy() - pops["pct_parent"].to_numpy()).__abs__().max() < 1e-9


def test_a_different_file_of_the_same_name_is_refused(gated_run, tmp_path):
    base, files = gated_run
    other = tmp_path / files[0].name
    simulate_file(other, n_events=5_000, tube="tmem", instrument="bd", seed=7, arm="control", week=0)
    assert main(["-q", "compare-gates", str(base / "expert.wsp"), str(other), "--gates", str(base / "run")]) == 2


def test_populations_the_tables_took_from_a_cohort_refit_are_named(gated_run, tmp_path, caplog):
    """With cohort gating, the tables may report a re-fit while the stored gates are the original fit:
    compare-gates says which rows are not the tables' numbers."""
    base, files = gated_run
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    for path in (run / "populations.csv", run / "populations.parquet"):
        if not path.exists():
            continue
        pops = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)
        hit = (pops["sample_id"] == files[0].stem) & (pops["population"] == "CD25+ CD4")
        pops.loc[hit, "method"] = pops.loc[hit, "method"] + "+cohort"
        pops.to_csv(path, index=False) if path.suffix == ".csv" else pops.to_parquet(path)
    with caplog.at_level(logging.WARNING, logger="cytokit.learn.api"):
        compare_gates(base / "expert.wsp", files, run)
    named = [r.getMessage() for r in caplog.records if "cohort re-fit" in r.getMessage()]
    assert len(named) == 1 and files[0].name in named[0] and "CD25+ CD4" in named[0]
