"""Cohort-aware gating against truth: are the files whose gates the per-file rule misplaces found as
cohort outliers, and does the re-fit within the cohort's range bring them closer to the truth without
making clean files worse?

Cohorts are simulated (tube x instrument, ``--files`` files of different typical patients each, their
own per-file gain and stain variation). In every cohort a few files get a **failure mode** made by the
simulator, not by editing the gating: ``gain`` (that file's detector gains x 2.6 or x 0.35 — a changed
voltage), ``shoulder`` (broad, bright negative peaks: autofluorescence x 3, log-sd 0.8, so a negative
shoulder runs into the positives) and ``few_events`` (1,200 events instead of ``--events``). The folder
is run through the pipeline (:func:`cytokit.pipeline.run`) with ``outputs.cohort_gating: true``.

Truth: per (file, population) the simulator's % of parent (its per-event labels; the parent is the
strategy's parent population). An estimate is a **gate failure** when the per-file fit is more than
``--fail-pp`` (2) pp off. The script reports

* outlier detection per estimate (re-fitted populations, i.e. the outlier and its descendants, against
  gate failures): recall and precision; and per file (a file with any outlier vs an injected file);
* |% - truth| of the per-file fit and of the numbers the tables report after the re-fit, for the
  flagged estimates, the replaced ones and all estimates of clean (not injected) files.

The pipeline runs once per seed (cohort gating at the defaults); with ``--grid`` the cohort stage is
re-run on the stored results for every rule of :data:`RULES` (frame x ``k`` x ``min_shift`` x which per-file
fits may take a re-fit, :data:`ACCEPT`); without it, the defaults plus, in each frame (relative to the file's
own negative mode in its SDs, ``sd``; ``offset``; ``absolute``), "never" and "always" for comparison. Splits:
``tune`` (seeds 1-2) was used to choose the rules; ``test`` (seeds 11-13) was reported with the absolute
frame and looked at again for the relative frames; ``fresh`` (seeds 21-23) was drawn once, after the frame
and its limits were chosen. ``--keep DIR`` keeps (and re-uses) the simulated folders and pipeline outputs,
so the cohort stage can be re-run on them without simulating again.

    nice .venv/bin/python benchmarks/cohort_accuracy.py [--split tune|test|fresh|all] [--files 12]
        [--events 15000] [--grid] [--json OUT] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cytokit.gating import load_strategy
from cytokit.gating.methods import REVIEW_FLAGS
from cytokit.pipeline import run
from cytokit.pipeline.cohort import run_cohort_gating
from cytokit.pipeline.config import CohortGatingConfig
from cytokit.results import ResultsFolder
from cytokit.simulate import load_config, simulate_file, truth_masks

SPLITS = {"tune": (1, 2), "test": (11, 12, 13), "fresh": (21, 22, 23)}
MODES = ("gain", "shoulder", "few_events")
INSTRUMENTS = ({"name": "BD FACSCanto II", "style": "bd"}, {"name": "Attune NxT", "style": "attune"})
OUTPUTS = {"gatingml": False, "thumbnails": False, "flowjo_workspace": False, "anndata": False, "trial": False,
           "reports": False, "clustering": False, "cohort_gating": True}


def _config(mode: str | None, instrument: dict, rng: np.random.Generator):
    """Simulation config of one file: the cohort's instrument, plus the failure ``mode`` (None = clean)."""
    inst = dict(instrument)
    overrides: dict = {}
    if mode == "gain":
        inst["fluorescence_scale"] = float(rng.choice([2.6, 0.35]))
    elif mode == "shoulder":
        overrides["phenotype"] = {"negative_spread": 0.8, "autofluorescence_scale": 3.0}
    overrides["instruments"] = [inst]
    return load_config(None, **overrides)


def simulate_cohorts(folder: Path, seed: int, n_files: int, events: int) -> pd.DataFrame:
    """One cohort per tube x instrument; returns the manifest (with ``mode``, None for clean files)."""
    rng = np.random.default_rng(seed)
    rows = []
    for tube in ("tmem", "nkb"):
        for inst in INSTRUMENTS:
            injected = dict(zip(rng.choice(n_files, len(MODES), replace=False).tolist(), MODES))
            for i in range(n_files):
                mode = injected.get(i)
                name = f"fcs/s{seed}_{tube}_{inst['style']}_{i:02d}.fcs"
                n = 1200 if mode == "few_events" else events
                simulate_file(folder / name, n, tube, inst["style"], seed=seed * 1000 + 37 * i + len(rows),
                              config=_config(mode, inst, rng), truth_out=folder)
                rows.append({"file": name, "patient": f"P{seed}{len(rows):03d}", "visit": "W0", "week": 0,
                             "arm": "control", "tube": tube, "sample_date": "2001-06-23",
                             "instrument": inst["name"], "mode": mode})
    man = pd.DataFrame(rows)
    man.drop(columns="mode").to_csv(folder / "manifest.csv", index=False)
    return man


