"""Property test: mutated real FCS files never make read_fcs raise anything but FCSError."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytokit.errors import FCSError
from cytokit.fcs import read_fcs

# small real files of different versions, data types and quirks (kept small so examples are fast)
SEEDS = [
    "fcs_corpus/flowio/variable_int_example.fcs",              # FCS3.0 ints, offset quirks
    "fcs_corpus/flowio/data_start_offset_discrepancy_example.fcs",
    "fcs_corpus/fcsparser/FlowCytometers/cyflow_cube_8/cyflow_cube_8.fcs",  # blank-padded TEXT
    "fcs_corpus/flowio/B01 KC-A-W---91-US.fcs",                # FCS3.1 float
    "flowkit/simple_line_example/data_set_simple_line_100.fcs",
]


@pytest.fixture(scope="module")
def seeds(shared_data) -> list[bytes]:
    return [(shared_data / rel).read_bytes() for rel in SEEDS]


def _mutate(buf: bytes, kind: str, pos: float, payload: bytes) -> bytes:
    text_end = min(len(buf), int(buf[18:26].strip() or 0) + 2) if buf[18:26].strip().isdigit() else 58
    if kind == "truncate":
        return buf[: int(pos * len(buf))]
    if kind == "header":       # overwrite bytes of the HEADER
        i = int(pos * 58)
        return buf[:i] + payload[:8] + buf[i + len(payload[:8]):]
    if kind == "text":         # overwrite bytes inside TEXT
        i = 58 + int(pos * max(1, text_end - 58))
        return buf[:i] + payload + buf[i + len(payload):]
    if kind == "insert":       # insert bytes inside TEXT (shifts everything after)
        i = 58 + int(pos * max(1, text_end - 58))
        return buf[:i] + payload + buf[i:]
    if kind == "delete":
        i = int(pos * len(buf))
        return buf[:i] + buf[i + max(1, len(payload)):]
    if kind == "digits":       # replace a number in HEADER/TEXT with another
        i = 10 + int(pos * max(1, text_end - 10))
        return buf[:i] + str(int.from_bytes(payload[:4] or b"\x01", "little")).encode() + buf[i + 3:]
    raise AssertionError(kind)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, len(SEEDS) - 1),
    kind=st.sampled_from(["truncate", "header", "text", "insert", "delete", "digits"]),
    pos=st.floats(0, 1, allow_nan=False),
    payload=st.binary(min_size=1, max_size=12) | st.sampled_from(
        [b"/", b"//", b"$TOT/", b"999999999", b"\xff\xfe", b"$PAR/0/", b"0", b" ", b"$NEXTDATA/58/"]
    ),
)
def test_mutated_files_only_raise_fcserror(seeds, tmp_path_factory, which, kind, pos, payload):
    data = _mutate(seeds[which], kind, pos, payload)
    path: Path = tmp_path_factory.getbasetemp() / "fuzz.fcs"
    path.write_bytes(data)
    try:
        s = read_fcs(path)
    except FCSError as exc:
        assert str(path) in str(exc)
        return
    assert s.events.dtype == np.float32
    assert s.events.shape == (s.n_events, len(s.channels)) and s.n_events > 0
