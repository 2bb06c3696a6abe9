"""GatingResult.to_anndata: events x markers, population membership in obs, fit parameters in uns; usable
the way scanpy-style code uses AnnData (boolean/categorical obs selection, var lookup, h5ad round trip)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy

anndata = pytest.importorskip("anndata", reason="anndata is in the test extra: pip install 'cytokit[test]'")

BUNDLED = Path(__file__).resolve().parents[1] / "sample_data" / "fcs"


@pytest.fixture(scope="module")
def gated():
    raw = read_fcs(BUNDLED / "P001_W0_tmem.fcs")
    result = load_strategy("tmem").apply(raw)
    return raw, result, result.to_anndata(raw=raw)


def test_shape_values_and_var(gated):
    raw, result, adata = gated
    kept = result.qc.keep
    assert 0 < kept.sum() <= raw.n_events
    assert adata.shape == (int(kept.sum()), raw.n_channels) == result.sample.events.shape
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X, result.sample.events)
    np.testing.assert_array_equal(adata.layers["linear"], raw.events[kept])
    assert list(adata.obs_names) == [str(i) for i in np.flatnonzero(kept)]  # event numbers in the file
    assert adata.uns["cytokit"]["qc"]["n_events_read"] == raw.n_events
    assert list(adata.var["pnn"]) == list(raw.channels["pnn"])
    assert {"CD4", "CD8", "CD3", "CD45RA", "FSC-A"} <= set(adata.var_names)
    assert adata.var.loc["CD4", "transform"].startswith("logicle(")
    assert adata.var.loc["FSC-A", "transform"] == "" and adata.var.loc["FSC-A", "kind"] == "scatter"
    # fluorescence on the logicle scale (0..1 for on-scale events), scatter linear
    cd4 = adata[:, "CD4"].X.ravel()
    assert 0.0 <= float(np.median(cd4)) <= 1.0
    assert float(np.median(adata[:, "FSC-A"].X)) > 1000


def test_obs_membership_matches_counts(gated):
    _, result, adata = gated
    counts = result.counts()
    assert set(adata.obs.columns) == set(counts)
    for name, count in counts.items():
        assert adata.obs[name].dtype == bool
        assert int(adata.obs[name].sum()) == count, name
    # memberships nest as the hierarchy does
    assert not (adata.obs["CD4 T"] & ~adata.obs["T cells"]).any()


def test_uns_holds_fit_parameters_and_table(gated):
    _, result, adata = gated
    info = adata.uns["cytokit"]
    assert info["strategy"] == "tmem" and info["sample"] == "P001_W0_tmem.fcs"
    table = info["populations"]
    assert list(table["population"]) == list(result.populations["population"])
    assert list(table["count"]) == list(result.populations["count"])
    lym = info["fits"]["Lymphocytes"]
    assert lym["method"] == "gmm_ellipse"
    assert lym["params"]["n_components"] == result.definition.populations[0].params.get("n_components", 3)
    assert lym["gate"]["type"] == "ellipsoid"
    np.testing.assert_allclose(lym["gate"]["mean"], result.gates["Lymphocytes"].mean)
    cd4 = info["fits"]["CD4 T"]
    assert cd4["method"] == result.fits["CD4 T"].info["gate_method"]
    assert set(info["transforms"]) == {t.pnn for t in result.transforms}
    assert info["transforms"]["PE-Cy7-A"]["name"] == "logicle"


def test_scanpy_style_use_and_h5ad_roundtrip(gated, tmp_path):
    _, result, adata = gated
    # subset to a population and summarise a marker per group, as one would before sc.pl.violin etc.
    t_cells = adata[adata.obs["T cells"].to_numpy()].copy()
    t_cells.obs["subset"] = pd.Categorical(np.where(t_cells.obs["CD4 T"], "CD4", np.where(t_cells.obs["CD8 T"],
                                                                                           "CD8", "other")))
    medians = t_cells.to_df().groupby(t_cells.obs["subset"], observed=True)["CD4"].median()
    assert medians["CD4"] > medians["CD8"] + 0.2
    path = tmp_path / "gated.h5ad"
    adata.write_h5ad(path)
    back = anndata.read_h5ad(path)
    assert back.shape == adata.shape
    np.testing.assert_array_equal(back.X, adata.X)
    assert int(back.obs["Treg"].sum()) == result.counts()["Treg"]
    assert back.uns["cytokit"]["fits"]["Treg"]["method"] == result.fits["Treg"].info["gate_method"]
    np.testing.assert_allclose(back.uns["cytokit"]["fits"]["Treg"]["gate"]["dividers"],
                               result.gates["Treg"].dividers)


def test_raw_layer_must_match(gated):
    from cytokit.errors import CytokitError

    raw, result, _ = gated
    with pytest.raises(CytokitError, match="raw sample"):
        result.to_anndata(raw=raw.subset(np.arange(10)))


def test_uns_fits_carry_the_tables_review_split(gated):
    """Every fit in ``uns`` carries its population row's flags split by the one review_columns (review,
    review_flags, notes), so the export never shows flags without saying which mean "may be wrong"."""
    from cytokit.results.review import review_columns

    _, result, adata = gated
    info = adata.uns["cytokit"]
    rows = {r["population"]: r for r in result.population_rows}
    assert set(info["fits"]) == set(rows)
    for name, fit in info["fits"].items():
        row = rows[name]
        assert fit["flags"] == row["flags"], name
        assert (bool(fit["review"]), fit["review_flags"], fit["notes"]) == (
            row["review"], row["review_flags"], row["notes"]), name
        assert fit["review_flags"] == review_columns(fit["flags"])["review_flags"]
        assert fit["fit_flags"] == ";".join(result.fits[name].flags)
    assert any(fit["notes"] for fit in info["fits"].values())  # the split is exercised, not all empty
    table = info["populations"]
    assert {"review", "review_flags", "notes"} <= set(table.columns)
    assert info["qc"]["qc_flags"].split(";")[: len(result.qc.flags)] == list(result.qc.flags) or not result.qc.flags
