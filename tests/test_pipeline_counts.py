"""Absolute counts (cells/µL) and per-sample consistency checks."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cytokit.pipeline.config import CountsConfig
from cytokit.pipeline.counts import absolute_counts, choose_method, consistency_checks


def _pops(rows):
    return pd.DataFrame(rows, columns=["population", "count", "pct_lymphocytes"])


NKB = _pops([("Lymphocytes", 5200, np.nan), ("Singlets", 5000, 100.0), ("T cells", 3500, 70.0),
             ("NK cells", 750, 15.0), ("B cells", 600, 12.0), ("Beads", 1000, np.nan)])
TMEM = _pops([("Singlets", 4000, 100.0), ("T cells", 3000, 75.0), ("CD4 T", 1200, 30.0), ("CD8 T", 1500, 37.5)])


def test_dual_platform_is_pct_of_lymphocytes_times_clinical_count():
    counts = CountsConfig(method="dual_platform")
    values, method, flags = absolute_counts(TMEM, {}, counts, lymphocytes_per_uL=1600.0)
    assert method == "dual_platform" and flags == []
    # CD4 T: 30 % of 1600 lymphocytes/µL = 480 cells/µL
    assert values.tolist() == pytest.approx([1600.0, 1200.0, 480.0, 600.0])


def test_dual_platform_without_clinical_count_is_flagged_not_invented():
    values, method, flags = absolute_counts(TMEM, {}, CountsConfig(method="dual_platform"), math.nan)
    assert values.isna().all() and flags == ["no_absolute_count:no_lymphocyte_count"]


def test_single_platform_uses_beads():
    sample = {"beads_per_tube": "50000", "sample_volume_uL": "50"}
    values, method, flags = absolute_counts(NKB, sample, CountsConfig(), lymphocytes_per_uL=999.0)
    assert method == "single_platform"
    # T cells: 3500 events x 50000 beads / (1000 bead events x 50 µL) = 3500 cells/µL
    t = values[NKB["population"] == "T cells"].iloc[0]
    assert t == pytest.approx(3500.0)
    assert math.isnan(values[NKB["population"] == "Beads"].iloc[0])


def test_single_platform_without_bead_events_is_flagged():
    no_beads = NKB.assign(count=np.where(NKB["population"] == "Beads", 0, NKB["count"]))
    values, _, flags = absolute_counts(no_beads, {"beads_per_tube": 50000, "sample_volume_uL": 50},
                                       CountsConfig(method="single_platform"), math.nan)
    assert values.isna().all() and flags == ["no_absolute_count:no_bead_events"]


def test_auto_method_choice():
    c = CountsConfig()
    assert choose_method(c, {"beads_per_tube": "20000", "sample_volume_uL": "50"}, 1000.0) == "single_platform"
    assert choose_method(c, {"beads_per_tube": "", "sample_volume_uL": ""}, 1000.0) == "dual_platform"
    assert choose_method(c, {}, math.nan) == ""
    assert choose_method(CountsConfig(method="none"), {"beads_per_tube": 1, "sample_volume_uL": 1}, 5.0) == ""


def test_lymphosum_and_cd4_cd8_checks():
    c = CountsConfig()
    ok = consistency_checks(NKB, c)
    assert ok["lymphosum_pct"] == pytest.approx(97.0) and ok["check_flags"] == []
    low = consistency_checks(NKB.assign(pct_lymphocytes=NKB["pct_lymphocytes"] * 0.8), c)
    assert low["lymphosum_pct"] == pytest.approx(77.6) and "lymphosum" in low["check_flags"]
    t = consistency_checks(TMEM, c)
    assert t["cd4_cd8_vs_cd3_pct"] == pytest.approx(90.0) and t["check_flags"] == []
    assert math.isnan(t["lymphosum_pct"])
    bad = consistency_checks(TMEM.assign(count=[4000, 3000, 600, 900]), c)
    assert bad["cd4_cd8_vs_cd3_pct"] == pytest.approx(50.0) and "cd4_cd8_vs_cd3" in bad["check_flags"]


def test_minimum_lymphocyte_events_flag():
    few = consistency_checks(TMEM, CountsConfig(min_lymphocyte_events=5000))
    assert few["lymphocytes"] == 4000 and few["check_flags"] == ["too_few_Singlets(4000<5000)"]


def test_lymphocyte_count_is_the_strategys_denominator_not_always_singlets():
    """A strategy whose lymphocyte population is Live (viability gate below Singlets): the samples table's
    ``lymphocytes`` and the too-few check use Live: the strategy's declared population when the pipeline
    passes it, else the shallowest row at 100 % (results stored without it)."""
    from cytokit.pipeline.counts import sample_denominator

    rows = pd.DataFrame({
        "population": ["Lymphocytes", "Singlets", "Live", "T cells", "CD4 T"],
        "parent": ["", "Lymphocytes", "Singlets", "Live", "T cells"],
        "count": [52000, 50000, 5000, 5000, 3000], "pct_lymphocytes": [np.nan, np.nan, 100.0, 100.0, 60.0]})
    assert sample_denominator(rows) == ("Live", {"Singlets", "Lymphocytes"})  # T cells also at 100 % but deeper
    for declared in (None, "Live"):
        checks = consistency_checks(rows, CountsConfig(min_lymphocyte_events=10000), declared)
        assert checks["lymphocytes"] == 5000 and checks["check_flags"] == ["too_few_Live(5000<10000)"]
    # no live cells: nothing is at 100 %; the declared Live still counts (0 events, flagged), and without
    # it the inference falls back to the strategy model's default Singlets
    empty = rows.assign(count=[52000, 50000, 0, 0, 0], pct_lymphocytes=np.nan)
    checks = consistency_checks(empty, CountsConfig(min_lymphocyte_events=10000), "Live")
    assert checks["lymphocytes"] == 0 and checks["check_flags"] == ["too_few_Live(0<10000)"]
    assert sample_denominator(empty).name == "Singlets"
    assert consistency_checks(empty, CountsConfig(min_lymphocyte_events=10000))["lymphocytes"] == 50000
