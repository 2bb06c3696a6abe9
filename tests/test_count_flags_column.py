"""The populations table's ``count_flags`` column: flags of the absolute count alone (``count_low``), kept out of
``flags`` / ``review`` (the gating's, for the percentages) and read by everything that shows or summarises
counts: the patient report marks the cells/µL value, the visit summaries count it in ``n_review`` of cells/µL
(not of %), and folders written before the column read it as ''."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytokit.report import ReportOptions, build_reports
from cytokit.results import coerce, read_table
from cytokit.results import schema as S
from cytokit.trial.comparisons import summarise
from cytokit.trial.config import TrialConfig, TubeSelection
from cytokit.trial.inputs import check_clinical, check_populations
from cytokit.trial.values import COUNT_REVIEW, patient_visit_values, select_tubes

from test_report import make_results
from test_report_browser import _chromium
from test_report_outputs import dom_rows


def _with_count_low(root: Path, patient: str = "P01", visit: str = "W0", population: str = "CD4 T",
                    words: str = "count_low") -> None:
    pops = pd.read_parquet(root / "populations.parquet")
    pops[S.COUNT_FLAGS] = ""
    pops.loc[(pops["patient"] == patient) & (pops["population"] == population) & (pops["visit"] == visit),
             S.COUNT_FLAGS] = words
    pops.to_parquet(root / "populations.parquet")


def test_a_table_without_count_flags_reads_it_empty_where_the_schema_puts_it():
    row = {c: "" for c in S.POPULATION_COLUMNS if c != S.COUNT_FLAGS}
    row.update({S.FLAGS: "uncertain", S.ABS_METHOD: "single_platform"})
    df = coerce(pd.DataFrame([row]))
    assert list(df.columns) == list(S.POPULATION_COLUMNS)
    assert df.loc[0, S.COUNT_FLAGS] == "" and bool(df.loc[0, S.REVIEW])
    assert S.COLUMNS[S.COUNT_FLAGS].kind == "text"


def test_count_flags_survive_csv_and_parquet(tmp_path):
    root = make_results(tmp_path / "res", patients=("P01",))
    _with_count_low(root)
    pops = pd.read_parquet(root / "populations.parquet")
    pops.to_csv(root / "populations.csv", index=False)
    from_parquet = read_table(root, S.POPULATIONS)
    (root / "populations.parquet").unlink()
    from_csv = read_table(root, S.POPULATIONS)
    for table in (from_parquet, from_csv):
        assert (table[S.COUNT_FLAGS] == "count_low").sum() == 1
        assert not table.loc[table[S.COUNT_FLAGS] == "count_low", S.REVIEW].any()  # % rows stay unflagged


def test_a_mean_over_tubes_keeps_any_tubes_count_flags():
    rows = pd.DataFrame({
        S.PATIENT: "P1", S.VISIT: "W0", S.POPULATION: "NK cells", S.TUBE: ["tbnk", "nkb"], S.SAMPLE_ID: ["a", "b"],
        S.WEEK: 0, S.ARM: "A", S.PARENT_COUNT: 1000, S.PCT_PARENT: [10.0, 11.0], S.PCT_LYMPHOCYTES: [10.0, 11.0],
        S.ABS_COUNT: [200.0, 180.0], S.REVIEW: [False, False], S.COUNT_FLAGS: ["", "count_low"]})
    assert select_tubes(rows, TubeSelection(rule="mean")).iloc[0][S.COUNT_FLAGS] == "count_low"


def test_visit_summaries_count_flagged_counts_under_cells_per_uL_only(tmp_path):
    root = make_results(tmp_path / "res", patients=("P01", "P02"))
    _with_count_low(root)  # P01's baseline CD4 count (not its %) may be wrong
    config = TrialConfig()
    table = check_populations(read_table(root, S.POPULATIONS))
    clinical = check_clinical(pd.read_csv(root / "clinical.csv", dtype={"patient": str}))
    values = patient_visit_values(table, clinical, config)
    v = values.set_index(["patient", "visit", "population"])
    assert v.loc[("P01", "W0", "CD4 T"), COUNT_REVIEW] and not v.loc[("P01", "W0", "CD4 T"), S.REVIEW]
    assert v.loc[("P01", "W24", "CD4 T"), f"{COUNT_REVIEW}_baseline"]
    visits = sorted(values[S.VISIT].unique())
    empty = pd.DataFrame(columns=[S.POPULATION, "measure", S.ARM, "auc_mb", "auc_mb_per_week"])
    summ = summarise(values, empty, config, visits)
    arm = values.loc[values[S.PATIENT] == "P01", S.ARM].iloc[0]
    cd4 = summ[(summ[S.POPULATION] == "CD4 T") & (summ[S.ARM] == arm)].set_index(["measure", S.VISIT, "quantity"]).sort_index()
    later = [x for x in visits if x != "W0"]
    assert cd4.loc[(S.ABS_COUNT, "W0", "value"), "n_review"] == 1
    assert all(cd4.loc[(S.ABS_COUNT, x, "value"), "n_review"] == 0 for x in later)
    assert all(cd4.loc[(S.ABS_COUNT, x, "change"), "n_review"] == 1 for x in later)  # from the flagged baseline
    assert (cd4.loc[S.PCT_PARENT, "n_review"].dropna() == 0).all()  # its percentages are not in doubt


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = make_results(tmp_path_factory.mktemp("count_flags_report"), patients=("P01",))
    _with_count_low(root, visit="W24", words="count_low;count_uncertain")
    written = build_reports(root, options=ReportOptions(pdf=False), generated="2026-01-01", force=True)
    return next(p for p in written if p.name == "P01.html")


def test_report_marks_the_count_not_the_row(page, tmp_path):
    dom, rows = dom_rows(_chromium(), page, tmp_path / "profile")
    header = next(r for r in rows if "pops" in r["table"].get("class", "") and r["cells"][0]["tag"] == "th")
    i_abs = [c["text"] for c in header["cells"]].index("cells/µL")
    cd4 = [r for r in rows if r["attrs"].get("data-population") == "CD4 T"]
    assert len(cd4) == 3
    w24 = cd4[1]
    assert w24["attrs"]["data-review"] == "false"  # its % is not in doubt: no row badge
    assert "REVIEW" in w24["cells"][i_abs]["text"] and "count_low" in w24["cells"][i_abs]["text"]
    assert "count_uncertain" in w24["cells"][i_abs]["text"]
    assert "REVIEW" not in w24["cells"][1]["text"]
    for r in (cd4[0], cd4[2]):
        assert "REVIEW" not in " ".join(c["text"] for c in r["cells"])
    assert dom.count("count-review-legend") == 1
    derived = {r["attrs"]["data-visit"]: r["cells"] for r in rows if "data-visit" in r["attrs"]}
    assert "REVIEW" in derived["W24"][1]["text"]  # the CD4 count of the derived table rests on it
    assert "REVIEW" not in derived["W0"][1]["text"]
    gates = {(r["cells"][0]["text"], r["cells"][1]["text"]): r["cells"] for r in rows
             if "gates" in r["table"].get("class", "") and r["cells"][0]["tag"] == "td"}
    assert "CD4 T (cells/µL): count_low; count_uncertain" in " ".join(c["text"] for c in gates[("W24", "tmem")])
