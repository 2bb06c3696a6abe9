"""The debris edge of a back-gated scatter gate read net of the lymphocytes' own low-FSC tail
(``scatter_overlap.debris_net_share``, ``backgating.debris_net_pct``; docs/gating.md, "The debris edge net of the
lymphocytes' own tail"): on a sample without debris the strip below the gate holds lymphocytes only, which the
mixture's reading counts as debris and the net reading does not."""
from __future__ import annotations

import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.engine import population_rows
from cytokit.gating.fit_state import FitState
from cytokit.gating.methods.scatter_overlap import (DEBRIS_KEY, DEBRIS_NET_KEY, DEBRIS_STRIP_KEY, OVERLAP_FLAG,
                                                    debris_net_share, debris_pct)
from cytokit.simulate import load_config, simulate_file


def test_the_reference_rate_is_taken_off_the_strip():
    # 300 strip events per 10,000 in the gate, 140 reference events of 7,000 inside (2 per 100): a third is left
    assert debris_net_share(1.5, 300, 10000, 140, 7000) == pytest.approx(0.5)
    assert debris_net_share(1.5, 300, 10000, 220, 7000) == 0.0  # the reference's share of the strip 0.73 vs 0.70
    # the reference passes 290 of the strip's 300 events (0.97 against 0.70 of the gate): its gate lets other
    # events in, and the edge is read whole
    assert debris_net_share(1.5, 300, 10000, 290, 7000) == pytest.approx(1.5)
    assert debris_net_share(0.0, 0, 10000, 0, 7000) == 0.0


def _lymphocytes_info(tmp_path, debris: float) -> dict:
    cfg = load_config(None)
    cfg = cfg.model_copy(update={"event_mix": cfg.event_mix.model_copy(
        update={"debris": debris, "lymphocyte_debris_doublets": 0.0 if debris == 0 else 0.015})})
    path = tmp_path / f"debris{debris}.fcs"
    simulate_file(path, 20000, tube="tmem", seed=3, config=cfg)
    return dict(load_strategy("tmem").apply(read_fcs(path), qc=False).fits["Lymphocytes"].info)


def test_without_debris_the_strip_holds_lymphocytes_only(tmp_path):
    info = _lymphocytes_info(tmp_path, 0.0)
    assert DEBRIS_STRIP_KEY in info
    assert info[DEBRIS_KEY] > 0.3  # the mixture's reading counts the lymphocytes' own tail as debris
    assert debris_pct(info) == info[DEBRIS_NET_KEY] < 0.3 * info[DEBRIS_KEY]


def test_with_debris_the_net_edge_stays(tmp_path):
    info = _lymphocytes_info(tmp_path, 0.3)
    assert 0.5 * info[DEBRIS_KEY] < info[DEBRIS_NET_KEY] <= info[DEBRIS_KEY]


def test_an_unflagged_back_gated_gate_dilutes_the_rows_below_by_its_debris_edge(tmem_gated):
    # the mixture did not flag the gate; its net debris edge (5 % of its events, set here) still dilutes the
    # populations directly below the lymphocyte denominator: their est_error_pp is at least pct x 5 / 100
    res = tmem_gated
    fit = res.fits["Lymphocytes"]
    unflagged = type(fit)(fit.gate, tuple(f for f in fit.flags if f != OVERLAP_FLAG),
                          {**fit.info, DEBRIS_NET_KEY: 5.0}, fit.components)
    rows = pd.DataFrame(population_rows(res.definition, FitState(dict(res.masks), {**res.fits, "Lymphocytes": unflagged}),
                                        res.sample.n_events)).set_index("population")
    lymph = res.definition.lymphocytes
    below = [p.name for p in res.definition.populations if p.parent == lymph]
    assert below
    for name in below:
        assert float(rows.loc[name, "est_error_pp"]) >= float(rows.loc[name, "pct_parent"]) * 5.0 / 100 - 1e-9, name
