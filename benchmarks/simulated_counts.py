"""Absolute counts of a simulated trial against its truth, and the count flags on them.

Simulates a trial (``cytokit simulate`` with ``--seed``, ``--patients-per-arm``, ``--events``), runs it end to end
with ``cytokit run`` (dual-platform counts: % of lymphocytes x the clinical lymphocyte count, tables only), and
compares every population's ``abs_count_per_uL`` with the truth's (the true % of lymphocytes x the same clinical
count, so the relative error is the % of lymphocytes'). Prints per population: counts > 10 % off (relative), how
many of them carry a count flag (``count_flags``) or a review flag, and how many flagged counts are within 5 %.

    nice .venv/bin/python benchmarks/simulated_counts.py [--seed 2003] [--patients-per-arm 2] [--events 20000]
        [--csv out.csv]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(folder: Path, seed: int, patients: int, events: int) -> pd.DataFrame:
    """Simulate, run and return the run's counted rows with ``truth_abs`` and ``rel_err_pct`` (% of the truth)."""
    cli = [sys.executable, "-m", "cytokit"]
    trial = folder / "trial"
    subprocess.run([*cli, "simulate", str(trial), "--seed", str(seed), "--patients-per-arm", str(patients),
                    "--events", str(events)], check=True, capture_output=True)
    pipe = {"name": "simulated_counts", "manifest": {"path": str(trial / "manifest.csv"), "sample_id": "{stem}"},
            "clinical": {"path": str(trial / "clinical.csv"), "lymphocytes_column": "lymphocytes_per_uL"},
            "tubes": {"tmem": {"panel": "il2_trial", "strategy": "tmem"},
                      "nkb": {"panel": "il2_trial", "strategy": "nkb"}},
            "qc": {"enabled": True, "min_events": 1000},
            "counts": {"method": "dual_platform"},
            "outputs": {"tables": ["csv"], "gatingml": False, "thumbnails": False, "flowjo_workspace": False,
                        "trial": False, "reports": False, "clustering": False},
            "executor": {"kind": "local", "jobs": 2}}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipe, sort_keys=False))
    proc = subprocess.run([*cli, "run", str(path), "--out", str(folder / "results")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cytokit run exited {proc.returncode}: {proc.stderr[-2000:]}")
    got = pd.read_csv(folder / "results" / "populations.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    truth["sample_id"] = truth.file.map(lambda f: Path(f).stem)
    rows = got[got.abs_count_per_uL.notna()].merge(
        truth[["sample_id", "population", "abs_count_per_uL"]].rename(columns={"abs_count_per_uL": "truth_abs"}),
        on=["sample_id", "population"])
    rows = rows[rows.truth_abs > 0].copy()
    rows["rel_err_pct"] = 100 * (rows.abs_count_per_uL - rows.truth_abs) / rows.truth_abs
    return rows


def count_flag_table(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: counts (n), median |relative error| (%), counts > 10 % off (``rel_err_pct``, % of
    the truth), how many of them carry a count flag (``count_flags``) / any flag (or ``review``), the counts with a
    count flag and how many of those are within 5 % of the truth. Also read by ``independent_lab.py``."""
    flagged = rows.count_flags.fillna("").astype(str) != ""
    off, near = rows.rel_err_pct.abs() > 10, rows.rel_err_pct.abs() <= 5
    sub = rows.assign(off=off, off_cf=off & flagged, off_any=off & (flagged | rows.review.astype(bool)), cf=flagged,
                      cf_near=flagged & near)
    return sub.groupby(keys).agg(
        n=("off", "size"), median_abs_rel_pct=("rel_err_pct", lambda e: e.abs().median()),
        gt_10pct=("off", "sum"), gt_10pct_count_flagged=("off_cf", "sum"), gt_10pct_any_flag=("off_any", "sum"),
        count_flagged=("cf", "sum"), count_flagged_within_5pct=("cf_near", "sum")).round(2)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`count_flag_table` per population, and over all counts (row ``(all)``)."""
    table = count_flag_table(rows, ["population"])
    table.loc["(all)"] = count_flag_table(rows.assign(population="(all)"), ["population"]).iloc[0]
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2003)
    ap.add_argument("--patients-per-arm", type=int, default=2)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--csv", type=Path, default=None, help="write the counted rows with their error here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="simulated_counts_") as tmp:
        rows = run(Path(tmp), args.seed, args.patients_per_arm, args.events)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    print(f"simulated trial seed {args.seed}, {rows.sample_id.nunique()} files, {len(rows)} dual-platform counts; "
          "relative error of abs_count_per_uL vs truth, %:")
    print(summary(rows).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
