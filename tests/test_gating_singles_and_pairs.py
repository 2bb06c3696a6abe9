"""A lab whose Lymphocytes are single lymphocytes plus lymphocyte-lymphocyte doublets, stated on the scatter gate
(``lymphocyte_doublets: singles_and_pairs``, cytokit.gating.lymphocyte_doublets): the key is read from YAML
through the one registry of conventions, the Lymphocytes row counts the singlet gate's events plus the
lymphocyte doublets estimated inside and outside the gate, Singlets is read against that count, the estimate's
own error enters est_error_pp, and no row below Singlets changes."""
from __future__ import annotations

import copy
from typing import get_args

import pytest
import yaml

from cytokit.errors import ConfigError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.engine import population_table
from cytokit.gating.lymphocyte_doublets import (CONVENTIONS, DOUBLET_KEY, DOUBLET_NOTE, ESTIMATE_NOTE, INSIDE_KEY,
                                                PAIRS_REL_ERROR, SINGLES_AND_PAIRS, DoubletCounts, convention,
                                                counts_doublets, noted)
from cytokit.gating.methods import FitResult
from cytokit.gating.methods.scatter import DoubletConvention

COLS = ["count", "parent_count", "pct_parent", "pct_lymphocytes", "flags", "est_error_pp"]


@pytest.fixture(scope="module")
def both(tmem_file):
    """(table with the doublets excluded, table under singles_and_pairs, the singles_and_pairs result)."""
    shipped = load_strategy("tmem")
    sample = read_fcs(tmem_file)
    excluded = shipped.set_params("Lymphocytes", lymphocyte_doublets="excluded").apply(sample, qc=False)
    res = shipped.set_params("Lymphocytes", lymphocyte_doublets=SINGLES_AND_PAIRS).apply(sample, qc=False)
    return excluded.populations.set_index("population"), res.populations.set_index("population"), res


def test_the_value_is_read_from_yaml_through_the_registry(tmp_path):
    assert set(CONVENTIONS) == set(get_args(DoubletConvention))  # one list of values, one registry of meanings
    d = yaml.safe_load(load_strategy("tmem").to_yaml())
    lym = next(p for p in d["populations"] if p["name"] == "Lymphocytes")
    lym["params"] = {**lym.get("params", {}), "lymphocyte_doublets": "singles_and_pairs"}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    spec = load_strategy(path).definition.population("Lymphocytes")
    assert convention(spec) is CONVENTIONS[SINGLES_AND_PAIRS]
    assert counts_doublets(spec) and not noted(spec)
    singlets = load_strategy(path).definition.population("Singlets")
    assert convention(singlets) is None and not counts_doublets(singlets) and noted(singlets)
    # like `counted`, the value needs a singlet gate below the scatter gate to count from
    with pytest.raises(ConfigError, match="singles_and_pairs needs a population with method 'singlets'"):
        load_strategy(path).set_params("Singlets", method="threshold", dims=["FSC-A"], threshold={"bounds": [0.1, 0.9]})


def test_the_count_is_the_singles_plus_the_pairs_inside_and_outside():
    count = CONVENTIONS[SINGLES_AND_PAIRS].count
    assert count is not None
    # gate 1000 events, its singlet gate keeps 950, 10 of the 50 removed are lymphocyte pairs, 30 pairs outside
    assert count(DoubletCounts(gate=1000, singles=950, outside=30, inside=10)) == (-10, PAIRS_REL_ERROR * 40)
    assert CONVENTIONS["counted"].count is not None
    assert CONVENTIONS["counted"].count(DoubletCounts(1000, 950, 30, 10))[0] == 30
    assert CONVENTIONS["excluded"].count is None and CONVENTIONS["unstated"].count is None


def test_lymphocytes_and_singlets_rows_count_the_pairs(both):
    excluded, pairs, res = both
    info = res.fits["Lymphocytes"].info
    lym, sing = pairs.loc["Lymphocytes"], pairs.loc["Singlets"]
    n_parent = lym["parent_count"]
    inside, outside = (round(info[k] / 100 * n_parent) for k in (INSIDE_KEY, DOUBLET_KEY))
    assert inside + outside > 0
    removed = excluded.loc["Lymphocytes", "count"] - excluded.loc["Singlets", "count"]
    assert 0 <= inside <= removed  # the pairs inside are among the events the singlet gate removes
    # the drawn gate is unchanged; the row is the singles plus the estimated pairs
    assert int(res.masks["Lymphocytes"].sum()) == excluded.loc["Lymphocytes", "count"]
    assert lym["count"] == sing["count"] + inside + outside
    assert sing["count"] == excluded.loc["Singlets", "count"]
    assert sing["parent_count"] == lym["count"]
    assert sing["pct_parent"] == pytest.approx(100 * sing["count"] / lym["count"])
    # the estimate's own error enters both rows' est_error_pp
    err = PAIRS_REL_ERROR * (inside + outside)
    assert lym["est_error_pp"] >= err * 100 / n_parent - 1e-9
    assert sing["est_error_pp"] >= err * sing["pct_parent"] / sing["parent_count"] - 1e-9
    assert DOUBLET_NOTE not in str(lym["flags"]).split(";")
    below = [p for p in excluded.index if p not in ("Lymphocytes", "Singlets")]
    assert pairs.loc[below, COLS].equals(excluded.loc[below, COLS])


def test_an_uncertain_estimate_flags_the_singlets_row(both):
    """Pairs estimated at 2 + 2 pp of the events: their error (PAIRS_REL_ERROR of them) takes Singlets over the
    limit; at 0.1 + 0.1 pp it does not."""
    _, _, res = both
    definition = load_strategy("tmem").set_params("Lymphocytes", lymphocyte_doublets=SINGLES_AND_PAIRS).definition

    def singlets(pp: float):
        state = copy.copy(res.state)
        state.fits = dict(res.state.fits)
        fit = state.fits["Lymphocytes"]
        state.fits["Lymphocytes"] = FitResult(fit.gate, fit.flags, {**fit.info, DOUBLET_KEY: pp, INSIDE_KEY: pp},
                                              fit.components)
        return population_table(definition, state, res.sample.n_events).set_index("population").loc["Singlets"]

    high, low = singlets(2.0), singlets(0.1)
    assert ESTIMATE_NOTE in high["flags"].split(";") and "uncertain" in high["flags"].split(";")
    assert ESTIMATE_NOTE not in str(low["flags"]).split(";")
    assert high["pct_parent"] < low["pct_parent"]
