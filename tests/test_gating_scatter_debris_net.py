"""The debris edge of a back-gated scatter gate read net of the lymphocytes' own low-FSC tail
(``scatter_overlap.debris_net_share``, ``backgating.debris_net_pct``; docs/gating.md, "The debris edge net of the
lymphocytes' own tail"): on a sample without debris the strip below the gate holds lymphocytes only, which the
mixture's reading counts as debris and the net reading does not."""
from __future__ import annotations

import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods.scatter_overlap import (DEBRIS_KEY, DEBRIS_NET_KEY, DEBRIS_STRIP_KEY, debris_net_share,
                                                    debris_pct)
from cytokit.simulate import load_config, simulate_file


def test_the_reference_rate_is_taken_off_the_strip():
    # 3 strip events per 100 in the gate, 2 of them at the reference's own rate: a third of the edge is left
    assert debris_net_share(1.5, 0.03, 0.02) == pytest.approx(0.5)
    assert debris_net_share(1.5, 0.03, 0.03) == 0.0  # the strip all lymphocytes
    # the reference passes more of the strip than of the gate: its gate lets other events in, the edge is read whole
    assert debris_net_share(1.5, 0.03, 0.05) == pytest.approx(1.5)
    assert debris_net_share(0.0, 0.0, 0.01) == 0.0


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
