"""Gate-method registry: fits on arrays generated here (no files, no other modules)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cytokit.errors import GatingError
from cytokit.gates import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate
from cytokit.gating.methods import GATE_METHODS, fit_gate, fit_threshold, get_method
from cytokit.gating.methods.density import ThresholdParams

RNG = np.random.default_rng(7)


def bimodal(n=20000, neg=(0.2, 0.04), pos=(0.65, 0.06), frac_pos=0.3, rng=RNG):
    k = int(n * frac_pos)
    x = np.r_[rng.normal(*neg, n - k), rng.normal(*pos, k)]
    truth = np.r_[np.zeros(n - k, bool), np.ones(k, bool)]
    return x, truth


def test_registry_entries_are_complete():
    expected = {"threshold", "interval", "quadrant", "phenotype", "gmm_ellipse", "density_polygon", "singlets",
                "rectangle", "polygon", "fixed", "boolean"}
    assert expected <= set(GATE_METHODS)
    for name, m in GATE_METHODS.items():
        assert m.name == name and callable(m.function) and m.description
    # the registry contract: GATE_METHODS[name].fit(X, params) -> FitResult(gate, flags, info)
    x, _ = bimodal()
    r = GATE_METHODS["threshold"].fit(x, {"sign": "+"})
    assert isinstance(r.gate, RectangleGate) and r.gate.dims == ("x0",) and 0.3 < r.gate.lower[0] < 0.5
    with pytest.raises(GatingError, match="unknown gate method 'nope'.*threshold"):
        get_method("nope")


@pytest.mark.parametrize("frac_pos", [0.05, 0.3, 0.7])
def test_valley_threshold_separates_modes(frac_pos):
    x, truth = bimodal(frac_pos=frac_pos)
    t = fit_threshold(x, ThresholdParams(bounds=(0.3, 0.55)))
    assert 0.32 < t.value < 0.52
    assert t.info["method"] == "valley" and not t.flags
    assert ((x >= t.value) == truth).mean() > 0.995


def test_valley_on_wrong_side_is_rejected_and_flagged():
    # negative + dim + bright: the deepest valley lies between dim and bright (wrong side for "positive")
    x = np.r_[RNG.normal(0.2, 0.03, 5000), RNG.normal(0.55, 0.03, 5000), RNG.normal(0.85, 0.02, 5000)]
    wrong = fit_threshold(x, ThresholdParams(bounds=(0.6, 0.8)))
    assert wrong.info["method"] == "valley" and 0.6 <= wrong.value <= 0.8
    right = fit_threshold(x, ThresholdParams(bounds=(0.25, 0.45)))
    assert 0.3 < right.value < 0.45
    # bounds that exclude every valley -> flagged and fallen back (tail), result kept in bounds
    none = fit_threshold(x, ThresholdParams(bounds=(0.9, 0.95)))
    assert "valley_out_of_bounds" in none.flags and "fell_back:tail" in none.flags
    assert 0.9 <= none.value <= 0.95 and "clipped" in none.flags


def test_no_valley_falls_back_to_tail_and_flags():
    x = RNG.normal(0.2, 0.05, 20000)
    t = fit_threshold(x, ThresholdParams())
    assert "no_valley" in t.flags and "fell_back:tail" in t.flags
    assert t.value == pytest.approx(0.2 + 2.5 * 0.05, abs=0.02)


def test_tail_gate_is_insensitive_to_the_positive_fraction_and_flags_drift():
    values = []
    for frac in (0.1, 0.5):
        x, _ = bimodal(frac_pos=frac, pos=(0.4, 0.1))
        values.append(fit_threshold(x, ThresholdParams(mode="tail")).value)
    assert abs(values[0] - values[1]) < 0.02
    # a broad negative (e.g. spreading error) moves the tail gate: flagged against the expected position
    broad = RNG.normal(0.2, 0.12, 20000)
    t = fit_threshold(broad, ThresholdParams(mode="tail", expected=0.32, drift_tolerance=0.05))
    assert "tail_drift" in t.flags


def test_quantile_fixed_and_few_events():
    x = np.linspace(0, 1, 1001)
    assert fit_threshold(x, ThresholdParams(mode="quantile", quantile=0.25)).value == pytest.approx(0.25)
    assert fit_threshold(x, ThresholdParams(mode="fixed", value=0.42)).value == 0.42
    few = fit_threshold(x[:5], ThresholdParams(expected=0.3))
    assert few.value == 0.3 and "few_events" in few.flags and "unreliable" in few.flags


def test_threshold_params_are_validated_declaratively():
    with pytest.raises(GatingError, match="invalid parameters for 'threshold'.*threshold.mode"):
        fit_gate("threshold", np.zeros((10, 1)), {"threshold": {"mode": "guess"}}, dims=("CD3",))
    with pytest.raises(GatingError, match="needs 'value'"):
        fit_gate("threshold", np.zeros((10, 1)), {"threshold": {"mode": "fixed"}}, dims=("CD3",))
    with pytest.raises(GatingError, match="extra|not permitted"):
        fit_gate("threshold", np.zeros((10, 1)), {"sgn": "+"}, dims=("CD3",))
    with pytest.raises(GatingError, match="takes"):
        fit_gate("threshold", np.zeros((10, 2)), {}, dims=("CD3", "CD4"))


def test_threshold_gate_and_interval():
    x, truth = bimodal()
    r = fit_gate("threshold", x[:, None], {"sign": "-"}, dims=("CD45RA",), gate_id="Memory")
    assert isinstance(r.gate, RectangleGate) and r.gate.lower == (None,)
    assert (r.gate.contains(x[:, None]) == ~truth).mean() > 0.995
    assert r.info["threshold"] == r.gate.upper[0]
    x3 = np.r_[RNG.normal(0.15, 0.03, 2000), RNG.normal(0.45, 0.04, 15000), RNG.normal(0.75, 0.03, 2000)]
    iv = fit_gate("interval", x3[:, None], {"lower": {"valley": "first"}, "upper": {"valley": "last"}},
                  dims=("CD56",), gate_id="CD56dim")
    lo, hi = iv.gate.lower[0], iv.gate.upper[0]
    assert 0.2 < lo < 0.38 and 0.52 < hi < 0.7


def test_quadrant_gate_matches_truth():
    n = 20000
    a, ta = bimodal(n, frac_pos=0.6)
    b = np.where(ta, RNG.normal(0.2, 0.04, n), RNG.normal(0.7, 0.05, n))  # CD4+ are CD8-
    X = np.c_[a, b]
    r = fit_gate("quadrant", X, {"signs": ["+", "-"]}, dims=("CD4", "CD8"), gate_id="CD4 T")
    assert isinstance(r.gate, QuadrantGate) and r.gate.signs == (1, -1)
    assert (r.gate.contains(X) == ta).mean() > 0.99
    assert set(r.info["thresholds"]) == {"CD4", "CD8"}
    with pytest.raises(GatingError, match="exactly two signs"):
        fit_gate("quadrant", X, {"signs": ["+"]}, dims=("CD4", "CD8"))


def test_phenotype_with_any_of_builds_a_boolean_gate():
    n = 30000
    cd3 = np.r_[RNG.normal(0.65, 0.05, n // 2), RNG.normal(0.2, 0.04, n // 2)]
    cls = RNG.integers(0, 3, n)  # for CD3-: 0 = CD56+ only, 1 = CD16+ only, 2 = neither
    cd56 = np.where(cls == 0, RNG.normal(0.6, 0.05, n), RNG.normal(0.2, 0.04, n))
    cd16 = np.where(cls == 1, RNG.normal(0.7, 0.05, n), RNG.normal(0.2, 0.04, n))
    X = np.c_[cd3, cd56, cd16]
    truth = (np.arange(n) >= n // 2) & (cls < 2)
    r = fit_gate("phenotype", X, {"signs": ["-", "+", "+"], "any_of": ["CD56", "CD16"]},
                 dims=("CD3", "CD56", "CD16"), gate_id="NK cells")
    assert isinstance(r.gate, BooleanGate) and len(r.components) == 2
    cols = {"CD3": 0, "CD56": 1, "CD16": 2}
    local = {c.id: c.contains(X[:, [cols[d] for d in c.dims]]) for c in r.components}
    inside = r.gate.evaluate(local)
    assert (inside == truth).mean() > 0.99
    with pytest.raises(GatingError, match="not among the dims"):
        fit_gate("phenotype", X, {"signs": ["-", "+", "+"], "any_of": ["CD19"]}, dims=("CD3", "CD56", "CD16"))


def scatter_mix(rng=RNG):
    lym = np.c_[rng.normal(55000, 5000, 8000), rng.normal(14000, 2500, 8000)]
    mono = np.c_[rng.normal(92000, 9000, 2000), rng.normal(42000, 8000, 2000)]
    gran = np.c_[rng.normal(105000, 10000, 6000), rng.normal(115000, 18000, 6000)]
    debris = np.c_[rng.lognormal(np.log(14000), 0.5, 2000), rng.lognormal(np.log(7000), 0.6, 2000)]
    X = np.r_[lym, mono, gran, debris]
    truth = np.r_[np.ones(8000, bool), np.zeros(10000, bool)]
    return X, truth


def test_gmm_ellipse_finds_lymphocytes():
    X, truth = scatter_mix()
    r = fit_gate("gmm_ellipse", X, {"n_components": 4, "target": [0.35, 0.05], "coverage": 0.99},
                 dims=("FSC-A", "SSC-A"), gate_id="Lymphocytes")
    assert isinstance(r.gate, EllipsoidGate)
    inside = r.gate.contains(X)
    precision = (inside & truth).sum() / inside.sum()
    recall = (inside & truth).sum() / truth.sum()
    assert precision > 0.95 and recall > 0.95
    assert "weights" in r.info and r.info["distance_square"] > 9


def test_density_polygon_finds_lymphocytes():
    X, truth = scatter_mix()
    r = fit_gate("density_polygon", X, {"target": [0.35, 0.05], "level": 0.05},
                 dims=("FSC-A", "SSC-A"), gate_id="Lymphocytes")
    assert isinstance(r.gate, PolygonGate)
    inside = r.gate.contains(X)
    assert (inside & truth).sum() / truth.sum() > 0.9
    assert (inside & truth).sum() / inside.sum() > 0.9


def test_singlets_band_excludes_doublets():
    n = 10000
    h = RNG.normal(50000, 6000, n)
    a = h * RNG.normal(1.1, 0.02, n)
    dh = RNG.normal(60000, 8000, 800)
    da = dh * RNG.normal(1.7, 0.1, 800)  # doublets: more area per height
    X = np.c_[np.r_[a, da], np.r_[h, dh]]
    truth = np.r_[np.ones(n, bool), np.zeros(800, bool)]
    r = fit_gate("singlets", X, {}, dims=("FSC-A", "FSC-H"), gate_id="Singlets")
    inside = r.gate.contains(X)
    assert inside[truth].mean() > 0.98 and inside[~truth].mean() < 0.02
    assert r.info["ratio_median"] == pytest.approx(1.1, abs=0.01)


def _singlet_events(rng: np.random.Generator, n: int, tail: float = 0.0, tail_ratio: tuple[float, float] = (1.15, 1.35)
                    ) -> np.ndarray:
    """(area, height) of ``n`` singles (area/height 1.1 +- 0.02) and ``tail`` x n doublets whose ratio spreads
    evenly over ``tail_ratio`` (against the band's upper edge at 1.1 + 3 x 0.02 = 1.16 by default)."""
    h = rng.normal(50000, 6000, n)
    a = h * rng.normal(1.1, 0.02, n)
    m = int(tail * n)
    dh = rng.normal(60000, 8000, m)
    return np.c_[np.r_[a, dh * rng.uniform(*tail_ratio, m)], np.r_[h, dh]]


def test_singlets_estimate_grows_with_a_doublet_tail_against_the_band_edge():
    """est_error_pp is where the band's edges could lie x the density against them: a doublet tail running through
    the upper edge makes the % of parent depend on it; doublets far above the band (a clean band) do not."""
    rng = np.random.default_rng(11)
    clean = fit_gate("singlets", _singlet_events(rng, 20000, 0.08, (1.6, 1.9)), {}, dims=("FSC-A", "FSC-H"))
    tail = fit_gate("singlets", _singlet_events(rng, 20000, 0.08), {}, dims=("FSC-A", "FSC-H"))
    e_clean, e_tail = clean.info["est_error_pp"], tail.info["est_error_pp"]
    assert 0 < e_clean < 0.1 and e_tail > 0.2 and e_tail > 3 * e_clean
    assert "uncertain" not in clean.flags
    assert ("uncertain" in tail.flags) == (e_tail > 1.0)


def test_singlets_estimate_is_larger_for_few_events():
    """The band's median and MAD drawn from few events are uncertain themselves (bootstrap SD of its edges), so the
    edges' alternatives lie further out. Per file the estimate counts the events near the edges (a step of 1/n), so
    the comparison is over eight files of each size."""
    few, many = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        few.append(fit_gate("singlets", _singlet_events(rng, 300, 0.08), {}, dims=("FSC-A", "FSC-H")).info)
        many.append(fit_gate("singlets", _singlet_events(rng, 20000, 0.08), {}, dims=("FSC-A", "FSC-H")).info)
    assert all(f["band_edge_sd"][1] > 4 * m["band_edge_sd"][1] for f, m in zip(few, many))
    mean = [float(np.mean([i["est_error_pp"] for i in side])) for side in (few, many)]
    assert mean[0] > 1.5 * mean[1]


def test_fixed_methods_and_boolean():
    X = np.array([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]])
    rect = fit_gate("rectangle", X, {"lower": [0.2, None], "upper": [0.8, 0.7]}, dims=("a", "b"))
    assert rect.gate.contains(X).tolist() == [False, True, False]
    poly = fit_gate("polygon", X, {"vertices": [[0, 0], [0.6, 0], [0.6, 0.6], [0, 0.6]]}, dims=("a", "b"))
    assert poly.gate.contains(X).tolist() == [True, True, False]
    fixed = fit_gate("fixed", X, {"gate": rect.gate.to_dict()}, dims=("a", "b"), gate_id="imported")
    assert fixed.gate.id == "imported" and fixed.gate.contains(X).tolist() == [False, True, False]
    with pytest.raises(GatingError, match="not a valid gate"):
        fit_gate("fixed", X, {"gate": {"type": "hexagon"}}, dims=("a", "b"))
    b = fit_gate("boolean", np.empty((3, 0)), {"op": "and", "operands": ["A", "!B"]}, dims=(), gate_id="A not B")
    masks = {"A": np.array([True, True, False]), "B": np.array([True, False, False])}
    assert b.gate.evaluate(masks).tolist() == [False, True, False]
    with pytest.raises(GatingError, match="lower bound"):
        fit_gate("rectangle", X, {"lower": [0.9], "upper": [0.1]}, dims=("a",))


