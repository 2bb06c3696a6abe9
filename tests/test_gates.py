"""Concrete gate kernels: Gating-ML boundary semantics, polygon fill rules, registry round trip."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytokit.errors import GatingError
from cytokit.gates import (GATE_TYPES, BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate,
                           gate_from_dict, points_in_polygon)


def test_rectangle_is_half_open_and_open_sides_exclude_nonfinite() -> None:
    g = RectangleGate("r", ("x", "y"), lower=(1.0, None), upper=(2.0, 5.0))
    X = np.array([[1.0, 0.0], [2.0, 0.0], [1.5, 5.0], [1.5, -np.inf], [np.nan, 0.0], [1.5, 4.99]])
    assert g.contains(X).tolist() == [True, False, False, True, False, True]
    up = RectangleGate("u", ("x",), lower=(0.0,), upper=(None,))
    assert up.contains(np.array([0.0, 1e300, np.inf, np.nan])).tolist() == [True, True, False, False]


def test_rectangle_rejects_wrong_shapes() -> None:
    with pytest.raises(GatingError, match="bounds do not match"):
        RectangleGate("bad", ("x", "y"), lower=(0.0,), upper=(1.0,))
    g = RectangleGate("r", ("x", "y"), lower=(0.0, 0.0), upper=(1.0, 1.0))
    with pytest.raises(GatingError, match="expects 2 dimension"):
        g.contains(np.zeros((4, 3)))


def test_polygon_fill_rules_differ_on_non_simple_polygons() -> None:
    # A pentagram: the central pentagon has winding number 2 (outside by even-odd, inside by nonzero).
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.column_stack([np.cos(angles), np.sin(angles)])
    centre = np.array([[0.0, 0.0]])
    tip = np.array([[0.0, 0.9]])
    assert points_in_polygon(centre, star, "evenodd").tolist() == [False]
    assert points_in_polygon(centre, star, "nonzero").tolist() == [True]
    assert points_in_polygon(tip, star, "evenodd").tolist() == [True]
    assert points_in_polygon(tip, star, "nonzero").tolist() == [True]
    with pytest.raises(GatingError, match="unknown polygon rule"):
        points_in_polygon(centre, star, "winding")


def test_polygon_boundary_is_inside_even_on_long_edges() -> None:
    # Points exactly on the edge (0,0)-(200000,100000), which an interpolated intercept misjudges.
    verts = np.array([[0, 0], [200000, 100000], [200000, 200000], [100000, 200000]], dtype=float)
    x = np.array([14.8, 38.48, 124.32], dtype=np.float32).astype(np.float64)
    pts = np.column_stack([x, x / 2])
    assert points_in_polygon(pts, verts).all()
    assert not points_in_polygon(pts, verts, boundary=False).all()
    gate = PolygonGate("p", ("a", "b"), vertices=tuple(map(tuple, verts)))
    assert gate.contains(np.array([[150000.0, 150000.0], [10.0, 100.0]])).tolist() == [True, False]


def _convex_polygon(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(1, 3)
    return np.column_stack([radius * np.cos(angles), radius * np.sin(angles)]) + rng.uniform(-5, 5, 2)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 12))
def test_polygon_agrees_with_matplotlib_away_from_edges(seed: int, n: int) -> None:
    from matplotlib.path import Path as MplPath

    verts = _convex_polygon(seed, n)
    pts = np.random.default_rng(seed + 1).uniform(-9, 9, size=(400, 2))
    ours = points_in_polygon(pts, verts)
    theirs = MplPath(verts).contains_points(pts)
    # Only points within rounding distance of an edge may legitimately differ.
    differ = ours != theirs
    assert not differ.any() or np.all(MplPath(verts).contains_points(pts[differ], radius=1e-9)
                                      != MplPath(verts).contains_points(pts[differ], radius=-1e-9))


def test_ellipsoid_uses_mahalanobis_distance_and_validates_covariance() -> None:
    g = EllipsoidGate("e", ("x", "y"), mean=(0.0, 0.0), covariance=((4.0, 0.0), (0.0, 1.0)), distance_square=1.0)
    X = np.array([[2.0, 0.0], [2.01, 0.0], [0.0, 1.0], [0.0, 1.01], [1.0, 0.5]])
    assert g.contains(X).tolist() == [True, False, True, False, True]
    with pytest.raises(GatingError, match="covariance"):
        EllipsoidGate("bad", ("x", "y"), mean=(0.0, 0.0), covariance=((1.0, 2.0), (2.0, 4.0)))
    with pytest.raises(GatingError, match="covariance"):
        EllipsoidGate("bad", ("x", "y"), mean=(0.0, 0.0), covariance=((1.0,),))


def test_quadrant_sides() -> None:
    q = QuadrantGate("q", ("x", "y"), dividers=(1.0, 2.0), signs=(1, -1))
    X = np.array([[1.0, 1.9], [0.99, 1.0], [5.0, 2.0], [np.inf, 0.0]])
    assert q.contains(X).tolist() == [True, False, False, False]


def test_boolean_gate_ops_and_errors() -> None:
    masks = {"a": np.array([True, True, False, False]), "b": np.array([True, False, True, False])}
    assert BooleanGate("and", (), op="and", operands=(("a", False), ("b", False))).evaluate(masks).tolist() == [True, False, False, False]
    assert BooleanGate("or", (), op="or", operands=(("a", False), ("b", True))).evaluate(masks).tolist() == [True, True, False, True]
    assert BooleanGate("not", (), op="not", operands=(("a", False),)).evaluate(masks).tolist() == [False, False, True, True]
    with pytest.raises(GatingError, match="unknown gate 'c'"):
        BooleanGate("x", (), op="and", operands=(("a", False), ("c", False))).evaluate(masks)
    with pytest.raises(GatingError, match="exactly one operand"):
        BooleanGate("x", (), op="not", operands=(("a", False), ("b", False))).evaluate(masks)
    with pytest.raises(GatingError, match="unknown operator"):
        BooleanGate("x", (), op="xor", operands=(("a", False), ("b", False))).evaluate(masks)


@pytest.mark.parametrize("gate", [
    RectangleGate("r", ("x", "y"), lower=(0.5, None), upper=(2.0, 3.0)),
    PolygonGate("p", ("x", "y"), vertices=((0.0, 0.0), (1.0, 0.0), (0.5, 1.0))),
    EllipsoidGate("e", ("x", "y"), mean=(1.0, 2.0), covariance=((1.0, 0.2), (0.2, 2.0)), distance_square=2.5),
    QuadrantGate("q", ("x", "y"), dividers=(0.1, 0.2), signs=(1, -1)),
    BooleanGate("b", (), op="or", operands=(("r", False), ("p", True))),
], ids=lambda g: g.kind)
def test_to_dict_round_trip(gate) -> None:
    d = gate.to_dict()
    assert d["type"] in GATE_TYPES
    assert gate_from_dict(d) == gate


def test_gate_from_dict_unknown_type() -> None:
    with pytest.raises(GatingError, match="unknown gate type"):
        gate_from_dict({"type": "circle", "id": "c", "dims": ["x"]})


def test_malformed_gate_shapes_raise_gating_error() -> None:
    # ragged covariance/vertices used to leak numpy's ValueError; short dividers were silently truncated
    with pytest.raises(GatingError, match="covariance row"):
        EllipsoidGate("e", ("x", "y"), mean=(0.0, 0.0), covariance=((1.0, 0.0), (1.0,)))
    with pytest.raises(GatingError, match="2 coordinates"):
        PolygonGate("p", ("x", "y"), vertices=((0.0, 0.0, 1.0), (1.0, 0.0), (0.5, 1.0)))
    with pytest.raises(GatingError, match="one divider and one sign"):
        QuadrantGate("q", ("x", "y"), dividers=(1.0,), signs=(1,))
    with pytest.raises(GatingError, match="rectangle gate 'r'"):
        gate_from_dict({"type": "rectangle", "id": "r", "dims": ["x"], "lower": [0], "upper": [1], "colour": "red"})
