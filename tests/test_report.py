"""Per-patient reports: content, reference flags, escaping, file names, PDF pages, CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main as cli_main
from cytokit.errors import ConfigError, ReportError
from cytokit.io_utils import safe_name
from cytokit.report import ReportOptions, build_reports, flag, load_reference_intervals

EVIL = "<script>alert('x')</script>"
POPS = [  # population, parent, tube, pct_lymphocytes at baseline
    ("Lymphocytes", "root", "tmem", None), ("Singlets", "Lymphocytes", "tmem", 100.0),
    ("T cells", "Singlets", "tmem", 70.0), ("CD4 T", "T cells", "tmem", 20.0), ("CD8 T", "T cells", "tmem", 45.0),
    ("Naive CD4", "CD4 T", "tmem", 8.0), ("Memory CD4", "CD4 T", "tmem", 12.0),
    ("CD28+ CD4", "CD4 T", "tmem", 17.0), ("CD25+ CD4", "CD4 T", "tmem", 3.0),
    ("NK cells", "Singlets", "nkb", 9.0), ("B cells", "Singlets", "nkb", 12.0), ("T cells", "Singlets", "nkb", 70.0),
]
VISITS = [("W0", 0, "2024-01-08"), ("W24", 24, "2024-06-24"), ("W74", 74, "2025-06-09")]


def _thumb(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path, format="png", dpi=40)
    plt.close(fig)


def make_results(root: Path, patients=("P01", "P02", EVIL)) -> Path:
    """A small hand-made results folder following the results-store contract."""
    rows, samples, clinical, cycles = [], [], [], []
    for k, patient in enumerate(patients):
        arm = "IL-2" if k % 2 == 0 else "control"
        lymph = 1500.0
        for vi, (visit, week, date) in enumerate(VISITS):
            gain = 1.0 + (0.9 if arm == "IL-2" else 0.3) * vi / 2  # CD4 grows over visits
            for tube in ("tmem", "nkb"):
                sid = safe_name(f"{patient}_{visit}_{tube}")
                samples.append({"sample_id": sid, "file": f"fcs/{sid}{EVIL if k == 2 else ''}.fcs",
                                "sha256": f"{k:02d}{vi}" + "ab" * 31, "patient": patient, "visit": visit,
                                "week": week, "arm": arm, "tube": tube, "status": "ok", "error": "",
                                "n_events": 10000, "n_events_qc": 9800, "lymphocytes": 4200,
                                "lymphosum_pct": 91.0 if tube == "nkb" else np.nan,
                                "cd4_cd8_vs_cd3_pct": 99.0 if tube == "tmem" else np.nan,
                                "qc_flags": "time_anomaly" if vi == 1 else "", "check_flags": ""})
                _thumb(root / "samples" / sid / "gates.png")
            singlets = 4000
            for pop, parent, tube, pct in POPS:
                if pct is None:
                    count, pct_l = 4200, np.nan
                else:
                    scale = gain if pop in ("CD4 T", "Naive CD4", "Memory CD4", "CD28+ CD4", "CD25+ CD4") else 1.0
                    pct_l = pct * scale
                    count = int(round(singlets * pct_l / 100))
                rows.append({"sample_id": safe_name(f"{patient}_{visit}_{tube}"), "patient": patient, "visit": visit,
                             "week": week, "arm": arm, "tube": tube, "population": pop, "parent": parent,
                             "count": count if pop != "CD25+ CD4" else 40, "pct_parent": 50.0,
                             "pct_lymphocytes": pct_l,
                             "abs_count_per_uL": (pct_l / 100 * lymph) if pct is not None else lymph,
                             "flags": "fallback_quantile" if pop == "CD25+ CD4" else "",
                             "phenotype": "CD3+ CD4+" if pop == "CD4 T" else ""})
            clinical.append({"patient": patient, "arm": arm, "sex": "M" if k != 1 else "F", "age": 40 + k,
                             "stratum": "A", "visit": visit, "week": week, "date": date, "lymphocytes_per_uL": lymph})
        if arm == "IL-2":
            cycles += [{"patient": patient, "cycle": 1, "start_date": "2024-01-15", "end_date": "2024-01-19"},
                       {"patient": patient, "cycle": 2, "start_date": "2024-06-17", "end_date": "2024-06-21"}]
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "populations.parquet")
    pd.DataFrame(samples).to_parquet(root / "samples.parquet")
    pd.DataFrame(clinical).to_csv(root / "clinical.csv", index=False)
    pd.DataFrame(cycles).to_csv(root / "il2_cycles.csv", index=False)
    (root / "run_info.json").write_text(json.dumps({
        "cytokit_version": "0.1.0", "config_hash": "c0ffee", "pipeline": "pipelines/il2_trial.yaml",
        "package_versions": {"numpy": np.__version__},
        "tubes": {"tmem": {"panel": "il2_trial", "strategy": "tmem", "strategy_hash": "deadbeef" * 8,
                           "compensation": "acquisition matrix ($SPILLOVER)", "transforms": "logicle",
                           "reagents": {"CD4": "PE-Cy7", "CD3": f"PerCP {EVIL}"}}}}))
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def written(results) -> list[Path]:
    return build_reports(results, options=ReportOptions(pdf=True), generated="2026-01-01")


def test_one_html_and_pdf_per_patient_with_sanitised_names(results, written):
    htmls = sorted(p for p in written if p.suffix == ".html")
    pdfs = sorted(p for p in written if p.suffix == ".pdf")
    assert len(htmls) == 3 and len(pdfs) == 3
    for p in written:
        assert p.parent == results / "reports"
        assert re.fullmatch(r"[A-Za-z0-9._+-]+", p.name), p.name
    assert not list(results.rglob("*<*"))  # no file name carries the markup


def test_html_is_self_contained_and_escaped(written):
    html = next(p for p in written if p.name == "P01.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # the reagent text from run info is shown as text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html)
    assert "<link" not in html
    assert html.count("data:image/png;base64,") >= 1 + 6  # trend plot + 2 thumbnails per visit
    evil_html = next(p for p in written if p.name.startswith("script")).read_text()
    assert "<script>alert" not in evil_html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in evil_html


def test_content_values_flags_and_il2_timing(results, written):
    html = next(p for p in written if p.name == "P01.html").read_text()
    intervals = load_reference_intervals()
    for section in ("Identification", "Derived values", "Trends", "Visit W0", "Visit W74", "Quality control",
                    "Methods (MIFlowCyt)"):
        assert section in html
    pops = pd.read_parquet(results / "populations.parquet")
    p01 = pops[(pops.patient == "P01") & (pops.population == "CD4 T")].set_index("visit")
    # CD4 absolute count at baseline and its flag against the male interval from the YAML
    cd4_w0 = p01.loc["W0", "abs_count_per_uL"]
    assert f"{cd4_w0:,.0f}" in html
    iv = intervals.lookup("CD4 T", "abs_count_per_uL", "M")
    assert flag(cd4_w0, iv) == "L"  # 300/µL is below the adult interval
    # the flag names the measure(s) whose interval triggered it
    flag_cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r'class="flag flag-L">(.*?)</td>', html)]
    assert {"L (cells/µL)", "L (% and cells/µL)"} & set(flag_cells), flag_cells  # the measure named, in words
    # change from baseline and responder flag at W74
    change = p01.loc["W74", "abs_count_per_uL"] - cd4_w0
    assert f"{change:+,.0f}" in html
    assert f"{100 * change / cd4_w0:+,.0f}" in html
    # IL-2 timing: W24 sample on 2024-06-24, cycle 2 ended 2024-06-21
    assert "3 days after cycle 2" in html
    assert "low events" in html  # CD25+ CD4 has 40 events in its gate
    assert "fallback_quantile" in html.replace("<wbr>", "")  # flag lists carry line-break opportunities
    assert "deadbeef" in html and "abab" in html  # strategy hash and file sha256 in methods


def test_pdf_pages_and_text(written):
    pypdf = pytest.importorskip("pypdf", reason="pypdf is a test dependency")
    pdf = next(p for p in written if p.name == "P01.pdf")
    reader = pypdf.PdfReader(str(pdf))
    assert len(reader.pages) >= 4  # identification/trends, one page per visit, QC/methods
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "P01" in text and "Quality control" in text and "Visit W24" in text


def test_unknown_patient_and_missing_results(results, tmp_path):
    with pytest.raises(ReportError, match="unknown patient"):
        build_reports(results, patients=["nobody"], options=ReportOptions(pdf=False), out_dir=tmp_path)
    with pytest.raises(ReportError, match="no populations table"):
        build_reports(tmp_path, options=ReportOptions(pdf=False))


def test_reference_interval_file_is_validated(tmp_path):
    bad = tmp_path / "ri.yaml"
    bad.write_text("name: x\nintervals:\n  - population: CD4 T\n    measure: abs_count_per_uL\n"
                   "    low: 900\n    high: 300\n    source: somewhere\n")
    with pytest.raises(ConfigError, match=r"ri.yaml:3: intervals.0"):
        load_reference_intervals(bad)
    intervals = load_reference_intervals()
    assert all(iv.source for iv in intervals.intervals)
    assert intervals.lookup("cd4 t", "abs_count_per_uL", "F").sex == "F"


def test_cli_report_single_patient(results, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(["report", str(results), "--patient", "P02", "--no-pdf", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["P02.html"]
    assert cli_main(["report", str(results), "--patient", "zz", "--no-pdf", "--out", str(out)]) == 2
    assert "unknown patient" in capsys.readouterr().err
