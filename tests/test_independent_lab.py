"""The independent generator (benchmarks/independent_lab_gen/): truth consistent with itself and with the files,
seeded output reproducible, and the held-out benchmark's path (gate, score, QC, `cytokit run`) on 2 files."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import yaml

from cytokit.definitions import resolve_definition
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.panel import load_panel

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from independent_lab_gen.lab import TUBES  # noqa: E402
from independent_lab_gen.user_yaml import lab_strategy, write_lab_strategies  # noqa: E402
from independent_lab_gen import HIERARCHY, LYMPHOCYTES, clog_mask, event_kinds, generate_trial, truth_masks  # noqa: E402


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_trial(tmp_path_factory.mktemp("lab") / "trial", patients=2, events=4000, seed=5)


def test_seeded_output_is_reproducible_and_seed_matters(trial: Path, tmp_path: Path) -> None:
    again = generate_trial(tmp_path / "again", patients=2, events=4000, seed=5)
    assert _digest(again) == _digest(trial)
    other = generate_trial(tmp_path / "other", patients=2, events=4000, seed=6, max_files=1)
    first = pd.read_csv(trial / "manifest.csv").file.iloc[0]
    assert (other / first).read_bytes() != (trial / first).read_bytes()


def test_truth_labels_nest_and_match_the_population_table(trial: Path) -> None:
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    assert len(man) == 2 * 3 * 2  # patients x visits x tubes
    for r in man.itertuples():
        masks = truth_masks(trial, r.file)
        n = read_fcs(trial / r.file).n_events
        t = truth[truth.file == r.file].set_index("population")
        assert list(t.index) == [p for p, _ in HIERARCHY[r.tube]]
        for pop, parent in HIERARCHY[r.tube]:
            m = masks[pop]
            assert m.size == n
            parent_n = int(masks[parent].sum()) if parent else n
            if parent:
                assert not (m & ~masks[parent]).any(), f"{r.file}: {pop} outside {parent}"
            assert t.loc[pop, "count"] == m.sum()
            assert t.loc[pop, "pct_parent"] == pytest.approx(100 * m.sum() / parent_n)
            lymph = masks[LYMPHOCYTES[r.tube]].sum()
            assert t.loc[pop, "pct_lymphocytes"] == pytest.approx(100 * m.sum() / lymph)
        kinds = event_kinds(trial, r.file)
        assert (masks["Singlets"] == kinds.isin(["lymphocyte", "dead lymphocyte"]).to_numpy()).all()
        assert not (masks["Lymphocytes"] & kinds.isin(["debris", "monocyte", "granulocyte"]).to_numpy()).any()
        if r.tube == "tcell":  # CD4 subsets partition CD4 T; memory = CM + EM
            parts = [masks[p] for p in ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")]
            assert (np.sum(parts, axis=0) == masks["CD4 T"]).all()
            assert (masks["Memory CD4"] == (masks["CM CD4"] | masks["EM CD4"])).all()
            assert not (masks["CD4 T"] & masks["CD8 T"]).any()
        else:
            assert not (masks["CD56dim NK"] & masks["CD56bright NK"]).any()
            assert not (masks["T cells"] & (masks["NK cells"] | masks["B cells"])).any()
            assert (masks["Live"] == (kinds == "lymphocyte").to_numpy()).all()


def test_files_carry_the_labs_naming_ranges_and_clogs(trial: Path) -> None:
    files = pd.read_csv(trial / "truth" / "files.csv")
    seen = set()
    for r in files.itertuples():
        s = read_fcs(trial / r.file)
        names = list(s.channels["pnn"])
        rng = int(s.channels["range"].iloc[4])
        seen.add((r.instrument, "FL1-A" in names, rng))
        resolved = load_panel(BENCH / "independent_lab_gen" / "yaml" / "lab_panel.yaml").resolve(s, tube=r.tube)
        fluor = resolved.channels[resolved.channels["kind"] == "fluorescence"]
        assert sorted(fluor["marker"]) == sorted(TUBES[r.tube])  # every marker found from $PnS
        assert (clog_mask(trial, r.file).sum() > 0) == (r.clog_events > 0)
    assert seen == {("A", True, 1_048_576), ("B", False, 262_144)}
    assert (files.clog_events > 0).groupby(files.tube).any().all()  # a clog in every tube


def test_lab_strategies_are_the_shipped_ones_with_the_documented_edits(tmp_path: Path) -> None:
    folder = write_lab_strategies(tmp_path, "density_polygon")
    for tube, shipped_name in (("tcell", "tmem"), ("nkb", "nkb")):
        shipped = yaml.safe_load(resolve_definition(shipped_name, "gating").read_text())
        lab = lab_strategy(tube)
        by_name = {p["name"]: p for p in lab["populations"]}
        for p in shipped["populations"]:
            if p["name"] in ("Treg", "Beads"):
                assert p["name"] not in by_name
                continue
            got = dict(by_name[p["name"]])
            if tube == "nkb" and p.get("parent") == "Singlets":
                assert got.pop("parent") == "Live"
                p = {k: v for k, v in p.items() if k != "parent"}
            if p["name"] == "Lymphocytes":  # the lab's stated doublet convention (and the phenotype saying so)
                assert got.pop("params") == {**p.pop("params"), "lymphocyte_doublets": "counted"}
                assert "doublets" in got.pop("phenotype")
                p.pop("phenotype")
            assert got == p, f"{tube}: {p['name']} differs from the shipped gate"
        strategy = load_strategy(folder / f"lab_{tube}.yaml")
        names = [p.name for p in strategy.definition.populations]
        assert names == [p for p, _ in HIERARCHY[tube]]  # the truth's hierarchy, in the same order
        lym = next(p for p in strategy.definition.populations if p.name == "Lymphocytes")
        assert lym.method == "density_polygon" and lym.params["lymphocyte_doublets"] == "counted"
    assert lab_strategy("nkb")["lymphocytes"] == "Live"


def test_benchmark_smoke_on_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("independent_lab_benchmark", BENCH / "independent_lab.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    est = tmp_path / "estimates.csv"
    assert bench.main(["--patients", "1", "--events", "4000", "--seed", "3", "--max-files", "2",
                       "--keep", str(tmp_path), "--csv", str(est)]) == 0
    out = capsys.readouterr().out
    assert "generated 2 files" in out and "flag recall" in out and "time QC" in out
    assert "`cytokit run` end to end" in out and "0 failed samples" in out
    df = pd.read_csv(est)
    assert set(df.tube) == {"tcell", "nkb"}
    expected = {p for tube in ("tcell", "nkb") for p, _ in HIERARCHY[tube]}
    assert set(df.population) == expected
    assert np.isfinite(df.err).all()
    # flagged = the populations table's review column, which is needs_review(flags); "any flag word" printed apart
    from cytokit.gating.methods import needs_review
    assert df.review.tolist() == df.flag_words.fillna("").map(needs_review).tolist()
    assert "'any flag word'" in out
    # the lab's well-separated lineages are gated close to truth even on one small file
    assert df[df.population.isin(["CD4 T", "CD8 T", "B cells"])].err.max() < 3
