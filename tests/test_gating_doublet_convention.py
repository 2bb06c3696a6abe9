"""A lab's lymphocyte-doublet convention stated on the scatter gate (``lymphocyte_doublets: counted``,
cytokit.gating.lymphocyte_doublets): the Lymphocytes row reports the gate plus the estimated doublets, the
Singlets row is read against that count, the estimate's error stays in est_error_pp, the convention note is
not raised, and `cytokit gate` reports the same table as Strategy.apply."""
from __future__ import annotations

import math

import pytest
import yaml

from cytokit.cli.main import main
from cytokit.errors import ConfigError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.lymphocyte_doublets import DOUBLET_KEY, DOUBLET_NOTE, ESTIMATE_REL_ERROR


@pytest.fixture(scope="module")
def both(tmem_file):
    """(table under the default convention, table with the doublets counted, the counted result)."""
    shipped = load_strategy("tmem")
    counted = shipped.set_params("Lymphocytes", lymphocyte_doublets="counted")
    sample = read_fcs(tmem_file)
    res = counted.apply(sample, qc=False)
    return (shipped.apply(sample, qc=False).populations.set_index("population"),
            res.populations.set_index("population"), res)


def test_counted_doublets_enter_the_lymphocytes_row_and_the_singlets_denominator(both):
    excluded, counted, res = both
    doublets_pp = res.fits["Lymphocytes"].info[DOUBLET_KEY]
    lym, sing = counted.loc["Lymphocytes"], counted.loc["Singlets"]
    added = round(doublets_pp / 100 * lym["parent_count"])
    assert added > 0
    # the drawn gate is the same: its mask still holds only the gate's events
    assert int(res.masks["Lymphocytes"].sum()) == excluded.loc["Lymphocytes", "count"]
    assert lym["count"] == excluded.loc["Lymphocytes", "count"] + added
    assert lym["pct_parent"] == pytest.approx(100 * lym["count"] / lym["parent_count"])
    assert lym["pct_parent"] == pytest.approx(excluded.loc["Lymphocytes", "pct_parent"] + doublets_pp, abs=0.01)
    # Singlets: its own events, read against the gate plus the doublets (lower % of parent)
    assert sing["count"] == excluded.loc["Singlets", "count"]
    assert sing["parent_count"] == lym["count"]
    assert sing["pct_parent"] == pytest.approx(100 * sing["count"] / lym["count"])
    assert sing["pct_parent"] < excluded.loc["Singlets", "pct_parent"] - 0.5 * doublets_pp
    # every row below the lymphocyte denominator is the same under both conventions
    below = [p for p in excluded.index if p not in ("Lymphocytes", "Singlets")]
    cols = ["count", "parent_count", "pct_parent", "pct_lymphocytes", "flags", "est_error_pp"]
    assert counted.loc[below, cols].equals(excluded.loc[below, cols])


def test_counted_convention_is_not_flagged_and_keeps_the_estimates_error(both):
    excluded, counted, res = both
    lym, sing = counted.loc["Lymphocytes"], counted.loc["Singlets"]
    assert DOUBLET_NOTE not in str(lym["flags"]).split(";")
    added = round(res.fits["Lymphocytes"].info[DOUBLET_KEY] / 100 * lym["parent_count"])
    own_lym = ESTIMATE_REL_ERROR * added * 100 / lym["parent_count"]
    own_sing = ESTIMATE_REL_ERROR * added * sing["pct_parent"] / sing["parent_count"]
    assert lym["est_error_pp"] >= own_lym - 1e-9 and own_lym > 0
    assert sing["est_error_pp"] >= own_sing - 1e-9 and own_sing > 0
    if math.isnan(excluded.loc["Singlets", "est_error_pp"]):  # the estimate's error is all it has
        assert sing["est_error_pp"] == pytest.approx(own_sing)


