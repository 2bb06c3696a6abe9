"""Clustering kernels: SOM, consensus metaclustering, the shared-map estimator, phenotypes, metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.cluster import (ClusterParams, PhenotypeTable, SOMClusterer, annotate, cluster_samples,
                             estimate_thresholds, make_params, metacluster_abundance, parse_grid,
                             parse_phenotype, population_abundance)
from cytokit.cluster.metacluster import consensus_matrix, consensus_metaclusters
from cytokit.cluster.metrics import adjusted_rand, f1_majority, f1_matched
from cytokit.cluster.model import balanced_subsample
from cytokit.cluster.som import map_to_codes, pca_init, train_batch_som
from cytokit.cluster.toy import TCELL_MARKERS, toy_samples
from cytokit.errors import ClusterError, ConfigError

MARKERS = list(TCELL_MARKERS)


def synth():
    return toy_samples(6, 4000, seed=0)


@pytest.fixture(scope="module")
def data():
    return synth()


@pytest.fixture(scope="module")
def fitted(data):
    samples, _, _ = data
    return cluster_samples(samples, MARKERS, params=ClusterParams(xdim=6, ydim=6, n_metaclusters=6, seed=3),
                           population="T cells")


# -- SOM kernels --------------------------------------------------------------------------------------
def test_map_to_codes_matches_brute_force():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 4)).astype(np.float32)
    codes = rng.normal(size=(25, 4))
    lab, dist = map_to_codes(X, codes, return_distance=True, chunk=777)
    d = np.linalg.norm(X[:, None, :].astype(np.float64) - codes[None], axis=2)
    assert (lab == d.argmin(axis=1)).mean() > 0.999  # float32 ties aside
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-3, atol=1e-3)


def test_som_nodes_cover_well_separated_clusters():
    rng = np.random.default_rng(2)
    centres = rng.uniform(0, 10, (5, 3))
    X = (centres[rng.integers(0, 5, 20000)] + rng.normal(0, 0.1, (20000, 3))).astype(np.float32)
    codes = train_batch_som(X, 5, 5, epochs=8)
    # every true centre has a node close to it, and quantisation error is near the noise level
    assert np.linalg.norm(codes[:, None] - centres[None], axis=2).min(axis=0).max() < 0.5
    _, dist = map_to_codes(X, codes, return_distance=True)
    assert np.median(dist) < 0.5


def test_pca_init_spans_main_axis():
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(0, 5, 3000), rng.normal(0, 0.1, 3000)])
    codes = pca_init(X, 4, 3)
    assert np.ptp(codes[:, 0]) > 10 * np.ptp(codes[:, 1])


def test_consensus_metaclusters_recover_groups_and_are_seeded():
    rng = np.random.default_rng(4)
    codes = np.concatenate([rng.normal(c, 0.1, (10, 2)) for c in ((0, 0), (5, 0), (0, 5))])
    lab = consensus_metaclusters(codes, 3, seed=1, n_resamples=20)
    assert sorted(np.bincount(lab)) == [10, 10, 10]
    for g in range(3):
        assert len(set(lab[g * 10:(g + 1) * 10])) == 1
    cons = consensus_matrix(codes, 3, n_resamples=20, seed=1)
    assert cons.shape == (30, 30) and np.allclose(np.diag(cons), 1) and cons.min() >= 0
    np.testing.assert_array_equal(lab, consensus_metaclusters(codes, 3, seed=1, n_resamples=20))


def test_metaclusters_numbered_by_weight():
    codes = np.array([[0.0], [0.1], [10.0], [10.1], [10.2]])
    lab = consensus_metaclusters(codes, 2, seed=0, n_resamples=0, weights=np.array([100, 100, 1, 1, 1]))
    assert list(lab) == [0, 0, 1, 1, 1]


# -- estimator ----------------------------------------------------------------------------------------
def test_balanced_subsample_gives_each_sample_equal_weight():
    samples = {"big": np.zeros((10000, 2), np.float32), "small": np.ones((300, 2), np.float32),
               "mid": np.full((2000, 2), 2, np.float32)}
    train, taken = balanced_subsample(samples, 3000, seed=0)
    assert {k: len(v) for k, v in taken.items()} == {"big": 1000, "small": 300, "mid": 1000}
    assert train.shape == (2300, 2)
    assert len(np.unique(taken["big"])) == 1000


def test_clustering_recovers_leaves(data, fitted):
    _, labels, _ = data
    for sid in labels:
        mc = fitted.metaclusters(sid)
        assert adjusted_rand(labels[sid], mc) > 0.9
        assert f1_matched(labels[sid], mc)[0] > 0.9


def test_same_inputs_give_identical_assignments(data, fitted):
    samples, _, _ = data
    again = cluster_samples(samples, MARKERS, params=ClusterParams(xdim=6, ydim=6, n_metaclusters=6, seed=3))
    for sid in samples:
        np.testing.assert_array_equal(fitted.nodes[sid], again.nodes[sid])
        np.testing.assert_array_equal(fitted.metaclusters(sid), again.metaclusters(sid))
    np.testing.assert_array_equal(fitted.codes, again.codes)


def test_every_event_is_mapped(data, fitted):
    samples, _, _ = data
    for sid, X in samples.items():
        assert fitted.nodes[sid].shape == (X.shape[0],)
    counts = fitted.metacluster_counts()
    assert (counts.sum(axis=1).to_numpy() == [len(X) for X in samples.values()]).all()


def test_scaled_model_predicts_in_original_units(data):
    samples, labels, _ = data
    model = SOMClusterer(ClusterParams(xdim=5, ydim=5, n_metaclusters=6, scale=True)).fit(samples, MARKERS)
    nodes, mc = model.predict(samples["S00"])
    assert adjusted_rand(labels["S00"], mc) > 0.85
    # codes are reported in input units: each node's code is near the mean of its events
    X = samples["S00"]
    for node in np.unique(nodes)[:5]:
        assert np.abs(X[nodes == node].mean(axis=0) - model.codes_[node]).max() < 0.1


@pytest.mark.parametrize("bad, message", [
    ({"a": np.zeros((10, 3))}, "do not match"),
    ({"a": np.full((200, 5), np.nan)}, "non-finite"),
    ({}, "no samples"),
])
def test_bad_events_raise_cluster_error(bad, message):
    with pytest.raises(ClusterError, match=message):
        cluster_samples(bad, MARKERS, params=ClusterParams(xdim=2, ydim=2, n_metaclusters=2))


def test_too_few_events_for_grid():
    with pytest.raises(ClusterError, match="smaller --grid"):
        cluster_samples({"a": np.zeros((50, 5), np.float32)}, MARKERS, params=ClusterParams(xdim=10, ydim=10))


def test_unfitted_predict_raises():
    with pytest.raises(ClusterError, match="not fitted"):
        SOMClusterer().predict(np.zeros((3, 2)))


# -- parameters ---------------------------------------------------------------------------------------
def test_params_validation_and_grid_parsing():
    assert parse_grid("12x8") == (12, 8)
    with pytest.raises(ClusterError, match="WxH"):
        parse_grid("ten by ten")
    with pytest.raises(ClusterError, match="xdim"):
        make_params(xdim=0)
    with pytest.raises(ClusterError, match="bogus"):
        make_params(bogus=1)
    assert make_params(xdim=None, n_metaclusters=7).n_metaclusters == 7


# -- phenotypes and annotation ------------------------------------------------------------------------
def test_parse_phenotype_forms():
    g = parse_phenotype("CD3\u2212 CD56+ and/or CD16+")
    assert [[str(t) for t in grp] for grp in g] == [["CD3-"], ["CD56+", "CD16+"]]
    g = parse_phenotype("HLA-DR- CD25hi CD127lo CD56bright CD56dim")
    assert [t.level for grp in g for t in grp] == ["-", "hi", "lo", "hi", "dim"]
    assert g[0][0].marker == "HLA-DR"
    for bad in ("CD3", "or CD4+", "CD4+ or", ""):
        with pytest.raises(ConfigError):
            parse_phenotype(bad)


def test_thresholds_from_marker_modes_fall_between_modes(data, fitted):
    thr = estimate_thresholds(fitted.train_events, MARKERS)
    for m in MARKERS:
        assert 0.3 < thr.pos[m] < 0.6, (m, thr.pos[m])
        assert thr.hi[m] >= thr.pos[m]
    given = estimate_thresholds(fitted.train_events, MARKERS, given={"CD4": 0.33, "CD8": {"pos": 0.4, "hi": 0.9}})
    assert given.pos["CD4"] == 0.33 and given.hi["CD8"] == 0.9 and given.source["CD4"] == "given"


def test_annotation_names_metaclusters_and_abundance_matches_truth(data, fitted):
    _, _, truth = data
    thr = estimate_thresholds(fitted.train_events, MARKERS)
    ann = annotate(fitted, PhenotypeTable.default(), thr)
    names = set(ann.metacluster_names)
    assert {"Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4"} <= names
    # a cluster far from every phenotype stays unassigned: CD4+ CD8+ is no population of the table
    odd = fitted.metacluster_medians.iloc[[0]].copy()
    odd.loc[:, ["CD4", "CD8"]] = 0.7
    from cytokit.cluster.naming import match_matrix, name_clusters
    assert name_clusters(match_matrix(odd, ann.table, thr), ann.table, MARKERS).iloc[0] == "unassigned"
    for level in ("node", "metacluster"):
        ab = population_abundance(fitted, ann, level=level).merge(truth, on=["sample_id", "population"])
        assert len(ab) == len(truth)
        assert (ab["pct"] - ab["truth_pct"]).abs().max() < 2.0, level
    mc = metacluster_abundance(fitted, ann)
    assert np.allclose(mc.groupby("sample_id")["pct"].sum(), 100.0)


def test_load_phenotypes_expands_parents(tmp_path):
    y = tmp_path / "strategy.yaml"
    y.write_text(
        "populations:\n"
        "  - name: CD4 T\n    parent: T cells\n    phenotype: CD4+ CD8-\n"
        "  - name: Naive CD4\n    parent: CD4 T\n    phenotype: CD45RA+ CD62L+\n"
        "  - name: T cells\n    phenotype: CD3+\n", encoding="utf-8")
    table = load_phenotypes_from(y)
    texts = dict(zip(table.names, (e.text for e in table)))
    assert texts["Naive CD4"] == "CD3+ CD4+ CD8- CD45RA+ CD62L+"
    bad = tmp_path / "bad.yaml"
    bad.write_text("phenotypes:\n  Treg: CD25 high\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_phenotypes_from(bad)
    empty = tmp_path / "none.yaml"
    empty.write_text("markers: [CD4]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no phenotypes"):
        load_phenotypes_from(empty)


def load_phenotypes_from(path):
    from cytokit.cluster import load_phenotypes

    return load_phenotypes(path)


# -- metrics ------------------------------------------------------------------------------------------
def test_metrics_on_known_labellings():
    true = np.array(["a"] * 50 + ["b"] * 50 + ["u"] * 10)
    perfect = np.array([1] * 50 + [2] * 50 + [3] * 10)
    assert f1_matched(true, perfect)[0] == 1.0 and adjusted_rand(true, perfect) == 1.0
    split = np.array([1] * 25 + [4] * 25 + [2] * 50 + [3] * 10)
    f1, per = f1_matched(true, split, ignore=["u"])
    assert per["a"] == pytest.approx(2 * 25 / (50 + 25)) and per["b"] == 1.0
    assert f1_majority(true, split, ignore=["u"])[0] == 1.0
    with pytest.raises(ValueError):
        f1_matched(true, perfect[:-1])


def test_gating_thresholds_from_stored_gates():
    from cytokit.cluster.thresholds import thresholds_from_gates

    table = PhenotypeTable.default()
    records = []
    for k, (t4, t25) in enumerate([(0.40, 0.30), (0.44, 0.34), (0.42, 0.32)]):
        records += [
            {"population": "CD4 T", "gate": {"type": "quadrant", "dims": ["CD4", "CD8"], "dividers": [t4, 0.5],
                                              "signs": [1, -1]}},
            {"population": "Treg", "gate": {"type": "quadrant", "dims": ["CD25", "CD127"],
                                             "dividers": [t25 + 0.2, 0.45], "signs": [1, -1]}},
            {"population": "CD25+ CD4", "gate": {"type": "rectangle", "dims": ["CD25"], "lower": [t25],
                                                  "upper": [None]}},
            {"population": "CD56dim NK", "gate": {"type": "rectangle", "dims": ["CD56"], "lower": [0.35],
                                                   "upper": [0.7]}},
            {"population": "Lymphocytes", "gate": {"type": "ellipsoid", "dims": ["FSC-A", "SSC-A"]}},
        ]
    thr = thresholds_from_gates(records, table)
    assert thr["CD4"]["pos"] == pytest.approx(0.42) and thr["CD8"]["pos"] == 0.5
    assert thr["CD25"]["pos"] == pytest.approx(0.32) and thr["CD25"]["hi"] == pytest.approx(0.52)
    assert thr["CD127"]["hi"] == 0.45 and "pos" not in thr["CD127"]  # CD127lo: a high-threshold cut
    assert thr["CD56"] == {"pos": 0.35, "hi": 0.7, "n": 6.0}
    assert "FSC-A" not in thr
    rng = np.random.default_rng(0)
    X = rng.random((1000, 3))
    X[:, 2] = np.r_[rng.normal(0.05, 0.02, 500), rng.normal(0.35, 0.02, 500)]  # CD127: valley near 0.2
    est = estimate_thresholds(X, ["CD4", "CD25", "CD127"], given={"CD4": 0.6}, gating=thr)
    assert est.pos["CD4"] == 0.6 and est.source["CD4"] == "given"
    assert est.pos["CD25"] == pytest.approx(0.32) and est.hi["CD25"] == pytest.approx(0.52)
    assert est.source["CD25"] == "gating" and est.hi["CD127"] == 0.45
    assert est.source["CD127"].startswith("marker modes") and 0.1 < est.pos["CD127"] < 0.3


def test_clusters_of_t_cells_are_named_only_after_t_cell_subsets():
    table = PhenotypeTable.default()
    sub, implied = table.within("T cells")
    assert "NK cells" not in sub.names and "B cells" not in sub.names and "Naive CD4" in sub.names
    assert [str(t) for g in implied for t in g] == ["CD3+"]
    full, none = table.within("Lymphocytes")  # not in the table: every population is a candidate
    assert len(full) == len(table) and none == ()
    # a CD3-dim T-cell cluster (below a CD3 threshold fitted on other cells) is still a T-cell subset
    from cytokit.cluster import Thresholds
    from cytokit.cluster.naming import match_matrix, name_clusters

    med = pd.DataFrame({"CD3": [0.3], "CD4": [0.7], "CD8": [0.2], "CD45RA": [0.7], "CD62L": [0.7]})
    thr = Thresholds({m: 0.45 for m in med}, {m: 0.6 for m in med}, {})
    names = name_clusters(match_matrix(med, sub, thr, implied), sub, list(med), implied)
    assert names.iloc[0] == "Naive CD4"


def test_subsampled_fit_is_seeded(data):
    samples, _, _ = data
    p = dict(xdim=5, ydim=5, n_metaclusters=5, n_train=1200)
    a = SOMClusterer(ClusterParams(seed=7, **p)).fit(samples, MARKERS)
    b = SOMClusterer(ClusterParams(seed=7, **p)).fit(samples, MARKERS)
    c = SOMClusterer(ClusterParams(seed=8, **p)).fit(samples, MARKERS)
    assert a.n_train_ == 1200 and all(len(v) == 200 for v in a.train_index_.values())
    np.testing.assert_array_equal(a.codes_, b.codes_)
    np.testing.assert_array_equal(a.predict(samples["S01"])[1], b.predict(samples["S01"])[1])
    assert any(not np.array_equal(a.train_index_[k], c.train_index_[k]) for k in samples)
