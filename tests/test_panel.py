"""Panels: YAML validation and channel → canonical marker resolution."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import ConfigError, PanelError
from cytokit.panel import load_panel, normalize_name
from cytokit.sample import CHANNEL_COLUMNS, Sample

BD_TMEM = [("FSC-A", ""), ("FSC-H", ""), ("SSC-A", ""), ("FITC-A", "CD45RA FITC"), ("PE-A", "CD62L PE"),
           ("PerCP-Cy5-5-A", "CD3 PerCP-Cy5.5"), ("PE-Cy7-A", "CD4 PE-Cy7"), ("APC-H7-A", "CD8 APC-H7"),
           ("APC-A", "CD28 APC"), ("BV421-A", "CD25 BV421"), ("BV605-A", "CD127 BV605"), ("Time", "")]
ATTUNE_TMEM = [("FSC-A", ""), ("FSC-H", ""), ("SSC-A", ""), ("BL1-A", "CD45RA"), ("BL2-A", "CD62L"),
               ("BL3-A", "CD3"), ("BL4-A", "CD4"), ("RL3-A", "CD8"), ("RL1-A", "CD28"), ("VL1-A", "CD25"),
               ("VL3-A", "CD127"), ("Time", "")]
BD_NKB = [("FSC-A", ""), ("FSC-H", ""), ("SSC-A", ""), ("FITC-A", "CD3"), ("PE-A", "CD16"),
          ("PerCP-Cy5-5-A", "CD45"), ("PE-Cy7-A", "CD19"), ("APC-A", "CD56"), ("Time", "")]


def make_sample(channels: list[tuple[str, str]], name: str = "synthetic.fcs") -> Sample:
    rows = [dict(pnn=n, pns=s, marker=s or n, fluorochrome="", range=262144.0, gain=1.0, log_decades=0.0,
                 log_offset=0.0, bits=32, kind="") for n, s in channels]
    events = np.arange(10 * len(rows), dtype=np.float32).reshape(10, len(rows))
    return Sample(events, pd.DataFrame(rows, columns=list(CHANNEL_COLUMNS)), path=None,
                  metadata={"fil": name})


@pytest.fixture(scope="module")
def il2():
    return load_panel("il2_trial")


def test_normalize_name():
    assert normalize_name(" CD45RA-FITC ") == "cd45rafitc"
    assert normalize_name("NK1.1") == normalize_name("NK1/1")


@pytest.mark.parametrize("layout", [BD_TMEM, ATTUNE_TMEM], ids=["BD", "Attune"])
def test_tmem_resolves_on_both_instruments(il2, layout):
    s = il2.resolve(make_sample(layout), tube="tmem")
    ch = s.channels.set_index("pnn")
    markers = list(s.channels["marker"])
    assert markers == ["FSC-A", "FSC-H", "SSC-A", "CD45RA", "CD62L", "CD3", "CD4", "CD8", "CD28", "CD25",
                       "CD127", "Time"]
    assert list(s.channels["kind"]) == ["scatter"] * 3 + ["fluorescence"] * 8 + ["time"]
    cd4_pnn = "PE-Cy7-A" if layout is BD_TMEM else "BL4-A"
    assert ch.loc[cd4_pnn, "fluorochrome"] == "PE-Cy7"
    assert s.warnings == ()
    # lookup by canonical marker now works, and events are untouched
    assert np.array_equal(s.column("CD4"), make_sample(layout).events[:, 6])
    assert any("panel il2_trial tube tmem" in p for p in s.provenance)


def test_tube_is_detected(il2):
    assert il2.detect_tube(make_sample(BD_TMEM)) == "tmem"
    s = il2.resolve(make_sample(BD_NKB))
    assert "panel il2_trial tube nkb resolved channel names" in s.provenance
    assert s.channels.set_index("marker").loc["CD3", "fluorochrome"] == "FITC"


def test_marker_text_variants(il2):
    for text in ["CD45RA", "cd45ra", "CD45RA FITC", "CD45RA-FITC", "FITC CD45RA", "CD45-RA"]:
        assert il2.match_marker_text(text)[0] == "CD45RA", text
    assert il2.match_marker_text("CD4 PE-Cy7") == ("CD4", "PE-Cy7")
    assert il2.match_marker_text("CD45")[0] == "CD45"  # not CD4 or CD45RA
    assert il2.match_marker_text("CD999")[0] is None


def test_pnn_fallback_when_pns_empty(il2):
    layout = [(s, "") if n.startswith("FSC") else (s or n, "") for n, s in BD_TMEM]
    # $PnN carries the marker text (some exports put it there)
    s = il2.resolve(make_sample(layout), tube="tmem")
    assert "CD127" in set(s.channels["marker"])


def test_missing_marker_lists_what_was_found(il2):
    layout = [c for c in BD_TMEM if "CD25" not in c[1]]
    with pytest.raises(PanelError) as err:
        il2.resolve(make_sample(layout), tube="tmem")
    msg = str(err.value)
    assert "CD25" in msg and "not found" in msg and "PE-Cy7-A → CD4" in msg


def test_ambiguous_marker(il2):
    layout = BD_TMEM + [("BV711-A", "CD4")]
    with pytest.raises(PanelError, match="CD4 is claimed by PE-Cy7-A, BV711-A"):
        il2.resolve(make_sample(layout), tube="tmem")


def test_unknown_tube_and_no_matching_tube(il2):
    with pytest.raises(PanelError, match="no tube 'xyz'"):
        il2.resolve(make_sample(BD_TMEM), tube="xyz")
    with pytest.raises(PanelError, match="matches no tube"):
        il2.resolve(make_sample(BD_TMEM[:5]))


def test_unknown_fluorochrome_word_is_tolerated(il2):
    layout = [("BV711-A", "CD4 BV711") if n == "PE-Cy7-A" else (n, s) for n, s in BD_TMEM]
    s = il2.resolve(make_sample(layout), tube="tmem")
    row = s.channels.set_index("marker").loc["CD4"]
    assert row["pnn"] == "BV711-A" and row["fluorochrome"] == "BV711" and row["kind"] == "fluorescence"
    assert s.warnings == ("CD4 is on BV711 (BV711-A); panel 'il2_trial' expects PE-Cy7",)


def test_known_but_unexpected_fluorochrome_warns(il2):
    swapped = [("RL1-A", "CD4") if s == "CD4" else ("BL4-A", "CD28") if s == "CD28" else (n, s)
               for n, s in ATTUNE_TMEM]
    s = il2.resolve(make_sample(swapped), tube="tmem")
    assert any("CD4 is on APC (RL1-A); panel 'il2_trial' expects PE-Cy7" in w for w in s.warnings)
    assert s.channels.set_index("marker").loc["CD4", "fluorochrome"] == "APC"


def test_four_colour_resolves_from_detectors():
    p = load_panel("il2_trial_4colour")
    layout = [("FSC-H", "FSC-Height"), ("SSC-H", "SSC-Height"), ("FL1-H", ""), ("FL2-H", ""), ("FL3-H", ""),
              ("FL4-H", "")]
    s = p.resolve(make_sample(layout), tube="activation")
    assert list(s.channels["marker"]) == ["FSC-H", "SSC-H", "CD28", "CD25", "CD4", "CD8"]
    s = p.resolve(make_sample(layout), tube="nkb")
    assert list(s.channels["marker"])[2:] == ["CD3", "CD16+56", "CD45", "CD19"]
    # without $PnS every tube fits: the user must say which
    with pytest.raises(PanelError, match="several tubes"):
        p.resolve(make_sample(layout))
    # with $PnS the tube is detected
    labelled = layout[:2] + [("FL1-H", "CD45RA"), ("FL2-H", "CD62L"), ("FL3-H", "CD4"), ("FL4-H", "CD3")]
    s = p.resolve(make_sample(labelled))
    assert "panel il2_trial_4colour tube naive resolved channel names" in s.provenance
    assert p.reagents("naive") == {"CD45RA": "FITC", "CD62L": "PE", "CD4": "PerCP", "CD3": "APC"}


def test_detector_only_assignment_is_flagged():
    """Markers taken from detector names alone ($PnS empty) are listed in a warning and flagged;
    channels whose $PnS names the marker are not."""
    from cytokit.panel import DETECTOR_ONLY_FLAG, panel_flags

    p = load_panel("il2_trial_4colour")
    layout = [("FSC-H", "FSC-Height"), ("SSC-H", "SSC-Height"), ("FL1-H", ""), ("FL2-H", "CD25"), ("FL3-H", "CD4"),
              ("FL4-H", "CD8")]
    s = p.resolve(make_sample(layout), tube="activation")
    assert panel_flags(s) == [DETECTOR_ONLY_FLAG] == ["markers_from_detector_names"]
    warning = next(w for w in s.warnings if w.startswith("markers assigned from detector names only"))
    assert "FL1-H->CD28" in warning and "FL2-H" not in warning
    labelled = layout[:2] + [("FL1-H", "CD28"), *layout[3:]]
    assert panel_flags(p.resolve(make_sample(labelled), tube="activation")) == []


def test_invalid_yaml_names_file_line_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        name: bad
        markers:
          CD3: {aliases: [CD3]}
          CD4: {aliases: [CD4], colour: FITC}
        tubes:
          t1: {required: [CD3, CD8]}
        """))
    with pytest.raises(ConfigError) as err:
        load_panel(bad)
    msg = str(err.value)
    assert f"{bad}:4" in msg and "markers.CD4.colour" in msg
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: d\nmarkers:\n  CD3: {aliases: [x]}\n  CD4: {aliases: [X]}\n")
    with pytest.raises(ConfigError, match="alias 'X' names both 'CD3' and 'CD4'"):
        load_panel(dup)
    undefined = tmp_path / "undef.yaml"
    undefined.write_text("name: u\nmarkers:\n  CD3: {}\ntubes:\n  t1: {required: [CD3, CD8]}\n")
    with pytest.raises(ConfigError, match=r"undef.yaml:.*not defined under 'markers': \['CD8'\]"):
        load_panel(undefined)


