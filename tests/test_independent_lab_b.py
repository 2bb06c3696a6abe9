"""Lab B of the independent generator (benchmarks/independent_lab_gen/*_b.py): truth consistent with itself and
with the files, the lab's naming, ranges and re-exported files as documented, its strategies the shipped ones
with the documented YAML edits, and the benchmark's path (`independent_lab.py --lab b`) end to end on 4 files."""
from __future__ import annotations

import copy
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
from cytokit.panel import load_panel, panel_flags

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from independent_lab_gen import event_kinds, truth_masks  # noqa: E402
from independent_lab_gen.cells_b import DR_POSITIVE_PE, HIERARCHY_B, LYMPHOCYTES_B  # noqa: E402
from independent_lab_gen.lab_b import TUBES_B  # noqa: E402
from independent_lab_gen.trial_b import generate_trial_b  # noqa: E402
from independent_lab_gen.user_yaml_b import (  # noqa: E402
    DR_STATED_CUT, DROPPED_B, PANEL_B, lab_b_strategy, write_lab_b_strategies)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_trial_b(tmp_path_factory.mktemp("labb") / "trial", patients=3, events=8000, seed=5)


def test_seeded_output_is_reproducible(trial: Path, tmp_path: Path) -> None:
    again = generate_trial_b(tmp_path / "again", patients=3, events=8000, seed=5)
    assert _digest(again) == _digest(trial)
    other = generate_trial_b(tmp_path / "other", patients=3, events=8000, seed=6, max_files=1)
    first = pd.read_csv(trial / "manifest.csv").file.iloc[0]
    assert (other / first).read_bytes() != (trial / first).read_bytes()


