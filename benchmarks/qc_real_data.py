"""Time QC on real files: how many events does each rule remove from every FCS file in ../shared/data?

Real acquisitions have behaviour the simulator does not: sorter start-up ramps, bead samples with a few
far debris events per bin, buffer-only samples whose scatter wanders, single-stain controls. A check that
fires on these silently discards good events. For every readable FCS/LMD file under the shared data
folder (``CYTOKIT_SHARED_DATA``, default ``../shared/data``) this prints the % of events removed by
:func:`cytokit.qc.run_qc` with

* ``no_drift`` — the drift (changepoint) checks off (``drift_checks: false``),
* ``previous`` — the first drift rule: plain bin means, lag-1 bin noise, every drift removable
  (``drift_trim: 0, drift_noise_lag: 1, drift_min_abrupt: 0``),
* ``current`` — the defaults,

and the time-check flags of the defaults. Exit code 1 when a file loses more than ``--max-extra`` % of its
events to the drift checks (current minus no_drift).

    nice .venv/bin/python benchmarks/qc_real_data.py [--json OUT] [--max-extra 5]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from cytokit.errors import CytokitError
from cytokit.fcs import read_fcs
from cytokit.qc import QCParams, run_qc

RULES = {
    "no_drift": QCParams(drift_checks=False),
    "previous": QCParams(drift_trim=0.0, drift_noise_lag=1, drift_min_abrupt=0.0),
    "current": QCParams(),
}
TIME_FLAGS = ("flow_rate_anomaly", "flow_rate_drift", "signal_shift", "signal_drift")


def shared_data() -> Path:
    return Path(os.environ.get("CYTOKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def survey(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".fcs", ".lmd")):
        try:
            sample = read_fcs(path)
        except CytokitError:
            continue  # broken by design (truncated, header-only): the reader's own tests cover them
        row: dict = {"file": str(path.relative_to(root)), "events": sample.n_events}
        for name, params in RULES.items():
            res = run_qc(sample, params)
            row[f"{name}_pct"] = 100.0 * res.removed_fraction
            if name == "current":
                row["time_flags"] = ";".join(f for f in res.flags if f in TIME_FLAGS)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--max-extra", type=float, default=5.0, help="% of a file's events the drift checks may take")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # per-file reader warnings are not the subject here
    warnings.simplefilter("ignore")
    root = shared_data()
    if not root.is_dir():
        print(f"real data not found at {root} (set CYTOKIT_SHARED_DATA)", file=sys.stderr)
        return 2
    t0, c0 = time.perf_counter(), time.process_time()
    df = survey(root)
    df["drift_extra_pct"] = df["current_pct"] - df["no_drift_pct"]
    pd.set_option("display.width", 220)
    pd.set_option("display.max_colwidth", 70)
    print(df.round(1).to_string(index=False))
    worst = df.loc[df["drift_extra_pct"].idxmax()]
    print(f"\n{len(df)} files in {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU; "
          f"drift checks remove at most {worst['drift_extra_pct']:.1f} % ({worst['file']}); previous rule: "
          f"{(df['previous_pct'] - df['no_drift_pct']).max():.1f} %")
    if args.json:
        args.json.write_text(json.dumps(df.to_dict("records"), default=float, indent=1))
    return 0 if df["drift_extra_pct"].max() <= args.max_extra else 1


if __name__ == "__main__":
    sys.exit(main())
