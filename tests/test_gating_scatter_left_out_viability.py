"""Lymphocytes left out by a back-gated scatter gate with a viability gate below it (FSC/SSC -> singlets -> live ->
CD3): the gate's row holds dead lymphocytes too, so the ring just outside it is read against single CD3+ events
live and dead (``backgating.whole_reference``), not against the T cells below ``Live`` (docs/gating.md, "Through a
viability gate"). Lab A's seed 9090 with its ``density_polygon`` lymphocyte gate is one this was measured on:
``L06_V1_nkb``'s Lymphocytes row reads 2.8 pp low, and against live T cells alone its estimate (0.97 pp) left it
unflagged."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.backgating import LEFT_OUT_KEY
from cytokit.gating.fit_state import evaluate_gate
from cytokit.gating.methods import needs_review
from cytokit.gating.methods.base import gather
from cytokit.gating.methods.confidence import UNCERTAIN_PP
from cytokit.gating.methods.scatter_cut import ring_rows

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FILE = "fcs/L06_V1_nkb.fcs"


@pytest.fixture(scope="module")
def lab_a(tmp_path_factory):
    """(the result of lab A's nkb strategy with a density_polygon lymphocyte gate on seed 9090's L06_V1_nkb, the
    truth's Lymphocytes % of parent)."""
    sys.path.insert(0, str(BENCH))
    from independent_lab_gen import generate_trial  # noqa: E402
    from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402

    root = tmp_path_factory.mktemp("lab")
    trial = generate_trial(root / "trial", patients=8, seed=9090, max_files=33)
    strategy = load_strategy(write_lab_strategies(root / "strategies", "density_polygon") / "lab_nkb.yaml")
    truth = pd.read_csv(trial / "truth" / "populations.csv").set_index(["file", "population"]).pct_parent
    return strategy.apply(read_fcs(trial / FILE), qc=False), float(truth[(FILE, "Lymphocytes")])


def _ring_through(res, steps: list[str]) -> int:
    fit = res.fits["Lymphocytes"]
    cols = np.array([res.sample.channel_index(d) for d in fit.gate.dims])
    rows = ring_rows(fit.gate, gather(res.sample.events, np.arange(res.sample.n_events), cols))
    for step in steps:
        f = res.fits[step]
        rows = rows[evaluate_gate(f.gate, res.sample, rows, f.components, res.state.masks)]
    return int(rows.size)


def test_the_ring_reads_single_cd3_events_live_and_dead(lab_a):
    res, _ = lab_a
    d = res.definition
    assert [d.population(p).parent for p in ("Singlets", "Live", "T cells")] == ["Lymphocytes", "Singlets", "Live"]
    singlets = np.flatnonzero(res.masks["Singlets"])
    t_fit = res.fits["T cells"]
    cd3_singlets = int(evaluate_gate(t_fit.gate, res.sample, singlets, t_fit.components, res.state.masks).sum())
    whole = 100.0 * _ring_through(res, ["Singlets", "T cells"]) / cd3_singlets
    live = 100.0 * _ring_through(res, ["Singlets", "Live", "T cells"]) / int(res.masks["T cells"].sum())
    assert res.fits["Lymphocytes"].info[LEFT_OUT_KEY] == pytest.approx(whole, abs=1e-3)
    assert whole > live + 0.5  # dead T cells lie at the gate's edge more than live ones


def test_a_row_low_by_its_dead_lymphocytes_left_out_is_flagged(lab_a):
    res, truth = lab_a
    row = res.populations.set_index("population").loc["Lymphocytes"]
    assert truth - float(row["pct_parent"]) > 2.0  # the contour leaves lymphocytes out
    assert float(row["est_error_pp"]) > UNCERTAIN_PP and needs_review(str(row["flags"]))
