"""``cytokit inspect``: tables / JSON for good files, an error line for bad ones, exit 1 if any failed."""
from __future__ import annotations

import json

import numpy as np

from cytokit.cli.main import main
from cytokit.fcs import write_fcs


def _good(tmp_path):
    ev = np.random.default_rng(0).random((300, 3), dtype=np.float32) * 1000
    return write_fcs(tmp_path / "good.fcs", ev, ["FSC-A", "PE-Cy7-A", "Time"], ["", "CD4 PE-Cy7", ""],
                     {"$CYT": "FACSCanto II", "$SPILLOVER": "1,PE-Cy7-A,1"})


def test_inspect_json_good_and_bad(tmp_path, capsys):
    good = _good(tmp_path)
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(good.read_bytes()[:400])  # truncated inside TEXT
    rc = main(["inspect", str(good), str(bad), "--json"])
    out, err = capsys.readouterr()
    assert rc == 1
    data = json.loads(out)
    assert [d["file"] for d in data] == [str(good), str(bad)]
    g = data[0]
    assert g["fcs_version"] == "3.1" and g["instrument"] == "FACSCanto II" and g["n_events"] == 300
    assert g["spillover_keyword"] == "$SPILLOVER" and g["spillover_size"] == 1
    assert [c["pnn"] for c in g["channels"]] == ["FSC-A", "PE-Cy7-A", "Time"]
    assert [c["marker"] for c in g["channels"]] == ["FSC-A", "CD4 PE-Cy7", "Time"]
    assert [c["kind"] for c in g["channels"]] == ["scatter", "fluorescence", "time"]
    assert str(bad) in data[1]["error"]
    assert f"error: {bad}" in err and "1 of 2 file(s) could not be read" in err


def test_inspect_plain_text_with_qc(tmp_path, capsys):
    good = _good(tmp_path)
    rc = main(["inspect", str(good), "--qc"])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "FCS 3.1" in out and "FACSCanto II" in out and "events: 300" in out
    assert "$SPILLOVER (1 channels)" in out and "CD4 PE-Cy7" in out
    assert "QC: kept 300/300" in out


def test_inspect_real_files(shared_data, capsys):
    files = [shared_data / "flowkit/multi_dataset_fcs/coulter.lmd",
             shared_data / "fcs_corpus/fcsparser/FlowCytometers/corrupted/corrupted.fcs",
             shared_data / "flowkit/100715.fcs"]
    rc = main(["inspect", *map(str, files), "--json"])
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert rc == 1 and len(data) == 3  # the corrupt file did not stop the others
    assert any("holds 2 data sets" in w for w in data[0]["warnings"])
    assert "not an FCS file" in data[1]["error"]
    assert data[2]["spillover_keyword"] == "SPILL" and data[2]["n_events"] == 65016
    rc = main(["inspect", str(files[0]), "--dataset", "1", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)[0]["fcs_version"] == "3.0"


def test_inspect_resolves_markers_with_a_panel(repo_root, capsys):
    f = repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"
    assert f.is_file(), "bundled sample data missing"
    rc = main(["inspect", str(f), "--panel", "il2_trial", "--tube", "tmem", "--json"])
    info = json.loads(capsys.readouterr().out)[0]
    assert rc == 0
    markers = {c["pnn"]: c["marker"] for c in info["channels"]}
    assert markers["PE-Cy7-A"] == "CD4" and markers["FITC-A"] == "CD45RA"
    rc = main(["inspect", str(f), "--panel", "il2_trial", "--tube", "nkb", "--json"])
    assert rc == 2 and "CD56" in json.loads(capsys.readouterr().out)[0]["error"]


def test_inspect_escapes_control_characters(tmp_path, capsys):
    ev = np.ones((20, 1), np.float32)
    f = write_fcs(tmp_path / "esc.fcs", ev, ["FSC-A"], ["\x1b[31mred\x1b[0m"], {"$CYT": "evil\x1b]0;title\x07"})
    rc = main(["inspect", str(f)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[31mred" in out and "evil\\x1b]0;title\\x07" in out


def test_inspect_reports_beckman_dfc_compensation_keywords(shared_data, capsys):
    # FCS 2.0 / Beckman Coulter files carry their matrix as $DFCiTOj keywords, which compensate() uses
    f = shared_data / "flowkit/multi_dataset_fcs/coulter.lmd"
    rc = main(["inspect", str(f), "--json"])
    info = json.loads(capsys.readouterr().out)[0]
    assert rc == 0
    assert info["spillover_keyword"] == "$DFCiTOj" and info["spillover_size"] == 5


def test_inspect_with_a_panel_lists_markers_taken_from_detector_names(tmp_path, capsys):
    """A CellQuest-style file ($PnS empty on FL1-H): the marker comes from the panel, not the file, and the
    JSON and the text say so as `cytokit gate` and the pipeline do (docs/panels.md, "Detectors")."""
    ev = np.random.default_rng(1).random((300, 6), dtype=np.float32) * 1000
    f = write_fcs(tmp_path / "calibur.fcs", ev, ["FSC-H", "SSC-H", "FL1-H", "FL2-H", "FL3-H", "FL4-H"],
                  ["FSC-Height", "SSC-Height", "", "CD25", "CD4", "CD8"], {"$CYT": "FACSCalibur"})
    argv = ["inspect", str(f), "--panel", "il2_trial_4colour", "--tube", "activation"]
    assert main([*argv, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)[0]
    assert {c["pnn"]: c["marker"] for c in info["channels"]}["FL1-H"] == "CD28"
    assert info["panel_flags"] == ["markers_from_detector_names"]
    warned = [w for w in info["warnings"] if w.startswith("markers assigned from detector names only")]
    assert len(warned) == 1 and "FL1-H->CD28" in warned[0] and "FL2-H" not in warned[0]
    assert main(argv) == 0
    assert "warning: markers assigned from detector names only ($PnS empty): FL1-H->CD28" in capsys.readouterr().out
