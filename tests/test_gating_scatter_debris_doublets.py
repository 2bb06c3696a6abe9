"""The debris edge of a back-gated scatter gate, read for the rows below its singlet gate, counts the strip's
single events only (``backgating.debris_net_pct``, ``scatter_overlap.debris_net_share``; docs/gating.md, "Doublets
in the debris strip"): a doublet in the strip (two small particles: a lymphocyte's height, more than a single
event's area) is removed by the singlet gate, so it does not dilute the rows below it."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.backgating import debris_net_pct, singlet_gates
from cytokit.gating.fit_state import FitState, evaluate_gate
from cytokit.gating.methods.scatter_overlap import DEBRIS_KEY, DEBRIS_STRIP_KEY, debris_net_share
from cytokit.simulate import load_config, simulate_file


def test_the_strips_doublets_are_not_debris():
    # 300 strip events, 240 of them single, per 10,000 in the gate; 140 reference events of 7,000 inside (2 per
    # 100): (2.4 - 2.0) / 3.0 of the edge is left, against (3.0 - 2.0) / 3.0 when the doublets count
    assert debris_net_share(1.5, 300, 10000, 140, 7000, 240) == pytest.approx(0.2)
    assert debris_net_share(1.5, 300, 10000, 140, 7000, 300) == debris_net_share(1.5, 300, 10000, 140, 7000)
    assert debris_net_share(1.5, 300, 10000, 140, 7000, 0) == 0.0
    # a reference that passes more of the strip's single events than of the gate: read whole, of the singles
    assert debris_net_share(1.5, 300, 10000, 230, 7000, 240) == pytest.approx(1.5 * 240 / 300)


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    cfg = load_config(None)
    cfg = cfg.model_copy(update={"event_mix": cfg.event_mix.model_copy(update={"debris": 0.3})})
    path = tmp_path_factory.mktemp("doublets") / "f.fcs"
    simulate_file(path, 20000, tube="tmem", seed=7, config=cfg)
    return load_strategy("tmem").apply(read_fcs(path), qc=False)


def _with_strip_doublets(res, n: int):
    """The result's sample with ``n`` doublets added in the gate's debris strip (height and side scatter there,
    area 2.2 x the height), the masks extended with False for them."""
    sample, fit = res.sample, res.fits["Lymphocytes"]
    (f_lo, f_hi), (s_lo, s_hi) = fit.info[DEBRIS_STRIP_KEY]
    rng = np.random.default_rng(0)
    extra = np.repeat(np.median(sample.events, axis=0)[None, :], n, axis=0)
    height = rng.uniform(f_lo, f_hi, n)
    extra[:, sample.channel_index("FSC-H")] = height
    extra[:, sample.channel_index("SSC-A")] = rng.uniform(s_lo, s_hi, n)
    extra[:, sample.channel_index("FSC-A")] = 2.2 * height
    grown = sample.replace(events=np.vstack([sample.events, extra]))
    masks = {k: np.concatenate([m, np.zeros(n, dtype=bool)]) for k, m in res.masks.items()}
    # the mixture's edge reads the strip's density: it grows with the strip's events
    X = sample.events[:, [sample.channel_index("FSC-H"), sample.channel_index("SSC-A")]]
    own = int(np.count_nonzero((X[:, 0] >= f_lo) & (X[:, 0] < f_hi) & (X[:, 1] >= s_lo) & (X[:, 1] <= s_hi)))
    info = {**fit.info, DEBRIS_KEY: float(fit.info[DEBRIS_KEY]) * (own + n) / own}
    return grown, FitState(masks, {**res.fits, "Lymphocytes": type(fit)(fit.gate, fit.flags, info, fit.components)})


def _net(res, sample, state) -> float | None:
    chain = [*singlet_gates(res.definition, state, "Lymphocytes"), "T cells"]

    def reference(rows: np.ndarray) -> int:
        for name in chain:
            f = state.fits[name]
            rows = rows[evaluate_gate(f.gate, sample, rows, f.components, state.masks)] if rows.size else rows
        return int(rows.size)

    return debris_net_pct(res.definition, sample, state, "Lymphocytes", reference,
                          int(np.count_nonzero(state.masks["T cells"])))


def test_doublets_added_to_the_strip_leave_the_singles_reading_unchanged(gated):
    assert singlet_gates(gated.definition, FitState(dict(gated.masks), dict(gated.fits)), "Lymphocytes") == ["Singlets"]
    before = _net(gated, gated.sample, FitState(dict(gated.masks), dict(gated.fits)))
    assert before is not None and before > 0.0
    n_strip = 400  # far more than the strip's own events: a reading that counted them would more than double
    sample, state = _with_strip_doublets(gated, n_strip)
    assert _net(gated, sample, state) == pytest.approx(before, rel=0.02)