def test_cli_gate_reports_the_counted_table(both, tmem_file, tmp_path):
    _, counted, _ = both
    strategy = load_strategy("tmem").set_params("Lymphocytes", lymphocyte_doublets="counted")
    path = tmp_path / "lab.yaml"
    path.write_text(strategy.to_yaml(), encoding="utf-8")
    out = tmp_path / "table.csv"
    assert main(["gate", str(tmem_file), "--strategy", str(path), "--no-qc", "--table", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out).set_index("population")
    for name in ("Lymphocytes", "Singlets"):
        assert table.loc[name, "count"] == counted.loc[name, "count"]
        assert table.loc[name, "parent_count"] == counted.loc[name, "parent_count"]
        assert table.loc[name, "pct_parent"] == pytest.approx(counted.loc[name, "pct_parent"])
    assert yaml.safe_load(path.read_text())["populations"][0]["params"]["lymphocyte_doublets"] == "counted"


def test_counted_needs_a_singlet_gate_below_and_a_known_value():
    tmem = load_strategy("tmem")
    with pytest.raises(ConfigError, match="lymphocyte_doublets"):
        tmem.set_params("Lymphocytes", lymphocyte_doublets="included")
    with pytest.raises(ConfigError, match="needs a population with method 'singlets'"):
        tmem.set_params("Lymphocytes", lymphocyte_doublets="counted").set_params(
            "Singlets", method="threshold", dims=["FSC-A"], threshold={"bounds": [0.1, 0.9]})
    with pytest.raises(ConfigError, match="lymphocyte_doublets"):  # only the scatter lymphocyte gates have the key
        tmem.set_params("Singlets", lymphocyte_doublets="counted")


def _with_doublets(res, pp: float):
    """A copy of ``res``'s fit state whose Lymphocytes gate records ``pp`` estimated doublets outside it."""
    import copy

    from cytokit.gating.methods import FitResult

    state = copy.copy(res.state)
    state.fits = dict(res.state.fits)
    fit = state.fits["Lymphocytes"]
    state.fits["Lymphocytes"] = FitResult(fit.gate, fit.flags, {**fit.info, DOUBLET_KEY: pp}, fit.components)
    return state


def test_stated_exclusion_drops_the_convention_note_and_its_error(tmem_file):
    """Unstated (the default), doublets above the limit note the row and enter its error; a lab stating that
    its gate excludes them (as cytokit's does) gets the row as if no doublets were estimated, the estimate kept
    in info."""
    from cytokit.gating.engine import population_table
    from cytokit.gating.methods.scatter import GMMEllipseParams

    assert GMMEllipseParams().lymphocyte_doublets == "unstated"
    unstated = load_strategy("tmem")
    excluded = unstated.set_params("Lymphocytes", lymphocyte_doublets="excluded")
    sample = read_fcs(tmem_file)
    res = excluded.apply(sample, qc=False)
    assert DOUBLET_KEY in res.fits["Lymphocytes"].info  # still estimated and recorded
    n = res.sample.n_events

    def row(definition, pp: float):
        return population_table(definition, _with_doublets(res, pp), n).set_index("population").loc["Lymphocytes"]

    noted = row(unstated.definition, 2.5)
    assert DOUBLET_NOTE in noted["flags"].split(";") and "uncertain" in noted["flags"].split(";")
    assert noted["est_error_pp"] >= 2.5
    stated, none = row(excluded.definition, 2.5), row(excluded.definition, 0.0)
    assert DOUBLET_NOTE not in stated["flags"].split(";")
    assert stated["flags"] == none["flags"] and stated["pct_parent"] == none["pct_parent"]
    assert (stated["est_error_pp"] == none["est_error_pp"]
            or (math.isnan(stated["est_error_pp"]) and math.isnan(none["est_error_pp"])))
    assert not (stated["est_error_pp"] >= 2.5)


def test_a_wrong_convention_names_the_four_values():
    with pytest.raises(ConfigError, match="'unstated', 'excluded', 'counted' or 'singles_and_pairs'"):
        load_strategy("tmem").set_params("Lymphocytes", lymphocyte_doublets="included")


def test_a_density_polygon_lymphocyte_gate_states_the_convention_too(tmem_file):
    """The contour scatter gate takes the same key with the same meaning: under ``counted`` its row adds the
    doublets estimated outside the drawn polygon and Singlets is read against that count; the drawn gate and
    every row below the denominator stay as under ``excluded``, which carries no convention note."""
    polygon = load_strategy("tmem").set_params("Lymphocytes", method="density_polygon",
                                               target=[0.4, 0.06], level=0.05)
    sample = read_fcs(tmem_file)
    excluded_res = polygon.set_params("Lymphocytes", lymphocyte_doublets="excluded").apply(sample, qc=False)
    counted_res = polygon.set_params("Lymphocytes", lymphocyte_doublets="counted").apply(sample, qc=False)
    excluded = excluded_res.populations.set_index("population")
    counted = counted_res.populations.set_index("population")
    doublets_pp = counted_res.fits["Lymphocytes"].info[DOUBLET_KEY]
    assert doublets_pp == excluded_res.fits["Lymphocytes"].info[DOUBLET_KEY] and doublets_pp > 0
    added = round(doublets_pp / 100 * counted.loc["Lymphocytes", "parent_count"])
    assert added > 0
    assert counted.loc["Lymphocytes", "count"] == excluded.loc["Lymphocytes", "count"] + added
    assert counted.loc["Singlets", "parent_count"] == counted.loc["Lymphocytes", "count"]
    assert counted.loc["Singlets", "pct_parent"] < excluded.loc["Singlets", "pct_parent"]
    assert DOUBLET_NOTE not in str(excluded.loc["Lymphocytes", "flags"]).split(";")
    below = [p for p in excluded.index if p not in ("Lymphocytes", "Singlets")]
    cols = ["count", "parent_count", "pct_parent", "pct_lymphocytes", "flags", "est_error_pp"]
    assert counted.loc[below, cols].equals(excluded.loc[below, cols])
