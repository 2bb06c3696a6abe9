"""The Lymphocytes (scatter gate) row's own estimated error: the row is off by (other events in) - (lymphocytes
left out), each side to its own uncertainty (``backgating.in_and_out_pct``, ``InAndOut.error_pct``;
docs/gating.md, "The Lymphocytes row: other events in, lymphocytes out").
Lab A's seed 7070 is one the rule was measured on: its gate holds few other events and leaves few lymphocytes
out, its row is right, and the one-sided estimate (the mixture's Gaussian tails plus the back-gated lymphocyte
doublets, which that lab counts) flagged it."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.backgating import LEFT_OUT_KEY, in_and_out_pct
from cytokit.gating.fit_state import FitState
from cytokit.gating.lymphocyte_doublets import DOUBLET_KEY, ESTIMATE_REL_ERROR
from cytokit.gating.methods import needs_review
from cytokit.gating.methods.confidence import UNCERTAIN_PP, with_error
from cytokit.gating.methods.scatter_overlap import BACKGATE_KEY, DEBRIS_KEY, OVERLAP_FLAG, debris_pct

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FILE = "fcs/L02_V2_tcell.fcs"


@pytest.fixture(scope="module")
def lab_a(tmp_path_factory):
    """Lab A's seed 7070 (its first 10 files), patient 2's second visit, T-cell tube (the strategy counts the
    lymphocyte doublets)."""
    sys.path.insert(0, str(BENCH))
    from independent_lab_gen import generate_trial  # noqa: E402
    from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402

    root = tmp_path_factory.mktemp("lab")
    trial = generate_trial(root / "trial", patients=8, seed=7070, max_files=10)
    strategy = load_strategy(write_lab_strategies(root / "strategies") / "lab_tcell.yaml")
    truth = pd.read_csv(trial / "truth" / "populations.csv").set_index(["file", "population"]).pct_parent
    return strategy.apply(read_fcs(trial / FILE), qc=False), float(truth[(FILE, "Lymphocytes")])


def test_a_right_lymphocytes_row_is_not_flagged_for_one_sided_shares(lab_a):
    res, truth = lab_a
    row = res.populations.set_index("population").loc["Lymphocytes"]
    info = res.fits["Lymphocytes"].info
    assert abs(float(row["pct_parent"]) - truth) < 1.0  # the row is right (within 1 pp)
    # the one-sided reading: the mixture's share (2.2 %, its Gaussian tails) and the back-gated share (the
    # doublets the lab counts) as two errors, as the row was read before: over the limit
    one_sided = with_error(float(info["est_error_pp"]), float(row["pct_parent"]) * info[BACKGATE_KEY] / 100)
    assert one_sided > UNCERTAIN_PP
    # other events in: debris edge + the singlet gate's back-gated share (the lab counts the doublets the gate
    # holds); lymphocytes out: the T cells' rate just outside the gate
    state = FitState(dict(res.masks), dict(res.fits))
    shares = in_and_out_pct(res.definition, state, "Lymphocytes")
    assert shares is not None
    n_gate, n_singlets = int(res.masks["Lymphocytes"].sum()), int(res.masks["Singlets"].sum())
    other = debris_pct(info) + res.fits["Singlets"].info[BACKGATE_KEY] * n_singlets / n_gate
    assert (shares.other_in, shares.left_out) == pytest.approx((other, info[LEFT_OUT_KEY]))
    # the debris edge read net of the lymphocytes' own tail in its strip: at most the mixture's
    assert shares.debris_edge == pytest.approx(debris_pct(info)) and shares.debris_edge <= info[DEBRIS_KEY]
    assert 0 < info[LEFT_OUT_KEY] and other < info[DEBRIS_KEY] + info[BACKGATE_KEY]
    own = 100.0 * n_gate / float(row["parent_count"])
    added = round(info[DOUBLET_KEY] / 100 * float(row["parent_count"]))
    est = with_error(own * shares.error_pct() / 100, ESTIMATE_REL_ERROR * added * 100 / float(row["parent_count"]))
    assert float(row["est_error_pp"]) == pytest.approx(est, rel=1e-6)
    assert float(row["est_error_pp"]) < UNCERTAIN_PP
    assert OVERLAP_FLAG not in str(row["flags"]).split(";") and not needs_review(str(row["flags"])), row["flags"]
    # the populations below still read the gate's other events one-sided (their dilution is unchanged)
    assert OVERLAP_FLAG in res.fits["Lymphocytes"].flags or info["other_share_pct"] <= 3.0


def test_shares_are_not_measured_without_the_left_out_rate(lab_a):
    res, _ = lab_a
    fits = dict(res.fits)
    fit = fits["Lymphocytes"]
    fits["Lymphocytes"] = type(fit)(fit.gate, fit.flags, {k: v for k, v in fit.info.items() if k != LEFT_OUT_KEY},
                                    fit.components)
    assert in_and_out_pct(res.definition, FitState(dict(res.masks), fits), "Lymphocytes") is None
    assert math.isfinite(float(res.populations.set_index("population").loc["Lymphocytes", "est_error_pp"]))


def test_rows_below_a_back_gated_gate_read_its_debris_edge_not_its_neighbour_share(lab_a):
    """A back-gated gate whose mixture reads a large neighbour share (Gaussian tails next to the cloud): the rows
    below the lymphocyte denominator take the debris-edge part as the mixture's dilution (the back-gated share
    stands for the neighbours); a gate not read by back-gating (no left-out rate) still passes the whole share."""
    from cytokit.gating.engine import population_rows
    from cytokit.gating.methods.scatter_overlap import OTHER_SHARE_KEY, dilution_error_pp

    res, _ = lab_a
    fit = res.fits["Lymphocytes"]
    debris = 0.2
    info = {**fit.info, OTHER_SHARE_KEY: 20.0, "neighbour_share_pct": 20.0 - debris, DEBRIS_KEY: debris}
    flags = tuple(dict.fromkeys([*fit.flags, OVERLAP_FLAG]))

    def t_cells(info: dict) -> pd.Series:
        fits = {**res.fits, "Lymphocytes": type(fit)(fit.gate, flags, info, fit.components)}
        rows = population_rows(res.definition, FitState(dict(res.masks), fits), res.sample.n_events)
        return pd.DataFrame(rows).set_index("population").loc["T cells"]

    row = t_cells(info)
    pct = float(row["pct_parent"])
    assert float(row["est_error_pp"]) < dilution_error_pp(pct, 5.0)  # not the 20 % neighbour share (~14 pp)
    singlets = float(res.fits["Singlets"].info[BACKGATE_KEY])
    if max(dilution_error_pp(pct, debris), pct * singlets / (100 - singlets)) < UNCERTAIN_PP:
        assert OVERLAP_FLAG not in str(row["flags"]).split(";"), row["flags"]
    unread = t_cells({k: v for k, v in info.items() if k != LEFT_OUT_KEY})
    assert float(unread["est_error_pp"]) >= dilution_error_pp(pct, 20.0) - 1e-9
    assert OVERLAP_FLAG in str(unread["flags"]).split(";")