def truth_pct(folder: Path, man: pd.DataFrame) -> pd.DataFrame:
    strategies = {t: load_strategy(t) for t in man["tube"].unique()}
    rows = []
    for r in man.itertuples():
        masks = truth_masks(folder, r.file)
        for pop in strategies[r.tube].definition.populations:
            if pop.name not in masks:
                continue
            parent = masks.get(pop.parent) if pop.parent else None
            denom = int(parent.sum()) if parent is not None else len(masks[pop.name])
            rows.append({"file": r.file, "population": pop.name,
                         "truth_pct": 100.0 * int(masks[pop.name].sum()) / denom if denom else np.nan})
    return pd.DataFrame(rows)


def simulate_and_run(seed: int, n_files: int, events: int, root: Path) -> tuple[Path, pd.DataFrame]:
    """Simulate one seed's cohorts and run the pipeline on them with cohort gating at its defaults;
    returns (output folder, per-estimate frame with truth, the per-file fit and the pipeline's table)."""
    folder = root / f"cohorts_{seed}"
    out = root / f"out_{seed}"
    if (folder / "manifest_modes.csv").exists() and (out / "populations.parquet").exists():
        return out, _collect(folder, out, pd.read_csv(folder / "manifest_modes.csv"), seed)
    man = simulate_cohorts(folder, seed, n_files, events)
    cfg = {"name": f"cohorts_{seed}", "manifest": {"path": str(folder / "manifest.csv")},
           "tubes": {"tmem": {"panel": "il2_trial", "strategy": "tmem"},
                     "nkb": {"panel": "il2_trial", "strategy": "nkb"}},
           "qc": {"enabled": True, "min_events": 100}, "outputs": OUTPUTS, "executor": {"jobs": 2}}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    summary = run(path, out, stages=False)
    if summary.failed:
        raise SystemExit(f"pipeline failed on {summary.failed} files: {summary.failures}")
    man.to_csv(folder / "manifest_modes.csv", index=False)
    return out, _collect(folder, out, man, seed)


def _collect(folder: Path, out: Path, man: pd.DataFrame, seed: int) -> pd.DataFrame:
    man = man.assign(mode=man["mode"].where(man["mode"].notna(), None))
    pops = pd.read_parquet(out / "populations.parquet")
    folder_ = ResultsFolder(out)
    own = {(sid, str(r["population"])): float(r["pct_parent"])
           for sid in pops["sample_id"].unique() for r in folder_.sample_result(sid)["populations"]}
    df = pops[["sample_id", "file", "population", "pct_parent"]].rename(columns={"pct_parent": "pipeline_pct"})
    df = df.merge(truth_pct(folder, man), on=["file", "population"])
    df = df.merge(man[["file", "mode", "tube", "instrument"]], on="file")
    df["per_file_pct"] = [own[(s_, p_)] for s_, p_ in zip(df["sample_id"], df["population"])]
    df["seed"] = seed
    return df


