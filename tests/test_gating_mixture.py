"""The numpy Gaussian mixture behind ``gmm_ellipse`` against scikit-learn's (the reference it replaced).

``gmm_ellipse`` used ``sklearn.mixture.GaussianMixture``; it now uses
:func:`cytokit.gating.methods.mixture.fit_gaussian_mixture` so that gating does not import scikit-learn.
These tests fit scikit-learn's model (test-only reference) with the gate's own settings on the same
events and require the two ellipses to hold the same events (F1 >= 0.99) on bundled and real files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods import fit_gate
from cytokit.gating.methods.base import finite_rows, subsample
from cytokit.gating.methods.mixture import chi2_quantile, fit_gaussian_mixture
from cytokit.gating.methods.scatter import robust_scale

#: the built-in strategies' two kinds of scatter gate (human PBMC: many components, a low target;
#: mouse: two components, one of them heavy)
HUMAN = {"n_components": 7, "target": [0.4, 0.06], "coverage": 0.999, "max_events": 10000}
MOUSE = {"n_components": 2, "target": [0.4, 0.2], "coverage": 0.9999, "min_weight": 0.3}

#: real files of other instruments and labs (paths under ../shared/data) with FSC/SSC channels
REAL_FILES = (
    ("flowkit/100715.fcs", "FSC-A", "SSC-A"),
    ("flowsom_68983/68983.fcs", "FSC-A", "SSC-A"),
    ("gatingml2/FCSFiles/9399_1_3_NKR.fcs", "FSC-A", "SSC-A"),
    ("fcs_corpus/cytoflow_instruments/Accuri - C6.fcs", None, None),
    ("fcs_corpus/cytoflow_instruments/Applied Biosystems - Attune.fcs", None, None),
    ("fcs_corpus/cytoflow_instruments/Beckman Coulter - Gallios.LMD", None, None),
    ("fcs_corpus/cytoflow_instruments/Miltenyi Biotec - MACSQuant Analyzer.fcs", None, None),
    ("fcs_corpus/fcsparser/FlowCytometers/FACS_Diva/facs_diva_test.fcs", None, None),
    ("flowjo9_diva/a2004_O1T2pb05i_A2_A02.fcs", None, None),
)


def _sklearn_inside(X: np.ndarray, params: dict) -> np.ndarray:
    """Membership of the ellipse the gate drew before: scikit-learn's mixture, same subsample/scaling."""
    from sklearn.mixture import GaussianMixture

    X = finite_rows(X)
    Xs = subsample(X, params.get("max_events", 20000), 0)
    off, scale = robust_scale(Xs)
    gmm = GaussianMixture(n_components=params["n_components"], covariance_type="full", random_state=0, n_init=1,
                          max_iter=200, reg_covar=1e-5).fit((Xs - off) / scale)
    dist = np.linalg.norm(gmm.means_ - np.asarray(params["target"]), axis=1)
    eligible = gmm.weights_ >= params.get("min_weight", 0.05)
    eligible = eligible if eligible.any() else np.ones_like(eligible)
    k = int(np.argmin(np.where(eligible, dist, np.inf)))
    diff = (X - off) / scale - gmm.means_[k]
    d2 = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(gmm.covariances_[k]), diff)
    return d2 <= chi2_quantile(params["coverage"], X.shape[1])


