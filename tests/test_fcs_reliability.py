"""Bad FCS input: files written with write_fcs, then broken with byte edits. Each must raise FCSError
with a specific message naming the file (quickly, without allocating what a bogus $TOT asks for), or be
read with a recorded warning where the reader is documented to tolerate the problem."""
from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from cytokit.errors import FCSError
from cytokit.fcs import read_fcs, write_fcs

PAD = "x" * 64  # spare TEXT bytes so keyword edits keep the TEXT length (and all offsets) unchanged


def _write(tmp_path: Path, n: int = 1000, name: str = "ok.fcs", **meta) -> Path:
    rng = np.random.default_rng(1)
    ev = (rng.random((n, 3), dtype=np.float32) * 1000).astype(np.float32)
    return write_fcs(tmp_path / name, ev, ["FSC-A", "SSC-A", "FITC-A"], ["", "", "CD4"],
                     {"$CYT": "Sim", "PAD": PAD, **meta})


def _offsets(buf: bytes) -> list[int]:
    return [int(buf[10 + 8 * i:18 + 8 * i].strip() or 0) for i in range(6)]


def _set_header(buf: bytes, index: int, value: int) -> bytes:
    return buf[:10 + 8 * index] + str(value).rjust(8).encode() + buf[18 + 8 * index:]


def _text_bounds(buf: bytes) -> tuple[int, int]:
    o = _offsets(buf)
    return o[0], o[1]


def _edit_text(buf: bytes, edit) -> bytes:
    """Apply ``edit(text_bytes) -> text_bytes`` and re-pad the PAD value to keep TEXT's length."""
    tb, te = _text_bounds(buf)
    text = buf[tb:te + 1]
    new = edit(text)
    diff = len(new) - len(text)

    def repad(m: re.Match) -> bytes:
        n = len(m.group(1)) - diff
        assert n >= 1, "edit too large for the PAD keyword"
        return b"/PAD/" + b"x" * n + b"/"

    new = re.sub(rb"/PAD/(x+)/", repad, new, count=1)
    assert len(new) == len(text), (len(new), len(text))
    return buf[:tb] + new + buf[te + 1:]


def _set_keyword(buf: bytes, key: str, value: str) -> bytes:
    pattern = re.compile(rb"/" + re.escape(key.encode()) + rb"/[^/]*/")
    return _edit_text(buf, lambda t: pattern.sub(b"/" + key.encode() + b"/" + value.encode() + b"/", t, 1))


def _save(tmp_path: Path, buf: bytes, name: str = "bad.fcs") -> Path:
    p = tmp_path / name
    p.write_bytes(buf)
    return p


def _expect_error(path: Path, *fragments: str) -> FCSError:
    with pytest.raises(FCSError) as info:
        read_fcs(path)
    msg = str(info.value)
    assert str(path) in msg
    for f in fragments:
        assert f in msg, msg
    return info.value


def test_writer_output_is_clean(tmp_path):
    s = read_fcs(_write(tmp_path))
    assert s.warnings == () and s.n_events == 1000


def test_truncated_data(tmp_path):
    buf = _write(tmp_path).read_bytes()
    p = _save(tmp_path, buf[:-1000])
    _expect_error(p, "DATA segment is truncated", "$TOT = 1000", "916 complete events")


def test_header_offsets_beyond_eof(tmp_path):
    buf = _write(tmp_path).read_bytes()
    _expect_error(_save(tmp_path, _set_header(buf, 0, len(buf) + 100), "a.fcs"),
                  "HEADER offsets point beyond the end of the file", "TEXT starts")
    _expect_error(_save(tmp_path, _set_header(buf, 1, len(buf) + 100), "b.fcs"),
                  "HEADER offsets point beyond the end of the file", "TEXT ends")
    # DATA offsets beyond EOF in both HEADER and TEXT
    bad = _set_header(_set_header(buf, 2, len(buf) + 10), 3, len(buf) + 9000)
    bad = _set_keyword(bad, "$BEGINDATA", str(len(buf) + 10))
    _expect_error(_save(tmp_path, bad, "c.fcs"), "beyond the end of the file", "DATA starts")


