"""The patient report shows the populations table's ``review`` column: a REVIEW badge (with the review
flags) on rows whose estimate may be wrong, none on rows with placement notes only; the QC table lists
review flags apart from notes. Rendered by headless Chromium and checked in the DOM."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytokit.report import ReportOptions, build_reports
from cytokit.results import schema as S
from cytokit.trial.config import TubeSelection
from cytokit.trial.values import select_tubes

from test_report import make_results
from test_report_browser import _chromium
from test_report_outputs import dom_rows


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = make_results(tmp_path_factory.mktemp("review_report"), patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")  # written without review columns (an older folder)
    assert S.REVIEW not in pops.columns
    cd4_w24 = (pops["population"] == "CD4 T") & (pops["visit"] == "W24")
    pops.loc[cd4_w24, "flags"] = "no_valley;uncertain"  # a review flag and a note
    pops.loc[(pops["population"] == "CD8 T") & (pops["visit"] == "W24"), "flags"] = "CD8:fell_back:tail;unstable"
    pops.to_parquet(root / "populations.parquet")
    written = build_reports(root, options=ReportOptions(pdf=False), generated="2026-01-01", force=True)
    return next(p for p in written if p.name == "P01.html")


def test_report_badges_the_rows_flagged_for_review_only(page, tmp_path):
    dom, rows = dom_rows(_chromium(), page, tmp_path / "profile")
    pop_rows = [r for r in rows if "pops" in r["table"].get("class", "") and "data-population" in r["attrs"]]
    by = {}
    for r in pop_rows:
        by.setdefault(r["attrs"]["data-population"], []).append(r)
    cd4, cd8, cd25 = by["CD4 T"], by["CD8 T"], by["CD25+ CD4"]
    assert len(cd4) == len(cd8) == 3  # W0, W24, W74
    assert [r["attrs"]["data-review"] for r in cd4] == ["false", "true", "false"]
    assert "REVIEW" in cd4[1]["cells"][1]["text"] and "uncertain" in cd4[1]["cells"][1]["text"]
    assert "no_valley" not in cd4[1]["cells"][1]["text"]  # the note is not part of the badge
    # placement notes only (fell_back, unstable, fallback_quantile): no badge
    for r in [*cd8, *cd25, cd4[0], cd4[2]]:
        assert r["attrs"]["data-review"] == "false" and "REVIEW" not in " ".join(c["text"] for c in r["cells"])
    assert sum(r["attrs"]["data-review"] == "true" for r in pop_rows) == 1
    assert dom.count('class="review-legend"') == 1  # the legend in the W24 table only
    # derived values: the W24 CD4 count and its change from baseline rest on the flagged estimate
    derived = {r["attrs"]["data-visit"]: r["cells"] for r in rows if "data-visit" in r["attrs"]}
    assert set(derived) == {"W0", "W24", "W74"}
    assert "REVIEW" in derived["W24"][1]["text"] and "REVIEW" in derived["W24"][5]["text"]
    assert "REVIEW" not in derived["W24"][2]["text"]  # CD8 T notes only
    for visit in ("W0", "W74"):
        assert "REVIEW" not in " ".join(c["text"] for c in derived[visit]), visit
    # Quality control: review flags and notes in their own columns of the gates table (one line per population)
    header = next(r for r in rows if "gates" in r["table"].get("class", "") and r["cells"][0]["tag"] == "th")
    names = [c["text"] for c in header["cells"]]
    i_review, i_notes = names.index("Gate review (may be wrong)"), names.index("Gate placement notes")
    qc = {(r["cells"][0]["text"], r["cells"][1]["text"]): r["cells"] for r in rows
          if "gates" in r["table"].get("class", "") and r["cells"][0]["tag"] == "td"}
    assert qc[("W24", "tmem")][i_review]["text"] == "CD4 T: uncertain"
    notes = qc[("W24", "tmem")][i_notes]["text"]
    assert "CD4 T: no_valley" in notes and "CD8 T: CD8:fell_back:tail; unstable" in notes
    assert qc[("W0", "tmem")][i_review]["text"] == ""


def test_a_mean_over_tubes_needs_review_when_one_of_its_estimates_does():
    rows = pd.DataFrame({
        S.PATIENT: "P1", S.VISIT: "W0", S.POPULATION: "T cells", S.TUBE: ["tmem", "nkb"], S.SAMPLE_ID: ["a", "b"],
        S.WEEK: 0, S.ARM: "A", S.PARENT_COUNT: 1000, S.PCT_PARENT: [70.0, 72.0], S.PCT_LYMPHOCYTES: [70.0, 72.0],
        S.ABS_COUNT: [700.0, 720.0], S.REVIEW: [False, True], S.REVIEW_FLAGS: ["", "uncertain"],
        S.NOTES: ["no_valley", "unstable"]})
    mean = select_tubes(rows, TubeSelection(rule="mean")).iloc[0]
    assert bool(mean[S.REVIEW]) and mean[S.REVIEW_FLAGS] == "uncertain" and mean[S.NOTES] == "no_valley;unstable"
    first = select_tubes(rows, TubeSelection(rule="preference", preference=["tmem", "nkb"])).iloc[0]
    assert not bool(first[S.REVIEW]) and first[S.TUBE] == "tmem"


def test_trial_values_carry_review_of_the_value_and_of_its_baseline(tmp_path):
    from cytokit.results import read_table
    from cytokit.trial.config import TrialConfig
    from cytokit.trial.inputs import check_clinical, check_populations
    from cytokit.trial.values import patient_visit_values

    root = make_results(tmp_path / "res", patients=("P01", "P02"))
    pops = pd.read_parquet(root / "populations.parquet")
    hit = (pops["patient"] == "P01") & (pops["population"] == "CD4 T") & (pops["visit"] == "W0")
    pops.loc[hit, "flags"] = "no_valley;few_events"
    pops.loc[(pops["patient"] == "P02") & (pops["population"] == "CD4 T"), "flags"] = "no_valley"  # notes only
    pops.to_parquet(root / "populations.parquet")
    table = check_populations(read_table(root, S.POPULATIONS))
    clinical = check_clinical(pd.read_csv(root / "clinical.csv", dtype={"patient": str}))
    values = patient_visit_values(table, clinical, TrialConfig()).set_index(["patient", "visit", "population"])
    assert values[S.REVIEW].dtype == bool
    assert values.loc[("P01", "W0", "CD4 T"), S.REVIEW] and values.loc[("P01", "W0", "CD4 T"), S.REVIEW_FLAGS] == "few_events"
    # later visits: their own value is not flagged, their change from the flagged baseline is
    assert not values.loc[("P01", "W24", "CD4 T"), S.REVIEW]
    assert values.loc[("P01", "W24", "CD4 T"), "review_baseline"]
    assert not values.xs("P02")[S.REVIEW].any() and not values.xs("P02")["review_baseline"].any()


def test_visit_summaries_count_the_values_that_may_be_wrong(tmp_path):
    """summaries' n_review counts the values under each median whose estimate (or, for a change, whose
    baseline estimate) carries a review flag, and the headline text names them; 0 where none does."""
    from cytokit.results import read_table
    from cytokit.trial.comparisons import summarise
    from cytokit.trial.config import TrialConfig
    from cytokit.trial.headline import _median_text
    from cytokit.trial.inputs import check_clinical, check_populations
    from cytokit.trial.values import patient_visit_values

    root = make_results(tmp_path / "res", patients=("P01", "P02"))
    pops = pd.read_parquet(root / "populations.parquet")
    pops.loc[(pops["patient"] == "P01") & (pops["population"] == "CD4 T") & (pops["visit"] == "W0"), "flags"] = \
        "no_valley;few_events"  # P01's baseline may be wrong
    pops.loc[(pops["patient"] == "P02") & (pops["population"] == "CD4 T"), "flags"] = "no_valley"  # notes only
    pops.to_parquet(root / "populations.parquet")
    config = TrialConfig()
    table = check_populations(read_table(root, S.POPULATIONS))
    clinical = check_clinical(pd.read_csv(root / "clinical.csv", dtype={"patient": str}))
    values = patient_visit_values(table, clinical, config)
    visits = sorted(values[S.VISIT].unique())
    empty = pd.DataFrame(columns=[S.POPULATION, "measure", S.ARM, "auc_mb", "auc_mb_per_week"])
    summ = summarise(values, empty, config, visits)
    cd4 = summ[(summ[S.POPULATION] == "CD4 T") & (summ["measure"] == config.measures[0])]
    arm = values.loc[values[S.PATIENT] == "P01", S.ARM].iloc[0]
    mine = cd4[cd4[S.ARM] == arm].set_index([S.VISIT, "quantity"])
    assert mine.loc[("W0", "value"), "n_review"] == 1  # P01's own baseline value
    later = [v for v in visits if v != "W0"]
    assert all(mine.loc[(v, "value"), "n_review"] == 0 for v in later)  # later values are not flagged ...
    assert all(mine.loc[(v, "change"), "n_review"] == 1 for v in later)  # ... their change from W0 is
    assert not summ.loc[summ[S.POPULATION] == "CD8 T", "n_review"].any()
    text = _median_text(summ, "CD4 T", config.measures[0], arm, later[-1])
    assert text.endswith("1 flagged for review")
    assert "flagged" not in _median_text(summ, "CD8 T", config.measures[0], arm, later[-1])


def test_trial_summary_explains_flagged_for_review(tmp_path):
    """The trial summary's headline cells say 'k flagged for review'; the page says what that means, and only
    when a cell says it."""
    from test_trial_data import make_trial

    from cytokit.trial import TrialConfig, run_comparisons

    for flagged in (False, True):
        pops, clin = make_trial(4, seed=9)
        if flagged:
            first = pops["patient"].iloc[0]
            pops.loc[(pops["patient"] == first) & (pops["population"] == "CD4 T"), "flags"] = "uncertain"
        root = tmp_path / f"results_{flagged}"
        root.mkdir()
        pops.to_parquet(root / "populations.parquet")
        clin.to_csv(root / "clinical.csv", index=False)
        run_comparisons(root, TrialConfig(headline_populations=["CD4 T"], longitudinal={"populations": ["CD4 T"]},
                                          measures=["abs_count_per_uL"]))
        html = (root / "trial" / "summary.html").read_text(encoding="utf-8")
        assert ("flagged for review" in html) == flagged
        assert ('id="review-legend"' in html) == flagged


#: long flag words the report shows in narrow columns (review flags under the badge, QC flags, placement notes)
LONG_WORDS = ("CD4:overcompensated", "CD8:overcompensated", "thresholds_disagree", "lower:raised_to_crossing",
              "overcompensated", "compensation_unchecked")
#: a population definition as the gating engine writes it (the Definition column); its words stay whole
DEFINITION = "FSC-H/SSC-A lymphocytes: one lymphocyte's scatter; lymphocyte-lymphocyte doublets mostly outside"
DEFINITION_WORDS = ("lymphocytes:", "lymphocyte's", "scatter;", "lymphocyte", "doublets", "outside")


def _split_mid_word(text: str, words=LONG_WORDS) -> list[str]:
    """The places where a line of ``text`` ends inside a part of one of ``words``: a part is what lies between
    the ``:`` / ``;`` / ``_`` / ``/`` boundaries where the report lets a flag word wrap."""
    import re

    parts = {p for w in words for p in re.split(r"(?<=[:;_/])", w) if len(p) > 1}
    return [p for p in parts for k in range(1, len(p)) if f"{p[:k]}\n{p[k:]}" in text]


def _broken_ranges(text: str) -> list[str]:
    """Lines of ``text`` that end at a range's dash (``399–`` / ``1489``): a reference interval broken in two."""
    return [line for line in text.splitlines() if line.rstrip().endswith("\u2013")]