def evaluate(out: Path, base: pd.DataFrame, k: float, min_shift: float, accept: tuple[str, ...] | None,
             frame: str = "sd") -> pd.DataFrame:
    """``base`` with the numbers the tables report under one outlier rule (the cohort stage re-run on the
    stored results): ``outlier`` (the population's own gate is a cohort outlier), ``refitted`` (it or an
    ancestor was), ``replaced`` (the tables report the re-fit) and ``reported_pct``."""
    res = run_cohort_gating(out, k=k, min_shift=min_shift, accept_flags=accept, frame=frame)
    pos = res.positions
    outl = set(zip(pos.loc[pos["outlier"], "sample_id"], pos.loc[pos["outlier"], "population"]))
    refit = set(zip(res.refits["sample_id"], res.refits["population"]))
    changed = set(zip(res.refits.loc[res.refits["changed"], "sample_id"],
                      res.refits.loc[res.refits["changed"], "population"]))
    rf = res.refits
    own = rf[(rf["population"] == rf["outlier_population"]) & rf["accepted"].astype(bool)]
    accepted = set(zip(own["sample_id"], own["population"]))
    rows = {(sid, str(r["population"])): float(r["pct_parent"]) for sid, rs in res.populations.items() for r in rs}
    df = base.copy()
    key = list(zip(df["sample_id"], df["population"]))
    df["outlier"] = [kk in outl for kk in key]
    df["refitted"] = [kk in refit for kk in key]
    df["replaced"] = [kk in changed for kk in key]
    df["accepted_outlier"] = [kk in accepted for kk in key]
    df["reported_pct"] = [rows.get(kk, p) for kk, p in zip(key, df["per_file_pct"])]
    df["err_before"] = (df["per_file_pct"] - df["truth_pct"]).abs()
    df["err_after"] = (df["reported_pct"] - df["truth_pct"]).abs()
    df["injected"] = df["mode"].notna()
    return df


def summarise(df: pd.DataFrame, fail_pp: float) -> dict:
    fail = df["err_before"] > fail_pp
    flagged = df["refitted"]
    files = df.groupby(["seed", "file"]).agg(injected=("injected", "first"), flagged=("outlier", "any"),
                                             failed=("err_before", lambda e: bool((e > fail_pp).any())))
    clean = ~df["injected"]

    def errs(mask: pd.Series) -> dict:
        sub = df[mask]
        if sub.empty:
            return {"n": 0}
        return {"n": int(len(sub)), "before_median": round(float(sub["err_before"].median()), 3),
                "after_median": round(float(sub["err_after"].median()), 3),
                "before_p95": round(float(sub["err_before"].quantile(0.95)), 3),
                "after_p95": round(float(sub["err_after"].quantile(0.95)), 3),
                "before_max": round(float(sub["err_before"].max()), 3),
                "after_max": round(float(sub["err_after"].max()), 3),
                "worse_by_gt_0.5pp": int((sub["err_after"] > sub["err_before"] + 0.5).sum()),
                "better_by_gt_0.5pp": int((sub["err_after"] < sub["err_before"] - 0.5).sum())}

    return {
        "estimates": int(len(df)), "gate_failures": int(fail.sum()), "flagged_estimates": int(flagged.sum()),
        "estimate_recall": round(float(flagged[fail].mean()), 3) if fail.any() else float("nan"),
        "estimate_precision": round(float(fail[flagged].mean()), 3) if flagged.any() else float("nan"),
        "outlier_gates": int(df["outlier"].sum()),
        "outlier_gate_recall": round(float(df.loc[fail, "outlier"].mean()), 3) if fail.any() else float("nan"),
        "outlier_gate_precision": round(float(fail[df["outlier"]].mean()), 3) if df["outlier"].any()
        else float("nan"),
        "accepted_outliers": int(df["accepted_outlier"].sum()),
        "accepted_outlier_recall": round(float(df.loc[fail, "accepted_outlier"].mean()), 3) if fail.any()
        else float("nan"),
        "accepted_outlier_precision": round(float(fail[df["accepted_outlier"]].mean()), 3)
        if df["accepted_outlier"].any() else float("nan"),
        "files": int(len(files)), "injected_files": int(files["injected"].sum()),
        "clean_files_with_outlier": int((files["flagged"] & ~files["injected"]).sum()),
        "outlier_gates_clean_files_not_failures": int((df["outlier"] & clean & ~fail).sum()),
        "files_with_failure": int(files["failed"].sum()),
        "file_recall_injected": round(float(files.loc[files["injected"], "flagged"].mean()), 3),
        "file_recall_failed": round(float(files.loc[files["failed"], "flagged"].mean()), 3)
        if files["failed"].any() else float("nan"),
        "file_precision_injected": round(float(files.loc[files["flagged"], "injected"].mean()), 3)
        if files["flagged"].any() else float("nan"),
        "replaced_estimates": int(df["replaced"].sum()),
        "flagged": errs(flagged), "flagged_failures": errs(flagged & fail), "replaced": errs(df["replaced"]),
        "clean_files": errs(clean), "clean_files_flagged": errs(clean & flagged), "injected_files_errors": errs(~clean),
        "per_mode_recall": {m: round(float(files.loc[files.index.get_level_values("file").isin(
            df.loc[df["mode"] == m, "file"]), "flagged"].mean()), 3) for m in MODES},
    }


