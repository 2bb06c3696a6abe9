"""Compensation: spillover matrices from keywords and files, compensate(), agreement with FlowKit."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from cytokit.compensation import (
    SpilloverMatrix, acquisition_matrix, compensate, compensate_events, matrix_from_metadata, matrix_indices,
    parse_matrix_text, parse_spillover_text, read_matrix,
)
from cytokit.errors import CompensationError
from cytokit.sample import CHANNEL_COLUMNS, Sample

SPILL = np.array([[1.0, 0.2, 0.05], [0.1, 1.0, 0.3], [0.0, 0.02, 1.0]])


def make_sample(events: np.ndarray, pnn: list[str], metadata: dict | None = None, **kw) -> Sample:
    rows = [dict(pnn=p, pns="", marker=p, fluorochrome="", range=262144.0, gain=1.0, log_decades=0.0,
                 log_offset=0.0, bits=32, kind="scatter" if p.startswith(("FSC", "SSC")) else "fluorescence")
            for p in pnn]
    return Sample(np.ascontiguousarray(events, dtype=np.float32), pd.DataFrame(rows, columns=list(CHANNEL_COLUMNS)),
                  metadata=metadata or {}, **kw)


def test_parse_keyword_with_names():
    text = "3,FITC-A,PE-A,APC-A," + ",".join(str(v) for v in SPILL.ravel())
    m = parse_spillover_text(text, source="$SPILLOVER of x.fcs")
    assert m.channels == ("FITC-A", "PE-A", "APC-A")
    np.testing.assert_array_equal(m.values, SPILL)
    assert parse_spillover_text(m.to_keyword()).allclose(m)


def test_parse_comp_without_names_and_dfc():
    text = "3," + ",".join(str(v) for v in SPILL.ravel())
    m = parse_spillover_text(text, pnn=["FL1-H", "FL2-H", "FL3-H", "FL4-H"])
    assert m.channels == ("FL1-H", "FL2-H", "FL3-H")
    meta = {"dfc1to2": "12.5", "dfc2to1": "3", "dfc2to3": "20"}
    m = matrix_from_metadata(meta, ["FL1-H", "FL2-H", "FL3-H"], path="old.fcs")
    assert m.channels == ("FL1-H", "FL2-H", "FL3-H")
    np.testing.assert_allclose(m.values, [[1, 0.125, 0], [0.03, 1, 0.2], [0, 0, 1]])
    assert "$DFCiTOj of old.fcs" in m.source
    assert matrix_from_metadata({"spill": "0"}, ["A"]) is None


@pytest.mark.parametrize("text, match", [
    ("3,A,B,C,1,0,0", "expected 12"),
    ("x,A", "does not start with the channel count"),
    ("2,A,B,1,0,zero,1", "non-numeric"),
    ("2,A,A,1,0,0,1", "twice"),
])
def test_bad_keywords(text, match):
    with pytest.raises(CompensationError, match=match):
        parse_spillover_text(text, source="SPILL of bad.fcs")


def test_matrix_file_variants(tmp_path):
    labelled = '"",A,B\n"A",1,0.2\n"B",0.1,1\n'
    unlabelled = "A\tB\r\n1\t0.2\r\n0.1\t1\r\n"
    flowjo_cr = "my comp\r<\t>\rA\tB\r1\t0.2\r0.1\t1\r"
    reordered = ",B,A\nA,0.2,1\nB,1,0.1\n"
    r_table = '"A" "B"\n"A" 1 0.2\n"B" 0.1 1\n'
    for text in (labelled, unlabelled, flowjo_cr, reordered, r_table):
        m = parse_matrix_text(text, source="t")
        assert m.reorder(["A", "B"]).values.tolist() == [[1, 0.2], [0.1, 1]], text
    pct = tmp_path / "pct.csv"
    pct.write_text("A,B\n100,20\n10,100\n")
    np.testing.assert_allclose(read_matrix(pct).values, [[1, 0.2], [0.1, 1]])
    with pytest.raises(CompensationError, match="rows for 2 channels"):
        parse_matrix_text("A,B\n1,0.2\n", source="short.csv")
    with pytest.raises(CompensationError, match="missing.csv"):
        read_matrix(tmp_path / "missing.csv")


def test_write_read_round_trip(tmp_path):
    m = SpilloverMatrix(("FITC-A", "PE-A", "APC-A"), SPILL, source="test")
    path = m.write(tmp_path / "out" / "matrix.csv")
    back = read_matrix(path)
    assert back.channels == m.channels and np.allclose(back.values, SPILL)
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic: no temp files left


def test_compensate_synthetic_recovers_truth(caplog):
    rng = np.random.default_rng(0)
    true = rng.lognormal(6, 1, (2000, 3))
    observed = true @ SPILL
    text = "3,FITC-A,PE-A,APC-A," + ",".join(map(str, SPILL.ravel()))
    s = make_sample(np.column_stack([rng.uniform(0, 1e5, 2000), observed]), ["FSC-A", "FITC-A", "PE-A", "APC-A"],
                    metadata={"spillover": text})
    c = compensate(s)
    assert c.compensated and "compensated with $SPILLOVER" in c.provenance[-1]
    np.testing.assert_allclose(c.events[:, 1:], true, rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(c.events[:, 0], s.events[:, 0])  # scatter untouched
    assert not s.compensated and np.allclose(s.events[:, 1:], observed, rtol=1e-6)  # input untouched
    with caplog.at_level(logging.WARNING):
        again = compensate(c)
    assert again is c and "not compensating again" in caplog.text


def test_compensate_errors():
    s = make_sample(np.ones((5, 2)), ["FITC-A", "PE-A"], path="/data/x.fcs")
    with pytest.raises(CompensationError, match=r"x.fcs: the file has no spillover matrix"):
        compensate(s)
    m = SpilloverMatrix(("FITC-A", "APC-A"), np.eye(2), source="m.csv")
    with pytest.raises(CompensationError, match="APC-A that the sample does not have"):
        compensate(s, m)
    singular = SpilloverMatrix(("FITC-A", "PE-A"), np.ones((2, 2)), source="bad")
    with pytest.raises(CompensationError, match="singular"):
        compensate(s, singular)
    with pytest.raises(CompensationError, match="is \\(2, 3\\)"):
        SpilloverMatrix(("A", "B"), np.ones((2, 3)))
    exported = make_sample(np.ones((5, 2)), ["Comp-FITC-A", "Comp-PE-A"])
    assert compensate(exported, SpilloverMatrix(("Comp-FITC-A", "Comp-PE-A"), SPILL[:2, :2])) is exported


def test_matrix_names_matched_loosely():
    s = make_sample(np.ones((3, 2)), ["PerCP-Cy5-5-A", "PE-A"])
    m = SpilloverMatrix(("PerCP Cy5 5-A", "PE-A"), np.eye(2))
    assert matrix_indices(s, m) == [0, 1]


def test_comp_example_matches_flowkit(shared_data):
    import flowkit as fk

    from cytokit.fcs import read_fcs

    path = shared_data / "flowkit" / "test_comp_example.fcs"
    matrix_path = shared_data / "flowkit" / "comp_complete_example.csv"
    with pytest.warns(UserWarning):
        ref_sample = fk.Sample(str(path), ignore_offset_error=True)
    ref_sample.apply_compensation(str(matrix_path))
    ref = ref_sample.get_events(source="comp")
    ours = read_fcs(path)
    m = read_matrix(matrix_path)
    idx = matrix_indices(ours, m)
    assert len(idx) == 14
    kernel = compensate_events(ours.events, m, idx)
    assert np.max(np.abs(kernel[:, idx] - ref[:, idx])) < 1e-4
    sample = compensate(ours, matrix_path)
    # float32 events: agreement to float32 precision relative to the value
    assert np.max(np.abs(sample.events[:, idx] - ref[:, idx]) / np.maximum(1.0, np.abs(ref[:, idx]))) < 1e-6


def test_acquisition_spill_matches_flowkit(shared_data):
    import flowkit as fk

    from cytokit.fcs import read_fcs

    path = shared_data / "gatingml2" / "FCSFiles" / "data2.fcs"
    ref_sample = fk.Sample(str(path))
    ref_sample.apply_compensation(ref_sample.metadata["spill"])
    ref = ref_sample.get_events(source="comp")
    ours = read_fcs(path)
    m = acquisition_matrix(ours)
    assert m is not None and m.n == 8 and not np.allclose(m.values, np.eye(8))
    idx = matrix_indices(ours, m)
    assert np.max(np.abs(compensate_events(ours.events, m, idx)[:, idx] - ref[:, idx])) < 1e-4


def test_beckman_dfc_uses_fl_numbers_and_accuri_numbered_channels():
    pnn = ["FS Lin", "SS Lin", "FL1 Log", "FL2 Log", "FL1 Lin", "FL2 Lin", "FL3 Lin", "FL3 Log"]
    meta = {"dfc1to3": "28.40", "dfc2to1": "0.0", "dfc9to1": "5.0"}  # detector 9 is not recorded
    m = matrix_from_metadata(meta, pnn, path="coulter.lmd")
    assert m.channels == ("FL1 Log", "FL2 Log", "FL3 Log")  # log parameters of detectors FL1..FL3
    assert m.values[0, 2] == pytest.approx(0.284)
    accuri = "2,3,4,1,0.1,0.2,1"
    m = matrix_from_metadata({"spillover": accuri}, ["FSC-A", "SSC-A", "FL1-A", "FL2-A"])
    assert m.channels == ("FL1-A", "FL2-A")


@pytest.mark.parametrize("rel, channels", [
    ("fcs_corpus/cytoflow_instruments/Accuri - C6.fcs", 8),
    ("fcs_corpus/cytoflow_instruments/Beckman Coulter - Cytomics FC500.LMD", 2),
    ("gatingml2/FCSFiles/9399_1_3_NKR.fcs", 5),
])
def test_vendor_matrices_compensate(shared_data, rel, channels):
    from cytokit.fcs import read_fcs

    s = read_fcs(shared_data / rel)
    m = acquisition_matrix(s)
    assert m is not None and m.n == channels
    c = compensate(s)
    assert c.compensated and c.events.shape == s.events.shape


def test_malformed_vendor_matrix_is_a_clear_error(shared_data):
    from cytokit.fcs import read_fcs

    matches = sorted(shared_data.glob("fcs_corpus/**/EY_2013-07-19_PBS_FCS_3.1_Well_A1.001.fcs"))
    assert matches, "corpus file missing"
    s = read_fcs(matches[0])
    with pytest.raises(CompensationError, match=r"\$SPILLOVER of EY_2013.*expected 42"):
        compensate(s)


def _reference(events: np.ndarray, spill: np.ndarray, idx: list[int]) -> np.ndarray:
    """Straightforward float64 compensation: every column of the matrix, the full inverse."""
    ref = events.astype(np.float64)
    ref[:, idx] = ref[:, idx] @ np.linalg.inv(spill)
    return ref


@pytest.mark.parametrize("idx", [[1, 2, 3, 4, 5], [5, 0, 3, 6, 2]], ids=["consecutive", "scattered"])
@pytest.mark.parametrize("n", [0, 1, 63, 64, 64 * 3, 64 * 3 + 5])
def test_blocked_kernel_equals_float64_reference(n, idx):
    rng = np.random.default_rng(n)
    spill = np.eye(5)
    spill[0, 1:3] = [0.21, 0.04]          # spills into 1 and 2
    spill[1, 0], spill[2, 1] = 0.12, 0.3
    spill[3, 2] = 0.07                    # spills into 2, nothing spills into 3: column 3 stays the same
    # matrix channel 4 neither spills nor receives spillover (identity row and column)
    m = SpilloverMatrix(tuple("ABCDE"), spill, source="test")
    events = (rng.lognormal(7, 2, (n, 7)) - rng.lognormal(4, 1, (n, 7))).astype(np.float32)
    events[: n // 3, idx[0]] = 0.0        # cancellation: compensated values near zero
    before = events.copy()
    ref = _reference(events, spill, idx)
    out = compensate_events(events, m, idx, dtype=np.float32, block_rows=64)
    assert out.dtype == np.float32 and out.shape == events.shape and not np.shares_memory(out, events)
    np.testing.assert_array_equal(events, before)  # input untouched
    # each value is the float64 result rounded once to float32
    np.testing.assert_array_max_ulp(out, ref.astype(np.float32), maxulp=1)
    untouched = [j for j in range(7) if j not in idx] + [idx[3], idx[4]]
    np.testing.assert_array_equal(out[:, untouched], events[:, untouched])
    assert n == 0 or not np.array_equal(out[:, idx[:3]], events[:, idx[:3]])
    # one block, the default block size, in place, float64 output: same numbers
    np.testing.assert_array_equal(compensate_events(events, m, idx, dtype=np.float32, block_rows=10**6), out)
    np.testing.assert_array_equal(compensate_events(events, m, idx, dtype=np.float32), out)
    inplace = events.copy()
    assert compensate_events(inplace, m, idx, out=inplace, block_rows=64) is inplace
    np.testing.assert_array_equal(inplace, out)
    wide = compensate_events(events, m, idx, block_rows=64)
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide, ref, rtol=1e-12, atol=1e-9)


def test_blocked_kernel_rejects_bad_arguments():
    m = SpilloverMatrix(("A", "B"), SPILL[:2, :2])
    events = np.ones((10, 3), dtype=np.float32)
    with pytest.raises(CompensationError, match="maps two channels"):
        compensate_events(events, m, [1, 1])
    with pytest.raises(CompensationError, match="out overlaps"):
        compensate_events(events, m, [0, 1], out=events[::-1])
    with pytest.raises(CompensationError, match="block_rows"):
        compensate_events(events, m, [0, 1], block_rows=0)
    with pytest.raises(CompensationError, match="singular"):
        compensate_events(events[:0], SpilloverMatrix(("A", "B"), np.ones((2, 2))), [0, 1])