def _f1(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _scatter_columns(path: Path, fsc: str | None, ssc: str | None) -> tuple[np.ndarray, tuple[str, str]]:
    sample = read_fcs(path)
    names = [str(n) for n in sample.channels.iloc[:, 0]]
    fsc = fsc or next(n for n in names if n.upper().startswith("FS"))
    ssc = ssc or next(n for n in names if n.upper().startswith("SS"))
    return finite_rows(sample.columns([fsc, ssc])), (fsc, ssc)


@pytest.mark.parametrize("name", ["P001_W0_tmem", "P001_W24_tmem", "P002_W0_tmem", "P002_W24_tmem",
                                  "P003_W24_tmem", "P001_W24_nkb", "P003_W74_nkb", "P004_W0_nkb"])
def test_lymphocyte_gate_holds_the_events_scikit_learn_gave_on_bundled_files(repo_root, name):
    path = repo_root / "sample_data" / "fcs" / f"{name}.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    strategy = load_strategy(name.rsplit("_", 1)[1])
    # the mixture's own component ellipse (whole_cloud merges pieces: tests/test_gating_scatter_cloud.py)
    strategy = strategy.set_params("Lymphocytes", **{**strategy.population("Lymphocytes").params, "whole_cloud": False})
    result = strategy.apply(read_fcs(path))
    spec = strategy.population("Lymphocytes")
    X = result.sample.columns(list(spec.dims))
    ours = result.fit("Lymphocytes").gate.contains(X)
    assert 0.2 < ours.mean() < 0.8  # a real lymphocyte gate, not an empty or everything gate
    assert _f1(ours, _sklearn_inside(X, dict(spec.params))) >= 0.99


@pytest.mark.parametrize("rel,fsc,ssc", REAL_FILES, ids=[Path(r[0]).stem for r in REAL_FILES])
def test_scatter_gate_holds_the_events_scikit_learn_gave_on_real_files(shared_data, rel, fsc, ssc):
    X, dims = _scatter_columns(shared_data / rel, fsc, ssc)
    for params in (HUMAN, MOUSE):
        ours = fit_gate("gmm_ellipse", X, params, dims=dims).gate.contains(X)
        assert ours.any(), (rel, params)
        assert _f1(ours, _sklearn_inside(X, params)) >= 0.99, (rel, params)


def test_mixture_recovers_known_components_and_is_deterministic():
    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    covs = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.4]], [[0.8, -0.2], [-0.2, 0.3]]])
    sizes = (6000, 3000, 1000)
    X = np.vstack([rng.multivariate_normal(m, c, size=n) for m, c, n in zip(means, covs, sizes)])
    fit = fit_gaussian_mixture(X, 3, seed=0, tol=1e-6)
    assert fit.converged
    order = [int(np.argmin(np.linalg.norm(fit.means - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(fit.weights[order], np.array(sizes) / sum(sizes), atol=0.01)
    np.testing.assert_allclose(fit.means[order], means, atol=0.06)
    np.testing.assert_allclose(fit.covariances[order], covs, atol=0.06)
    again = fit_gaussian_mixture(X, 3, seed=0, tol=1e-6)
    assert np.array_equal(again.means, fit.means) and np.array_equal(again.covariances, fit.covariances)


def test_mixture_on_fewer_distinct_points_than_components():
    """k-means++ then has duplicate seeds and Lloyd an empty cluster: it is re-seeded, nothing fails."""
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]), 50, axis=0)
    fit = fit_gaussian_mixture(X, 4, reg_covar=1e-5)
    assert fit.weights.sum() == pytest.approx(1.0)
    heavy = fit.means[fit.weights > 0.3]
    assert len(heavy) == 3 and np.allclose(np.sort(heavy[:, 0]), [0.0, 1.0, 2.0], atol=1e-6)


def test_mixture_reports_non_convergence_and_refuses_too_few_events():
    X = np.random.default_rng(0).normal(size=(500, 2))
    assert not fit_gaussian_mixture(X, 4, max_iter=1, tol=0.0).converged
    with pytest.raises(ValueError, match="cannot fit 4 components to 3 events"):
        fit_gaussian_mixture(X[:3], 4)


@pytest.mark.parametrize("df", [1, 2, 3, 4])
def test_chi2_quantile_equals_scipy(df):
    from scipy.stats import chi2

    for p in (0.5, 0.9, 0.95, 0.99, 0.999, 0.9999):
        assert chi2_quantile(p, df) == pytest.approx(float(chi2.ppf(p, df)), rel=1e-12)
    with pytest.raises(ValueError):
        chi2_quantile(1.0, 2)