REVIEW = tuple(sorted(REVIEW_FLAGS))
FALLBACK = ("no_valley", "fell_back", "all_positive", "all_negative")
#: acceptance rules compared: every re-fit, per-file fits with a review flag, fits that fell back / lone
#: mode, lone-mode fits only, fits with both a review flag and a fallback (as two conditions)
ACCEPT = {"never": (), "always": None, "review": REVIEW, "fallback": FALLBACK, "lone_mode": ("all_positive", "all_negative"),
          "no_valley": ("no_valley",)}
FRAMES = ("modes", "sd", "offset", "absolute")
RULES = [(fr, k, m, a) for fr in FRAMES for a in ("never", "always", "review") for k in (3.0, 4.0, 5.0)
         for m in (0.03, 0.05)]


def one_line(name: str, s: dict) -> str:
    c, r = s["clean_files"], s["replaced"]
    return (f"{name:34s} outlying populations {s['outlier_gates']} (failures {s['outlier_gate_precision']:.2f}, "
            f"false in clean files {s['outlier_gates_clean_files_not_failures']}) | est. recall {s['estimate_recall']:.3f} precision {s['estimate_precision']:.3f} | files: "
            f"injected found {s['file_recall_injected']:.2f}, flagged that are injected "
            f"{s['file_precision_injected']:.2f}, clean files with one {s['clean_files_with_outlier']} | replaced {s['replaced_estimates']:3d}: median "
            f"{r.get('before_median', float('nan')):.2f}->{r.get('after_median', float('nan')):.2f} pp, "
            f"worse/better >0.5pp {r.get('worse_by_gt_0.5pp', 0)}/{r.get('better_by_gt_0.5pp', 0)} | clean files "
            f"p95 {c['before_p95']:.2f}->{c['after_p95']:.2f}, worse {c['worse_by_gt_0.5pp']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=[*SPLITS, "all"], default="test")
    ap.add_argument("--files", type=int, default=12, help="files per cohort (tube x instrument)")
    ap.add_argument("--events", type=int, default=15_000)
    ap.add_argument("--grid", action="store_true", help="also every rule of RULES (k x min_shift x acceptance)")
    ap.add_argument("--fail-pp", type=float, default=2.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="simulate into (and re-use) this folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")
    splits = list(SPLITS) if args.split == "all" else [args.split]
    report: dict = {}
    t0, c0 = time.perf_counter(), time.process_time()
    default = CohortGatingConfig()
    names = {v: n for n, v in ACCEPT.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for split in splits:
            runs = [simulate_and_run(seed, args.files, args.events, root) for seed in SPLITS[split]]
            # without --grid: in each frame, the default k / min_shift with no and with every re-fit accepted
            rules = RULES if args.grid else [(fr, default.k, default.min_shift, a) for fr in FRAMES
                                              for a in ("never", "always", "review")]
            rules = [(default.frame, default.k, default.min_shift,
                      names.get(default.accept_flags, str(default.accept_flags))), *rules]
            print(f"\n=== {split} (seeds {SPLITS[split]}, {args.files} files x 4 cohorts per seed) ===")
            for i, (fr, k, m, f) in enumerate(rules):
                acc = default.accept_flags if i == 0 else ACCEPT[f]
                df = pd.concat([evaluate(out, base, k, m, acc, fr) for out, base in runs], ignore_index=True)
                if args.json:
                    df.to_csv(args.json.with_suffix(f".{split}.{fr}.{k}.{m}.{f}.csv"), index=False)
                if i == 0:  # the pipeline's own tables must equal the stage re-run with its defaults
                    mismatch = int((df["reported_pct"] - df["pipeline_pct"]).abs().gt(1e-9).sum())
                    print(f"pipeline tables vs cohort stage re-run: {mismatch} estimates differ")
                    if args.json:
                        df.to_csv(args.json.with_suffix(f".{split}.csv"), index=False)
                s = summarise(df, args.fail_pp)
                name = f"{fr} k={k} min_shift={m} accept={f}{' (default)' if i == 0 else ''}"
                report[f"{split} {name}"] = s
                print(one_line(name, s))
                if i == 0:
                    print(json.dumps(s, indent=1))
    print(f"\n{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU (this process; "
          f"pipeline workers not counted)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
