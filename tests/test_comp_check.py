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


def _over_scaled(m, k: float):
    """``m`` with its off-diagonal spillover values multiplied by ``k``."""
    from cytokit.compensation import SpilloverMatrix

    diag = np.diag(np.diag(m.values))
    return SpilloverMatrix(m.channels, diag + k * (m.values - diag), source=f"{m.source} x{k}")


def test_matrix_over_scaled_by_half_is_noted_suspect(shared_data):
    """flowsom_68983 compensated with its matrix's spillover values 50 % too large: not removed twice (median
    ``d`` about -0.5, no ``overcompensated``), but the centre of the negatives of bright events sits about a
    third of the removed spillover below their dim neighbours (median ``d_mode`` -0.32): the note
    ``compensation_suspect``, in the data flags and recorded with the channels compensation moved (for the
    rows). Its own matrix, or one 10 % too large (the error of a measured matrix), gets no note: median
    ``d_mode`` 0.00 / -0.07."""
    from cytokit.compensation.check import NOTE_SUSPECT, moved_channel_words, moved_channels
    from cytokit.qc import data_flags

    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    m = acquisition_matrix(s)
    idx = matrix_indices(s, m)
    raw = s.events.astype(np.float64)
    results = {k: check_compensation(raw, compensate_events(raw, _over_scaled(m, k), idx), _over_scaled(m, k), idx)
               for k in (1.0, 1.1, 1.5)}
    assert [r.notes for r in results.values()] == [(), (), (NOTE_SUSPECT,)]
    assert all(r.ok for r in results.values())
    assert abs(results[1.0].median_mode_residual) < 0.1
    assert -0.45 < results[1.5].median_mode_residual <= -0.25
    noted = compensate(s, _over_scaled(m, 1.5))
    assert compensation_flags(noted) == [NOTE_SUSPECT]
    assert NOTE_SUSPECT in data_flags(noted) and "overcompensated" not in data_flags(noted)
    assert "too large by about" in " ".join(noted.warnings)
    assert moved_channel_words(noted) == {NOTE_SUSPECT: moved_channels(noted)} and len(moved_channels(noted)) >= 4
    assert moved_channel_words(compensate(s)) == {}


@pytest.mark.parametrize("rel", REAL)
def test_once_compensated_real_files_are_not_noted_suspect(shared_data, rel):
    """Compensated once with the matrix they carry, the real files' negatives do not lean: no
    ``compensation_suspect`` (median ``d_mode`` -0.06 to +0.25)."""
    s = read_fcs(shared_data / rel)
    m = acquisition_matrix(s)
    idx = matrix_indices(s, m)
    raw = s.events.astype(np.float64)
    r = check_compensation(raw, compensate_events(raw, m, idx), m, idx)
    assert r.ok and r.notes == ()
    assert r.median_mode_residual > -0.1


def test_spreading_error_is_not_read_as_a_lean(shared_data):
    """The LSRII APC-Cy7 single-stain control compensated once with CytoExploreR's matrix: spreading error
    widens the AF700 negatives of APC-Cy7-bright cells, which takes the low-quantile residual to a median
    ``d`` of -0.29 (a rule on ``d`` at the suspect limit would call this right matrix too strong); the centre
    of those negatives does not move (median ``d_mode`` -0.05): no note."""
    from cytokit.compensation import read_matrix

    folder = shared_data / "compensation" / "cytoexplorer_lsrii"
    m = read_matrix(folder / "Compensation-Spillover-Matrix.csv")
    s = read_fcs(next(folder.rglob("Compensation-APC-Cy7.fcs")))
    idx = matrix_indices(s, m)
    raw = s.events.astype(np.float64)
    r = check_compensation(raw, compensate_events(raw, m, idx), m, idx)
    assert r.median_residual < -0.25
    assert r.median_mode_residual > -0.1
    assert r.ok and r.notes == ()


def test_rows_of_a_matrix_too_strong_carry_the_review_flag(shared_data):
    """flowsom_68983 gated with its matrix 50 % too strong: CD4 T falls from 69 % to about 1 % of T cells (gd T
    rises from 14 % to 83 %), so the rows gated on a moved channel carry ``<marker>:compensation_suspect`` as a
    review flag and the rows below them the plain word; scatter-only rows nothing. With its own matrix no row
    carries it."""
    from cytokit.gating import load_strategy
    from cytokit.gating.model import defining_populations

    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    strategy = load_strategy("mouse_lymphocytes")
    m = acquisition_matrix(s)
    rows = {k: strategy.apply(compensate(s, _over_scaled(m, k))).populations.set_index("population")
            for k in (1.0, 1.5)}
    assert not rows[1.0]["flags"].str.contains("compensation_suspect").any()
    strong = rows[1.5]
    assert rows[1.0].loc["CD4 T", "pct_parent"] - strong.loc["CD4 T", "pct_parent"] > 20  # what the flag is for
    definition = strategy.definition
    for name, row in strong.iterrows():
        spec = definition.population(str(name))
        fluor = [d for d in spec.dims if d not in ("FSC-A", "FSC-H", "SSC-A", "SSC-H", "Time")]
        above = [d for p in defining_populations(definition, str(name))
                 for d in definition.population(p).dims if d not in ("FSC-A", "FSC-H", "SSC-A", "SSC-H", "Time")]
        words = str(row["flags"]).split(";")
        if fluor:
            assert any(w.endswith(":compensation_suspect") for w in words), (name, words)
        if fluor or above:
            assert bool(row["review"]), (name, words)
        else:
            assert not any("compensation_suspect" in w for w in words), (name, words)
