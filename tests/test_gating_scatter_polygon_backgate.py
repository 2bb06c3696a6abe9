"""A density-contour lymphocyte gate (``density_polygon``) takes ``backgate_reference`` with the meaning it has on
``gmm_ellipse`` (cytokit.gating.scatter_reference): the populations below it are back-gated onto its scatter, its
own row gets the in-and-out error (other events in, lymphocytes left out in the ring just outside the polygon) and
the rows below it the back-gated dilution; without the key nothing is back-gated."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.gates import PolygonGate
from cytokit.gating import load_strategy
from cytokit.gating.backgating import LEFT_OUT_KEY, InAndOut
from cytokit.gating.methods.scatter_cut import RING, ring_rows
from cytokit.gating.methods.scatter_overlap import BACKGATE_KEY, DEBRIS_KEY, dilution_error_pp
from cytokit.gating.scatter_reference import backgate_reference


@pytest.fixture(scope="module")
def polygon_results(tmem_file):
    """(result without a back-gating reference, result with ``backgate_reference: T cells``)."""
    from cytokit.fcs import read_fcs

    polygon = load_strategy("tmem").set_params("Lymphocytes", method="density_polygon", target=[0.4, 0.06],
                                               level=0.05)
    sample = read_fcs(tmem_file)
    return (polygon.apply(sample, qc=False),
            polygon.set_params("Lymphocytes", backgate_reference="T cells").apply(sample, qc=False))


def test_the_back_gated_methods_are_read_from_the_registry():
    shipped = load_strategy("tmem").definition.population("Lymphocytes")
    assert shipped.method == "gmm_ellipse" and backgate_reference(shipped) == "T cells"
    polygon = load_strategy("tmem").set_params("Lymphocytes", method="density_polygon",
                                               backgate_reference="T cells").definition
    assert backgate_reference(polygon.population("Lymphocytes")) == "T cells"
    assert backgate_reference(polygon.population("T cells")) is None  # a threshold-type gate takes none


def test_a_polygon_gate_without_a_reference_is_not_back_gated(polygon_results):
    plain, _ = polygon_results
    assert all(BACKGATE_KEY not in fit.info for fit in plain.fits.values())
    assert LEFT_OUT_KEY not in plain.fits["Lymphocytes"].info


def test_a_polygon_gate_with_a_reference_gets_the_in_and_out_error_on_its_row(polygon_results):
    plain, backed = polygon_results
    info = backed.fits["Lymphocytes"].info
    assert DEBRIS_KEY not in info  # the contour has no mixture: no debris-edge estimate (read as 0)
    other, left_out = float(info[BACKGATE_KEY]), float(info[LEFT_OUT_KEY])
    assert other >= 0.0 and left_out > 0.0  # T cells in the ring just outside the contour
    rows = backed.populations.set_index("population")
    own = 100.0 * float(backed.masks["Lymphocytes"].sum()) / float(rows.loc["Lymphocytes", "parent_count"])
    expected = dilution_error_pp(own, InAndOut(other, 0.0, left_out).error_pct())
    est = float(rows.loc["Lymphocytes", "est_error_pp"])
    assert est >= expected - 1e-9 and est > 0.0
    assert not float(plain.populations.set_index("population").loc["Lymphocytes", "est_error_pp"]) >= expected
    # the rows below the denominator are back-gated too; the gate and every mask are the drawn ones
    assert BACKGATE_KEY in backed.fits["T cells"].info and BACKGATE_KEY in backed.fits["CD4 T"].info
    assert all(np.array_equal(backed.masks[n], plain.masks[n]) for n in plain.masks)


def test_the_ring_outside_a_polygon_is_the_polygon_scaled_about_its_centre():
    square = PolygonGate(id="g", dims=("x", "y"), vertices=((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)))
    X = np.array([[0.0, 0.0], [1.2, 0.0], [0.0, -1.4], [1.6, 0.0], [1.2, 1.2], [2.0, 2.0]])
    assert ring_rows(square, X).tolist() == [1, 2, 4]
    assert RING == 1.5
