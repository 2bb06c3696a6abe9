"""The lymphocyte denominator of ``% of lymphocytes``: the strategy's population, recorded by the run, used
alike by the patient report and the table ``cytokit gate`` prints (cytokit.results.denominators)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main
from cytokit.report import ReportOptions, load_reference_intervals
from cytokit.results.denominators import above_text, denominators
from cytokit.report.patient import build_patient_report
from cytokit.report.store import load_results
from test_report import make_results

REPO = Path(__file__).resolve().parents[1]


def _rows(t_cells_pct: float) -> pd.DataFrame:
    return pd.DataFrame({
        "tube": ["tmem"] * 4, "population": ["Lymphocytes", "Singlets", "T cells", "CD4 T"],
        "parent": ["", "Lymphocytes", "Singlets", "T cells"], "pct_lymphocytes": [102.0, 100.0, t_cells_pct, 40.0]})


def test_recorded_denominator_first_then_the_shallowest_100_percent_gate():
    # every singlet is a T cell: T cells are at 100 % too, but below the denominator (same count)
    rows = _rows(100.0)
    assert denominators(rows) == {"tmem": ("Singlets", {"Lymphocytes"})}  # inferred: the shallowest at 100 %
    assert denominators(rows, {"tmem": "Singlets"}) == {"tmem": ("Singlets", {"Lymphocytes"})}
    # a recorded (or declared) name with a row wins over the inference, whatever it says
    assert denominators(rows, {"tmem": "T cells"}) == {"tmem": ("T cells", {"Singlets", "Lymphocytes"})}
    # the fitted strategy's declared name comes before the one a run stored
    assert denominators(rows, {"tmem": "T cells"}, declared={"tmem": "Singlets"})["tmem"].name == "Singlets"
    # a recorded name without a row (another tube's strategy, an old run) falls back to inference
    assert denominators(_rows(70.0), {"tmem": "Live"}) == {"tmem": ("Singlets", {"Lymphocytes"})}
    assert denominators(_rows(70.0).drop(columns="tube"), {"": "Singlets"}) == {"": ("Singlets", {"Lymphocytes"})}


def test_report_uses_the_denominator_the_run_recorded(tmp_path):
    root = make_results(tmp_path / "res", patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")
    pops.loc[pops["population"] == "Lymphocytes", "pct_lymphocytes"] = 105.0
    pops.loc[(pops["population"] == "T cells") & (pops["tube"] == "tmem"), "pct_lymphocytes"] = 100.0
    pops.to_parquet(root / "populations.parquet")
    info = json.loads((root / "run_info.json").read_text())

    def rows_of(lymphocytes: str | None) -> tuple[dict, dict]:
        if lymphocytes is None:
            info["tubes"]["tmem"].pop("lymphocytes", None)
        else:
            info["tubes"]["tmem"]["lymphocytes"] = lymphocytes
        (root / "run_info.json").write_text(json.dumps(info))
        report = build_patient_report(load_results(root), "P01", ReportOptions(pdf=False), load_reference_intervals())
        visit = report.visits[0]
        return {r["population"]: r for r in visit["rows"] if r["tube"] == "tmem"}, visit["denominators"]

    # without the recorded name (results written before it was): the same rule as the pipeline, the
    # shallowest gate at 100 %, not T cells (also 100 % here, as deep as every single lymphocyte being one)
    inferred, dens = rows_of(None)
    assert dens["tmem"] == "Singlets" and not inferred["Singlets"]["above_denominator"]
    assert inferred["Singlets"]["pct_lymphocytes"] == 100.0 and inferred["T cells"]["pct_lymphocytes"] == 100.0
    assert inferred["Lymphocytes"]["above_denominator"] and inferred["Lymphocytes"]["pct_lymphocytes"] is None
    recorded, dens = rows_of("T cells")  # a recorded name is used as recorded
    assert dens["tmem"] == "T cells" and recorded["Singlets"]["above_denominator"]
    recorded, dens = rows_of("Singlets")
    assert dens["tmem"] == "Singlets"
    assert not recorded["Singlets"]["above_denominator"] and recorded["Singlets"]["pct_lymphocytes"] == 100.0
    assert recorded["T cells"]["pct_lymphocytes"] == 100.0
    assert recorded["Lymphocytes"]["above_denominator"] and recorded["Lymphocytes"]["pct_lymphocytes"] is None
    assert recorded["Lymphocytes"]["above_text"] == above_text("Singlets") == "above Singlets"


def test_cli_gate_names_the_denominator_instead_of_more_than_100_percent(capsys):
    assert main(["gate", str(REPO / "sample_data" / "fcs" / "P001_W0_tmem.fcs"), "--strategy", "tmem"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "% lymphocytes" in line and "population" in line)
    names = [c.strip() for c in re.split(r"[┃│]", header)[1:-1]]
    i_pct, rows = names.index("% lymphocytes"), {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == len(names):
            rows[cells[0]] = cells[i_pct]
    assert len(rows) == 14
    assert rows["Lymphocytes"] == "above Singlets"
    assert rows["Singlets"] == "100.00"
    numbers = [float(v) for v in rows.values() if re.fullmatch(r"[0-9.]+", v)]
    assert len(numbers) == 13 and max(numbers) <= 100.0
    assert "% lymphocytes = % of Singlets" in out


def test_run_info_records_each_tubes_lymphocyte_population(tmp_path):
    from cytokit.simulate import simulate_file

    fcs = tmp_path / "fcs"
    fcs.mkdir()
    simulate_file(fcs / "S0_W0_tmem.fcs", n_events=4000, tube="tmem", instrument="bd", seed=3, arm="control", week=0)
    assert main(["-q", "run", "--input", str(fcs), "--panel", "il2_trial", "--strategy", "tmem", "--tube", "tmem",
                 "--out", str(tmp_path / "run")]) == 0
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["tubes"]["tmem"]["lymphocytes"] == "Singlets"
    store = load_results(tmp_path / "run")
    pops = store.populations
    assert denominators(pops, {"tmem": info["tubes"]["tmem"]["lymphocytes"]})["tmem"] == ("Singlets", {"Lymphocytes"})
    # the stored table agrees with what reports and `cytokit gate` show: no % of lymphocytes above Singlets
    by_pop = pops.set_index("population")
    assert math.isnan(by_pop.loc["Lymphocytes", "pct_lymphocytes"]) and by_pop.loc["Singlets", "pct_lymphocytes"] == 100.0
    assert by_pop["pct_lymphocytes"].drop("Lymphocytes").notna().all()


def test_gating_result_has_no_percent_of_lymphocytes_above_the_denominator():
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy

    pops = load_strategy("tmem").apply(read_fcs(REPO / "sample_data" / "fcs" / "P001_W0_tmem.fcs")).populations
    by_pop = pops.set_index("population")
    assert by_pop.loc["Lymphocytes", "count"] > by_pop.loc["Singlets", "count"]  # doublets are above Singlets
    assert math.isnan(by_pop.loc["Lymphocytes", "pct_lymphocytes"])
    assert by_pop.loc["Singlets", "pct_lymphocytes"] == 100.0
    below = by_pop.drop("Lymphocytes")
    assert below["pct_lymphocytes"].notna().all() and below["pct_lymphocytes"].max() <= 100.0


def _counted_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "population": ["Lymphocytes", "Singlets", "T cells", "Beads"], "parent": ["", "Lymphocytes", "Singlets", ""],
        "count": [1020, 1000, 700, 500], "pct_lymphocytes": [np.nan, 100.0, 70.0, np.nan]})


def test_absolute_counts_above_the_denominator_are_missing_in_both_methods():
    from cytokit.pipeline.config import CountsConfig
    from cytokit.pipeline.counts import above_denominator, absolute_counts

    rows = _counted_rows()
    assert above_denominator(rows).tolist() == [True, False, False, False]
    dual, method, flags = absolute_counts(rows, {}, CountsConfig(method="dual_platform"), 2000.0)
    assert method == "dual_platform" and not flags
    assert math.isnan(dual[0]) and dual[1] == 2000.0 and dual[2] == 1400.0  # Singlets = the clinical count
    single, method, _ = absolute_counts(rows, {"beads_per_tube": 50000, "sample_volume_uL": 50},
                                        CountsConfig(method="single_platform"), float("nan"))
    assert method == "single_platform"
    assert math.isnan(single[0]) and math.isnan(single[3])  # scatter gate above Singlets; the beads themselves
    assert single[1] == 1000 * 50000 / (500 * 50) and single[2] == 700 * 50000 / (500 * 50)
    # a population outside the lymphocytes (no pct, no descendants with one) keeps its bead-based count
    mono = pd.concat([rows, pd.DataFrame({"population": ["Monocytes"], "parent": [""], "count": [100],
                                          "pct_lymphocytes": [np.nan]})], ignore_index=True)
    assert absolute_counts(mono, {"beads_per_tube": 50000, "sample_volume_uL": 50},
                           CountsConfig(method="single_platform"), float("nan"))[0][4] == 100 * 50000 / (500 * 50)


def test_lymphocyte_count_reference_interval_is_on_the_denominator():
    intervals = load_reference_intervals()
    assert intervals.lookup("Singlets", "abs_count_per_uL", "M") is not None
    assert intervals.lookup("Lymphocytes", "abs_count_per_uL", "M") is None


def test_gate_editor_counts_name_the_denominator():
    pytest.importorskip("ipywidgets", reason="ipywidgets is in the test extra")
    from cytokit.notebook import GateEditor

    editor = GateEditor("tmem", REPO / "sample_data" / "fcs" / "P001_W0_tmem.fcs", population="Lymphocytes")
    assert "above Singlets" in editor.counts.value and "of lymphocytes" not in editor.counts.value
    editor.picker.value = "Singlets"
    assert "100.00% of lymphocytes" in editor.counts.value


def test_results_written_before_schema_2_are_read_as_schema_2(tmp_path):
    """A folder written before results schema 2 stored the ratio above the denominator (Lymphocytes at
    102 %, a dual-platform count above the clinical lymphocyte count): every reader (trial tables, reports)
    gets NaN for those rows, by the same denominator rule; a schema-2 folder and a lone table as written."""
    from cytokit.results import read_table
    from cytokit.trial.inputs import load_inputs

    root = make_results(tmp_path / "res", patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")
    lym = pops["population"] == "Lymphocytes"
    assert lym.any()
    pops.loc[lym, "pct_lymphocytes"] = 102.0
    pops.loc[lym, "abs_count_per_uL"] = 1530.0
    pops.to_parquet(root / "populations.parquet")
    info = json.loads((root / "run_info.json").read_text())
    assert "results_schema" not in info  # written before the schema was versioned: schema 1

    for table in (read_table(root, "populations"), load_inputs(root).populations):
        rows = table[table["population"] == "Lymphocytes"]
        assert len(rows) == lym.sum() and rows["pct_lymphocytes"].isna().all() and rows["abs_count_per_uL"].isna().all()
        singlets = table[table["population"] == "Singlets"]
        assert (singlets["pct_lymphocytes"] == 100.0).all() and singlets["abs_count_per_uL"].notna().all()
        # the rest of the table as stored
        for col in ("pct_lymphocytes", "abs_count_per_uL", "pct_parent"):
            got = table.loc[table["population"] != "Lymphocytes", col].to_numpy(dtype=float)
            np.testing.assert_array_equal(got, pops.loc[~lym, col].to_numpy(dtype=float))

    # a table whose index repeats labels (concatenated frames) is blanked by position
    from cytokit.results.denominators import blank_above_denominator

    twice = pd.concat([pops, pops.assign(sample_id=pops["sample_id"] + "b")])
    out, n = blank_above_denominator(twice)
    assert n == 2 * lym.sum() and out.index.equals(twice.index)
    assert out["pct_lymphocytes"].isna().sum() == twice["pct_lymphocytes"].isna().sum() + n

    info["results_schema"] = "2"
    (root / "run_info.json").write_text(json.dumps(info))
    assert (read_table(root, "populations").loc[lambda t: t["population"] == "Lymphocytes", "pct_lymphocytes"]
            == 102.0).all()
    (root / "run_info.json").unlink()
    assert (read_table(root, "populations").loc[lambda t: t["population"] == "Lymphocytes", "pct_lymphocytes"]
            == 102.0).all()
