"""Per-population statistics of the analyse task: exact medians of the defining markers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cytokit.pipeline.analyse import marker_medians, median


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 300), elements=st.floats(-1, 2, width=32)))
def test_median_equals_numpy(values):
    assert median(values.copy()) == float(np.median(values))


def test_marker_medians_per_population_and_marker():
    rng = np.random.default_rng(3)
    events = rng.random((5000, 3)).astype(np.float32)
    a = events[:, 0] > 0.5
    b = a & (events[:, 1] < 0.3)
    empty = np.zeros(5000, dtype=bool)
    out = [json.loads(t) for t in marker_medians(events, {"CD3": 0, "CD4": 1}, [a, b, empty, a],
                                                  [["CD3"], ["CD3", "CD4"], ["CD4"], []])]
    assert out[0] == {"CD3": pytest.approx(float(np.median(events[a, 0])), abs=1e-6)}
    assert out[1]["CD4"] == pytest.approx(float(np.median(events[b, 1])), abs=1e-6)
    assert out[1]["CD3"] == pytest.approx(float(np.median(events[b, 0])), abs=1e-6)
    assert out[2] == {} and out[3] == {}