def test_header_only_file(tmp_path):
    buf = _write(tmp_path).read_bytes()
    tb, te = _text_bounds(buf)
    _expect_error(_save(tmp_path, buf[:te + 1]), "DATA starts at byte", "truncated or header-only")
    _expect_error(_save(tmp_path, buf[:40], "h.fcs"), "HEADER is truncated")
    _expect_error(_save(tmp_path, b"", "e.fcs"), "not an FCS file")


def test_text_without_closing_delimiter(tmp_path):
    buf = _write(tmp_path).read_bytes()
    tb, te = _text_bounds(buf)
    # the TEXT end offset stops inside the last value: the segment has no closing delimiter
    bad = _set_header(buf, 1, te - 5)
    _expect_error(_save(tmp_path, bad), "TEXT segment has no closing delimiter")


def test_text_end_off_by_one_is_tolerated(tmp_path):
    buf = _write(tmp_path).read_bytes()
    tb, te = _text_bounds(buf)
    # end offset one byte short of the closing delimiter: tolerated with a warning
    bad = _set_header(buf, 1, te - 1)
    s = read_fcs(_save(tmp_path, bad, "t.fcs"))
    assert s.n_events == 1000
    assert any("one byte short" in w for w in s.warnings)


def test_par_tot_inconsistent_with_data_length(tmp_path):
    buf = _write(tmp_path).read_bytes()
    _expect_error(_save(tmp_path, _set_keyword(buf, "$TOT", "900"), "tot.fcs"),
                  "$TOT = 900", "inconsistent with the DATA segment length")
    _expect_error(_save(tmp_path, _set_keyword(buf, "$PAR", "2"), "par.fcs"),
                  "$PAR = 2", "inconsistent with the DATA segment length")
    _expect_error(_save(tmp_path, _set_keyword(buf, "$TOT", "1001"), "tot2.fcs"),
                  "$TOT = 1001", "do not match the DATA length")


