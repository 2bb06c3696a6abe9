"""The lymphocyte ellipse drawn around the whole lymphocyte cloud (``gmm_ellipse`` ``whole_cloud``): a mixture in
linear scatter splits a skewed lymphocyte cloud into overlapping pieces, and the ellipse of the one piece nearest
the target leaves single lymphocytes out on the other side; the pieces (centres inside each other's 95 % ellipse,
no density valley, no broader than twice the chosen piece) are merged, neighbouring clouds are not."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.gating import load_strategy
from cytokit.gating.methods import fit_gate
from cytokit.gating.methods import scatter_overlap as so
from cytokit.gating.methods.mixture import MixtureFit, merge_components


def mixture(weights, means, sds) -> MixtureFit:
    covs = np.array([np.diag(np.square(s)) for s in sds], dtype=float)
    w = np.asarray(weights, dtype=float)
    return MixtureFit(weights=w / w.sum(), means=np.asarray(means, dtype=float), covariances=covs,
                      converged=True, n_iter=1, lower_bound=0.0)


#: robust-normalised scatter (FSC-H, SSC-A) of a file whose lymphocytes the mixture split in two pieces (0, 1),
#: with a broad component (2) reaching from them to the monocytes (3), and debris (4)
PIECES = mixture([0.45, 0.19, 0.11, 0.07, 0.14],
                 [(0.537, 0.084), (0.512, 0.110), (0.585, 0.165), (0.826, 0.338), (0.084, 0.028)],
                 [(0.050, 0.018), (0.074, 0.026), (0.189, 0.079), (0.118, 0.092), (0.065, 0.023)])


def test_pieces_of_one_cloud_are_merged_and_neighbours_are_not():
    assert so.cloud_pieces(PIECES, 0).tolist() == [True, True, False, False, False]
    assert so.cloud_pieces(PIECES, 4).tolist() == [False, False, False, False, True]


def test_a_broad_component_spanning_the_cloud_is_not_a_piece(monkeypatch):
    """Without the size limit the broad component joins (its centre lies inside a piece's ellipse, no valley)."""
    monkeypatch.setattr(so, "PIECE_MAX_SD_RATIO", 100.0)
    assert so.cloud_pieces(PIECES, 0)[2]


def test_merge_components_matches_the_pooled_moments():
    rng = np.random.default_rng(0)
    a = rng.normal((0.0, 0.0), (1.0, 0.5), size=(30000, 2))
    b = rng.normal((2.0, 1.0), (0.5, 1.0), size=(10000, 2))
    gmm = mixture([3, 1], [(0.0, 0.0), (2.0, 1.0)], [(1.0, 0.5), (0.5, 1.0)])
    mean, cov = merge_components(gmm, np.array([True, True]))
    pooled = np.vstack([a, b])
    np.testing.assert_allclose(mean, pooled.mean(0), atol=0.03)
    np.testing.assert_allclose(cov, np.cov(pooled, rowvar=False), atol=0.05)


PARAMS = {"n_components": 7, "target": [0.4, 0.06], "coverage": 0.999, "max_events": 10000}


def skewed_blood(seed: int, n: int = 20000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FSC-H, SSC-A) events, lymphocyte mask, monocyte mask: log-normal scatter (skewed on the linear scale),
    NK-like lymphocytes with 1.3x side scatter, debris, monocytes and granulocytes."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, size=n, p=[0.6, 0.12, 0.13, 0.15])  # lymphocyte, monocyte, granulocyte, debris
    fsc_med = np.choose(kind, [1.0, 1.5, 1.6, 0.25])
    ssc_med = np.choose(kind, [0.18, 0.55, 1.8, 0.08]) * np.where((kind == 0) & (rng.random(n) < 0.15), 1.3, 1.0)
    fsc = fsc_med * np.exp(np.choose(kind, [0.08, 0.1, 0.1, 0.5]) * rng.standard_normal(n))
    ssc = ssc_med * np.exp(np.choose(kind, [0.2, 0.25, 0.25, 0.6]) * rng.standard_normal(n))
    return np.column_stack([fsc, ssc]) * 60000.0, kind == 0, kind == 1


@pytest.mark.parametrize("seed", [1, 6])
def test_the_ellipse_holds_the_whole_lymphocyte_cloud(seed):
    """Files whose lymphocytes the mixture split: the one piece's ellipse holds < 98 % of them, the whole
    cloud's >= 99 %, and no more monocytes."""
    X, lymph, mono = skewed_blood(seed)
    piece = fit_gate("gmm_ellipse", X, PARAMS, dims=("FSC-H", "SSC-A"), gate_id="L")
    cloud = fit_gate("gmm_ellipse", X, {**PARAMS, "whole_cloud": True}, dims=("FSC-H", "SSC-A"), gate_id="L")
    inside_piece, inside_cloud = piece.gate.contains(X), cloud.gate.contains(X)
    assert inside_piece[lymph].mean() < 0.98
    assert inside_cloud[lymph].mean() >= 0.99
    assert inside_cloud[mono].mean() <= inside_piece[mono].mean() + 0.002
    assert len(cloud.info["cloud_components"]) == 2


def test_a_cloud_in_one_piece_keeps_its_ellipse():
    X, _, _ = skewed_blood(2)
    piece = fit_gate("gmm_ellipse", X, PARAMS, dims=("FSC-H", "SSC-A"), gate_id="L")
    cloud = fit_gate("gmm_ellipse", X, {**PARAMS, "whole_cloud": True}, dims=("FSC-H", "SSC-A"), gate_id="L")
    assert len(cloud.info["cloud_components"]) == 1 and "cloud_components" not in piece.info
    assert cloud.gate.to_dict() == piece.gate.to_dict()


def test_shipped_strategies_gate_the_whole_cloud():
    for name in ("tmem", "nkb"):
        assert load_strategy(name).definition.population("Lymphocytes").params.get("whole_cloud") is True
