"""Cohort gating gives the same tables with the local and the Dask executor (it runs on stored results)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytokit.pipeline import run
from test_pipeline_support import simulate_small_trial, write_pipeline
from test_review_column import assert_review_columns_follow_flags

OPTIONS = dict(qc={"enabled": True, "min_events": 100},
               outputs={"gatingml": False, "thumbnails": False, "flowjo_workspace": False, "cohort_gating": True},
               cohort_gating={"k": 1.0, "min_shift": 0.01, "min_samples": 3, "group_columns": ["tube"],
                              "accept_flags": None},
               executor={"jobs": 2, "task": "analyse"})


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    return simulate_small_trial(tmp_path_factory.mktemp("cohort") / "trial", events=3000, patients_per_arm=2)


def test_local_and_dask_executors_give_the_same_cohort_refits(trial, tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask executor needs cytokit[distributed]")
    local = run(write_pipeline(tmp_path / "cfg", trial, name="cohort", **OPTIONS), tmp_path / "local", stages=False)
    assert local.failed == 0 and local.stage_errors == {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        dask = run(write_pipeline(tmp_path / "cfg2", trial, name="cohort", **OPTIONS), tmp_path / "dask",
                   scheduler=cluster.scheduler_address, stages=False)
    assert dask.failed == 0 and dask.stage_errors == {}
    for name in ("populations.parquet", "gating_cohort/refits.parquet", "gating_cohort/positions.parquet"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
    refits = pd.read_parquet(tmp_path / "local" / "gating_cohort" / "refits.parquet")
    pops = pd.read_parquet(tmp_path / "local" / "populations.parquet")
    assert len(refits) > 0
    assert pops["method"].str.endswith("+cohort").sum() == int(refits["changed"].sum()) > 0
    # both executors' tables (byte-identical above) carry review columns that follow the final flags:
    # the cohort stage's cohort_outlier is a note
    assert_review_columns_follow_flags(pops)
    refitted = pops[pops["method"].str.endswith("+cohort")]
    assert refitted["notes"].str.split(";").map(lambda w: "cohort_outlier" in w).all()
