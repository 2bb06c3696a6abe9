"""The results-folder schema and its one reader (cytokit.results)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import ClusterError, StatsError
from cytokit.pipeline.runner import write_table_with_inputs
from cytokit.results import SCHEMA_VERSION, ResultsFolder, coerce, read_run_info, read_table
from cytokit.results import schema as S


def _populations() -> pd.DataFrame:
    rows = []
    for i, (patient, week) in enumerate((("007", 0), ("010", 12))):
        for pop, parent, count in (("T cells", "Singlets", 700), ("CD4 T", "T cells", 400)):
            rows.append({S.SAMPLE_ID: f"{patient}_W{week}", S.FILE: f"{patient}.fcs", S.SHA256: "ab" * 32,
                         S.PATIENT: patient, S.VISIT: f"W{week}", S.WEEK: week, S.ARM: "IL-2", S.TUBE: "tmem",
                         S.POPULATION: pop, S.PARENT: parent, S.COUNT: count + i, S.PARENT_COUNT: 1000,
                         S.PCT_PARENT: 100.0 * (count + i) / 1000, S.PCT_LYMPHOCYTES: np.nan,
                         S.ABS_COUNT: 512.5 if pop == "CD4 T" else np.nan, S.ABS_METHOD: "", S.MARKER_MEDIANS: "{}",
                         S.METHOD: "threshold", S.FLAGS: None if i else "no_valley", S.QC_FLAGS: "",
                         S.PHENOTYPE: ""})
    return coerce(pd.DataFrame(rows, columns=list(S.POPULATION_COLUMNS)))


def test_schema_names_every_stored_column_once():
    assert len(set(S.POPULATION_COLUMNS)) == len(S.POPULATION_COLUMNS)
    for col in (*S.POPULATION_COLUMNS, *S.SAMPLE_RESULT_COLUMNS):
        assert col in S.COLUMNS, col
    assert S.COLUMNS[S.PCT_PARENT].unit == "%" and S.COLUMNS[S.ABS_COUNT].unit == "cells/µL"
    assert S.COLUMNS[S.COUNT].kind == "int"


def test_coerce_gives_stable_dtypes():
    df = _populations()
    assert str(df[S.COUNT].dtype) == "Int64" and str(df[S.WEEK].dtype) == "Int64"
    assert df[S.PCT_LYMPHOCYTES].dtype == np.float64
    assert df[S.FLAGS].tolist() == ["no_valley", "no_valley", "", ""]  # missing text is ""
    assert df[S.PATIENT].tolist()[0] == "007"
    again = coerce(df.copy())
    pd.testing.assert_frame_equal(again, df)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_read_back_equal(tmp_path, fmt):
    df = _populations()
    write_table_with_inputs(df, tmp_path / S.POPULATIONS, (fmt,), "{}")
    back = read_table(tmp_path, S.POPULATIONS, required=True)
    pd.testing.assert_frame_equal(back, df)


def test_missing_and_damaged_tables_raise_the_callers_error(tmp_path):
    assert read_table(tmp_path, S.POPULATIONS) is None
    with pytest.raises(StatsError, match="has no populations.parquet or populations.csv; run"):
        read_table(tmp_path, S.POPULATIONS, required=True, error=StatsError)
    (tmp_path / "populations.parquet").write_bytes(b"not parquet")
    with pytest.raises(ClusterError, match="populations.parquet: cannot read table"):
        read_table(tmp_path, S.POPULATIONS, error=ClusterError)


def test_other_tables_keep_identifiers_as_text(tmp_path):
    (tmp_path / "clinical.csv").write_text("patient,visit,lymphocytes_per_uL\n007,W0,1500\n")
    df = read_table(tmp_path, S.CLINICAL)
    assert df[S.PATIENT].tolist() == ["007"] and df[S.LYMPHOCYTES_PER_UL].dtype.kind in "if"


def test_run_info_and_stored_results(tmp_path, caplog):
    assert read_run_info(tmp_path) == {}
    (tmp_path / S.RUN_INFO).write_text(json.dumps({S.RUN_INFO_SCHEMA_KEY: SCHEMA_VERSION, "status": "complete"}))
    assert read_run_info(tmp_path)["status"] == "complete"
    (tmp_path / S.RUN_INFO).write_text(json.dumps({S.RUN_INFO_SCHEMA_KEY: "0"}))
    with caplog.at_level("WARNING"):
        read_run_info(tmp_path)
    assert "results schema 0" in caplog.text
    folder = ResultsFolder(tmp_path)
    folder.sample_dir("a/b").mkdir(parents=True)
    folder.result_path("a/b").write_text(json.dumps({"gates": [{"population": "T cells"}]}))
    assert folder.sample_result("a/b")["gates"][0]["population"] == "T cells"
    assert folder.gate_records(["a/b", "missing"]) == [{"population": "T cells"}]
