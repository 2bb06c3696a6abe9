"""The populations tables' ``review`` column: True exactly when the row's flags hold a review flag
(:func:`cytokit.gating.methods.needs_review`), with ``review_flags`` and ``notes`` splitting ``flags``; the
same at every entry point (Strategy.apply, ``cytokit gate``, results folders old and new)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main as cli_main
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods import REVIEW_FLAGS, needs_review, review_columns, split_flags
from cytokit.pipeline.runner import write_table_with_inputs
from cytokit.results import coerce, read_table
from cytokit.results import schema as S


def assert_review_columns_follow_flags(table: pd.DataFrame) -> None:
    """Every row: review == needs_review(flags); review_flags + notes hold exactly the words of flags."""
    assert table[S.REVIEW].dtype == bool, table[S.REVIEW].dtype
    for flags, review, words, notes in zip(table[S.FLAGS], table[S.REVIEW], table[S.REVIEW_FLAGS], table[S.NOTES]):
        flags = flags if isinstance(flags, str) else ""
        assert bool(review) == needs_review(flags), (flags, review)
        assert bool(review) == bool(words), (flags, words)
        given = [w for w in flags.split(";") if w]
        got_words, got_notes = [w for w in words.split(";") if w], [w for w in notes.split(";") if w]
        assert sorted(got_words + got_notes) == sorted(dict.fromkeys(given)), (flags, words, notes)
        assert all(needs_review([w]) for w in got_words) and not any(needs_review([w]) for w in got_notes)


@pytest.mark.parametrize("flags, review, words, notes", [
    ("", False, "", ""),
    ("no_valley;fell_back:tail;unstable", False, "", "no_valley;fell_back:tail;unstable"),
    ("no_valley;fell_back:tail;unstable;uncertain", True, "uncertain", "no_valley;fell_back:tail;unstable"),
    ("CD25:ambiguous_mode;CD25:no_valley", True, "CD25:ambiguous_mode", "CD25:no_valley"),
    ("cohort_outlier;few_events;few_events", True, "few_events", "cohort_outlier"),
    (["upper:unstable", "lower:cut_through"], True, "lower:cut_through", "upper:unstable"),
    (None, False, "", ""),
])
def test_review_columns_split_flags_into_review_flags_and_notes(flags, review, words, notes):
    got = review_columns(flags)
    assert got == {S.REVIEW: review, S.REVIEW_FLAGS: words, S.NOTES: notes}
    assert got[S.REVIEW] == needs_review(flags or "")


def test_every_review_flag_word_alone_sets_review_and_no_note_does():
    for word in sorted(REVIEW_FLAGS):
        assert split_flags(f"CD4:{word}") == ([f"CD4:{word}"], []), word
    for note in ("no_valley", "fell_back:tail", "unstable", "edge_sensitive", "count_misfit", "cohort_outlier",
                 "tail_knee", "lower:raised_to_crossing"):
        assert split_flags(note) == ([], [note]), note


@pytest.fixture(scope="module")
def sample_trial(repo_root) -> Path:
    folder = repo_root / "sample_data"
    if not (folder / "manifest.csv").is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    return folder


def test_strategy_apply_table_has_the_review_columns(sample_trial):
    # files whose rows carry review flags, placement notes only, and both
    tables = []
    for name in ("P001_W24_tmem.fcs", "P004_W0_nkb.fcs", "P001_W74_nkb.fcs"):
        tube = name.rsplit("_", 1)[1].removesuffix(".fcs")
        result = load_strategy(tube).apply(read_fcs(sample_trial / "fcs" / name))
        table = result.populations
        cols = list(table.columns)
        assert cols.index(S.FLAGS) + 1 == cols.index(S.REVIEW) < cols.index(S.REVIEW_FLAGS) < cols.index(S.NOTES)
        assert_review_columns_follow_flags(table)
        rows = result.population_rows  # the dict rows (cytokit gate prints them) carry the same values
        assert [r[S.REVIEW] for r in rows] == table[S.REVIEW].tolist()
        assert [r[S.NOTES] for r in rows] == table[S.NOTES].tolist()
        tables.append(table)
    both = pd.concat(tables)
    assert both[S.REVIEW].any() and (~both[S.REVIEW] & both[S.FLAGS].ne("")).any()  # both kinds occur


def test_cli_gate_prints_review_and_writes_the_columns(sample_trial, tmp_path, capsys):
    table = tmp_path / "gate.csv"
    fcs = sample_trial / "fcs" / "P001_W24_tmem.fcs"
    assert cli_main(["gate", str(fcs), "--strategy", "tmem", "--table", str(table)]) == 0
    out = capsys.readouterr().out
    written = pd.read_csv(table, keep_default_na=False)
    assert written[S.REVIEW].dtype == bool
    assert_review_columns_follow_flags(written)
    api = load_strategy("tmem").apply(read_fcs(fcs)).populations
    assert written[S.REVIEW].tolist() == api[S.REVIEW].tolist()
    flagged = written[written[S.REVIEW]]
    assert len(flagged) > 0
    assert "review" in out and "notes" in out
    for name in flagged[S.POPULATION]:
        line = next(ln for ln in out.splitlines() if name in ln)
        assert "REVIEW" in line, line
    for name in written.loc[~written[S.REVIEW] & written[S.NOTES].ne(""), S.POPULATION]:
        line = next(ln for ln in out.splitlines() if f" {name} " in ln)
        assert "REVIEW" not in line, line


def _old_store_rows() -> pd.DataFrame:
    """A populations table as results folders wrote it before the review columns existed."""
    flags = ["", "no_valley;fell_back:tail", "no_valley;uncertain", "few_events", "CD16:unstable"]
    rows = [{S.SAMPLE_ID: "s1", S.FILE: "s1.fcs", S.SHA256: "ab" * 32, S.PATIENT: "007", S.VISIT: "W0", S.WEEK: 0,
             S.ARM: "A", S.TUBE: "tmem", S.POPULATION: f"pop{i}", S.PARENT: "", S.COUNT: 10 * i + 1,
             S.PARENT_COUNT: 100, S.PCT_PARENT: float(10 * i + 1), S.PCT_LYMPHOCYTES: np.nan, S.ABS_COUNT: np.nan,
             S.ABS_METHOD: "", S.MARKER_MEDIANS: "{}", S.METHOD: "threshold", S.FLAGS: f,
             S.EST_ERROR_PP: 0.5, S.COUNT_SD_PP: 1.0, S.QC_FLAGS: "", S.PHENOTYPE: ""} for i, f in enumerate(flags)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_results_folder_written_before_the_columns_reads_with_them(tmp_path, fmt):
    old = _old_store_rows()
    (tmp_path / S.RUN_INFO).write_text(json.dumps({S.RUN_INFO_SCHEMA_KEY: S.SCHEMA_VERSION}))
    if fmt == "csv":
        old.to_csv(tmp_path / "populations.csv", index=False)
    else:
        old.to_parquet(tmp_path / "populations.parquet", index=False)
    back = read_table(tmp_path, S.POPULATIONS, required=True)
    assert list(back.columns) == list(S.POPULATION_COLUMNS)  # placed after flags, as a new folder has them
    assert_review_columns_follow_flags(back)
    assert back[S.REVIEW].tolist() == [False, False, True, True, False]
    assert back[S.NOTES].tolist() == ["", "no_valley;fell_back:tail", "no_valley", "", "CD16:unstable"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_stored_review_is_read_as_written_in_either_format(tmp_path, fmt):
    df = coerce(_old_store_rows().reindex(columns=list(S.POPULATION_COLUMNS)))
    assert df[S.REVIEW].dtype == bool and df[S.REVIEW].sum() == 2
    # a folder's stored value is its own (the review words of the version that wrote it), not re-derived
    df.loc[4, S.REVIEW], df.loc[4, S.REVIEW_FLAGS] = True, "CD16:unstable"
    df.loc[4, S.NOTES] = ""
    write_table_with_inputs(df, tmp_path / S.POPULATIONS, (fmt,), "{}")
    back = read_table(tmp_path, S.POPULATIONS, required=True)
    pd.testing.assert_frame_equal(back, df)
    if fmt == "csv":
        assert (tmp_path / "populations.csv").read_text().splitlines()[1].count("False") == 1


def test_gate_plot_titles_mark_review_rows_and_keep_notes_apart(sample_trial):
    from matplotlib.colors import to_hex

    from cytokit.gating.plotting import REVIEW_COLOUR

    for name in ("P001_W24_tmem.fcs", "P001_W74_nkb.fcs"):
        tube = name.rsplit("_", 1)[1].removesuffix(".fcs")
        result = load_strategy(tube).apply(read_fcs(sample_trial / "fcs" / name))
        table = result.populations.set_index(S.POPULATION)
        fig = result.plot_all()
        titles = {ax.get_title().split(":")[0]: ax.title for ax in fig.axes}
        for pop, row in table.iterrows():
            if pop not in titles:  # quadrant members share their set's plot
                continue
            text, colour = titles[pop].get_text(), to_hex(titles[pop].get_color())
            assert ("REVIEW: " in text) == bool(row[S.REVIEW]), (pop, text)
            assert (colour == to_hex(REVIEW_COLOUR)) == bool(row[S.REVIEW]), (pop, colour)
            notes_part = text[text.index("["):] if "[" in text else ""  # the notes, wrapped over lines
            for note in filter(None, row[S.NOTES].split(";")):
                assert note in notes_part, (pop, note, text)
        assert table[S.REVIEW].any() or table[S.NOTES].ne("").any(), name


def test_an_empty_table_of_an_older_folder_gets_the_columns_too():
    old = _old_store_rows().iloc[:0]
    back = coerce(old.copy())
    assert list(back.columns) == list(S.POPULATION_COLUMNS) and back[S.REVIEW].dtype == bool