def test_unknown_panel_name():
    with pytest.raises(ConfigError, match="no panels definition named 'nope'"):
        load_panel("nope")


@pytest.mark.parametrize("panel, rel, expected", [
    ("human_tcell_memory", "flowkit/100715.fcs",
     {"G560-A": "CD127", "V450-A": "Dump", "B515-A": "Ki67", "R660-A": "CD45RO", "FSC-H": "FSC-H"}),
    ("mouse_lymphocytes", "flowsom_68983/68983.fcs",
     {"APC-A": "TCRgd", "PE-A": "NK1.1", "AmCyan-A": "L/D", "PE-Texas Red-A": "CD4", "Time": "Time"}),
])
def test_real_files_resolve(shared_data, panel, rel, expected):
    from cytokit.fcs import read_fcs

    p = load_panel(panel)
    s = p.resolve(read_fcs(shared_data / rel))
    by_pnn = s.channels.set_index("pnn")
    for pnn, marker in expected.items():
        assert by_pnn.loc[pnn, "marker"] == marker
    tube = p.tubes[0]
    assert set(p.definition.tubes[tube].required) <= set(s.channels["marker"])
    assert set(s.channels.loc[s.channels["marker"].isin(["FSC-A", "FSC-H", "SSC-A"]), "kind"]) == {"scatter"}