def test_huge_tot_is_refused_without_allocating(tmp_path):
    buf = _write(tmp_path).read_bytes()
    p = _save(tmp_path, _set_keyword(buf, "$TOT", "999999999999"))
    tracemalloc.start()
    try:
        _expect_error(p, "$TOT = 999999999999", "need 11999999999988 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * len(buf) + (1 << 20)  # only the file itself is held, never $TOT x $PAR values


def test_nan_and_inf_are_kept_with_a_warning(tmp_path):
    rng = np.random.default_rng(2)
    ev = rng.random((100, 2), dtype=np.float32)
    ev[5, 0], ev[7, 1], ev[9, 1] = np.nan, np.inf, -np.inf
    p = write_fcs(tmp_path / "nan.fcs", ev, ["FSC-A", "PE-A"], allow_nonfinite=True)
    s = read_fcs(p)
    assert s.n_events == 100
    assert np.isnan(s.events[5, 0]) and np.isposinf(s.events[7, 1])
    assert any("3 event(s) have NaN/infinite values" in w for w in s.warnings)


def test_zero_events(tmp_path):
    p = write_fcs(tmp_path / "zero.fcs", np.zeros((0, 2), np.float32), ["FSC-A", "SSC-A"])
    _expect_error(p, "no events ($TOT = 0)")


def test_non_utf8_keywords_decoded_as_latin1(tmp_path):
    buf = _write(tmp_path, **{"$OP": "Muller"}).read_bytes()
    bad = buf.replace(b"/Muller/", b"/M\xfcller/")
    s = read_fcs(_save(tmp_path, bad))
    assert s.metadata["op"] == "M\u00fcller"
    assert any("Latin-1" in w for w in s.warnings)


def test_duplicate_keywords(tmp_path):
    buf = _write(tmp_path, COMMENT="a").read_bytes()
    # same layout keyword twice with different values: cannot tell which is right
    conflict = _edit_text(buf, lambda t: t.replace(b"/COMMENT/a/", b"/$TOT/7/"))
    _expect_error(_save(tmp_path, conflict, "c.fcs"), "keyword '$TOT' appears more than once",
                  "'1000' and '7'")
    conflict_ch = _edit_text(buf, lambda t: t.replace(b"/COMMENT/a/", b"/$P2N/XX/"))
    _expect_error(_save(tmp_path, conflict_ch, "d.fcs"), "keyword '$P2N' appears more than once")
    # an informational keyword repeated: first value kept, warning recorded
    info = _edit_text(buf, lambda t: t.replace(b"/COMMENT/a/", b"/$CYT/Other/"))
    s = read_fcs(_save(tmp_path, info, "i.fcs"))
    assert s.metadata["cyt"] == "Sim"
    assert any("'$CYT' appears more than once" in w for w in s.warnings)


def test_missing_pnn(tmp_path):
    buf = _write(tmp_path).read_bytes()
    bad = _edit_text(buf, lambda t: t.replace(b"/$P2N/SSC-A/", b"/$P2X/SSC-A/"))
    _expect_error(_save(tmp_path, bad), "$P2N", "missing")


def test_duplicate_channel_names_made_unique(tmp_path):
    ev = np.ones((10, 3), np.float32)
    s = read_fcs(write_fcs(tmp_path / "d.fcs", ev, ["FL1-A", "FL1-A", "FL1-A_2"]))
    assert list(s.channels["pnn"]) == ["FL1-A", "FL1-A_3", "FL1-A_2"]
    assert any("renamed" in w for w in s.warnings)


@pytest.mark.parametrize("key, value, fragment", [
    ("$DATATYPE", "", "$DATATYPE is missing"),
    ("$DATATYPE", "A", "ASCII data"),
    ("$DATATYPE", "Q", "unknown $DATATYPE"),
    ("$BYTEORD", "3,4,1,2", "unsupported $BYTEORD"),
    ("$MODE", "C", "only list mode"),
    ("$PAR", "x", "not a non-negative integer"),
    ("$PAR", "0", "declares no channels"),
    ("$P1E", "abc", "$P1E"),
])
def test_bad_layout_keywords(tmp_path, key, value, fragment):
    buf = _write(tmp_path).read_bytes()
    if value == "":
        bad = _edit_text(buf, lambda t: re.sub(rb"/" + re.escape(key.encode()) + rb"/[^/]*/", b"/XDT/I/", t))
    else:
        bad = _set_keyword(buf, key, value)
    _expect_error(_save(tmp_path, bad), fragment)


def test_bad_version_and_header_fields(tmp_path):
    buf = _write(tmp_path).read_bytes()
    _expect_error(_save(tmp_path, b"FCS9.9" + buf[6:], "v.fcs"), "unsupported FCS version 'FCS9.9'")
    _expect_error(_save(tmp_path, buf[:10] + b"   12a56" + buf[18:], "h.fcs"), "HEADER field TEXT begin")


def test_missing_file_and_dataset_out_of_range(tmp_path):
    _expect_error(tmp_path / "nope.fcs", "cannot read file")
    with pytest.raises(FCSError, match="data set 1 requested but the file holds 1"):
        read_fcs(_write(tmp_path), dataset=1)


def test_integer_layouts_endianness_widths_and_masks(tmp_path):
    """Integer files built by editing a float file's DATA: 16-bit big endian with a $PnR mask,
    24-bit little endian, and 64-bit double data."""
    base = _write(tmp_path, n=4).read_bytes()
    o = _offsets(base)
    raw = np.array([[1, 2, 3], [1023, 1024 + 5, 65535], [0, 7, 4096], [300, 301, 302]], dtype=np.uint32)

    def rebuild(data: bytes, kws: dict[str, str]) -> bytes:
        b = base
        for k, v in kws.items():
            b = _set_keyword(b, k, v)
        head, tail = b[:o[2]], b[o[3] + 1:]
        b = head + data + tail
        b = _set_header(b, 3, o[2] + len(data) - 1)
        return _set_keyword(b, "$ENDDATA", str(o[2] + len(data) - 1).zfill(20))

    common = {"$DATATYPE": "I", "$P1B": "16", "$P2B": "16", "$P3B": "16", "$P2R": "1024"}
    s = read_fcs(_save(tmp_path, rebuild(raw.astype(">u2").tobytes(), {**common, "$BYTEORD": "4,3,2,1"}), "i16.fcs"))
    np.testing.assert_array_equal(s.events[:, 0], raw[:, 0])
    np.testing.assert_array_equal(s.events[:, 1], raw[:, 1] & 1023)  # $P2R = 1024 masks extra bits
    np.testing.assert_array_equal(s.events[:, 2], raw[:, 2])

    b24 = np.zeros((4, 9), np.uint8)
    for j in range(3):
        for k in range(3):
            b24[:, 3 * j + k] = (raw[:, j] >> (8 * k)) & 0xFF
    kw24 = {"$DATATYPE": "I", "$P1B": "24", "$P2B": "24", "$P3B": "24", "$BYTEORD": "1,2,3,4"}
    s = read_fcs(_save(tmp_path, rebuild(b24.tobytes(), kw24), "i24.fcs"))
    np.testing.assert_array_equal(s.events, raw.astype(np.float32))

    dbl = raw.astype("<f8") / 4
    s = read_fcs(_save(tmp_path, rebuild(dbl.tobytes(), {"$DATATYPE": "D", "$P1B": "64", "$P2B": "64",
                                                          "$P3B": "64"}), "d.fcs"))
    np.testing.assert_allclose(s.events, dbl.astype(np.float32))

    # log amplification on integer data: value = f2 * 10 ** (f1 * raw / $PnR)
    s = read_fcs(_save(tmp_path, rebuild(raw.astype("<u2").tobytes(),
                                         {**common, "$P3E": "4,1", "$P3R": "65536"}), "log.fcs"))
    np.testing.assert_allclose(s.events[:, 2], 10 ** (4 * raw[:, 2] / 65536), rtol=1e-5)
    assert s.channels["log_decades"].iloc[2] == 4


def test_fcs32_mixed_datatypes_and_pntype(tmp_path):
    """FCS 3.2: $PnDATATYPE overrides $DATATYPE per channel; $PnTYPE declares the channel kind."""
    base = _write(tmp_path, n=3, name="b.fcs", **{"$P2TYPE": "Raw_Fluorescence", "$P3TYPE": "Time",
                                                   "$P2DATATYPE": "F", "$P3DATATYPE": "D"}).read_bytes()
    base = b"FCS3.2" + base[6:]
    o = _offsets(base)
    recs = np.zeros(3, dtype=[("a", "<u2"), ("b", "<f4"), ("c", "<f8")])
    recs["a"] = [1, 1023, 4000]
    recs["b"] = [0.5, -2.0, 1e5]
    recs["c"] = [1.25, 2.5, 3.75]
    data = recs.tobytes()
    b = _set_keyword(_set_keyword(base, "$DATATYPE", "I"), "$P1B", "16")
    b = _set_keyword(b, "$P1R", "1024")
    b = b[:o[2]] + data + b[o[3] + 1:]
    b = _set_header(b, 3, o[2] + len(data) - 1)
    b = _set_keyword(b, "$ENDDATA", str(o[2] + len(data) - 1).zfill(20))
    s = read_fcs(_save(tmp_path, b, "mixed.fcs"))
    assert s.fcs_version == "3.2"
    np.testing.assert_array_equal(s.events[:, 0], [1, 1023, 4000 & 1023])
    np.testing.assert_array_equal(s.events[:, 1], recs["b"])
    np.testing.assert_array_equal(s.events[:, 2], recs["c"].astype(np.float32))
    # names say scatter, scatter, fluorescence; the declared $PnTYPE wins where given
    assert list(s.channels["kind"]) == ["scatter", "fluorescence", "time"]


def test_read_keywords_includes_supplementary_text_after_data(tmp_path):
    from cytokit.fcs import read_keywords

    buf = _write(tmp_path).read_bytes()
    stext = b"/EXTRA KEY/hello/"
    begin = len(buf)
    buf = _set_keyword(buf, "$BEGINSTEXT", str(begin))
    buf = _set_keyword(buf, "$ENDSTEXT", str(begin + len(stext) - 1))
    path = _save(tmp_path, buf + stext, "stext.fcs")
    assert read_fcs(path).metadata["extra key"] == "hello"
    assert read_keywords(path)["extra key"] == "hello"  # same keywords as read_fcs, not only TEXT's
