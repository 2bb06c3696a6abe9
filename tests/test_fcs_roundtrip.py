"""write_fcs -> read_fcs round trip, and agreement with FlowIO on files we write."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.errors import FCSError
from cytokit.fcs import read_fcs, write_fcs


def _events(n=500, p=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, p), dtype=np.float32) * 5000).astype(np.float32)


def test_roundtrip_values_channels_and_metadata(tmp_path):
    ev = _events()
    meta = {"$CYT": "SimCyt", "$SPILLOVER": "2,FITC-A,PE-A,1,0.1,0.02,1", "$DATE": "01-JAN-2003",
            "$BTIM": "10:00:00", "$ETIM": "10:05:00", "$TIMESTEP": "0.01", "$P4G": "4", "$P3R": "1024",
            "custom key": "a/b value"}
    out = write_fcs(tmp_path / "x.fcs", ev, ["FSC-A", "SSC-A", "FITC-A", "PE-A"],
                    ["", "", "CD4 FITC", "CD8"], meta)
    s = read_fcs(out)
    assert s.n_events == 500 and s.n_channels == 4
    assert s.fcs_version == "3.1"
    assert s.events.dtype == np.float32 and s.events.flags.c_contiguous
    np.testing.assert_array_equal(s.events[:, :3], ev[:, :3])
    np.testing.assert_allclose(s.events[:, 3], ev[:, 3] / 4, rtol=1e-6)  # $PnG decoded
    assert list(s.channels["pnn"]) == ["FSC-A", "SSC-A", "FITC-A", "PE-A"]
    assert list(s.channels["marker"]) == ["FSC-A", "SSC-A", "CD4 FITC", "CD8"]
    assert list(s.channels["kind"]) == ["scatter", "scatter", "fluorescence", "fluorescence"]
    assert s.channels["range"].iloc[2] == 1024
    assert s.metadata["cyt"] == "SimCyt"
    assert s.metadata["spillover"] == meta["$SPILLOVER"]
    assert s.metadata["timestep"] == "0.01"
    assert s.metadata["custom key"] == "a/b value"  # escaped delimiter survives
    assert len(s.sha256) == 64
    assert s.warnings == ()


@pytest.mark.parametrize("value", ["/lead", "trail/", "a//b", "|pipe|", "x/|\\!~^y", "caf\u00e9 \u2122"])
def test_keyword_values_survive_any_delimiter(tmp_path, value):
    path = write_fcs(tmp_path / "v.fcs", _events(5, 1), ["FSC-A"], metadata={"$COM": value, "OTHER": "z"})
    s = read_fcs(path)
    assert s.metadata["com"] == value and s.metadata["other"] == "z"
    assert s.warnings == ()


def test_flowio_reads_what_we_write(tmp_path):
    import flowio

    ev = _events(200, 3)
    path = write_fcs(tmp_path / "y.fcs", ev, ["FSC-A", "SSC-A", "Time"], metadata={"cyt": "X"})
    fd = flowio.FlowData(str(path))
    assert fd.event_count == 200
    got = np.asarray(fd.events, dtype=np.float32).reshape(200, 3)
    np.testing.assert_array_equal(got, ev)
    assert fd.text["cyt"] == "X"


def test_writer_refuses_bad_input(tmp_path):
    with pytest.raises(FCSError, match="do not match"):
        write_fcs(tmp_path / "z.fcs", _events(10, 3), ["A", "B"])
    bad = _events(10, 2)
    bad[3, 1] = np.nan
    with pytest.raises(FCSError, match="NaN"):
        write_fcs(tmp_path / "z.fcs", bad, ["A", "B"])
    with pytest.raises(FCSError, match="computed by write_fcs"):
        write_fcs(tmp_path / "z.fcs", _events(10, 2), ["A", "B"], metadata={"$TOT": "5"})
    assert not (tmp_path / "z.fcs").exists()


def test_read_keywords_without_data(tmp_path, shared_data):
    from cytokit.fcs import read_keywords

    path = write_fcs(tmp_path / "k.fcs", _events(50, 2), ["FSC-A", "SSC-A"], metadata={"$CYT": "K"})
    kw = read_keywords(path)
    assert kw["cyt"] == "K" and kw["tot"] == "50" and kw["p2n"] == "SSC-A"
    # a truncated file still gives its keywords (DATA is not needed) ...
    (tmp_path / "t.fcs").write_bytes(path.read_bytes()[:-100])
    assert read_keywords(tmp_path / "t.fcs")["tot"] == "50"
    # ... and the second data set of a multi-data-set file
    lmd = shared_data / "flowkit/multi_dataset_fcs/coulter.lmd"
    assert read_keywords(lmd, dataset=1)["p1b"] == "32"
    with pytest.raises(FCSError, match="data set 5 requested"):
        read_keywords(lmd, dataset=5)


def test_leading_slash_survives_when_the_usual_delimiters_are_all_used(tmp_path):
    import flowio

    used = "/|\\!~^\x0c"
    meta = {"$FIL": "/data/run 1/x.fcs", "$COM": used}
    path = write_fcs(tmp_path / "d.fcs", _events(5, 1), ["FSC-A"], metadata=meta)
    s = read_fcs(path)
    assert s.metadata["fil"] == "/data/run 1/x.fcs" and s.metadata["com"] == used and s.warnings == ()
    assert flowio.FlowData(str(path)).text["fil"] == "/data/run 1/x.fcs"
    # with every candidate delimiter in the text, a leading '/' is refused instead of written corrupted
    every = used + "\x1e\x1f\x1d\x1c"
    with pytest.raises(FCSError, match="cannot be written unambiguously"):
        write_fcs(tmp_path / "e.fcs", _events(5, 1), ["FSC-A"], metadata={"$FIL": "/x", "$COM": every})
    assert not (tmp_path / "e.fcs").exists()


@pytest.mark.parametrize("chunk", [None, 1000, 7])
def test_sha256_is_the_files_hash_whatever_the_read_pieces(tmp_path, monkeypatch, chunk):
    """read_fcs hashes the file piece by piece while reading it (a background thread): the digest is the
    whole file's sha256 however the file is cut into pieces; a file that cannot be decoded still raises
    FCSError, and the hashing thread ends (no thread left waiting for pieces)."""
    import hashlib
    import threading

    from cytokit.fcs import reader

    if chunk is not None:
        monkeypatch.setattr(reader, "READ_CHUNK", chunk)
    rng = np.random.default_rng(4)
    path = write_fcs(tmp_path / "h.fcs", rng.normal(size=(3000, 3)).astype(np.float32), ["FSC-A", "SSC-A", "FL1-A"])
    assert read_fcs(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    before = threading.active_count()
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(path.read_bytes()[:2000])  # cut inside the data segment
    with pytest.raises(FCSError):
        read_fcs(bad)
    assert threading.active_count() == before


def test_sha256_is_the_files_hash_when_values_are_decoded_in_place(tmp_path, monkeypatch):
    """A file whose values the reader rescales ($PnG != 1) is decoded in place in the read buffer: the digest is still the file's own sha256 (the hashing thread has read every byte before
    any is rewritten; otherwise the pipeline refuses the file as 'changed while the run was in progress')."""
    import hashlib

    from cytokit.fcs import reader

    monkeypatch.setattr(reader, "READ_CHUNK", 512)  # many small pieces: the hash lags behind the decoding
    rng = np.random.default_rng(5)
    ev = np.abs(rng.normal(1000, 300, size=(40000, 3))).astype(np.float32)
    meta = {"$P3G": "2.5"}
    path = write_fcs(tmp_path / "g.fcs", ev, ["FSC-A", "SSC-A", "FL1-A"], metadata=meta)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for _ in range(5):
        s = read_fcs(path)
        assert s.sha256 == digest
    assert np.allclose(s.column("FL1-A"), ev[:, 2] / 2.5)
