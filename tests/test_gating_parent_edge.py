"""parent_edge_pp: a population's % of parent moves with its parent's plausible edges (cytokit.gating.parent_edge)."""
from __future__ import annotations

import numpy as np

from cytokit.gates import RectangleGate
from cytokit.gating.methods import fit_gate
from cytokit.gating.parent_edge import parent_edge_pp


def _parent_and_child(plateau_positive: float, seed: int = 0) -> float:
    """Marker A: negatives (0.2), a dim plateau (0.42-0.62) running into a bright peak (0.65); the parent is the
    bright peak (lower tail of the last peak). Marker B: 10 % of the bright cells are B+, and
    ``plateau_positive`` of the plateau cells. Returns parent_edge_pp of B+ (% of the parent)."""
    rng = np.random.default_rng(seed)
    neg = rng.normal(0.2, 0.04, 12000)
    plateau = rng.uniform(0.42, 0.62, 4000)
    bright = rng.normal(0.65, 0.03, 4000)
    a = np.concatenate([neg, plateau, bright])
    b_pos = np.concatenate([rng.random(12000) < 0.1, rng.random(4000) < plateau_positive, rng.random(4000) < 0.1])
    b = np.where(b_pos, rng.normal(0.7, 0.03, a.size), rng.normal(0.2, 0.03, a.size))
    X = np.column_stack([a, b])
    parent = fit_gate("threshold", X[:, :1], {"sign": "+", "threshold": {"mode": "tail", "tail_side": "lower",
                                                                          "reference_peak": "last"}},
                      dims=("A",), gate_id="parent")
    assert parent.info["A"]["method"] == "tail"
    child = RectangleGate(id="child", dims=("B",), lower=(0.45,), upper=(None,))
    value = parent_edge_pp(parent.gate, parent.info, child, X, np.array([1]))
    assert value is not None
    return value


def test_a_parent_edge_through_unlike_events_moves_the_child():
    """Plateau cells mostly B+ (unlike the bright core): moving the parent's tail by its own plausible
    amount moves B+ % of parent by more than the uncertain limit; plateau cells like the core: ~0."""
    from cytokit.gating.methods.confidence import UNCERTAIN_PP

    unlike = _parent_and_child(0.9)
    alike = _parent_and_child(0.1)
    assert unlike > UNCERTAIN_PP, unlike
    assert alike < 0.5, alike


def test_a_parent_without_alternatives_is_not_measured():
    """A fixed parent threshold stated on an exact scale (``fixed_tolerance: 0``) has no plausible alternatives:
    None (nothing measured), not 0. With the default tolerance its alternatives are the cut -/+ the tolerance
    (docs/gating.md, "An activation smear with a stated cut"), and the child's % of parent moves with them."""
    X = np.column_stack([np.linspace(0, 1, 500), np.linspace(0, 1, 500)])
    child = RectangleGate(id="child", dims=("B",), lower=(0.7,), upper=(None,))
    exact = fit_gate("threshold", X[:, :1], {"sign": "+", "threshold": {"mode": "fixed", "value": 0.5,
                                                                        "fixed_tolerance": 0}},
                     dims=("A",), gate_id="parent")
    assert parent_edge_pp(exact.gate, exact.info, child, X, np.array([1])) is None
    stated = fit_gate("threshold", X[:, :1], {"sign": "+", "threshold": {"mode": "fixed", "value": 0.5}},
                      dims=("A",), gate_id="parent")
    assert parent_edge_pp(stated.gate, stated.info, child, X, np.array([1])) > 0


