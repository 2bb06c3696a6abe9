"""Review fixes of the per-patient reports: interval choice for trend bands, one bad patient skipped."""
from __future__ import annotations

import pandas as pd
import pytest

from cytokit.report import ReportOptions, build_reports, load_reference_intervals
from cytokit.report.patient import build_patient_report
from cytokit.report.store import load_results
from test_report import make_results


def test_trend_band_uses_the_sex_specific_interval_like_the_tables(tmp_path):
    root = make_results(tmp_path / "res", patients=("P01",))  # P01 is male
    ri = tmp_path / "ri.yaml"
    ri.write_text("name: mixed\nintervals:\n"
                  "  - {population: CD4 T, measure: abs_count_per_uL, sex: M, low: 400, high: 1400, source: male}\n"
                  "  - {population: CD4 T, measure: abs_count_per_uL, sex: any, low: 10, high: 20, source: all}\n")
    intervals = load_reference_intervals(ri)
    report = build_patient_report(load_results(root), "P01", ReportOptions(pdf=False), intervals)
    band = report.intervals[("CD4 T", "abs_count_per_uL")]
    assert band == intervals.lookup("CD4 T", "abs_count_per_uL", "M")
    assert band.sex == "M" and band.low == 400


def test_a_patient_whose_rows_fail_the_trial_checks_is_reported_not_fatal(tmp_path):
    root = make_results(tmp_path / "res", patients=("P01", "P02"))
    pops = pd.read_parquet(root / "populations.parquet")
    pops.loc[(pops["patient"] == "P02") & (pops["visit"] == "W74"), "arm"] = "IL-2"  # P02 in two arms
    pops.to_parquet(root / "populations.parquet")
    from cytokit.report.build import ReportsIncomplete

    with pytest.raises(ReportsIncomplete) as info:  # the others are written, the failure is not silent
        build_reports(root, options=ReportOptions(pdf=False), out_dir=tmp_path / "out")
    assert [p.name for p in info.value.written] == ["P01.html"] and list(info.value.failed) == ["P02"]
    assert (tmp_path / "out" / "P01.html").is_file()


def test_numeric_looking_ids_in_csv_tables_still_match_the_patient(tmp_path):
    root = make_results(tmp_path / "res", patients=("007", "010"))  # clinical.csv holds 007, 010
    store = load_results(root)
    assert set(store.clinical["patient"]) == {"007", "010"}
    report = build_patient_report(store, "007", ReportOptions(pdf=False), load_reference_intervals())
    assert report.identity["sex"] == "M" and report.identity["age"] == 40
    assert report.identity["n_cycles"] == 2
    assert [v["lymphocytes_per_uL"] for v in report.visits] == [1500.0] * 3


def test_cycle_table_without_dates_still_gives_a_report(tmp_path):
    root = make_results(tmp_path / "res", patients=("P01",))
    cycles = pd.read_csv(root / "il2_cycles.csv", dtype=str)
    cycles.drop(columns=["start_date", "end_date"]).to_csv(root / "il2_cycles.csv", index=False)
    report = build_patient_report(load_results(root), "P01", ReportOptions(pdf=False), load_reference_intervals())
    assert report.identity["n_cycles"] == 2
    assert report.cycles_weeks == []
    assert [v["days_since_il2"] for v in report.visits] == ["baseline", "", ""]  # no timing without dates
    assert [p.name for p in build_reports(root, options=ReportOptions(pdf=False))] == ["P01.html"]
