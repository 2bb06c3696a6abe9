"""A gate placed beyond its population leaves it nearly empty: fewer than NEAR_EMPTY_SHARE of a parent of at
least NEAR_EMPTY_PARENT events gets the review flag ``near_empty`` (``empty`` is for 0 events only). Lab B showed
NK cells read as 1 event of 16,047 (6.8 % true) with placement notes only."""
from __future__ import annotations

from pathlib import Path

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.engine import NEAR_EMPTY_PARENT, NEAR_EMPTY_SHARE
from cytokit.gating.methods import needs_review
from cytokit.simulate import load_config, simulate_file


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "f.fcs"
    simulate_file(path, 20000, tube="tmem", seed=5, config=load_config(None), truth_out=tmp_path)
    return path


def test_a_gate_beyond_its_population_is_flagged_near_empty(tmp_path: Path) -> None:
    sample = read_fcs(_file(tmp_path))
    # CD25+ CD4 with its threshold fixed above its brightest cells but one: 1 of ~1,500 CD4 T cells
    strategy = load_strategy("tmem").set_params("CD25+ CD4", threshold={"mode": "fixed", "value": 0.78})
    rows = strategy.apply(sample, qc=False).populations.set_index("population")
    count, parent = int(rows.loc["CD25+ CD4", "count"]), int(rows.loc["CD25+ CD4", "parent_count"])
    assert parent >= NEAR_EMPTY_PARENT and 0 < count < NEAR_EMPTY_SHARE * parent, (count, parent)
    flags = str(rows.loc["CD25+ CD4", "flags"])
    assert flags.split(";") == ["near_empty"] and needs_review(flags), flags  # no other word caught it
    # a gate that leaves nothing is `empty`, not both
    none = load_strategy("tmem").set_params("CD25+ CD4", threshold={"mode": "fixed", "value": 0.97})
    flags = str(none.apply(sample, qc=False).populations.set_index("population").loc["CD25+ CD4", "flags"])
    assert "empty" in flags.split(";") and "near_empty" not in flags


def test_shipped_gates_on_a_clean_file_are_not_near_empty(tmp_path: Path) -> None:
    rows = load_strategy("tmem").apply(read_fcs(_file(tmp_path)), qc=False).populations
    assert not rows["flags"].astype(str).str.contains("near_empty").any()
    small = rows[(rows["parent_count"] >= NEAR_EMPTY_PARENT) & (rows["count"] > 0)]
    assert (small["count"] >= NEAR_EMPTY_SHARE * small["parent_count"]).all()
