"""The committed sample trial is small, usable and exactly what its documented command regenerates."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.fcs import read_fcs
from cytokit.simulate import load_config, simulate_trial, truth_masks

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regen")
    simulate_trial(out, load_config(SAMPLE / "simulation.yaml"))
    return out


def test_sample_data_is_small_and_documents_its_command() -> None:
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 25 * 1024 * 1024
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    assert "cytokit simulate sample_data --config sample_data/simulation.yaml --force" in readme
    makefile = (SAMPLE.parent / "Makefile").read_text(encoding="utf-8")
    assert "simulate sample_data --config sample_data/simulation.yaml --force" in makefile


def test_sample_data_files_hold_enough_lymphocytes_and_both_instruments() -> None:
    man = pd.read_csv(SAMPLE / "manifest.csv")
    assert len(man) == 8 * 3 * 2 and man["instrument"].nunique() == 2
    assert set(man["arm"]) == {"IL-2", "control"}
    pops = pd.read_csv(SAMPLE / "truth" / "populations.csv")
    singlets = pops[pops["population"] == "Singlets"].set_index("file")["count"]
    assert len(singlets) == len(man) and singlets.min() >= 2500
    first = man["file"].iloc[0]
    masks = truth_masks(SAMPLE, first)
    assert masks["Singlets"].sum() == singlets[first]
    assert read_fcs(SAMPLE / first).n_events == len(masks["Singlets"])


def test_regeneration_reproduces_the_committed_tables_and_events(regenerated: Path) -> None:
    committed = sorted(p.relative_to(SAMPLE) for p in SAMPLE.rglob("*")
                       if p.is_file() and p.suffix in (".csv", ".npy", ".fcs"))
    fresh = sorted(p.relative_to(regenerated) for p in regenerated.rglob("*") if p.is_file())
    assert committed == fresh
    for rel in committed:
        if rel.suffix == ".fcs":
            a, b = read_fcs(SAMPLE / rel), read_fcs(regenerated / rel)
            np.testing.assert_array_equal(a.events, b.events, err_msg=str(rel))
            for key in ("spillover", "cyt", "date", "btim", "etim", "p4n", "p4s"):
                assert a.metadata.get(key) == b.metadata.get(key), (rel, key)
        else:
            assert _sha(SAMPLE / rel) == _sha(regenerated / rel), f"{rel} differs: run `make sample-data`"


def test_regeneration_keeps_non_generated_files(tmp_path: Path) -> None:
    cfg = load_config(SAMPLE / "simulation.yaml", patients_per_arm=1, visits=["W0"], events=200)
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / "simulation.yaml").write_text((SAMPLE / "simulation.yaml").read_text())
    simulate_trial(tmp_path, cfg)
    simulate_trial(tmp_path, cfg, force=True)
    assert (tmp_path / "README.md").read_text() == "notes"
    assert (tmp_path / "simulation.yaml").is_file()


def test_every_sample_file_resolves_with_the_il2_trial_panel() -> None:
    """The channel names of both instrument styles are the ones the built-in panel expects."""
    from cytokit.panel import load_panel

    panel = load_panel("il2_trial")
    man = pd.read_csv(SAMPLE / "manifest.csv")
    for row in man.drop_duplicates(["tube", "instrument"]).itertuples():
        s = panel.resolve(read_fcs(SAMPLE / row.file), tube=row.tube)
        fl = list(s.channels.loc[s.channels["kind"] == "fluorescence", "marker"])
        expected = {"tmem": ["CD45RA", "CD62L", "CD3", "CD4", "CD8", "CD28", "CD25", "CD127"],
                    "nkb": ["CD3", "CD16", "CD45", "CD19", "CD56"]}[row.tube]
        assert fl == expected, row.file
