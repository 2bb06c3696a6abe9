"""Simulated trial folder: layout, schemas, determinism, truth consistency, CLI and --force rules."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main as cli_main
from cytokit.errors import ConfigError, PipelineError
from cytokit.fcs import read_fcs
from cytokit.simulate import SimulationConfig, load_config, simulate_trial, truth_flags, truth_masks
from cytokit.simulate.channels import STYLES, TUBES
from cytokit.simulate.phenotypes import HIERARCHY

SMALL = dict(patients_per_arm=2, visits=["W0", "W24", "W74"], events=2000, seed=11)


def _cfg(**kw) -> SimulationConfig:
    return SimulationConfig(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trial")
    simulate_trial(out, _cfg(acquisition={"clog_probability": 0.5}))
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_and_manifest_schema(trial: Path) -> None:
    man = pd.read_csv(trial / "manifest.csv")
    assert list(man.columns) == ["file", "patient", "visit", "week", "arm", "tube", "sample_date", "instrument",
                                 "beads_per_tube", "sample_volume_uL"]
    assert len(man) == 4 * 3 * 2
    assert set(man["arm"]) == {"IL-2", "control"}
    assert man.groupby("arm")["patient"].nunique().to_dict() == {"IL-2": 2, "control": 2}
    assert set(man["tube"]) == {"tmem", "nkb"}
    assert sorted(set(man["visit"])) == ["W0", "W24", "W74"]
    assert (man["week"] == man["visit"].str[1:].astype(int)).all()
    for row in man.itertuples():
        assert (trial / row.file).is_file()
        assert row.file == f"fcs/{row.patient}_{row.visit}_{row.tube}.fcs"
        assert pd.Timestamp(row.sample_date)  # ISO date
        if row.tube == "nkb":
            assert row.beads_per_tube == 20000 and row.sample_volume_uL == 50
        else:
            assert pd.isna(row.beads_per_tube) and pd.isna(row.sample_volume_uL)
    for name in ("leaves.csv", "populations.csv", "patients.csv", "acquisition.csv"):
        assert (trial / "truth" / name).is_file()
    assert len(list((trial / "truth" / "labels").glob("*.npy"))) == len(man)


def test_clinical_and_cycles_schema(trial: Path) -> None:
    clin = pd.read_csv(trial / "clinical.csv")
    assert list(clin.columns) == ["patient", "arm", "stratum", "age", "sex", "visit", "week", "date",
                                  "lymphocytes_per_uL", "viral_load_copies_per_mL", "tetanus_titre_IU_per_mL",
                                  "recall_antigen_responder"]
    assert len(clin) == 4 * 3
    final = clin["visit"] == "W74"
    assert clin.loc[final, "recall_antigen_responder"].isin([0, 1]).all()
    assert clin.loc[~final, "recall_antigen_responder"].isna().all()
    assert (clin["lymphocytes_per_uL"] > 300).all() and (clin["viral_load_copies_per_mL"] >= 50).all()
    cyc = pd.read_csv(trial / "il2_cycles.csv")
    assert list(cyc.columns) == ["patient", "cycle", "start_date", "end_date"]
    il2 = set(clin.loc[clin["arm"] == "IL-2", "patient"])
    assert set(cyc["patient"]) == il2
    start, end = pd.to_datetime(cyc["start_date"]), pd.to_datetime(cyc["end_date"])
    assert ((end - start).dt.days == 4).all()  # 5-day cycles
    gaps = cyc.assign(s=start).groupby("patient")["s"].diff().dropna().dt.days
    assert (gaps == 56).all()  # every 8 weeks
    w0 = clin[clin["visit"] == "W0"].set_index("patient")["date"]
    first = cyc[cyc["cycle"] == 1].set_index("patient")["start_date"]
    assert (first == w0.reindex(first.index)).all()


def test_fcs_files_have_panel_channels_spillover_and_fixed_keywords(trial: Path) -> None:
    man = pd.read_csv(trial / "manifest.csv")
    styles_seen = set()
    for row in man.itertuples():
        s = read_fcs(trial / row.file)
        pnn = list(s.channels["pnn"])
        assert s.events.dtype == np.float32 and s.n_events == 2000
        assert (s.channels["range"] == 262144).all()
        assert pnn[:3] == ["FSC-A", "FSC-H", "SSC-A"] and pnn[-1] == "Time"
        style = next(k for k, st in STYLES.items() if pnn[3] == st.detectors[TUBES[row.tube][0][1]])
        styles_seen.add(style)
        expected = [STYLES[style].detectors[f] for _, f in TUBES[row.tube]]
        assert pnn[3:-1] == expected
        markers = [str(x).split()[0] for x in s.channels["pns"].iloc[3:-1]]
        assert markers == [m for m, _ in TUBES[row.tube]]
        spill = s.metadata["spillover"].split(",")
        assert int(spill[0]) == len(expected) and spill[1:1 + len(expected)] == expected
        assert s.metadata["cyt"] == row.instrument
        assert s.metadata["date"].endswith(row.sample_date[:4])
        assert np.isfinite(s.events).all()
    assert styles_seen == {"bd", "attune"}  # two instruments, both naming styles
    assert man["instrument"].nunique() == 2


def test_truth_percentages_match_labels(trial: Path) -> None:
    pops = pd.read_csv(trial / "truth" / "populations.csv")
    assert list(pops.columns) == ["file", "population", "parent", "count", "pct_parent", "pct_lymphocytes",
                                  "abs_count_per_uL"]
    man = pd.read_csv(trial / "manifest.csv").set_index("file")
    clin = pd.read_csv(trial / "clinical.csv").set_index(["patient", "visit"])
    for file, rows in pops.groupby("file"):
        tube = man.loc[file, "tube"]
        assert list(rows["population"]) == [p for p, _ in HIERARCHY[tube]]
        masks = truth_masks(trial, file)
        n = len(np.load(trial / "truth" / "labels" / f"{Path(file).stem}.npy"))
        assert n == 2000
        singlets = masks["Singlets"].sum()
        lpu = clin.loc[(man.loc[file, "patient"], man.loc[file, "visit"]), "lymphocytes_per_uL"]
        for r in rows.itertuples():
            count = int(masks[r.population].sum())
            assert r.count == count
            parent = masks[r.parent].sum() if isinstance(r.parent, str) and r.parent else n
            assert r.pct_parent == pytest.approx(100 * count / parent)
            if r.population != "Beads":
                assert r.pct_lymphocytes == pytest.approx(100 * count / singlets)
                assert r.abs_count_per_uL == pytest.approx(r.pct_lymphocytes / 100 * lpu)
            if isinstance(r.parent, str) and r.parent:
                assert not (masks[r.population] & ~masks[r.parent]).any()  # a child lies inside its parent


def test_truth_definitions_doublets_debris_and_clogs(trial: Path) -> None:
    leaves = pd.read_csv(trial / "truth" / "leaves.csv", keep_default_na=False)
    assert leaves["code"].is_unique and leaves["code"].between(1, 255).all()
    for kind in ("doublet_cells", "doublet_debris", "debris", "monocyte", "granulocyte", "aggregate", "bead"):
        pops = leaves.loc[leaves["kind"] == kind, "populations"]
        assert not pops.str.contains("Singlets").any()
    assert set(leaves.loc[leaves["kind"] == "doublet_debris", "populations"]) == {"Lymphocytes"}
    assert set(leaves.loc[leaves["kind"].isin(["debris", "monocyte", "granulocyte", "doublet_cells"]),
                          "populations"]) == {""}
    acq = pd.read_csv(trial / "truth" / "acquisition.csv")
    assert (acq["n_doublet_events"] > 0).all()
    assert (acq["n_saturated_events"] > 0).all()
    clogged = acq[acq["clog_start_s"].notna()]
    assert len(clogged) > 0
    for row in clogged.itertuples():
        flags = truth_flags(trial, row.file)
        assert flags["clog"].sum() == row.n_clog_events > 0
        s = read_fcs(trial / row.file)
        t = s.column("Time") * float(s.metadata["timestep"])
        assert t[flags["clog"]].min() >= row.clog_start_s - 1e-2
        assert t[flags["clog"]].max() <= row.clog_end_s + 1e-2
        masks = truth_masks(trial, row.file)
        assert masks["Singlets"][flags["clog"]].any()  # clog events keep their population


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    cfg = _cfg(patients_per_arm=1, visits=["W0", "W74"], events=500)
    simulate_trial(tmp_path / "a", cfg)
    simulate_trial(tmp_path / "b", cfg)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) > 10
    simulate_trial(tmp_path / "c", cfg.model_copy(update={"seed": 12}))
    c = _digest(tmp_path / "c")
    assert a["fcs/P001_W0_tmem.fcs"] != c["fcs/P001_W0_tmem.fcs"]


def test_force_required_and_non_generated_files_survive(tmp_path: Path) -> None:
    cfg = _cfg(patients_per_arm=2, visits=["W0"], events=300, tubes=["nkb"])
    simulate_trial(tmp_path, cfg)
    (tmp_path / "README.md").write_text("keep me")
    with pytest.raises(PipelineError, match="--force"):
        simulate_trial(tmp_path, cfg)
    smaller = cfg.model_copy(update={"patients_per_arm": 1})
    simulate_trial(tmp_path, smaller, force=True)
    assert (tmp_path / "README.md").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "fcs").iterdir()) == ["P001_W0_nkb.fcs", "P002_W0_nkb.fcs"]
    assert len(list((tmp_path / "truth" / "labels").glob("*.npy"))) == 2


def test_cli_writes_trial_and_reports_bad_config(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    rc = cli_main(["simulate", str(out), "--patients-per-arm", "1", "--visits", "W0,W12", "--tubes", "tmem",
                   "--events", "400", "--seed", "3"])
    assert rc == 0
    man = pd.read_csv(out / "manifest.csv")
    assert len(man) == 4 and set(man["tube"]) == {"tmem"} and set(man["visit"]) == {"W0", "W12"}
    assert cli_main(["simulate", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("events: 1000\nvisits: [W0, W24]\nacquisition:\n  clog_probability: 2\n")
    assert cli_main(["simulate", str(tmp_path / "x"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:4" in err and "clog_probability" in err
    assert cli_main(["simulate", str(tmp_path / "y"), "--visits", "W12,W24"]) == 2
    assert "W0" in capsys.readouterr().err


def test_config_validation_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tubes"):
        load_config(None, tubes=["tmem", "xyz"])
    y = tmp_path / "s.yaml"
    y.write_text("course:\n  arms:\n    IL-2: {cd4_gain_median: 865, pct_reaching_80: 89}\n")
    with pytest.raises(ConfigError, match=r"s.yaml:2: course.arms"):
        load_config(y)
    y.write_text("course:\n  arms:\n    IL-2: {cd4_gain_median: 10, pct_reaching_80: 99}\n"
                 "    control: {cd4_gain_median: 262, pct_reaching_80: 47}\n")
    with pytest.raises(ConfigError, match="pct_reaching_80"):
        simulate_trial(tmp_path / "o", load_config(y))


def test_bad_requests_raise_clear_errors(tmp_path: Path) -> None:
    from cytokit.simulate import simulate_file

    with pytest.raises(ConfigError, match="unknown tube 'xyz'"):
        simulate_file(tmp_path / "x.fcs", 1000, "xyz")
    with pytest.raises(ConfigError, match="no instrument of style 'aria'"):
        simulate_file(tmp_path / "x.fcs", 1000, "tmem", "aria")
    with pytest.raises(ConfigError, match="no truth labels"):
        truth_masks(tmp_path, "fcs/P001_W0_tmem.fcs")
    with pytest.raises(ConfigError, match="clog_duration_fraction"):
        load_config(None, acquisition={"clog_duration_fraction": (0.3, 0.9)})
    assert not (tmp_path / "x.fcs").exists()


def test_overrides_merge_into_the_yaml_config(tmp_path: Path) -> None:
    y = tmp_path / "s.yaml"
    y.write_text("events: 1234\nacquisition:\n  clog_probability: 0.9\n  gain_cv: 0.2\n")
    cfg = load_config(y, seed=5, acquisition={"gain_cv": 0.05})
    assert (cfg.events, cfg.seed) == (1234, 5)
    assert cfg.acquisition.clog_probability == 0.9 and cfg.acquisition.gain_cv == 0.05