def test_fits_are_deterministic_and_subsampled():
    x, _ = bimodal(n=200000)
    p = ThresholdParams(max_events=5000)
    t1, t2 = fit_threshold(x, p), fit_threshold(x, p)
    assert t1.value == t2.value and t1.info["n_events"] == 200000


def test_lower_tail_below_a_dominant_mode_finds_a_shoulder():
    # CD127lo (10%) as a shoulder under a dominant CD127+ mode: no usable valley
    x = np.r_[RNG.normal(0.45, 0.04, 18000), RNG.normal(0.3, 0.05, 2000)]
    t = fit_threshold(x, ThresholdParams(mode="tail", tail_side="lower", reference_peak="highest", tail_sd=2.5))
    assert t.info["reference_peak"] == pytest.approx(0.45, abs=0.02)
    assert 0.33 < t.value < 0.38
    assert abs((x < t.value).mean() - 0.1) < 0.04


def test_phenotype_with_only_any_of_markers_exports_valid_gatingml():
    # "CD56+ and/or CD16+" alone used to be an 'and' of one operand, which Gating-ML (and our reader) rejects
    from cytokit.gatingml import DimensionSpec, GateNode, GatingDocument, gatingml_bytes, read_gatingml

    n = 20000
    cls = RNG.integers(0, 3, n)
    X = np.c_[np.where(cls == 0, RNG.normal(0.6, 0.05, n), RNG.normal(0.2, 0.04, n)),
              np.where(cls == 1, RNG.normal(0.7, 0.05, n), RNG.normal(0.2, 0.04, n))]
    r = fit_gate("phenotype", X, {"signs": ["+", "+"], "any_of": ["CD56", "CD16"]}, dims=("CD56", "CD16"),
                 gate_id="NK")
    (none,) = r.components
    inside = r.gate.evaluate({none.id: none.contains(X)})
    assert (inside == (cls < 2)).mean() > 0.99
    dims = tuple(DimensionSpec(d) for d in none.dims)
    doc = GatingDocument((GateNode("none", None, replace(none, id="none"), dims),
                          GateNode("NK", None, replace(r.gate, dims=(), operands=tuple(("none", c) for _, c in r.gate.operands)))))
    back = read_gatingml(gatingml_bytes(doc))
    assert back.node("NK").gate.evaluate({"none": none.contains(X)}).tolist() == inside.tolist()
