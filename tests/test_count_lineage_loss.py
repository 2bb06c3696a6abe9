"""A dual-platform count of a lineage the scatter gate loses more than the lymphocytes as a whole
(:func:`cytokit.gating.edge_loss.lineage_loss_pct`): its % of lymphocytes misses its loss less the denominator's
(the back-gating reference's ring share), and above the flag level its count gets ``count_low`` in
``count_flags`` (:func:`cytokit.pipeline.counts.count_flags`), as a bead count of cells the gates left out does."""
from __future__ import annotations

import pandas as pd
import pytest

from cytokit.gating.edge_loss import (EDGE_LOSS_FLAG_PCT, EDGE_LOSS_NOTE, LINEAGE_LOSS_NOTE, lineage_loss_note,
                                      lineage_loss_pct)
from cytokit.gating.methods.scatter_cut import RING_KEY
from cytokit.pipeline.counts import COUNT_LOW_FLAG, DUAL, SINGLE, count_flags
from cytokit.results import schema as S


def test_lineage_loss_is_the_edge_loss_less_the_denominators():
    assert lineage_loss_pct({RING_KEY: 9.0}, 1.0) == pytest.approx(8.0)
    # a one-marker gate's own divider is the population's alone: half its edge share is added
    assert lineage_loss_pct({RING_KEY: 9.0, "edge_share": 0.04, "gate_method": "threshold"}, 1.0) == pytest.approx(10.0)
    assert lineage_loss_pct({}, 1.0) is None and lineage_loss_pct({RING_KEY: 9.0}, None) is None  # not measured
    # a loss every lineage shares cancels in a % of lymphocytes: not flagged however large
    assert not lineage_loss_note({RING_KEY: 12.0}, 6.0) and lineage_loss_note({RING_KEY: 12.0}, 3.0)
    assert not lineage_loss_note({RING_KEY: 1.0 + EDGE_LOSS_FLAG_PCT}, 1.0)  # at the level: not above it


def test_count_low_reads_the_note_of_the_counts_own_method():
    pops = pd.DataFrame({S.POPULATION: ["Singlets", "T cells", "NK cells", "B cells"],
                         S.PARENT: ["Lymphocytes", "Singlets", "Singlets", "Singlets"],
                         S.PCT_PARENT: [100.0, 70.0, 15.0, 15.0], S.PCT_LYMPHOCYTES: [100.0, 70.0, 15.0, 15.0],
                         S.COUNT: [10000, 7000, 1500, 1500],
                         S.FLAGS: ["", "", LINEAGE_LOSS_NOTE, EDGE_LOSS_NOTE]})
    counted = pd.Series([2000.0, 1400.0, 300.0, 300.0], index=pops.index)
    low = count_flags(pops, counted, DUAL, "Singlets").str.split(";").map(lambda w: COUNT_LOW_FLAG in w)
    assert low.tolist() == [False, False, True, False]  # dual: the loss beyond the denominator's
    low = count_flags(pops, counted, SINGLE, "Singlets").str.split(";").map(lambda w: COUNT_LOW_FLAG in w)
    assert low.tolist() == [False, False, False, True]  # single: every cell left out
    uncounted = pd.Series(float("nan"), index=pops.index)
    assert (count_flags(pops, uncounted, DUAL, "Singlets") == "").all()
