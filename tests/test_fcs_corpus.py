"""Every FCS/LMD file under shared/data either reads with the right event count and channel names, or
raises FCSError naming the file and the specific problem. Values are cross-checked against FlowIO
(scaled with $PnE/$PnG) on the files FlowIO reads strictly."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from cytokit.errors import FCSError
from cytokit.fcs import read_fcs, spillover_keyword

CORPUS = "fcs_corpus"

# relative path -> (n_events, n_channels, first $PnN names) or the expected FCSError text (broken by design)
EXPECTED: dict[str, tuple[int, int, list[str]] | str] = {
    # -- fcs_corpus/cytoflow_instruments --------------------------------------------------------------------
    "fcs_corpus/cytoflow_instruments/Accuri - C6.fcs": (60661, 14, ["FSC-A", "SSC-A", "FL1-A"]),
    "fcs_corpus/cytoflow_instruments/Applied Biosystems - Attune.fcs": (22188, 26, ["Event", "Time", "FSC-A"]),
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - Cyan.fcs": (5789, 12, ["TIME", "Time MSW", "Pulse Width"]),
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - Cytomics FC500.LMD": (27072, 4, ["FS Lin", "SS Lin", "FL1 Log"]),
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - Gallios.LMD": (26383, 6, ["FS INT LIN", "SS INT LIN", "FL1 INT LOG"]),
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - MoFlo Astrios - linear settings.fcs": (6091, 68, ["TIME", "TIME2", "FL4-Height"]),
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - MoFlo Astrios - log settings.fcs": (5826, 68, ["TIME", "TIME2", "FL4-Height"]),
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - MoFlo XDP.fcs": (38830, 26, ["TIME", "TIME2", "FSC-Height"]),
    "fcs_corpus/cytoflow_instruments/Cytek DxP10.fcs": (20177, 15, ["TIME", "FSC", "SSC"]),
    "fcs_corpus/cytoflow_instruments/Cytek NL-2000.fcs": (20000, 27, ["Time", "FSC-H", "FSC-A"]),
    "fcs_corpus/cytoflow_instruments/Cytek xP5.fcs": (23126, 8, ["TIME", "FSC", "SSC"]),
    "fcs_corpus/cytoflow_instruments/Miltenyi Biotec - MACSQuant Analyzer.fcs": (66165, 10, ["HDR-TM", "FSC-A", "SSC-A"]),
    "fcs_corpus/cytoflow_instruments/Partec - CyFlow v2.9.fcs": (72989, 4, ["FSC", "SSC", "FL_Green"]),
    "fcs_corpus/cytoflow_instruments/Partec - PAS.FCS": (33649, 8, ["FSC", "SSC", "FL1"]),
    "fcs_corpus/cytoflow_instruments/Stratedigm - S1400.fcs": (10000, 38, ["FSC LogH", "FSC LinH", "SSC LogH"]),
    "fcs_corpus/cytoflow_instruments/System II listmode with extra info in bits D10-D15.LMD": (10358, 6, ["FS", "SS", "FL1 LOG"]),
    "fcs_corpus/cytoflow_instruments/iCyt - Eclipse.lmd": (19330, 18, ["FL1", "FL2", "FL3"]),
    # -- fcs_corpus/fcsparser ---------------------------------------------------------------------------------
    "fcs_corpus/fcsparser/FlowCytometers/Cytek_xP5/Cytek_xP5.fcs": (23126, 8, ["TIME", "FSC", "SSC"]),
    "fcs_corpus/fcsparser/FlowCytometers/FACSCaliburHTS/Sample_Well_A02.fcs": (37395, 8, ["FSC-H", "SSC-H", "FL1-H"]),
    "fcs_corpus/fcsparser/FlowCytometers/FACS_Diva/facs_diva_test.fcs": (83411, 12, ["Time", "FSC-A", "FSC-W"]),
    "fcs_corpus/fcsparser/FlowCytometers/Fortessa/FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs": (11585, 11, ["FSC-A", "FSC-H", "FSC-W"]),
    "fcs_corpus/fcsparser/FlowCytometers/HTS_BD_LSR-II/HTS_BD_LSR_II_Mixed_Specimen_001_D6_D06.fcs": (14945, 11, ["FSC-A", "FSC-H", "FSC-W"]),
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS2.0/EY_2013-07-19_PBS_FCS_2.0_Custom_Without_Add_Well_A1.001.fcs": (10000, 16, ["HDR-T", "FSC-A", "FSC-H"]),
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS3.0/FCS3.0_Custom_Compatible.fcs": (10000, 16, ["HDR-T", "FSC-A", "FSC-H"]),
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Custom_Add_Well_A1.001.fcs": (10000, 19, ["Time", "HDR-CE", "HDR-SE"]),
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Custom_Without_Add_Well_A1.001.fcs": (10000, 19, ["Time", "HDR-CE", "HDR-SE"]),
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Well_A1.001.fcs": (10000, 19, ["Time", "HDR-CE", "HDR-SE"]),
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS3.1/SG_2014-09-26_Duplicate_Names.fcs": (8129, 9, ["HDR-CE", "HDR-SE", "HDR-V"]),
    # broken by design: 10 bytes of text, no FCS header
    "fcs_corpus/fcsparser/FlowCytometers/corrupted/corrupted.fcs": "not an FCS file: it does not start with 'FCS'",
    "fcs_corpus/fcsparser/FlowCytometers/cyflow_cube_8/cyflow_cube_8.fcs": (725, 10, ["FSC", "SSC", "FL1"]),
    # broken by design: HEADER + TEXT only, the DATA segment is missing
    "fcs_corpus/fcsparser/FlowCytometers/cytek-nl-2000/sample_header.fcs": "DATA starts at byte 5912, file has only 3931 bytes (truncated or header-only file)",
    "fcs_corpus/fcsparser/FlowCytometers/fake_bitmask_error/fcs1_cleaned.lmd": (50000, 7, ["FS INT LIN", "SS INT LIN", "FL1 INT LOG"]),
    "fcs_corpus/fcsparser/FlowCytometers/fake_large_fcs/fake_large_fcs.fcs": (11585, 11, ["FSC-A", "FSC-H", "FSC-W"]),
    # -- fcs_corpus/flowio ------------------------------------------------------------------------------------
    "fcs_corpus/flowio/3FITC_4PE_004.fcs": (94569, 4, ["FSC-H", "SSC-H", "FL1-H"]),
    "fcs_corpus/flowio/B01 KC-A-W---91-US.fcs": (1589, 14, ["FSC-A", "SSC-A", "FL1-A"]),
    "fcs_corpus/flowio/G11.fcs": (5785, 12, ["Time", "FSC-A", "SSC-A"]),
    "fcs_corpus/flowio/coulter.lmd": (18110, 8, ["FS Lin", "SS Lin", "FL1 Log"]),
    "fcs_corpus/flowio/data1.fcs": (13367, 8, ["FSC-H", "SSC-H", "FL1-H"]),
    "fcs_corpus/flowio/data_start_offset_discrepancy_example.fcs": (2, 26, ["FSC LogH", "FSC LogA", "FSC LinH"]),
    "fcs_corpus/flowio/data_stop_offset_discrepancy_example.fcs": (2, 26, ["FSC LogH", "FSC LogA", "FSC LinH"]),
    "fcs_corpus/flowio/variable_int_example.fcs": (2, 26, ["FSC LogH", "FSC LogA", "FSC LinH"]),
    # -- other real files under shared/data ------------------------------------------------------------------
    "compensation/cytoexplorer_lsrii/Compensation-Unstained.fcs": (50000, 18, ["FSC-A", "FSC-H", "FSC-W"]),
    "flowjo9_diva/a2004_O1T2pb05i_A2_A02.fcs": (45363, 23, ["FSC-A", "FSC-H", "FSC-W"]),
    "flowjo9_diva/diva/124500.fcs": (19090, 15, ["Time", "FSC-A", "FSC-H"]),
    "flowkit/100715.fcs": (65016, 16, ["FSC-A", "FSC-H", "SSC-A"]),
    "flowkit/index_sorted/index_sorted_example.fcs": (384, 13, ["FSC-A", "FSC-W", "FSC-H"]),
    "flowkit/multi_dataset_fcs/coulter.lmd": (18110, 8, ["FS Lin", "SS Lin", "FL1 Log"]),
    "flowkit/noncompliant/data_start_offset_discrepancy_example.fcs": (2, 26, ["FSC LogH", "FSC LogA", "FSC LinH"]),
    "flowkit/test_comp_example.fcs": (10703, 18, ["FSC-A", "FSC-W", "SSC-A"]),
    "flowsom_68983/68983.fcs": (19225, 18, ["Time", "FSC-A", "FSC-H"]),
    "gatingml2/FCSFiles/9399_1_3_NKR.fcs": (124600, 8, ["FSC-A", "SSC-A", "PE-A"]),
    "gatingml2/FCSFiles/data1.fcs": (13367, 8, ["FSC-H", "SSC-H", "FL1-H"]),
    "gatingml2/FCSFiles/data2.fcs": (10000, 15, ["Time", "FSC-A", "FSC-H"]),
}

# Files FlowIO 1.4 reads (some with ignore_offset_error): our values must equal its $PnE/$PnG-scaled values.
FLOWIO_CHECK = [
    "fcs_corpus/cytoflow_instruments/Beckman Coulter - MoFlo XDP.fcs",
    "fcs_corpus/cytoflow_instruments/Cytek DxP10.fcs",
    "fcs_corpus/cytoflow_instruments/Partec - PAS.FCS",
    "fcs_corpus/cytoflow_instruments/Stratedigm - S1400.fcs",
    "fcs_corpus/cytoflow_instruments/System II listmode with extra info in bits D10-D15.LMD",
    "fcs_corpus/cytoflow_instruments/Applied Biosystems - Attune.fcs",
    "fcs_corpus/fcsparser/FlowCytometers/FACSCaliburHTS/Sample_Well_A02.fcs",
    "fcs_corpus/fcsparser/FlowCytometers/MiltenyiBiotec/FCS3.1/SG_2014-09-26_Duplicate_Names.fcs",
    "fcs_corpus/fcsparser/FlowCytometers/fake_bitmask_error/fcs1_cleaned.lmd",
    "fcs_corpus/flowio/G11.fcs",
    "fcs_corpus/flowio/B01 KC-A-W---91-US.fcs",
    "gatingml2/FCSFiles/data1.fcs",
    "flowsom_68983/68983.fcs",
]


def _corpus_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in (root / CORPUS).rglob("*")
        if p.is_file() and p.suffix.lower() in (".fcs", ".lmd")
    )


def test_every_corpus_file_has_an_expected_outcome(shared_data):
    files = _corpus_files(shared_data)
    assert len(files) >= 40
    missing = [f for f in files if f not in EXPECTED]
    assert not missing, f"corpus files without an expected outcome (add them to EXPECTED): {missing}"


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_corpus_file(shared_data, rel):
    path = shared_data / rel
    assert path.is_file(), f"{rel} is listed but absent from shared data"
    expected = EXPECTED[rel]
    if isinstance(expected, str):
        with pytest.raises(FCSError) as info:
            read_fcs(path)
        assert str(path) in str(info.value)
        assert expected in str(info.value)
        return
    n_events, n_channels, first = expected
    s = read_fcs(path)
    assert (s.n_events, s.n_channels) == (n_events, n_channels)
    assert list(s.channels["pnn"])[: len(first)] == first
    assert s.events.dtype == np.float32 and s.events.flags.c_contiguous
    assert s.channels["pnn"].is_unique
    assert len(s.sha256) == 64
    assert s.fcs_version in ("2.0", "3.0", "3.1", "3.2")
    assert set(s.channels["kind"]) <= {"scatter", "fluorescence", "time", "other"}
    # float data may not be finite everywhere, integer data always is
    if s.metadata["datatype"].strip().upper() == "I":
        assert np.isfinite(s.events).all()
        assert (s.events >= 0).all()


@pytest.mark.parametrize("rel", FLOWIO_CHECK)
def test_values_agree_with_flowio(shared_data, rel):
    import flowio

    path = shared_data / rel
    s = read_fcs(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = flowio.FlowData(str(path), ignore_offset_error=True).as_array(preprocess=True)
        except flowio.exceptions.MultipleDataSetsError:
            ref = flowio.read_multiple_data_sets(str(path), ignore_offset_error=True)[0].as_array(preprocess=True)
    assert ref.shape == s.events.shape
    not_time = (s.channels["kind"] != "time").to_numpy()  # FlowIO also scales time by $TIMESTEP
    np.testing.assert_allclose(s.events[:, not_time], ref[:, not_time], rtol=1e-5, atol=1e-3)


def test_offset_discrepancies_are_tolerated_with_a_warning(shared_data):
    s = read_fcs(shared_data / "fcs_corpus/flowio/data_start_offset_discrepancy_example.fcs")
    t = read_fcs(shared_data / "fcs_corpus/flowio/variable_int_example.fcs")
    assert any("disagree" in w for w in s.warnings)
    np.testing.assert_array_equal(s.events, t.events)  # same events once the right offsets are chosen
    # Accuri C6: TEXT $BEGINDATA points inside TEXT; HEADER is right (and its end is off by one byte)
    a = read_fcs(shared_data / "fcs_corpus/cytoflow_instruments/Accuri - C6.fcs")
    assert any("off by one" in w for w in a.warnings)
    assert a.column("FSC-A").min() > 0


@pytest.mark.parametrize("rel, n_sets, second", [
    ("flowkit/multi_dataset_fcs/coulter.lmd", 2, (18110, 8, "3.0")),
    ("fcs_corpus/cytoflow_instruments/Beckman Coulter - Gallios.LMD", 2, (26383, 5, "3.0")),
    ("fcs_corpus/cytoflow_instruments/Beckman Coulter - Cytomics FC500.LMD", 2, (27072, 8, "3.0")),
])
def test_multi_dataset_files(shared_data, rel, n_sets, second):
    first = read_fcs(shared_data / rel)
    assert first.dataset_index == 0 and first.fcs_version == "2.0"
    assert any(f"holds {n_sets} data sets" in w for w in first.warnings)
    s = read_fcs(shared_data / rel, dataset=1)
    assert (s.n_events, s.n_channels, s.fcs_version) == second
    assert s.dataset_index == 1
    with pytest.raises(FCSError, match=f"data set {n_sets} requested but the file holds {n_sets}"):
        read_fcs(shared_data / rel, dataset=n_sets)


def test_second_dataset_agrees_with_flowio(shared_data):
    import flowio

    path = shared_data / "flowkit/multi_dataset_fcs/coulter.lmd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = flowio.read_multiple_data_sets(str(path), ignore_offset_error=True)[1].as_array(preprocess=True)
    s = read_fcs(path, dataset=1)
    not_time = (s.channels["kind"] != "time").to_numpy()
    np.testing.assert_allclose(s.events[:, not_time], ref[:, not_time], rtol=1e-5)


def test_text_quirks_on_real_files(shared_data):
    # Attune writes empty values as doubled delimiters and pads TEXT with blanks
    att = read_fcs(shared_data / "fcs_corpus/cytoflow_instruments/Applied Biosystems - Attune.fcs")
    assert any("empty keyword values" in w for w in att.warnings)
    assert att.metadata["cyt"] == "Attune Cytometric Software v1.0"
    assert att.metadata["inst"] == "" and att.metadata["exp"] == "Admin"
    # UTF-8 in $PnS (Attune NxT)
    g11 = read_fcs(shared_data / "fcs_corpus/flowio/G11.fcs")
    assert "Alexa Fluor\u2122 405-A" in set(g11.channels["pns"])
    # Latin-1 TEXT (FACSCalibur) decodes with a warning
    d1 = read_fcs(shared_data / "gatingml2/FCSFiles/data1.fcs")
    assert any("Latin-1" in w for w in d1.warnings)
    # 10-bit values in 16-bit words with $PnR masks (FC500)
    fc = read_fcs(shared_data / "fcs_corpus/cytoflow_instruments/Beckman Coulter - Cytomics FC500.LMD")
    assert fc.events[:, 0].max() <= 1023  # FS Lin is linear, masked to $PnR = 1024
    # System II: extra bits D10-D15 hold other information and are masked away
    s2 = read_fcs(shared_data / "fcs_corpus/cytoflow_instruments/System II listmode with extra info in bits D10-D15.LMD")
    lin = s2.channels["log_decades"].to_numpy() == 0
    assert s2.events[:, lin].max() < 1024


def test_channel_kinds_on_real_files(shared_data):
    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    kinds = dict(zip(s.channels["pnn"], s.channels["kind"]))
    assert kinds["Time"] == "time" and kinds["FSC-A"] == "scatter" and kinds["SSC-A"] == "scatter"
    assert sum(k == "fluorescence" for k in kinds.values()) >= 9
    assert spillover_keyword(s.metadata) == "SPILL"


def test_large_file_offsets_in_text_only(shared_data):
    """fake_large_fcs blanks the HEADER DATA offsets (as writers do above 99,999,999 bytes); the same
    events as the Fortessa file it was made from must come from $BEGINDATA/$ENDDATA."""
    fake = read_fcs(shared_data / "fcs_corpus/fcsparser/FlowCytometers/fake_large_fcs/fake_large_fcs.fcs")
    orig = read_fcs(shared_data / "fcs_corpus/fcsparser/FlowCytometers/Fortessa/"
                    "FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs")
    np.testing.assert_array_equal(fake.events, orig.events)
    assert fake.warnings == ()


def test_24bit_big_endian_integers(shared_data):
    """Cytek xP5: 24-bit big-endian integers (FlowIO cannot read them); values stay inside $PnR."""
    s = read_fcs(shared_data / "fcs_corpus/cytoflow_instruments/Cytek xP5.fcs")
    assert set(s.channels["bits"]) == {24}
    lin = (s.channels["log_decades"] == 0).to_numpy()
    assert (s.events[:, lin] < s.channels["range"].to_numpy()[lin]).all()
    # wrong byte order or width would scramble the time channel: it must count up event by event
    assert (np.diff(s.column("TIME")) >= 0).all() and s.column("TIME")[-1] > 0
