"""Compensation check on real files: compensated once passes, compensated twice (data already
compensated that still carry $SPILLOVER) is flagged — in the Sample, and in the pipeline's tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.compensation import (acquisition_matrix, check_compensation, compensate, compensate_events,
                                  compensation_flags, matrix_indices)
from cytokit.fcs import read_fcs, write_fcs
from cytokit.pipeline import adhoc_pipeline, run

REAL = ["flowsom_68983/68983.fcs", "flowkit/100715.fcs", "gatingml2/FCSFiles/9399_1_3_NKR.fcs",
        "flowjo9_diva/diva/124500.fcs"]


@pytest.mark.parametrize("rel", REAL)
def test_once_passes_twice_is_flagged(shared_data, rel):
    s = read_fcs(shared_data / rel)
    once = compensate(s)
    assert compensation_flags(once) == [], once.warnings
    # a file whose data were already compensated but still carry $SPILLOVER
    already = s.replace(events=once.events.copy())
    twice = compensate(already)
    assert compensation_flags(twice) == ["overcompensated"]
    assert any("removed twice" in w or "over-subtracted" in w for w in twice.warnings)


def test_residual_measures_what_was_removed(shared_data):
    """Median residual spillover ~0 once, ~-1 twice, ~+1 not compensated (flowsom_68983)."""
    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    m = acquisition_matrix(s)
    idx = matrix_indices(s, m)
    raw = s.events.astype(np.float64)
    c1 = compensate_events(raw, m, idx)
    c2 = compensate_events(c1, m, idx)
    none, once, twice = (check_compensation(raw, x, m, idx).median_residual for x in (raw, c1, c2))
    assert 0.5 < none < 1.5
    assert abs(once) < 0.3
    assert -1.6 < twice < -0.8
    assert check_compensation(raw, c1, m, idx, over_threshold=-0.6).ok
    assert not check_compensation(raw, c2, m, idx).ok


def test_check_can_be_skipped(shared_data):
    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    already = s.replace(events=compensate(s).events.copy())
    assert compensation_flags(compensate(already, check=False)) == []


def test_pipeline_flags_already_compensated_and_detector_named_files(shared_data, tmp_path):
    """Three copies of flowsom_68983 through the mouse strategy: as published, already compensated
    (with $SPILLOVER kept), and with $PnS removed. The tables carry the flags on every row."""
    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    folder = tmp_path / "fcs"
    folder.mkdir()
    pnn = list(s.channels["pnn"].astype(str))
    pns = list(s.channels["pns"].fillna("").astype(str))
    keep = {k: v for k, v in s.metadata.items() if k.lower() in ("spill", "timestep", "cyt", "date")}
    meta = {("$" + k.upper() if k.lower() != "spill" else "SPILL"): v for k, v in keep.items()}
    meta.update({f"$P{i + 1}R": str(int(r)) for i, r in enumerate(s.channels["range"])})
    write_fcs(folder / "asis.fcs", s.events, pnn, pns, meta)
    write_fcs(folder / "already.fcs", compensate(s).events, pnn, pns, meta)
    write_fcs(folder / "nopns.fcs", s.events, pnn, [""] * len(pnn), meta)
    config = adhoc_pipeline(folder, "mouse_lymphocytes", "mouse_lymphocytes", tube="lymphocytes")
    summary = run(config, tmp_path / "out", jobs=1)
    assert summary.failed == 0, summary.failures
    samples = pd.read_csv(tmp_path / "out" / "samples.csv").fillna("").set_index("sample_id")
    flags = {sid: set(str(v).split(";")) - {""} for sid, v in samples["qc_flags"].items()}
    assert "overcompensated" in flags["already"]
    assert "overcompensated" not in flags["asis"] and "overcompensated" not in flags["nopns"]
    assert "markers_from_detector_names" in flags["nopns"]
    assert "markers_from_detector_names" not in flags["asis"] | flags["already"]
    pops = pd.read_csv(tmp_path / "out" / "populations.csv").fillna("")
    already_rows = pops[pops["sample_id"] == "already"]
    assert len(already_rows) and already_rows["qc_flags"].str.contains("overcompensated").all()
    # what the flag protects against: CD4 T nearly vanish when compensated twice; without $PnS the
    # detector-named markers give the same counts as the published file
    by = pops.set_index(["sample_id", "population"])["count"]
    assert by["already", "CD4 T"] < 0.1 * by["asis", "CD4 T"]
    assert abs(by["nopns", "T cells"] - by["asis", "T cells"]) <= 0.01 * by["asis", "T cells"]


def test_gate_command_and_strategy_show_the_same_flags(shared_data, tmp_path):
    """cytokit gate and Strategy.apply report the flags the pipeline puts in qc_flags."""
    from typer.testing import CliRunner

    from cytokit.cli.main import build_app
    from cytokit.gating import load_strategy

    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    pnn = list(s.channels["pnn"].astype(str))
    pns = list(s.channels["pns"].fillna("").astype(str))
    meta = {"SPILL": s.metadata["spill"], "$TIMESTEP": s.metadata.get("timestep", "0.01")}
    path = tmp_path / "already.fcs"
    write_fcs(path, compensate(s).events, pnn, pns, meta)
    result = load_strategy("mouse_lymphocytes").apply(read_fcs(path))
    assert "overcompensated" in result.summary()["qc_flags"]
    out = CliRunner().invoke(build_app(), ["gate", str(path), "--strategy", "mouse_lymphocytes"])
    assert "overcompensated" in out.output and "removed twice" in out.output.replace("\n", " ")
