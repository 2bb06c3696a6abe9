"""The rows directly below the lymphocyte denominator carry the composition shift the lymphocytes left out by the
scatter gate can cause (``backgating.left_out_composition_pp``; docs/gating.md, "The composition of the lymphocytes
the gate leaves out"): a gate that left a fifth of the lymphocytes out flags its T-cell row, one that left a few %
out does not."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from cytokit.gating.backgating import (LEFT_OUT_COMPOSITION_REL, LEFT_OUT_KEY, LEFT_OUT_MAX_RATIO, LEFT_OUT_NOTE,
                                       left_out_composition_pp, left_out_fraction)
from cytokit.gating.engine import population_rows
from cytokit.gating.fit_state import FitState
from cytokit.gating.methods import needs_review
from cytokit.gating.methods.confidence import UNCERTAIN_PP


def test_left_out_fraction_and_part():
    # the ring reads 20 per 100 inside: up to 30 per 100, 30 / 130 of all the lymphocytes
    assert left_out_fraction(20.0) == pytest.approx(LEFT_OUT_MAX_RATIO * 0.2 / (1 + LEFT_OUT_MAX_RATIO * 0.2))
    assert left_out_fraction(0.0) == 0.0
    assert left_out_composition_pp(60.0, 20.0) == pytest.approx(60.0 * left_out_fraction(20.0)
                                                                * LEFT_OUT_COMPOSITION_REL)
    assert left_out_composition_pp(float("nan"), 20.0) == 0.0


def _rows(res, left_out: float) -> pd.DataFrame:
    """``res``'s rows with the Lymphocytes gate's ring reading set to ``left_out`` (%)."""
    fit = res.fits["Lymphocytes"]
    fits = {**res.fits, "Lymphocytes": type(fit)(fit.gate, fit.flags, {**fit.info, LEFT_OUT_KEY: left_out},
                                                  fit.components)}
    return pd.DataFrame(population_rows(res.definition, FitState(dict(res.masks), fits),
                                        res.sample.n_events)).set_index("population")


def test_a_gate_that_left_many_lymphocytes_out_flags_the_t_cell_row(tmem_gated):
    res = tmem_gated
    assert res.definition.population("T cells").parent == res.definition.lymphocytes
    few, many = _rows(res, 0.5), _rows(res, 35.0)
    t_few, t_many = few.loc["T cells"], many.loc["T cells"]
    assert not needs_review(str(t_few["flags"])), t_few["flags"]  # the simulated file's T-cell row is clean
    part = left_out_composition_pp(float(t_many["pct_parent"]), 35.0)
    assert part > UNCERTAIN_PP
    assert float(t_many["est_error_pp"]) == pytest.approx(math.hypot(_without_part(t_few, 0.5), part), rel=1e-6)
    words = str(t_many["flags"]).split(";")
    assert LEFT_OUT_NOTE in words and needs_review(words), words
    # rows further down (CD4 T, % of T cells) are not fractions of the denominator: unchanged
    assert float(many.loc["CD4 T", "est_error_pp"]) == pytest.approx(float(few.loc["CD4 T", "est_error_pp"]))


def _without_part(row: pd.Series, left_out: float) -> float:
    """The row's ``est_error_pp`` without the left-out part it carries at ``left_out``."""
    est, part = float(row["est_error_pp"]), left_out_composition_pp(float(row["pct_parent"]), left_out)
    return math.sqrt(max(est * est - part * part, 0.0))
