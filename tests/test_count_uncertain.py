"""The count flag ``count_uncertain`` (:func:`cytokit.pipeline.counts.count_flags`): an absolute count whose
estimated relative error (:func:`cytokit.pipeline.counts.count_error_pct`, from ``est_error_pp`` and
``count_sd_pp`` of the row and its ancestors below the lymphocyte denominator) exceeds 10 % of the count. A 0.3 pp
error is nothing on CD4 T cells at 60 % of T cells and a fifth of a Treg count at 1.5 % of lymphocytes."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cytokit.gating.edge_loss import EDGE_LOSS_NOTE
from cytokit.pipeline.config import CountsConfig
from cytokit.pipeline.counts import (COUNT_LOW_FLAG, COUNT_UNCERTAIN_FLAG, COUNT_UNCERTAIN_PCT, absolute_counts,
                                     count_error_pct, count_flags)
from cytokit.results import schema as S

COLUMNS = [S.POPULATION, S.PARENT, S.COUNT, S.PCT_PARENT, S.PCT_LYMPHOCYTES, S.EST_ERROR_PP, S.COUNT_SD_PP, S.FLAGS]
# one sample: the scatter gate above the denominator (Singlets), T cells, CD4 T, Treg at 2.5 % of CD4 T
# (1.05 % of lymphocytes), and counting beads outside the lymphocytes
TMEM = pd.DataFrame([
    ("Lymphocytes", "", 10400, 52.0, np.nan, 0.8, 0.2, ""),
    ("Singlets", "Lymphocytes", 10000, 96.2, 100.0, np.nan, 0.2, ""),
    ("T cells", "Singlets", 7000, 70.0, 70.0, 0.5, 0.46, ""),
    ("CD4 T", "T cells", 4200, 60.0, 42.0, 0.3, 0.59, ""),
    ("Treg", "CD4 T", 105, 2.5, 1.05, 0.3, 0.24, ""),
    ("Beads", "", 2000, 4.0, np.nan, np.nan, 0.1, ""),
], columns=COLUMNS)


def _at(series: pd.Series, population: str):
    return series[TMEM.index[TMEM[S.POPULATION] == population][0]]


def test_the_error_is_each_steps_error_over_its_share_summed_in_squares_down_the_chain():
    err = count_error_pct(TMEM)
    step = {p: 100 * math.hypot(e, sd) / pct for p, e, sd, pct in
            zip(TMEM[S.POPULATION], TMEM[S.EST_ERROR_PP], TMEM[S.COUNT_SD_PP], TMEM[S.PCT_PARENT])}
    assert _at(err, "Singlets") == 0.0  # the denominator: the % of lymphocytes is 100 by definition
    assert _at(err, "T cells") == pytest.approx(step["T cells"])
    assert _at(err, "CD4 T") == pytest.approx(math.hypot(step["T cells"], step["CD4 T"]))
    # the Treg count carries its ancestors' errors and its own 0.38 pp, 15 % of its 2.5 %
    assert _at(err, "Treg") == pytest.approx(math.sqrt(step["T cells"] ** 2 + step["CD4 T"] ** 2 + step["Treg"] ** 2))
    assert _at(err, "Treg") > COUNT_UNCERTAIN_PCT > _at(err, "CD4 T")
    assert math.isnan(_at(err, "Lymphocytes")) and math.isnan(_at(err, "Beads"))  # not fractions of lymphocytes
    # without the binomial part only the gates' own errors count
    assert _at(count_error_pct(TMEM, sampling=False), "Treg") == pytest.approx(
        100 * math.sqrt((0.5 / 70) ** 2 + (0.3 / 60) ** 2 + (0.3 / 2.5) ** 2))


def test_an_error_on_an_empty_step_is_infinite_and_no_error_is_zero():
    pops = TMEM.copy()
    pops.loc[pops[S.POPULATION] == "Treg", [S.COUNT, S.PCT_PARENT, S.COUNT_SD_PP]] = (0, 0.0, 0.0)
    assert math.isinf(_at(count_error_pct(pops), "Treg"))
    pops.loc[pops[S.POPULATION] == "Treg", S.EST_ERROR_PP] = 0.0
    assert _at(count_error_pct(pops), "Treg") == pytest.approx(_at(count_error_pct(TMEM), "CD4 T"))


@pytest.mark.parametrize("method", ["dual_platform", "single_platform"])
def test_a_small_subsets_count_is_flagged_uncertain_in_both_methods(method):
    counts = CountsConfig(method=method, bead_population="Beads")
    abs_counts, used, _ = absolute_counts(TMEM, {"beads_per_tube": 50000, "sample_volume_uL": 50}, counts, 1500.0)
    assert used == method
    words = count_flags(TMEM, abs_counts, used)
    assert _at(words, "Treg") == COUNT_UNCERTAIN_FLAG
    assert _at(words, "CD4 T") == "" and _at(words, "T cells") == "" and _at(words, "Singlets") == ""
    assert _at(words, "Beads") == "" and _at(words, "Lymphocytes") == ""  # no count, no count flag
    # no count method: no count flags at all
    assert not count_flags(TMEM, pd.Series(np.nan, index=TMEM.index), "").astype(bool).any()


def test_count_low_and_count_uncertain_are_joined():
    pops = TMEM.copy()
    pops.loc[pops[S.POPULATION] == "Treg", S.FLAGS] = EDGE_LOSS_NOTE
    abs_counts, used, _ = absolute_counts(pops, {"beads_per_tube": 50000, "sample_volume_uL": 50},
                                          CountsConfig(method="single_platform", bead_population="Beads"), math.nan)
    assert _at(count_flags(pops, abs_counts, used), "Treg") == f"{COUNT_LOW_FLAG};{COUNT_UNCERTAIN_FLAG}"
