"""Lymphocyte-lymphocyte doublets outside the lymphocyte scatter gate (cytokit.gating.lymphocyte_doublets): counted
by a doublet's area/height ratio, twice a lymphocyte's area and side scatter; monocytes (singlet ratio) and single
lymphocytes are not; past the uncertain limit the estimate enters the gate's est_error_pp and its flags."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.lymphocyte_doublets import DOUBLET_KEY, DOUBLET_NOTE, doublet_share_pp
from cytokit.gating.methods import needs_review


def events(rng: np.random.Generator, n: int, area: float, ratio: float, side: float) -> np.ndarray:
    """(area, height, side scatter) of ``n`` events with log-normal spread."""
    a = area * np.exp(0.08 * rng.standard_normal(n))
    return np.column_stack([a, a / (ratio * np.exp(0.02 * rng.standard_normal(n))),
                            side * np.exp(0.2 * rng.standard_normal(n))])


def test_doublets_are_counted_and_monocytes_and_singles_are_not():
    rng = np.random.default_rng(0)
    singles = events(rng, 10000, 60000, 1.08, 10000)
    doublets = events(rng, 300, 120000, 1.08 * 1.7, 20000)  # areas add, the height grows less
    monocytes = events(rng, 1500, 90000, 1.08, 33000)  # larger, more granular, single
    edge = events(rng, 200, 60000, 1.08, 16000)  # single lymphocytes above the gate's edge
    outside = np.vstack([doublets, monocytes, edge])
    share = doublet_share_pp(outside, singles, ratio_max=1.08 * 1.15)
    assert share == pytest.approx(100 * 300 / len(outside), rel=0.15)
    assert doublet_share_pp(np.vstack([monocytes, edge]), singles, ratio_max=1.08 * 1.15) < 0.5


def test_shipped_gate_records_the_doublets_in_its_error(repo_root):
    path = repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    res = load_strategy("tmem").apply(read_fcs(path))
    value = res.fits["Lymphocytes"].info[DOUBLET_KEY]
    assert 0 < value < 5
    row = res.populations.set_index("population").loc["Lymphocytes"]
    assert (DOUBLET_NOTE in str(row["flags"])) == (value > 1.0)
    if value > 1.0:
        assert row["est_error_pp"] >= value and "uncertain" in str(row["flags"])
    assert DOUBLET_KEY not in res.fits["Singlets"].info and DOUBLET_KEY not in res.fits["T cells"].info


def test_note_alone_is_not_a_review_flag():
    assert not needs_review(DOUBLET_NOTE)
    assert needs_review(f"{DOUBLET_NOTE};uncertain")
