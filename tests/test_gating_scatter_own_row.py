"""The Lymphocytes (back-gated scatter gate) row's own estimated error on a constructed state: the row is off by
(other events in) - (lymphocytes left out), each side to its own uncertainty (``backgating.InAndOut.error_pct``;
docs/gating.md, "The Lymphocytes row: other events in, lymphocytes out"), not by the larger of the two."""
from __future__ import annotations

import pandas as pd
import pytest

from cytokit.gating.backgating import LEFT_OUT_KEY, LEFT_OUT_MAX_RATIO, InAndOut, in_and_out_pct
from cytokit.gating.engine import population_rows
from cytokit.gating.fit_state import FitState
from cytokit.gating.methods import needs_review
from cytokit.gating.methods.confidence import UNCERTAIN_PP
from cytokit.gating.methods.scatter_overlap import BACKGATE_KEY, DEBRIS_NET_KEY, OVERLAP_FLAG


def test_the_two_sides_partly_cancel():
    # other events in between the back-gated share (1.0) and it + the debris edge (3.0); lymphocytes out between
    # the ring's 1.0 and 1.5: the row is off by -0.5 .. +2.0 % of the gate's events, not 3.0
    assert InAndOut(1.0, 2.0, 1.0).error_pct() == pytest.approx(2.0)
    assert InAndOut(1.0, 2.0, 1.0).other_in == pytest.approx(3.0)
    # lymphocytes left out with little in: the low side bounds it, beyond the ring's own reading
    assert InAndOut(0.5, 1.0, 3.0).error_pct() == pytest.approx(LEFT_OUT_MAX_RATIO * 3.0 - 0.5)
    assert InAndOut(0.0, 0.0, 0.0).error_pct() == 0.0


def _lymphocytes_row(res, **shares: float) -> pd.Series:
    """The Lymphocytes row of ``res`` with its gate's fit info holding ``shares`` (info key -> %)."""
    fit = res.fits["Lymphocytes"]
    fits = {**res.fits, "Lymphocytes": type(fit)(fit.gate, fit.flags, {**fit.info, **shares}, fit.components)}
    rows = population_rows(res.definition, FitState(dict(res.masks), fits), res.sample.n_events)
    return pd.DataFrame(rows).set_index("population").loc["Lymphocytes"]


def test_a_gate_whose_debris_edge_and_left_out_cancel_is_not_flagged(tmem_gated):
    res = tmem_gated
    n_gate = int(res.masks["Lymphocytes"].sum())
    pct = 100.0 * n_gate / res.sample.n_events
    # shares chosen so the larger side alone (debris 2 + back-gated 1 = 3 % in) is over the limit and the net
    # (3 - 1.5 = 1.5 % at most; at least 1 - 1.5 x 1.5 = -1.25 %) is under it
    shares = {DEBRIS_NET_KEY: 2.0, BACKGATE_KEY: 1.0, LEFT_OUT_KEY: 1.5}  # the debris edge read
    assert pct * 3.0 / 100 > UNCERTAIN_PP > pct * 1.5 / 100, pct
    row = _lymphocytes_row(res, **shares)
    state = FitState(dict(res.masks), {**res.fits, "Lymphocytes": type(res.fits["Lymphocytes"])(
        res.fits["Lymphocytes"].gate, res.fits["Lymphocytes"].flags, {**res.fits["Lymphocytes"].info, **shares},
        res.fits["Lymphocytes"].components)})
    in_out = in_and_out_pct(res.definition, state, "Lymphocytes")
    assert in_out == pytest.approx(InAndOut(1.0, 2.0, 1.5))
    if pd.isna(row["est_error_pp"]) or float(row["est_error_pp"]) >= UNCERTAIN_PP:
        pytest.fail(f"est {row['est_error_pp']} (pct {pct:.1f})")
    assert float(row["est_error_pp"]) == pytest.approx(pct * 1.5 / 100, rel=0.05)  # doublet part, if any, small
    assert OVERLAP_FLAG not in str(row["flags"]).split(";")


def test_lymphocytes_left_out_beyond_the_ring_keep_the_flag(tmem_gated):
    res = tmem_gated
    pct = 100.0 * int(res.masks["Lymphocytes"].sum()) / res.sample.n_events
    # little in (back-gated 0.5, no debris edge), the ring reads 2.5 % out: the row may be up to 1.5 x 2.5 - 0.5
    # = 3.25 % of its events low, more than the ring's reading alone
    out = 2.5
    assert pct * (LEFT_OUT_MAX_RATIO * out - 0.5) / 100 > UNCERTAIN_PP
    row = _lymphocytes_row(res, **{DEBRIS_NET_KEY: 0.0, BACKGATE_KEY: 0.5, LEFT_OUT_KEY: out})
    assert float(row["est_error_pp"]) >= pct * (LEFT_OUT_MAX_RATIO * out - 0.5) / 100 - 1e-9
    assert OVERLAP_FLAG in str(row["flags"]).split(";") and needs_review(str(row["flags"])), row["flags"]