def test_truth_labels_nest_and_match_the_population_table(trial: Path) -> None:
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    files = pd.read_csv(trial / "truth" / "files.csv").set_index("file")
    assert len(man) == 3 * 3 * 2
    for r in man.itertuples():
        masks = truth_masks(trial, r.file)
        n = read_fcs(trial / r.file).n_events
        assert n == files.loc[r.file, "events"] and 0.42 * 8000 <= n <= 8000
        t = truth[truth.file == r.file].set_index("population")
        assert list(t.index) == [p for p, _ in HIERARCHY_B[r.tube]]
        for pop, parent in HIERARCHY_B[r.tube]:
            m = masks[pop]
            assert m.size == n
            if parent:
                assert not (m & ~masks[parent]).any(), f"{r.file}: {pop} outside {parent}"
            assert t.loc[pop, "count"] == m.sum()
            assert t.loc[pop, "pct_parent"] == pytest.approx(100 * m.sum() / (masks[parent].sum() if parent else n))
            assert t.loc[pop, "pct_lymphocytes"] == pytest.approx(100 * m.sum() / masks[LYMPHOCYTES_B[r.tube]].sum())
        kinds = event_kinds(trial, r.file)
        assert (masks["Singlets"] == kinds.isin(["lymphocyte", "dead lymphocyte"]).to_numpy()).all()
        junk = kinds.isin(["debris", "red cell"]).to_numpy()
        assert 0.2 < junk.mean() < 0.7  # 30-60 % debris and red cells, as documented (binomial spread)
        if r.tube == "mem":
            parts = [masks[p] for p in ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")]
            assert (np.sum(parts, axis=0) == masks["CD4 T"]).all()
            assert (masks["Memory CD4"] == (masks["CM CD4"] | masks["EM CD4"])).all()
            assert not (masks["Treg"] & ~masks["CD25+ CD4"]).any()
        else:
            assert (masks["NK cells"] == (masks["CD56dim NK"] | masks["CD56bright NK"])).all()
            assert not (masks["T cells"] & (masks["NK cells"] | masks["B cells"])).any()
            assert (masks["Live"] == (kinds == "lymphocyte").to_numpy()).all()
    # HIV-like patients have few CD4 T cells
    mem = truth[truth.file.str.endswith("_mem.fcs") & (truth.population == "CD4 T")].set_index("file")
    low = files.loc[mem.index].scenarios.str.contains("hiv_low_cd4")
    assert low.any() and (~low).any()
    assert mem.pct_parent[low].max() < 30 < mem.pct_parent[~low].min()
    assert DR_POSITIVE_PE > 0


def test_files_carry_the_labs_naming_ranges_and_re_exports(trial: Path) -> None:
    files = pd.read_csv(trial / "truth" / "files.csv")
    panel = load_panel(PANEL_B)
    seen = set()
    for r in files.itertuples():
        s = read_fcs(trial / r.file)
        names = list(s.channels["pnn"])
        seen.add((r.instrument, "KO525-A" in names, "BV510-H" in names, int(s.channels["range"].iloc[4])))
        resolved = panel.resolve(s, tube=r.tube)
        fluor = resolved.channels[(resolved.channels["kind"] == "fluorescence")
                                  & ~resolved.channels["marker"].astype(str).str.endswith("-H")]
        assert set(TUBES_B[r.tube]) <= set(fluor["marker"])  # every marker found from $PnS
        assert panel_flags(resolved) == []  # the unstained detector is not assigned a marker
        if r.instrument == "C":
            assert (s.channels["gain"].iloc[4:-1] != 1).all()  # gains recorded in $PnG
            assert s.events[:, 4:-1].min() >= 0  # no negative values written
        else:
            assert any(str(p).endswith("-BV510") for p in s.channels["pns"])
    assert seen == {("C", True, False, 4_194_304), ("D", False, True, 262_144)}
    assert (files.clog_events > 0).groupby(files.tube).any().all()
    assert files.scenarios.str.contains("already_compensated").any()
    assert files.scenarios.str.contains("tandem_degraded").any()


def test_lab_b_strategies_are_the_shipped_ones_with_the_documented_edits(tmp_path: Path) -> None:
    folder = write_lab_b_strategies(tmp_path)
    flip = {"+": "-", "-": "+"}
    for tube, shipped_name in (("mem", "tmem"), ("nk", "nkb")):
        shipped = yaml.safe_load(resolve_definition(shipped_name, "gating").read_text())
        by_name = {p["name"]: p for p in lab_b_strategy(tube)["populations"]}
        for p in shipped["populations"]:
            if p["name"] in DROPPED_B or p["name"] not in by_name:
                assert p["name"] in DROPPED_B and p["name"] not in by_name
                continue
            got, want = copy.deepcopy(by_name[p["name"]]), copy.deepcopy(p)
            if tube == "nk" and want.get("parent") == "Singlets":
                assert got["parent"] == "Live"
                want["parent"] = "Live"
            if want["dims"] == ["CD45RA", "CD62L"]:  # the documented re-pointing, nothing else
                assert got["dims"] == ["CD45RO", "CCR7"]
                assert got["params"]["signs"] == [flip[want["params"]["signs"][0]], want["params"]["signs"][1]]
                assert got["params"]["thresholds"] == want["params"]["thresholds"]
                continue
            if want["dims"] == ["CD45RA"]:
                assert got["dims"] == ["CD45RO"] and got["params"]["sign"] == flip[want["params"]["sign"]]
                continue
            if p["name"] == "NK cells":
                assert got["dims"] == ["CD3", "CD20", "CD56"] and "any_of" not in got["params"]
                assert got["params"]["thresholds"] == want["params"]["thresholds"][:3]
                continue
            if p["name"] == "B cells":
                assert got["dims"] == ["CD3", "CD20"] and got["params"] == want["params"]
                continue
            if p["name"] == "Lymphocytes":  # the lab's doublet convention, stated
                assert got.pop("params") == {**want.pop("params"), "lymphocyte_doublets": "singles_and_pairs"}
            assert got == want, f"{tube}: {p['name']} differs from the shipped gate"
        strategy = load_strategy(folder / f"lab_{tube}.yaml")
        assert [p.name for p in strategy.definition.populations] == [p for p, _ in HIERARCHY_B[tube]]
    # HLA-DR+ CD8: the lab's stated cut by default, the shipped activation-marker rule as the variant
    dr = {p["name"]: p for p in lab_b_strategy("mem")["populations"]}["HLA-DR+ CD8"]
    assert dr["params"] == {"sign": "+", "threshold": {"mode": "fixed", "value": DR_STATED_CUT}}
    assert dr["parent"] == "CD8 T" and "negative_reference" not in dr
    dr = {p["name"]: p for p in lab_b_strategy("mem", dr_gate="activation")["populations"]}["HLA-DR+ CD8"]
    cd25 = {p["name"]: p for p in lab_b_strategy("mem")["populations"]}["CD25+ CD4"]
    assert dr["params"] == cd25["params"] and dr["parent"] == "CD8 T" and dr["negative_reference"] == "T cells"
    # the cd3_reference variant: only the nk tube's back-gating reference changes, to a CD3+ gate under Singlets
    var = {p["name"]: p for p in lab_b_strategy("nk", "cd3_reference")["populations"]}
    base = {p["name"]: p for p in lab_b_strategy("nk")["populations"]}
    assert set(var) - set(base) == {"CD3+ singlets"} and var["CD3+ singlets"]["parent"] == "Singlets"
    assert var["CD3+ singlets"]["params"] == base["T cells"]["params"]
    assert var["Lymphocytes"]["params"] == dict(base["Lymphocytes"]["params"], backgate_reference="CD3+ singlets")
    assert lab_b_strategy("mem", "cd3_reference") == lab_b_strategy("mem")


def _bench():
    spec = importlib.util.spec_from_file_location("independent_lab_benchmark_b", BENCH / "independent_lab.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_lab_b_end_to_end_on_four_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every file gated and scored, flag recall and time QC printed, `cytokit run` without a failed sample
    (files whose gains are in $PnG included), the re-exported compensated files flagged by the data check."""
    bench = _bench()
    est = tmp_path / "estimates.csv"
    # seed 5: B01 on instrument C, B02 re-exported compensated and B03 on instrument D
    assert bench.main(["--lab", "b", "--patients", "3", "--events", "16000", "--seed", "5", "--max-files", "18",
                       "--keep", str(tmp_path), "--csv", str(est)]) == 0
    out = capsys.readouterr().out
    assert "generated 18 files" in out and "flag recall" in out and "time QC" in out and "data checks" in out
    assert "`cytokit run` end to end" in out and "0 failed samples" in out
    df = pd.read_csv(est)
    man = pd.read_csv(tmp_path / "trial" / "manifest.csv")
    assert set(df.file) == set(man.file)  # every file gated
    assert set(df.population) == {p for tube in HIERARCHY_B for p, _ in HIERARCHY_B[tube]}
    # an estimate is missing only where its gated parent is empty, and then it is flagged for review
    missing = df[df.err.isna()]
    assert missing.auto_pct.isna().all() and (missing.parent_count == 0).all() and missing.review.all()
    assert np.isfinite(df.truth_pct).all()
    files = pd.read_csv(tmp_path / "trial" / "truth" / "files.csv").set_index("file")
    recomp = files.index[files.scenarios.str.contains("already_compensated")]
    assert len(recomp) == 6
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("already_compensated"))
    assert line.split()[1:3] == ["6", "6"]  # 6 files, 6 flagged by the compensation check
    # on files compensated once, CD4 / CD8 T (well separated) are close to truth even on small files
    once = df[~df.file.isin(recomp) & df.population.isin(["CD4 T", "CD8 T"])]
    assert len(once) == 12 and once.err.max() < 3
    # the summary of flags is computed: recall on estimates > 2 pp off is a number between 0 and 1
    recall = float(out.split("flag recall (> 2 pp off) ")[1].split()[0])
    assert 0 <= recall <= 1
    # the per-file table is written beside the estimates and --summarize combines runs
    assert len(pd.read_csv(tmp_path / "estimates_files.csv")) == 18
    assert bench.main(["--summarize", str(est)]) == 0
    summary = capsys.readouterr().out
    assert "clogs detected" in summary and "together" in summary and "right scatter gates" in summary


def test_reserved_seeds_are_refused() -> None:
    bench = _bench()
    with pytest.raises(SystemExit):
        bench.main(["--lab", "b", "--seed", str(bench.RESERVED_B_SEED), "--no-run"])
    with pytest.raises(SystemExit):
        bench.main(["--lab", "a", "--seed", str(bench.RESERVED_A_SEED), "--no-run"])
