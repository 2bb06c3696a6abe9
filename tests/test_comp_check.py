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


def test_twice_compensated_file_is_flagged_on_qc_kept_events_too(shared_data):
    """9399_1_3_NKR.fcs compensated twice: flagged on the whole file and on QC's kept events (QC's margin
    rule takes 2.2 % of the events, most at the SSC-A ceiling and bright in PE-A). The pair strength must
    not rest on the events at the top of the scale: the same verdict whatever QC removed first. Compensated
    once it passes both ways."""
    from cytokit.compensation.check import moved_channels
    from cytokit.gating.preprocess import apply_qc

    s = read_fcs(shared_data / "gatingml2/FCSFiles/9399_1_3_NKR.fcs")
    once = compensate(s)
    already = s.replace(events=once.events.copy())
    kept, outcome = apply_qc(already)
    assert 0.01 < 1 - kept.n_events / s.n_events < 0.05  # QC took a few % (margin events), as in the gating chain
    for copy in (already, kept):
        twice = compensate(copy)
        assert compensation_flags(twice) == ["overcompensated"], twice.warnings
        assert "PerCP-Cy5-5-A" in moved_channels(twice)
    raw_kept, _ = apply_qc(s)
    for copy in (s, raw_kept):
        assert compensation_flags(compensate(copy)) == [], compensate(copy).warnings


def test_undecidable_check_is_a_visible_note_not_a_failure(shared_data):
    """Too few events for any informative detector pair: the check passes with the sample-level note
    ``compensation_unchecked`` (in the data flags, no moved channels, so no row is flagged), and says
    nothing when the matrix moves no channel (nothing to check)."""
    from cytokit.compensation import SpilloverMatrix
    from cytokit.compensation.check import NOTE_UNCHECKED, moved_channels
    from cytokit.qc import data_flags

    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    few = s.replace(events=compensate(s).events[:150].copy())  # 75 dim events per source: < min_bright
    twice = compensate(few)
    assert compensation_flags(twice) == [NOTE_UNCHECKED]
    assert moved_channels(twice) == []
    assert NOTE_UNCHECKED in data_flags(twice) and "overcompensated" not in data_flags(twice)
    m = acquisition_matrix(s)
    idx = matrix_indices(s, m)
    result = check_compensation(few.events, few.events, m, idx)
    assert result.ok and result.notes == (NOTE_UNCHECKED,) and result.pairs == []
    identity = SpilloverMatrix(m.channels, np.eye(m.n))
    assert check_compensation(few.events, few.events, identity, idx).notes == ()


def test_entry_points_agree_on_a_qc_thinned_twice_compensated_file(shared_data, tmp_path):
    """9399_1_3_NKR.fcs re-exported already compensated ($SPILLOVER kept): `cytokit compensate` checks the
    whole file, Strategy.apply and `cytokit gate` check QC's kept events (QC before compensation): all say
    overcompensated, and the NK row gated on the moved CD3/19 channel carries the review flag."""
    from pathlib import Path

    from typer.testing import CliRunner

    from cytokit.cli.main import build_app
    from cytokit.gating import load_strategy

    s = read_fcs(shared_data / "gatingml2/FCSFiles/9399_1_3_NKR.fcs")
    pnn = list(s.channels["pnn"].astype(str))
    pns = list(s.channels["pns"].fillna("").astype(str))
    meta = {"SPILL": s.metadata["spill"], "$TIMESTEP": s.metadata.get("timestep", "0.01")}
    meta.update({f"$P{i + 1}R": str(int(r)) for i, r in enumerate(s.channels["range"])})
    path = tmp_path / "already.fcs"
    write_fcs(path, compensate(s).events, pnn, pns, meta)
    yaml = Path(__file__).resolve().parents[1] / "benchmarks" / "real_data" / "nkr_strategy.yaml"
    result = load_strategy(str(yaml)).apply(read_fcs(path))
    assert 0 < result.sample.n_events < s.n_events  # QC removed events before the check
    assert "overcompensated" in result.data_flags
    rows = result.populations.set_index("population")
    assert rows.loc["NK cells (NKp46 first)", "review"]
    assert "overcompensated" in str(rows.loc["NK cells (NKp46 first)", "review_flags"])
    runner = CliRunner()
    gate = runner.invoke(build_app(), ["gate", str(path), "--strategy", str(yaml)])
    assert gate.exit_code == 0, gate.output
    assert "overcompensated" in gate.output
    assert compensation_flags(compensate(read_fcs(path))) == ["overcompensated"]
