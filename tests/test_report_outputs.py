"""What a clinician and a trial statistician see: the patient report and the trial summary rendered by
headless Chromium and checked in the DOM, PDF pages rendered with pdftoppm and checked for repeated table
headers and lone rows at page breaks, and figures drawn twice compared byte for byte."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.report import ReportOptions, build_reports, load_reference_intervals
from cytokit.report.patient import build_patient_report
from cytokit.report.store import load_results
from cytokit.trial import TrialConfig, run_comparisons
from cytokit.trial.attainable import fisher_min_p, rank_sum_min_p
from cytokit.trial.html import ALPHA, render_summary

from test_report import make_results
from test_report_browser import _chromium, _run
from test_trial_data import make_trial


class Rows(HTMLParser):
    """Table rows of a DOM: per row its table id/class, row attributes and cells (class, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.rows: list[dict] = []
        self._row: dict | None = None
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"id": a.get("id", ""), "class": a.get("class", "")})
        elif tag == "tr":
            self._row = {"table": dict(self.tables[-1]) if self.tables else {}, "attrs": a, "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"tag": tag, "class": a.get("class", "") or "", "attrs": a, "text": ""}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._cell["text"] = " ".join(self._cell["text"].split())
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None


def dom_rows(exe: str, page: Path, profile: Path) -> tuple[str, list[dict]]:
    dom = _run(exe, profile, "--dump-dom", page.as_uri()).stdout
    parser = Rows()
    parser.feed(dom)
    return dom, parser.rows


def _engine_like(root: Path) -> Path:
    """make_results made closer to what the gating engine writes: the Lymphocytes gate sits above the
    lymphocyte denominator (Singlets), so its count / Singlets is > 100 %; T cells differ by tube; the
    panel lists markers the tube does not stain."""
    pops = pd.read_parquet(root / "populations.parquet")
    pops.loc[pops["population"] == "Lymphocytes", "pct_lymphocytes"] = 105.0
    nkb_t = (pops["population"] == "T cells") & (pops["tube"] == "nkb")
    pops.loc[nkb_t, "abs_count_per_uL"] *= 1.056
    pops.loc[nkb_t, "pct_lymphocytes"] *= 1.056
    pops.to_parquet(root / "populations.parquet")
    samples = pd.read_parquet(root / "samples.parquet")
    hit = (samples["patient"] == "P01") & (samples["visit"] == "W24") & (samples["tube"] == "tmem")
    samples.loc[hit, "qc_flags"] = "time_anomaly;markers_from_detector_names"
    samples.to_parquet(root / "samples.parquet")
    info = json.loads((root / "run_info.json").read_text())
    info["tubes"]["tmem"]["reagents"].update({"CCR7": "", "CD45RO": None})
    (root / "run_info.json").write_text(json.dumps(info))
    return root


@pytest.fixture(scope="module")
def report_root(tmp_path_factory) -> Path:
    return _engine_like(make_results(tmp_path_factory.mktemp("outputs"), patients=("P01", "P02")))


@pytest.fixture(scope="module")
def report_page(report_root) -> Path:
    written = build_reports(report_root, options=ReportOptions(pdf=False), generated="2026-01-01", force=True)
    return next(p for p in written if p.name == "P01.html")


def test_report_dom_one_value_per_population_and_no_percentage_above_100(report_page, tmp_path):
    exe = _chromium()
    dom, rows = dom_rows(exe, report_page, tmp_path / "profile")
    pop_rows = [r for r in rows if "pops" in r["table"].get("class", "") and "data-population" in r["attrs"]]
    assert pop_rows
    header = next(r for r in rows if "pops" in r["table"].get("class", "") and r["cells"][0]["tag"] == "th")
    names = [c["text"] for c in header["cells"]]
    i_pct = next(i for i, n in enumerate(names) if n.startswith("% of lymph"))
    i_parent = names.index("Parent")
    by_visit: dict[str, list[dict]] = {}
    for r in pop_rows:
        cells = r["cells"]
        text = cells[i_pct]["text"]
        number = re.fullmatch(r"[0-9,.]+", text)
        if number:  # no gate shows more than 100 % of the lymphocyte denominator
            assert float(text.replace(",", "")) <= 100.0, (r["attrs"], text)
        if r["attrs"]["data-population"] == "Lymphocytes":
            assert cells[i_parent]["text"] != "Lymphocytes" and text == "above Singlets"
        by_visit.setdefault(r["table"].get("id") or str(len(by_visit)), []).append(r)
    # one row per population and visit (the visit tables carry no id: count rows per population)
    t_rows = [r for r in pop_rows if r["attrs"]["data-population"] == "T cells"]
    assert len(t_rows) == 3  # W0, W24, W74: one T-cell count each, not one per tube
    for r in t_rows:
        assert r["attrs"]["data-tube"] == "tmem"  # preference tmem > nkb (TrialConfig().tubes)
        xcheck = next(c for c in r["cells"] if "xcheck" in c["class"])["text"]
        assert xcheck.startswith("nkb:") and "+5.6 %" in xcheck  # the other tube as a cross-check
    assert "preference order tmem &gt; nkb" in dom or "preference order tmem > nkb" in dom
    # flags say which measure triggered them
    flags = [r["cells"][-1]["text"] for r in pop_rows if r["cells"][-1]["text"]]
    assert flags and all(re.fullmatch(r"[HL] \((%|cells/µL|% and cells/µL)\)(, [HL] \(cells/µL\))?", f)
                         for f in flags), flags
    # baseline visit is baseline, not "during cycle 1"; methods list only measured markers
    timing = {r["cells"][0]["text"]: r["cells"][3]["text"] for r in rows
              if len(r["cells"]) == 5 and r["cells"][0]["tag"] == "td" and r["cells"][0]["text"] in ("W0", "W24")}
    assert timing["W0"].startswith("baseline") and "during" not in timing["W0"]
    methods = next(r for r in rows if r["cells"] and r["cells"][0]["text"] == "tmem" and len(r["cells"]) == 6)
    assert "CD4 PE-Cy7" in methods["cells"][2]["text"] and "CCR7" not in methods["cells"][2]["text"]
    assert "CD45RO" not in methods["cells"][2]["text"]
    # a data flag (markers from detector names) is shown with the visit it concerns, not only in QC
    warnings = re.findall(r'<p class="data-flag keep">(.*?)</p>', dom, flags=re.S)
    assert len(warnings) == 1 and "tmem: markers_from_detector_names" in warnings[0]
    assert dom.index('<p class="data-flag') > dom.index('id="visit-W24"') > dom.index('id="visit-W0"')


def test_trend_plots_use_the_tube_of_the_table(report_root):
    report = build_patient_report(load_results(report_root), "P01", ReportOptions(pdf=False),
                                  load_reference_intervals())
    t = report.trends[report.trends["population"] == "T cells"]
    assert len(t) == 3 and set(t["tube"]) == {"tmem"}
    table = [r for v in report.visits for r in v["rows"] if r["population"] == "T cells"]
    assert [r["abs"] for r in table] == list(t.sort_values("week")["abs_count_per_uL"])


def _pdf_pages(pdf: Path, out: Path) -> list[tuple[Path, str]]:
    """(PNG, text) of every page: pdftoppm renders, pdftotext reads the same page."""
    for tool in ("pdftoppm", "pdftotext"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} (poppler-utils) is not installed")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(out / "page")], check=True, timeout=120)
    pngs = sorted(out.glob("page-*.png"))
    pages = []
    for i, png in enumerate(pngs, start=1):
        text = subprocess.run(["pdftotext", "-layout", "-f", str(i), "-l", str(i), str(pdf), "-"],
                              capture_output=True, text=True, check=True).stdout
        pages.append((png, text))
    return pages


@pytest.mark.parametrize("n_extra", [35, 44])  # 35: one row over the page (lone-row case)
def test_pdf_repeats_table_headers_and_leaves_no_lone_row(tmp_path, n_extra):
    from PIL import Image

    root = make_results(tmp_path / "res", patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")
    base = pops[pops["population"] == "Naive CD4"]
    extra = [base.assign(population=f"Subset {i:02d}") for i in range(n_extra)]  # a table longer than a page
    pd.concat([pops, *extra]).to_parquet(root / "populations.parquet")
    pdf = next(p for p in build_reports(root, options=ReportOptions(pdf=True), generated="2026-01-01")
               if p.suffix == ".pdf")
    pages = _pdf_pages(pdf, tmp_path)
    assert len(pages) >= 6
    split = 0
    for png, text in pages:
        img = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert (img < 128).mean() > 0.002  # a rendered page, not a blank one
        rows = [line for line in text.splitlines() if re.match(r"\s*(tmem|nkb)\s+\S+.*\s(CD4 T|Singlets|root|"
                                                                r"Lymphocytes|T cells)\s", line)]
        if not rows:
            continue
        assert re.search(r"Tube\s+Population", text), "a page of population rows without the table header"
        assert len(rows) >= 2, f"a lone row at a page break: {rows}"
        if "Visit W" not in text:
            split += 1  # a continuation page of a visit table
    assert split >= 3  # each visit's table ran over a page break (so the checks above meant something)


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> tuple[Path, object]:
    pops, clin = make_trial(8, seed=3)
    root = tmp_path_factory.mktemp("trial_results")
    pops.to_parquet(root / "populations.parquet")
    clin.to_csv(root / "clinical.csv", index=False)
    cfg = TrialConfig(measures=["abs_count_per_uL", "pct_parent"], longitudinal={"model": "none"})
    res = run_comparisons(root, cfg)
    return root / "trial" / "summary.html", res


def test_summary_dom_bold_only_where_adjusted_p_below_alpha(summary, tmp_path):
    exe = _chromium()
    page, _ = summary
    dom, rows = dom_rows(exe, page, tmp_path / "profile")
    checked = sig = 0
    for r in rows:
        for c in r["cells"]:
            if "padj" not in c["class"]:
                continue
            checked += 1
            p_adj = float(c["attrs"]["data-p-adj"]) if c["attrs"].get("data-p-adj") else float("nan")
            p_cell = next(x for x in r["cells"] if re.search(r"\bp\b", x["class"]))
            bold = "sig" in c["class"].split()
            assert bold == (p_adj < ALPHA), (r["cells"][0]["text"], c["text"], c["class"])
            assert ("sig" in p_cell["class"].split()) == bold  # the raw P is never bold on its own
            sig += bold
    assert checked >= 10 and sig >= 1  # some results pass, some do not: both directions were checked
    assert 'class="sig"' not in dom  # no emphasis outside the P columns
    units = [r["cells"][2]["text"] for r in rows if r["table"].get("id") == "headline" and r["cells"][0]["tag"] == "td"]
    assert "percentage points (% of parent)" in units and "cells/µL" in units
    base = [r["cells"][0]["text"] for r in rows if r["table"].get("id") == "baseline" and r["cells"][0]["tag"] == "td"]
    assert "Lymphocytes" in base and not any("_" in b for b in base)


def test_summary_states_the_attainable_minimum_for_tiny_groups(tmp_path):
    pops, clin = make_trial(4, seed=5)
    root = tmp_path / "res"
    root.mkdir()
    pops.to_parquet(root / "populations.parquet")
    clin.to_csv(root / "clinical.csv", index=False)
    res = run_comparisons(root, TrialConfig(measures=["abs_count_per_uL"], longitudinal={"model": "none"}))
    html = (root / "trial" / "summary.html").read_text(encoding="utf-8")
    assert rank_sum_min_p(4, 4) == pytest.approx(2 / 70)
    assert 'id="attainable"' in html and "0.0286" in html
    head = res.headline
    floors = head.loc[head["test"] == "Wilcoxon rank-sum", "p_min"].tolist()
    assert floors and floors == pytest.approx([2 / 70] * len(floors))
    # raw P at the floor (0.0286) but adjusted P >= alpha: not bold
    at_floor = head[(head["p"] <= 0.03) & (head["p_adj"] >= ALPHA)]
    assert not at_floor.empty
    assert not re.search(r'class="num p sig">0\.0286<', html)
    # logistic regression with 3 terms on 8 patients: events-per-variable warning
    assert re.search(r'class="warning epv">[^<]*events per variable [0-9.]+ \(&lt; 10', html)
    # the forest plot shows arm effects only: one logistic row (the arm), no covariate rows
    assert not any("stratum" in str(x) or "baseline_cd4" in str(x) for x in res.figures)


def test_attainable_minimum_of_fisher_exact():
    assert fisher_min_p(4, 4, 4) == pytest.approx(2 / 70)  # 4/4 vs 0/4
    assert fisher_min_p(4, 4, 8) == 1.0  # everyone responded: nothing to compare
    assert fisher_min_p(20, 20, 20) < 1e-9


def test_not_converged_longitudinal_rows_are_greyed_and_never_bold():
    def row(flag, p):
        return {"test": "mixedlm", "endpoint": "", "population": "CD4 T", "measure": "pct_parent", "visit": "",
                "term": "arm x visit (joint)", "statistic": 9.0, "estimate_kind": "chi-square", "p": p,
                "p_adj": p, "flag": flag, "note": "", "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "n": 16}

    tests = pd.DataFrame([row("not_converged", 1e-5), row("", 1e-4)])
    empty = pd.DataFrame(columns=["endpoint", "arm", "visit", "responders", "n", "pct"])
    html = render_summary(headline=pd.DataFrame(columns=["unit", "p", "p_adj", "p_min"]), rates=empty, tests=tests,
                          baseline_wide=pd.DataFrame(columns=["characteristic", "level", "unit"]), figures={},
                          context={"title": "t", "treatment": "IL-2", "control": "control", "n_treatment": 8,
                                   "n_control": 8, "baseline": "W0", "final_visit": "W74",
                                   "responder_visit": "W74", "multiplicity": "holm", "longitudinal_model": "mixedlm",
                                   "version": "x", "notes": [], "flag_labels": {}})
    greyed = re.findall(r'<tr class="unreliable">.*?</tr>', html, flags=re.S)
    assert len(greyed) == 1 and "not_converged" in greyed[0] and "sig" not in greyed[0]
    assert "1 model(s) did not converge" in html
    assert html.count("padj sig") == 1  # the converged row only


def test_figures_are_byte_identical_across_two_runs(report_root, summary, tmp_path):
    from cytokit.cluster.plots import plot_abundance, plot_heatmap
    from cytokit.report.figures import trend_png
    from cytokit.trial.run import analyse, make_figures
    from cytokit.trial.inputs import load_inputs

    _, res = summary
    again = make_figures(res)
    assert again.keys() == res.figures.keys() and all(again[k] == res.figures[k] for k in again)
    inputs = load_inputs(Path(summary[0]).parent.parent)
    fresh = analyse(inputs, res.config)  # a second analysis from the files
    assert all(fresh.figures[k] == res.figures[k] for k in res.figures)
    store = load_results(report_root)
    opts = ReportOptions(pdf=False)
    a = build_patient_report(store, "P01", opts, load_reference_intervals())
    b = build_patient_report(load_results(report_root), "P01", opts, load_reference_intervals())
    assert trend_png(a, opts.trends) == trend_png(b, opts.trends) is not None
    mc = pd.DataFrame({"metacluster": [0, 1, 2], "name": ["A CD28+", "A CD28-", "B (no events)"],
                       "pct_events": [60.0, 40.0, 0.0], "events": [60, 40, 0],
                       "median_CD4": [0.7, 0.7, np.nan], "median_CD28": [0.6, 0.1, np.nan]})
    ab = pd.DataFrame([{"sample_id": f"S{i}", "metacluster": m, "name": mc.name[m], "count": [30, 20, 0][m],
                        "total": 50, "pct": [60.0, 40.0, 0.0][m] + i, "visit": ["W0", "W24"][i % 2],
                        "week": [0, 24][i % 2], "arm": ["IL-2", "control"][i // 2 % 2]}
                       for i in range(8) for m in range(3)])
    for k in (1, 2):
        plot_heatmap(mc, ["CD4", "CD28"], tmp_path / f"h{k}.png", scale="logicle scale")
        plot_abundance(ab, tmp_path / f"a{k}.png", arm_order=["IL-2", "control"])
    assert (tmp_path / "h1.png").read_bytes() == (tmp_path / "h2.png").read_bytes()
    assert (tmp_path / "a1.png").read_bytes() == (tmp_path / "a2.png").read_bytes()
