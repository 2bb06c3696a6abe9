"""Cohort gating on a simulated cohort with truth: which outliers' re-fits are accepted, and what the
tables then report. A file whose detector gains were changed has gates that sit away from the cohort but
are right for its data; by default no re-fit replaces a per-file fit (``accept_flags`` empty), and with
``accept_flags`` a re-fit is accepted exactly for fits that carry one of the given flags."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cytokit.gating.methods import REVIEW_FLAGS
from cytokit.pipeline import run
from cytokit.pipeline.cohort import ACCEPT_FLAGS, run_cohort_gating
from cytokit.pipeline.config import CohortGatingConfig
from cytokit.results import ResultsFolder
from cytokit.simulate import load_config, simulate_file, truth_masks

N_FILES = 8
GAIN_FILE = 3  # detector gains x 2.6 (a changed voltage): every fluorescence gate moves, rightly
SHOULDER_FILE = 5  # brighter, broader negatives: the per-file rule may misplace dim-marker gates


def _cohort(folder: Path) -> pd.DataFrame:
    rows = []
    for i in range(N_FILES):
        inst: dict = {"name": "BD FACSCanto II", "style": "bd"}
        over: dict = {}
        if i == GAIN_FILE:
            inst["fluorescence_scale"] = 2.6
        if i == SHOULDER_FILE:
            over["phenotype"] = {"negative_spread": 0.8, "autofluorescence_scale": 3.0}
        name = f"fcs/c_{i:02d}.fcs"
        simulate_file(folder / name, 8000, "tmem", "bd", seed=700 + i, config=load_config(None, instruments=[inst],
                                                                                      **over), truth_out=folder)
        rows.append({"file": name, "patient": f"P{i:03d}", "visit": "W0", "week": 0, "arm": "control",
                     "tube": "tmem", "sample_date": "2001-06-23", "instrument": inst["name"]})
    man = pd.DataFrame(rows)
    man.to_csv(folder / "manifest.csv", index=False)
    return man


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cohort_refit")
    trial = base / "trial"
    man = _cohort(trial)
    cfg = {"name": "cohort_refit", "manifest": {"path": str(trial / "manifest.csv")},
           "tubes": {"tmem": {"panel": "il2_trial", "strategy": "tmem"}},
           "qc": {"enabled": True, "min_events": 100},
           "outputs": {"gatingml": False, "thumbnails": False, "flowjo_workspace": False, "anndata": False,
                       "trial": False, "reports": False, "clustering": False, "cohort_gating": True},
           "executor": {"jobs": 2}}
    path = base / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = base / "out"
    summary = run(path, out, stages=False)
    assert summary.failed == 0 and summary.stage_errors == {}
    return trial, man, out


def test_outliers_are_flagged_and_per_file_fits_kept_by_default(cohort_run):
    trial, man, out = cohort_run
    pops = pd.read_parquet(out / "populations.parquet")
    refits = pd.read_parquet(out / "gating_cohort" / "refits.parquet")
    positions = pd.read_parquet(out / "gating_cohort" / "positions.parquet")
    assert CohortGatingConfig().accept_flags == ACCEPT_FLAGS == ()  # the pipeline's default is the stage's
    assert CohortGatingConfig().frame == "modes" and positions["frame"].isin(["modes", "sd"]).mean() > 0.9
    lone = positions[positions["frame"] == "absolute"]  # one-mode files among two-mode ones: common scale only
    assert ((lone["high_mode"] - lone["low_mode"]) < 0.1).all() and not lone["shifted"].any()
    assert not refits["accepted"].any() and not refits["changed"].any()  # both fits recorded, none reported
    # the re-fits' flags split as the tables split them: cohort_outlier is a note, review = needs_review(flags)
    from cytokit.gating.methods import review_columns
    assert len(refits) and refits["notes"].str.split(";").map(lambda w: "cohort_outlier" in w).all()
    expected = pd.DataFrame([review_columns(f) for f in refits["flags"]], index=refits.index)
    pd.testing.assert_frame_equal(refits[["review", "review_flags", "notes"]], expected, check_dtype=False)
    assert not pops["method"].str.endswith("+cohort").any()
    # the tables carry the note on exactly the populations whose own gate is a cohort outlier
    outl = set(zip(positions.loc[positions["outlier"], "sample_id"], positions.loc[positions["outlier"], "population"]))
    noted = {(s_, p_) for s_, p_, f in zip(pops["sample_id"], pops["population"], pops["flags"].fillna(""))
             if "cohort_outlier" in f.split(";")}
    assert noted == outl
    gain_id = pops.loc[pops["file"] == man["file"][GAIN_FILE], "sample_id"].iloc[0]
    gain = positions[positions["sample_id"] == gain_id]
    away = gain[gain["outlier_absolute"]]
    assert len(away) > 0  # its gates do sit away from the cohort's on the common scale ...
    # ... but mostly where the cohort puts them relative to the file's own negative mode: shifted, not outliers
    assert away["shifted"].mean() >= 0.75, away[["population", "dim", "rel_position", "rel_median"]]
    assert (positions["shifted"] == positions["outlier_absolute"] & ~positions["outlier"]).all()
    # the changed-gain file's fits are right for its data: the tables report them, close to the truth
    masks = truth_masks(trial, man["file"][GAIN_FILE])
    rows = pops[pops["sample_id"] == gain_id].set_index("population")
    for name in set(away["population"]):
        parent = rows.loc[name, "parent"]
        truth = 100.0 * masks[name].sum() / max(masks[parent].sum(), 1)
        assert abs(rows.loc[name, "pct_parent"] - truth) < 3.0, (name, rows.loc[name, "pct_parent"], truth)


def test_accepting_refits_by_flag_or_always(cohort_run):
    _, _, out = cohort_run
    review = tuple(sorted(REVIEW_FLAGS))
    # on the common scale (absolute frame) the changed-gain file's gates are outliers and re-fitted
    by_flag = run_cohort_gating(out, accept_flags=review, frame="absolute")
    own = by_flag.refits[by_flag.refits["population"] == by_flag.refits["outlier_population"]]
    words = own["fit_flags"].map(lambda f: {p for w in f.split(";") for p in w.split(":")})
    assert (own["accepted"] == words.map(lambda w: bool(w & set(review)))).all()  # exactly the flagged fits
    assert not by_flag.refits.loc[~by_flag.refits["accepted"], "changed"].any()
    every = run_cohort_gating(out, accept_flags=None, frame="absolute")
    assert every.refits["accepted"].all()
    assert len(every.refits) == len(by_flag.refits)  # the same outliers, re-fitted alike; only acceptance differs
    assert every.refits["changed"].sum() > 0 and every.refits["changed"].sum() >= by_flag.refits["changed"].sum()
    np.testing.assert_allclose(every.refits["refit_pct_parent"], by_flag.refits["refit_pct_parent"])
    # the tables' rows follow the accepted, moved re-fits
    changed = every.refits[every.refits["changed"]]
    assert set(changed["sample_id"]) <= set(every.populations)
    # every outlying population's row carries the note, its number changed only where a re-fit moved it
    outl = every.positions[every.positions["outlier"]]
    stored = {sid: {r["population"]: r for r in ResultsFolder(out).sample_result(sid)["populations"]}
              for sid in every.populations}
    for sid, rows in every.populations.items():
        moved = set(changed.loc[changed["sample_id"] == sid, "population"])
        for r in rows:
            is_out = ((outl["sample_id"] == sid) & (outl["population"] == r["population"])).any()
            assert ("cohort_outlier" in r["flags"].split(";")) == (is_out or r["population"] in moved)
            if r["population"] not in moved:
                assert r["pct_parent"] == stored[sid][r["population"]]["pct_parent"]
    run_cohort_gating(out)  # leave the folder's tables as the pipeline wrote them
