"""FlowJo-only scales: biex lookup table against FlowJo's exported table, FlowJo log."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import TransformError
from cytokit.scales import FlowJoBiex, FlowJoLog, biex_table


def test_biex_table_matches_flowjo_export(shared_data: Path) -> None:
    # file name: length 256 (x16 = 4096 channels), width -7.943282, neg 1, pos 4.41854, top 262144.000029
    ref = pd.read_csv(shared_data / "flowkit" / "flowjo_xforms" /
                      "tr_biex_l256_w-7.943282_n1.000000_m4.418540_r262144.000029.csv")
    values, channels = biex_table(pos=4.418540, neg=1.0, width=-7.943282, max_value=262144.000029)
    assert len(values) == 4097 and channels[-1] == 4096
    expected = ref["lookup[i]"].to_numpy()
    ours = values[: len(expected)]
    rel = np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))
    assert rel.max() < 1e-5  # the exported table has 6 significant digits


def test_biex_forward_inverse_and_clipping() -> None:
    b = FlowJoBiex(pos=4.418540, neg=0.0, width=-100.0, max_value=262144.0)
    x = np.array([-500.0, 0.0, 10.0, 1000.0, 100000.0])
    y = b.forward(x)
    assert np.all(np.diff(y) > 0) and 0 <= y.min() and y.max() <= 4096
    assert np.allclose(b.inverse(y), x, rtol=1e-6, atol=1e-6)
    assert b.forward(np.array([1e9]))[0] == 4096.0  # beyond the table: clipped to its end
    with pytest.raises(TransformError, match="width basis must be negative"):
        FlowJoBiex(width=10.0)


def test_flowjo_log() -> None:
    t = FlowJoLog(offset=1.0, decades=4.0)
    assert np.allclose(t.forward(np.array([-5.0, 1.0, 100.0, 10000.0])), [0.0, 0.0, 0.5, 1.0])
    assert np.allclose(t.inverse(np.array([0.5])), [100.0])
    with pytest.raises(TransformError, match="positive offset"):
        FlowJoLog(offset=0.0)
