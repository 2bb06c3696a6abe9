"""``cytokit compensate estimate|show|apply``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cytokit.cli.main import main
from cytokit.compensation import read_matrix


def test_estimate_show_and_refuse_overwrite(shared_data, tmp_path, capsys):
    d = shared_data / "compensation" / "flowcore_calibur"
    files = sorted(str(p) for p in (d / "data").iterdir())
    out = tmp_path / "matrix.csv"
    argv = ["compensate", "estimate", *files, "--match", str(d / "comp_match"), "--channels",
            "FL1-H,FL2-H,FL3-H,FL4-H", "--out", str(out), "--report", str(tmp_path / "controls.csv")]
    assert main(argv) == 0
    est = read_matrix(out)
    ref = read_matrix(d / "compmatrix")
    assert np.max(np.abs(est.reorder(ref.channels).values - ref.values)) < 0.02
    table = pd.read_csv(tmp_path / "controls.csv")
    assert sorted(table["channel"]) == ["FL1-H", "FL2-H", "FL3-H", "FL4-H"]
    before = out.read_bytes()
    assert main(argv) == 2  # exists, no --force
    assert "use --force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["compensate", "show", str(out)]) == 0
    assert "FL3-H" in capsys.readouterr().out


def test_apply_writes_compensated_copy_once(shared_data, tmp_path, capsys):
    from cytokit.compensation import compensate
    from cytokit.fcs import read_fcs

    src = shared_data / "gatingml2" / "FCSFiles" / "data2.fcs"
    assert main(["compensate", "apply", str(src), "--out", str(tmp_path)]) == 0
    written = tmp_path / "data2_comp.fcs"
    back = read_fcs(written)
    expected = compensate(read_fcs(src))
    fl = list(expected.channels.loc[expected.channels["kind"] == "fluorescence", "pnn"])
    np.testing.assert_allclose(back.columns(fl), expected.columns(fl), rtol=1e-6, atol=1e-3)
    # the copy is marked: applying again skips it instead of compensating twice
    assert main(["compensate", "apply", str(written), "--out", str(tmp_path / "again")]) == 0
    assert "already compensated" in capsys.readouterr().out
    assert not (tmp_path / "again" / "data2_comp_comp.fcs").exists()


def test_bad_match_table(tmp_path, shared_data, capsys):
    bad = tmp_path / "match.csv"
    bad.write_text("x,y\n1,2\n")
    d = shared_data / "compensation" / "flowcore_calibur"
    rc = main(["compensate", "estimate", str(d / "data" / "060909.002"), "--match", str(bad), "--out",
               str(tmp_path / "m.csv")])
    assert rc == 2 and "needs a 'name'" in capsys.readouterr().err


def test_two_controls_for_one_channel_are_refused(tmp_path, shared_data, capsys):
    d = shared_data / "compensation" / "flowcore_calibur"
    files = sorted(str(p) for p in (d / "data").iterdir())
    out = tmp_path / "m.csv"
    rc = main(["compensate", "estimate", *files, "--match", str(d / "comp_match"), "--channel", "060909.003=FL1-H",
               "--channels", "FL1-H,FL2-H,FL3-H,FL4-H", "--out", str(out)])
    assert rc == 2 and "two controls for channel FL1-H" in capsys.readouterr().err  # none silently dropped
    assert not out.exists()


def test_estimate_refuses_to_overwrite_the_report_it_would_write(tmp_path, shared_data, capsys):
    d = shared_data / "compensation" / "flowcore_calibur"
    files = sorted(str(p) for p in (d / "data").iterdir())
    existing = tmp_path / "controls.csv"
    existing.write_text("keep me\n")
    rc = main(["compensate", "estimate", *files, "--match", str(d / "comp_match"), "--channels",
               "FL1-H,FL2-H,FL3-H,FL4-H", "--out", str(tmp_path / "m.csv"), "--report", str(tmp_path / "controls.txt")])
    assert rc == 2 and "use --force" in capsys.readouterr().err  # --report X.txt writes X.csv
    assert existing.read_text() == "keep me\n"


def test_detectors_without_a_control_are_named(shared_data, tmp_path, capsys):
    """An identity row for a detector nobody stained is a silent 'no spillover' claim: the estimate says so."""
    d = shared_data / "compensation" / "flowcore_calibur"
    files = sorted(str(p) for p in (d / "data").iterdir())
    base = ["compensate", "estimate", *files, "--match", str(d / "comp_match")]
    assert main([*base, "--out", str(tmp_path / "all.csv")]) == 0
    matrix = read_matrix(tmp_path / "all.csv")
    extra = [c for c in matrix.channels if c not in ("FL1-H", "FL2-H", "FL3-H", "FL4-H")]
    assert extra  # the default matrix is every fluorescence detector of the unstained control
    warned = [line for line in capsys.readouterr().err.splitlines() if "no single-stain control" in line]
    assert len(warned) == 1 and all(c in warned[0] for c in extra)
    assert f"{len(extra)} of {matrix.n} matrix detector(s)" in warned[0]
    assert main([*base, "--channels", "FL1-H,FL2-H,FL3-H,FL4-H", "--out", str(tmp_path / "four.csv")]) == 0
    assert "no single-stain control" not in capsys.readouterr().err