def test_real_file_mdc_is_flagged_by_its_parents_edge_and_refit_leaves_the_result(shared_data, repo_root):
    """A2004 (user strategy benchmarks/real_data/dc_monocyte_strategy.yaml): mDC's own CD11c valley is
    clean, but the APC's edges (HLA-DR tail, CD14 valley) move mDC % of APC by > 1 pp: est_error_pp
    includes it and the row carries parent_edge and uncertain. Re-fitting APC gives a new result and
    leaves the first one's values as they were."""
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy

    strategy = load_strategy(repo_root / "benchmarks" / "real_data" / "dc_monocyte_strategy.yaml")
    result = strategy.apply(read_fcs(shared_data / "flowjo9_diva" / "a2004_O1T2pb05i_A2_A02.fcs"))
    rows = result.populations.set_index("population")
    edge = result.fits["mDC"].info["parent_edge_pp"]
    own = result.fits["mDC"].info["est_error_pp"]
    assert own < 1.0 < edge
    assert abs(rows.loc["mDC", "est_error_pp"] - float(np.hypot(own, edge))) < 1e-6
    assert {"parent_edge", "uncertain"} <= set(rows.loc["mDC", "flags"].split(";"))
    assert "parent_edge_pp" not in result.fits["Live"].info  # a threshold gate on all events: no parent
    refit = strategy.refit(result, "APC", thresholds=[{"bounds": [0.25, 0.75]}, {"bounds": [0.25, 0.75]}])
    assert refit.fits["mDC"].info["parent_edge_pp"] != edge
    assert result.fits["mDC"].info["parent_edge_pp"] == edge


def _nk_like(tail_method: str = "tail") -> tuple[float | None, float | None]:
    """Marker C (gate coordinates): tight negatives at 0.285 (the reference's upper end 0.295), dim cells
    spread around 0.42 and bright cells at 0.74. The parent (C+) is cut at 0.33 by ``tail_method`` and leaves
    out the dim cells' lower tail; the child is C bright (>= 0.6). Returns parent_edge_pp of the child without
    and with the child's negative reference (pp of % of parent)."""
    from cytokit.gates import QuadrantGate

    rng = np.random.default_rng(3)
    c = np.concatenate([rng.normal(0.285, 0.004, 8000), rng.normal(0.42, 0.06, 700), rng.normal(0.74, 0.03, 600)])
    X = np.column_stack([c, c])
    parent = QuadrantGate(id="parent", dims=("C",), dividers=(0.33,), signs=(1,))
    info = {"C": {"method": tail_method, "half_sd": 0.017, "peaks": [0.285], "threshold": 0.33,
                  "stability_thresholds": [0.33, 0.335]}}
    child = RectangleGate(id="child", dims=("C",), lower=(0.6,), upper=(None,))
    without = parent_edge_pp(parent, info, child, X, np.array([1]))
    with_ref = parent_edge_pp(parent, info, child, X, np.array([1]), negative_max={"C": 0.295})
    return without, with_ref


def test_a_tail_placed_parent_is_moved_to_the_childs_reference_negatives():
    """Lab B 16161 B04_V24_nk: the NK gate's CD56 tail (0.328, from the half-SD of all live cells) sat above the
    T cells' CD56 negatives (0.292) and left out dim NK cells only, so CD56bright read 3.2 pp high with
    est_error_pp 0.26. The parent's cut moved to the child's reference ``negative_max`` is a plausible place:
    parent_edge_pp rises above the uncertain limit; the tail's own ±SD alternatives alone stay below it."""
    from cytokit.gating.methods.confidence import UNCERTAIN_PP

    without, with_ref = _nk_like("tail")
    assert without is not None and without < UNCERTAIN_PP, without
    assert with_ref is not None and with_ref > 2 * UNCERTAIN_PP, with_ref


def test_a_valley_placed_parent_gets_no_reference_alternative():
    """A parent cut at a valley is not moved to the reference's negatives (only a tail, which has no valley
    to hold it, is): the same events give the same parent_edge_pp with and without the reference."""
    without, with_ref = _nk_like("valley")
    assert without is not None and without == with_ref


def test_child_negative_max_reads_a_threshold_or_an_interval_fit():
    """The reference's ``negative_max`` is found in a threshold child's ``info[dim]`` and an interval child's
    ``info["lower"]``; a child without a reference gives none."""
    from cytokit.gating.parent_edge import child_negative_max

    ref = {"negative_reference": {"negative_max": 0.292, "mode": 0.285}}
    assert child_negative_max(("CD56",), {"CD56": ref}) == {"CD56": 0.292}
    assert child_negative_max(("CD56",), {"lower": ref, "upper": {}}) == {"CD56": 0.292}
    assert child_negative_max(("CD56",), {"CD56": {"method": "valley"}}) == {}
