"""The Sample's channel table without pandas (cytokit.channel_columns.ChannelTable): ``Sample.channels`` built
from it on first use is the DataFrame the reader built before (same values, dtypes and index), a DataFrame
given to a Sample is handed back unchanged, and the pandas-free readers (channel lookup, panel resolution,
the lymphocyte denominator of ``cytokit gate``) agree with their DataFrame counterparts."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from cytokit.channel_columns import CHANNEL_COLUMNS, ChannelTable
from cytokit.fcs import read_fcs
from cytokit.panel import load_panel
from cytokit.results.denominators import denominators, tube_denominator
from cytokit.sample import Sample


def _frame_of_records(table: ChannelTable) -> pd.DataFrame:
    """The DataFrame as the reader used to build it: one dict per channel, ``pd.DataFrame(rows, columns=...)``."""
    rows = [dict(zip(table.columns, values)) for values in zip(*(table.column(c) for c in table.columns))]
    return pd.DataFrame(rows, columns=list(table.columns))


def _files(repo_root, shared_data_dir_or_none):
    files = [repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs", repo_root / "sample_data" / "fcs" / "P001_W0_nkb.fcs"]
    if shared_data_dir_or_none is not None:
        corpus = shared_data_dir_or_none / "fcs_corpus" / "cytoflow_instruments"
        files += [corpus / "Accuri - C6.fcs", corpus / "Beckman Coulter - MoFlo Astrios - log settings.fcs",
                  corpus / "Cytek DxP10.fcs", shared_data_dir_or_none / "flowsom_68983" / "68983.fcs"]
    return [f for f in files if f.is_file()]


@pytest.fixture(scope="module")
def samples(repo_root):
    from conftest import shared_data_dir

    shared = shared_data_dir()
    files = _files(repo_root, shared if shared.is_dir() else None)
    if not files:
        pytest.skip("neither sample_data nor ../shared/data is present")
    return [read_fcs(f) for f in files]


def test_lazy_frame_equals_the_readers_frame(samples):
    for s in samples:
        table = s.channel_table
        assert list(table.columns) == list(CHANNEL_COLUMNS)
        pd.testing.assert_frame_equal(s.channels, _frame_of_records(table), check_dtype=True, check_index_type=True)
        assert s.channels is s.channels  # built once
        assert s.channels["range"].dtype == np.float64 and s.channels["bits"].dtype == np.int64


def test_a_given_frame_is_kept(samples):
    frame = samples[0].channels.copy()
    s = Sample(samples[0].events, frame)
    assert s.channels is frame
    assert s.replace(provenance=("x",)).channels is frame
    other = frame.assign(marker=[f"m{i}" for i in range(len(frame))])
    assert s.replace(channels=other).channels is other
    assert s.replace(channels=other).channel_index("m2") == 2
    with pytest.raises(ValueError, match="does not match"):
        Sample(samples[0].events[:, :3], frame)


def test_panel_resolution_without_pandas_matches_the_frame_way(repo_root, samples):
    panel = load_panel("il2_trial")
    for raw in samples[:2]:
        resolved = panel.resolve(raw)
        old = raw.channels.copy()  # what Panel.resolve did on the DataFrame
        for col in ("marker", "fluorochrome", "kind"):
            old[col] = list(resolved.channel_table.column(col))
        pd.testing.assert_frame_equal(resolved.channels, old, check_dtype=True)
        # and resolving a Sample that was given a DataFrame goes through that DataFrame
        from_frame = panel.resolve(Sample(raw.events, raw.channels.copy(), metadata=raw.metadata))
        pd.testing.assert_frame_equal(from_frame.channels, old, check_dtype=True)
        assert resolved.channel_index("CD3") == from_frame.channel_index("CD3")


def test_channel_lookup_as_with_the_frame(samples):
    s = samples[0]
    for j, (pnn, marker) in enumerate(zip(s.channels["pnn"], s.channels["marker"])):
        assert s.channel_index(pnn) == j
        assert s.channel_index(f" {str(marker).upper()} ") == j
    with pytest.raises(Exception, match="no channel named"):
        s.channel_index("no such channel")


def test_sample_pickles_with_its_table(samples):
    s = samples[0]
    back = pickle.loads(pickle.dumps(s))
    pd.testing.assert_frame_equal(back.channels, s.channels)
    assert back.channel_table.column("pnn") == s.channel_table.column("pnn")


def test_replace_columns_checks_lengths_and_leaves_the_table():
    t = ChannelTable.from_records([{"pnn": "FSC-A", "kind": "scatter"}, {"pnn": "FL1-A", "kind": "fluorescence"}],
                                  ("pnn", "kind"))
    new = t.replace_columns(kind=["scatter", "other"], marker=["FSC-A", "CD3"])
    assert t.column("kind") == ("scatter", "fluorescence") and "marker" not in t
    assert new.columns == ("pnn", "kind", "marker") and new.column("marker") == ("FSC-A", "CD3")
    assert [r.pnn for r in new.rows()] == ["FSC-A", "FL1-A"]
    with pytest.raises(ValueError, match="2 channels"):
        t.replace_columns(kind=["x"])


@pytest.mark.parametrize("lymph", [None, "Singlets", "Live", "T cells"])
@pytest.mark.parametrize("t_pct", [100.0, 70.0, float("nan")])
def test_tube_denominator_agrees_with_denominators(lymph, t_pct):
    rows = pd.DataFrame({
        "population": ["Lymphocytes", "Singlets", "T cells", "CD4 T", "Beads"],
        "parent": ["", "Lymphocytes", "Singlets", "T cells", None],
        "pct_lymphocytes": [np.nan, 100.0, t_pct, 40.0, np.nan]})
    expected = denominators(rows, {"": lymph} if lymph else None).get("", ("", set()))
    got = tube_denominator(zip(rows["population"], rows["parent"].fillna(""), rows["pct_lymphocytes"]), lymph)
    assert got == expected
    assert got[0] in ("Singlets", "T cells")  # the check is not vacuous