def test_real_file_with_wrong_panel_lists_channels(shared_data):
    from cytokit.fcs import read_fcs

    path = shared_data / "flowsom_68983/68983.fcs"
    with pytest.raises(PanelError) as err:
        load_panel("il2_trial").resolve(read_fcs(path), tube="tmem")
    msg = str(err.value)
    assert "68983.fcs" in msg and "CD45RA" in msg and "PE-Cy7-A → CD3" in msg


def test_channel_naming_two_markers_is_reported_ambiguous(il2):
    layout = [("PE-Cy7-A", "CD4 CD8") if n == "PE-Cy7-A" else (n, s) for n, s in BD_TMEM if n != "APC-H7-A"]
    with pytest.raises(PanelError) as err:
        il2.resolve(make_sample(layout), tube="tmem")
    msg = str(err.value)
    assert "CD4, CD8 of tube 'tmem'" in msg and "PE-Cy7-A → ambiguous: names CD4, CD8" in msg


def test_scatter_channels_the_panel_does_not_list_stay_scatter():
    # the 4-colour panel lists only FSC-H/SSC-H; FSC-A/SSC-A of a newer instrument are not fluorescence
    s = make_sample([("FSC-A", ""), ("FSC-H", ""), ("SSC-A", ""), ("SSC-H", ""), ("FL1-H", "CD45RA"),
                     ("FL2-H", "CD62L"), ("FL3-H", "CD4"), ("FL4-H", "CD3"), ("Time", "")])
    r = load_panel("il2_trial_4colour").resolve(s, tube="naive")
    kinds = dict(zip(r.channels["pnn"], r.channels["kind"]))
    assert [kinds[c] for c in ("FSC-A", "FSC-H", "SSC-A", "SSC-H")] == ["scatter"] * 4
    assert [kinds[c] for c in ("FL1-H", "FL2-H", "FL3-H", "FL4-H")] == ["fluorescence"] * 4
    assert kinds["Time"] == "time"