def _pdf_text(pdf: Path) -> str:
    import shutil
    import subprocess

    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def test_long_flag_words_wrap_between_their_parts_in_pdf_and_browser(tmp_path):
    """A clinician reads ``CD4:overcompensated`` or ``thresholds_disagree`` whole: in the PDF (WeasyPrint) and in
    the HTML printed by Chromium on A4, a line may end after ``:``, ``;``, ``_`` but never inside a word."""
    root = make_results(tmp_path / "res", patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")
    w24 = pops["visit"] == "W24"
    for pop in ("CD4 T", "CD8 T", "Naive CD4", "Memory CD4"):
        pops.loc[w24 & (pops["population"] == pop), "flags"] = \
            "CD4:overcompensated;CD8:overcompensated;thresholds_disagree;lower:raised_to_crossing"
    pops.loc[pops["population"].isin(["Lymphocytes", "T cells"]), "phenotype"] = DEFINITION
    pops.loc[w24 & (pops["population"] == "CD8 T"), "count_flags"] = "count_low;count_uncertain"
    pops.to_parquet(root / "populations.parquet")
    samples = pd.read_parquet(root / "samples.parquet")
    samples.loc[samples["visit"] == "W24", "qc_flags"] = "overcompensated;compensation_unchecked"
    samples.to_parquet(root / "samples.parquet")
    written = build_reports(root, options=ReportOptions(pdf=True), generated="2026-01-01", force=True)
    html, pdf = (next(p for p in written if p.suffix == s) for s in (".html", ".pdf"))

    text = _pdf_text(pdf)
    for word in ("CD4:", "overcompensated", "thresholds_", "raised_", "compensation_"):
        assert word in text  # the words are there (as a badge's flags, QC flags, placement notes)
    assert _split_mid_word(text) == [] and "lymphocyte's" in text.replace("\u2019", "'")
    assert _split_mid_word(text, DEFINITION_WORDS) == []
    assert _words_beyond(pdf, ("events",), "Events", "Other") == []
    assert "/µL" in text and _broken_ranges(text) == []  # reference ranges are shown, none broken at its dash
    assert "uncertain" in text and _words_beyond(pdf, ("count_", "low;", "uncertain"), "cells/µL", "Events") == []
    printed = _chromium_print(tmp_path, html)
    text = _pdf_text(printed)
    assert "overcompensated" in text and _split_mid_word(text) == []
    assert _split_mid_word(text, DEFINITION_WORDS) == []
    assert _words_beyond(printed, ("events",), "Events", "Other") == []
    assert _broken_ranges(text) == []
    assert _words_beyond(printed, ("count_", "low;", "uncertain"), "cells/µL", "Events") == []


def _words_beyond(pdf: Path, words: tuple[str, ...], column: str, next_column: str) -> list[tuple[int, str]]:
    """(page, word) for each of ``words`` (whole words of the PDF's text layer, by their start) below the populations
    tables' ``column`` header that reaches into it but starts left of its header (a right-aligned cell overflowing
    leftwards) or runs past the left edge of ``next_column``'s header."""
    import re
    import subprocess

    _pdf_text(pdf)  # skips when pdftotext is missing
    bbox = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    word = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>')
    out, checked = [], 0
    for k, page in enumerate(bbox.split("<page ")[1:], start=1):
        found = [(float(a), float(b), float(c), w) for a, b, c, w in word.findall(page)]
        # the header row: ``column`` on the line of ``next_column`` (the unit ``cells/µL`` stands in other text too)
        heads = [(x0, y0, nx) for x0, y0, _, w in found if w == column
                 for nx, ny, _, v in found if v == next_column and abs(ny - y0) < 1 and nx > x0]
        if not heads:
            continue
        col_x, col_y, next_x = heads[0]
        for x0, y0, x1, w in found:
            if y0 > col_y and x1 > col_x and x0 < next_x and any(w.startswith(p) for p in words):
                checked += 1
                if x0 < col_x - 2 or x1 > next_x:
                    out.append((k, w))
    assert checked, f"none of {words} found in the {column} column"
    return out


def _cells_past(pdf: Path, column: str, next_column: str, words: tuple[str, ...]) -> tuple[int, list[str]]:
    """(words checked, words that run past ``next_column``'s left edge) for each of ``words`` (by its start) in
    the ``column`` of the tables whose header row has both ``column`` and ``next_column``, down to the next table
    with a ``column`` header (pdftotext -bbox)."""
    import re
    import subprocess

    _pdf_text(pdf)  # skips when pdftotext is missing
    bbox = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    word = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>')
    checked, out = 0, []
    for page in bbox.split("<page ")[1:]:
        found = [(float(a), float(b), float(c), w) for a, b, c, w in word.findall(page)]
        for x0, y0, _, w in found:
            if w != column:
                continue
            nxt = [a for a, b, _, v in found if v == next_column and abs(b - y0) < 1 and a > x0]
            if not nxt:
                continue
            end = min([b for _, b, _, v in found if v == column and b > y0 + 1], default=float("inf"))  # next table
            for a, b, c, v in found:
                if y0 < b < end and abs(a - x0) < 3 and any(v.startswith(p) for p in words):
                    checked += 1
                    if c > min(nxt):
                        out.append(v)
    return checked, out


def _long_tube_names_printed(tmp_path, root) -> tuple:
    """The patient report of the results at ``root`` with its tubes renamed ``memory`` and ``nk-b-cells``: (the PDF,
    Chromium's A4 print of the HTML)."""
    for table in ("populations.parquet", "samples.parquet"):
        t = pd.read_parquet(root / table)
        t["tube"] = t["tube"].map({"tmem": "memory", "nkb": "nk-b-cells"})
        t.to_parquet(root / table)
    written = build_reports(root, options=ReportOptions(pdf=True), generated="2026-01-01", force=True)
    html, pdf = (next(p for p in written if p.suffix == s) for s in (".html", ".pdf"))
    return pdf, _chromium_print(tmp_path, html)


def _chromium_print(tmp_path, html):
    """Chromium's A4 print of the report ``html`` (a PDF in ``tmp_path``)."""
    import subprocess

    printed = tmp_path / "chromium.pdf"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                    "--no-pdf-header-footer", f"--print-to-pdf={printed}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    return printed


def test_tube_names_are_never_broken_inside_a_word(tmp_path):
    """A tube named ``memory`` reads whole in the populations table ('memo' / 'ry' before) and a name such as
    ``nk-b-cells`` wraps at its hyphens only: in the PDF and in Chromium's A4 print of the HTML; in the Quality
    control tables no tube name runs into the Status column."""
    root = make_results(tmp_path / "res", patients=("P01",))
    for out in _long_tube_names_printed(tmp_path, root):
        text = _pdf_text(out)
        assert "memory" in text and _split_mid_word(text, ("memory", "cells")) == [], out.name
        checked, past = _cells_past(out, "Tube", "Status", ("memory", "nk-", "cells"))
        assert checked >= 6 and past == [], (out.name, past)


def test_cross_check_units_are_never_broken(tmp_path):
    """The 'Other tube (cross-check)' column never breaks a unit: ``cells/µL`` not at its slash ('925 cells/' /
    'µL' before, a three-digit count after a tube name that takes its own line), ``lymphocytes`` of
    ``% of lymphocytes`` not inside the word ('lymphocyt' / 'es' before), and a difference's ``%`` stays with its
    number ('(-11.9' / '%)' before); ``cells/µL`` whole in the Derived values headers and the page's header too:
    in the PDF and in Chromium's A4 print of the HTML."""
    import re

    root = make_results(tmp_path / "res", patients=("P01",))
    pops = pd.read_parquet(root / "populations.parquet")
    other = (pops["tube"] == "nkb") & (pops["population"] == "T cells")
    pops.loc[other & (pops["visit"] == "W0"), S.ABS_COUNT] = float("nan")  # cross-check in % of lymphocytes
    pops.loc[other & (pops["visit"] == "W24"), S.ABS_COUNT] = 925.0
    pops.to_parquet(root / "populations.parquet")
    for out in _long_tube_names_printed(tmp_path, root):
        text = _pdf_text(out)
        assert "925 cells/µL" in text.replace("\n", " ") and "% of lymphocytes" in text.replace("\n", " "), out.name
        broken = re.findall(r"\d cells/\s*\n|lymphocyt\n|[\d.]+\s*\n%\)", text)
        assert broken == [], (out.name, broken)
        # nor in the header's text, the Derived values headers ('CD4 > 200' / 'cells/' / 'µL' before) and the Flag
        # column ('L (cells/' / 'µL)' before: its column was narrower than the unit)
        assert "cells/\n" not in text and "cells/µL" in text, out.name
        flags = re.findall(r"[HL]\s*\((?:%\s*and\s*)?cells/µL\)", text)
        assert flags, (out.name, "no reference flag on a count in the report")
