"""Lab C of the independent generator (benchmarks/independent_lab_gen/*_c.py): truth consistent with itself and
with the files, the spectral (unmixed) and conventional instruments' files as documented, its strategies the
shipped ones with the documented YAML edits, and the benchmark's path (`independent_lab.py --lab c`) end to end
on a small trial, absolute counts from the counting beads included."""
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
from independent_lab_gen.cells_c import HIERARCHY_C, LYMPHOCYTES_C  # noqa: E402
from independent_lab_gen.lab_c import TUBES_C  # noqa: E402
from independent_lab_gen.trial_c import SAMPLE_VOLUME_UL, generate_trial_c  # noqa: E402
from independent_lab_gen.user_yaml_c import PANEL_C, lab_c_strategy, write_lab_c_strategies  # noqa: E402


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 4 patients: C01/C02 on the spectral instrument E, C03/C04 on instrument F (V4 re-calibrated)
    return generate_trial_c(tmp_path_factory.mktemp("labc") / "trial", patients=4, events=9000, seed=5)


def test_seeded_output_is_reproducible(trial: Path, tmp_path: Path) -> None:
    again = generate_trial_c(tmp_path / "again", patients=4, events=9000, seed=5)
    assert _digest(again) == _digest(trial)
    other = generate_trial_c(tmp_path / "other", patients=4, events=9000, seed=6, max_files=1)
    first = pd.read_csv(trial / "manifest.csv").file.iloc[0]
    assert (other / first).read_bytes() != (trial / first).read_bytes()


def test_truth_labels_nest_and_match_the_population_table(trial: Path) -> None:
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    files = pd.read_csv(trial / "truth" / "files.csv").set_index("file")
    assert len(man) == 4 * 3 * 2
    for r in man.itertuples():
        masks = truth_masks(trial, r.file)
        n = read_fcs(trial / r.file).n_events
        assert n == files.loc[r.file, "events"] and 3000 <= n <= 9000
        t = truth[truth.file == r.file].set_index("population")
        assert list(t.index) == [p for p, _ in HIERARCHY_C[r.tube]]
        for pop, parent in HIERARCHY_C[r.tube]:
            if parent:
                assert not (masks[pop] & ~masks[parent]).any(), f"{r.file}: {pop} outside {parent}"
            assert t.loc[pop, "count"] == masks[pop].sum()
            denominator = masks[parent].sum() if parent else n
            assert t.loc[pop, "pct_parent"] == pytest.approx(100 * masks[pop].sum() / denominator)
        kinds = event_kinds(trial, r.file)
        assert (masks["Singlets"] == kinds.isin(["lymphocyte", "dead lymphocyte"]).to_numpy()).all()
        assert t.loc[LYMPHOCYTES_C[r.tube], "pct_lymphocytes"] == pytest.approx(100)
        if r.tube == "tc":
            parts = [masks[p] for p in ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")]
            assert (np.sum(parts, axis=0) == masks["CD4 T"]).all()
            assert (masks["CD25+ CD4"] == masks["Treg"]).all()  # CD25: a bright Treg mode only
            # the elderly cohort: CD8-dominant, CD28-null CD8 expansion, few naive CD4
            assert t.loc["CD8 T", "pct_parent"] > t.loc["CD4 T", "pct_parent"] - 3
            assert t.loc["CD28+ CD8", "pct_parent"] < 60 and t.loc["Naive CD4", "pct_parent"] < 20
        else:
            assert (masks["Beads"] == (kinds == "bead").to_numpy()).all()
            assert not (masks["T cells"] & (masks["NK cells"] | masks["B cells"])).any()
            beads = man.loc[r.Index, "beads_per_tube"]
            want = t["count"] * beads / (masks["Beads"].sum() * SAMPLE_VOLUME_UL)
            assert t.loc["T cells", "abs_per_uL"] == pytest.approx(want["T cells"])
            assert np.isnan(t.loc["Beads", "abs_per_uL"])
    # counting beads only in the tbnk tube's manifest rows
    assert man[man.tube == "tbnk"].beads_per_tube.notna().all() and man[man.tube == "tc"].beads_per_tube.isna().all()


def test_spectral_and_conventional_files_as_documented(trial: Path) -> None:
    files = pd.read_csv(trial / "truth" / "files.csv")
    panel = load_panel(PANEL_C)
    seen = set()
    for r in files.itertuples():
        s = read_fcs(trial / r.file)
        names = list(s.channels["pnn"])
        seen.add((r.instrument, "AF-A" in names, "Pacific Blue-A" in names, int(s.channels["range"].iloc[4])))
        resolved = panel.resolve(s, tube=r.tube)
        fluor = resolved.channels[resolved.channels["kind"] == "fluorescence"]
        assert set(TUBES_C[r.tube]) <= set(fluor["marker"])  # every marker found, Diva names included
        assert panel_flags(resolved) == []  # the autofluorescence channel is not given a marker
        if r.instrument == "E":
            assert "spillover" not in s.metadata and "SSC-B-A" in names
            x = s.events[:, names.index(f"{dict((m, f) for m, f in TUBES_C[r.tube].items())['CD3']}-A")]
            assert (x < 0).mean() > 0.05  # unmixed negatives spread around 0
        else:
            assert "spillover" in s.metadata
    assert seen == {("E", True, False, 4_194_304), ("F", False, True, 262_144)}
    recal = files[files.scenarios.str.contains("recalibrated")]
    assert len(recal) == 4 and set(recal.instrument) == {"F"} and set(recal.file.str.split("_").str[1]) == {"V4"}
    gains = np.array([[float(g) for g in s.split(";")] for s in files.gains])
    f_other = (files.instrument == "F") & ~files.scenarios.str.contains("recalibrated")
    # the re-calibration moves every detector's gain by 1.35-1.73x (either way); day-to-day gains stay close
    assert np.abs(np.log(gains[recal.index])).min() > 0.2 and np.abs(np.log(gains[f_other.to_numpy()])).max() < 0.25
    assert (files.clog_events > 0).groupby(files.tube).any().all()


def test_lab_c_strategies_are_the_shipped_ones_with_the_documented_edits(tmp_path: Path) -> None:
    folder = write_lab_c_strategies(tmp_path)
    for tube, shipped_name in (("tc", "tmem"), ("tbnk", "nkb")):
        shipped = yaml.safe_load(resolve_definition(shipped_name, "gating").read_text())
        mine = lab_c_strategy(tube)
        assert mine["compensation"] == "file_if_present" and shipped["compensation"] == "file"
        by_name = {p["name"]: p for p in mine["populations"]}
        assert list(by_name) == [p["name"] for p in shipped["populations"]]
        for p in shipped["populations"]:
            got, want = copy.deepcopy(by_name[p["name"]]), copy.deepcopy(p)
            if want["dims"] == ["CD45RA", "CD62L"]:
                assert got["dims"] == ["CD45RA", "CCR7"] and got["params"] == want["params"]
                continue
            if p["name"] == "Lymphocytes":  # the lab states its doublet convention: its gate leaves them out
                assert got["params"].pop("lymphocyte_doublets") == "excluded"
            if tube == "tbnk" and p["name"] == "Lymphocytes":
                assert got["dims"] == ["CD45", "SSC-A"]
                assert got["params"] == dict(want["params"], target=[0.8, 0.05])
                continue
            assert got == want, f"{tube}: {p['name']} differs from the shipped gate"
        strategy = load_strategy(folder / f"lab_{tube}.yaml")
        names = [p.name for p in strategy.definition.populations]
        assert [p for p, _ in HIERARCHY_C[tube]] == [n for n in names if n in dict(HIERARCHY_C[tube])]
    assert lab_c_strategy("tc", "shipped")["populations"] == lab_c_strategy("tc")["populations"]
    assert {p["name"]: p for p in lab_c_strategy("tbnk", "shipped")["populations"]}["Lymphocytes"]["dims"] == [
        "FSC-H", "SSC-A"]
    # the bead-excluding variant: Beads first, the lymphocyte gate drawn on the events outside it
    nb = lab_c_strategy("tbnk", "cd45_ssc_no_beads")["populations"]
    assert [p["name"] for p in nb[:3]] == ["Beads", "Not beads", "Lymphocytes"] and nb[2]["parent"] == "Not beads"
    assert nb[1]["params"] == {"op": "not", "operands": ["Beads"]}
    assert load_strategy(write_lab_c_strategies(tmp_path / "nb", "cd45_ssc_no_beads") / "lab_tbnk.yaml")


def _bench():
    spec = importlib.util.spec_from_file_location("independent_lab_benchmark_c", BENCH / "independent_lab.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_lab_c_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every file gated and scored, flag recall, time QC and data checks printed; `cytokit run` without a failed
    sample, single-platform absolute counts for the bead tube and dual-platform for the other."""
    bench = _bench()
    est = tmp_path / "estimates.csv"
    assert bench.main(["--lab", "c", "--patients", "2", "--events", "15000", "--seed", "5", "--keep", str(tmp_path),
                       "--csv", str(est)]) == 0
    out = capsys.readouterr().out
    assert "generated 12 files" in out and "flag recall" in out and "time QC" in out and "data checks" in out
    assert "`cytokit run` end to end" in out and "0 failed samples" in out
    assert "single-platform absolute counts" in out
    df = pd.read_csv(est)
    man = pd.read_csv(tmp_path / "trial" / "manifest.csv")
    assert set(df.file) == set(man.file)
    assert set(df.population) == {p for tube in HIERARCHY_C for p, _ in HIERARCHY_C[tube]}
    # CD4 / CD8 T (well separated) are close to truth on both instruments, spectral included
    cd48 = df[df.population.isin(["CD4 T", "CD8 T"])]
    lymph = df[df.population == "Lymphocytes"].set_index("file").flag_words.fillna("")
    off = cd48[cd48.err >= 3]
    assert len(cd48) == 12 and off.empty, (
        "CD4 / CD8 T >= 3 pp off: " + "; ".join(f"{r.file} {r.population} {r.truth_pct:.1f} % true, {r.auto_pct:.1f} % "
                                                 f"read, Lymphocytes gate notes: {lymph[r.file]}" for r in off.itertuples()))
    results = pd.read_csv(tmp_path / "results" / "samples.csv")
    method = dict(zip(results.sample_id.str.rsplit("_", n=1).str[-1], results.abs_method))
    assert method == {"tc": "dual_platform", "tbnk": "single_platform"}
    pops = pd.read_csv(tmp_path / "results" / "populations.csv")
    b = pops[(pops.population == "B cells") & (pops.tube == "tbnk")]
    assert len(b) == 6 and (b.abs_count_per_uL > 0).all()
    # where each bead-counted population's true cells are lost: the parts add up to its count's error
    assert "where true cells are lost" in out
    truth = pd.read_csv(tmp_path / "trial" / "truth" / "populations.csv").set_index(["file", "population"])
    counted = df[df.tube == "tbnk"].set_index(["file", "population"]).loc[
        lambda d: d.index.get_level_values(1).isin(["T cells", "NK cells", "CD56bright NK", "B cells"])]
    assert len(counted) == 24 and counted[list(bench.LOSS_COLUMNS)].notna().all().all()
    parts = counted.extra - counted[[c for c in bench.LOSS_COLUMNS if c != "extra"]].sum(axis=1)
    rel = 100 * (counted["count"] / truth.loc[counted.index, "count"] - 1)
    assert np.allclose(parts, rel, atol=0.01)
    assert df[df.tube == "tc"][list(bench.LOSS_COLUMNS)].isna().all().all()
    # a clipped logicle W is a note about the transform, not a warning that keeps a wrong row from being silent
    files = pd.read_csv(tmp_path / "estimates_files.csv").fillna("")
    assert not files.data_flags.str.contains("logicle_w_clipped").any()
    assert files.data_notes.str.contains("logicle_w_clipped").any()


def test_reserved_seed_is_refused() -> None:
    bench = _bench()
    with pytest.raises(SystemExit):
        bench.main(["--lab", "c", "--seed", str(bench.RESERVED_C_SEED), "--no-run"])
    with pytest.raises(SystemExit):  # the lab-C gate is not a variant of the other labs
        bench.main(["--lab", "a", "--lymphocyte-gate", "cd45_ssc", "--no-run"])


def test_unmixed_file_under_compensation_file_says_what_to_set(trial: Path, tmp_path: Path) -> None:
    """A spectral (unmixed) file has no $SPILLOVER: the shipped `compensation: file` refuses it with an error that
    names the file and the strategy setting that gates it (a new user's first run on such files)."""
    from cytokit.errors import CompensationError

    d = lab_c_strategy("tc")
    d["compensation"] = "file"
    path = tmp_path / "tc_file.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    files = pd.read_csv(trial / "truth" / "files.csv")
    spectral = files[(files.instrument == "E") & (files.tube == "tc")].file.iloc[0]
    with pytest.raises(CompensationError, match=r"C01_V0_tc\.fcs: .*no spillover matrix.*'compensation: none'"):
        load_strategy(path).apply(read_fcs(trial / spectral), qc=False)
    conventional = files[(files.instrument == "F") & (files.tube == "tc")].file.iloc[0]
    assert load_strategy(path).apply(read_fcs(trial / conventional), qc=False).populations["count"].iloc[0] > 0


def test_where_lost_splits_a_count_error_by_gate() -> None:
    """True cells lost outside the scatter gate (live / dead), the singlet gate, a parent gate and the
    population's own gate, and events it holds that are not its cells, each in % of the true cells."""
    bench = _bench()
    n = 20
    true = np.zeros(n, bool)
    true[:10] = True
    dead = np.zeros(n, bool)
    dead[1] = True
    gated = {name: np.ones(n, bool) for name in ("Lymphocytes", "Singlets", "NK cells", "CD56bright NK")}
    gated["Lymphocytes"][[0, 1]] = False  # one live, one dead cell outside the scatter gate
    gated["Singlets"][[1, 2]] = False  # 1 is already outside: only 2 counts here
    gated["NK cells"][3] = False
    gated["CD56bright NK"][[4, 5]] = False
    gated["CD56bright NK"][[0, 1, 2, 3]] = False  # lost above, not counted again at its own gate
    gated["CD56bright NK"][10:] = False
    gated["CD56bright NK"][15] = True  # one other event inside
    out = bench.where_lost("CD56bright NK", ["Lymphocytes", "Singlets", "NK cells"], gated, true, dead)
    assert out == {"lost_scatter_live": 10.0, "lost_scatter_dead": 10.0, "lost_singlets": 10.0,
                   "lost_parents": 10.0, "lost_own": 20.0, "extra": 10.0}
    assert set(out) == set(bench.LOSS_COLUMNS)
