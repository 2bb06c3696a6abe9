"""Automated-gating accuracy (and per-file speed) on a freshly simulated trial and on real mouse data.

Reports, per population: |% of parent - truth| (percentage points; median and 95th percentile over files)
for the automated strategies and for a *static template* (the gates fitted on one file per instrument and
tube, exported to Gating-ML and applied unchanged to every other file, as a FlowJo template is); per-event
F1 for Lymphocytes, T cells, CD4 T, CD8 T; the mouse strategy's F1 against the expert labels of
flowsom_68983; and the time to gate a 1M-event file, beside FlowKit evaluating the same gates (same
process, same file).

    .venv/bin/python benchmarks/gating_accuracy.py [--patients 3] [--events 30000] [--out DIR] [--no-speed]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.simulate import SimulationConfig, simulate_file, simulate_trial, truth_masks

F1_POPULATIONS = ("Lymphocytes", "T cells", "CD4 T", "CD8 T")


def f1(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def accuracy(trial: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    rows, f1_rows = [], []
    templates: dict[tuple[str, str], object] = {}
    tmp = Path(tempfile.mkdtemp())
    for r in man.itertuples():
        sample = read_fcs(trial / r.file)
        auto = load_strategy(r.tube).apply(sample, qc=False)  # per-event masks vs truth: every event
        key = (r.instrument, r.tube)
        if key not in templates:  # the first file of each instrument/tube defines the static template
            xml = tmp / f"template_{len(templates)}.xml"
            auto.to_gatingml(xml)
            templates[key] = (load_strategy(xml), r.file)
            template_file = True
        else:
            template_file = False
        static_strategy, _ = templates[key]
        from cytokit.panel import load_panel

        static = static_strategy.apply(load_panel("il2_trial").resolve(sample, tube=r.tube), qc=False)
        from cytokit.gating.export import xml_id

        t = truth[truth.file == r.file].set_index("population")
        masks = truth_masks(trial, r.file)
        static_masks = {name: static.masks.get(name, static.masks.get(xml_id(name))) for name in auto.masks}
        static_counts = {name: int(m.sum()) for name, m in static_masks.items()}
        for p in auto.populations.itertuples():
            if p.population not in t.index:
                continue
            parent = t.loc[p.population, "parent"]
            parent = parent if isinstance(parent, str) and parent else None
            s_parent = static_counts[parent] if parent else sample.n_events
            s_pct = 100.0 * static_counts[p.population] / s_parent if s_parent else np.nan
            rows.append({"file": r.file, "instrument": r.instrument, "tube": r.tube, "population": p.population,
                         "truth_pct": t.loc[p.population, "pct_parent"], "auto_pct": p.pct_parent,
                         "static_pct": s_pct, "template_file": template_file, "flags": p.flags})
        for pop in F1_POPULATIONS:
            if pop in auto.masks:
                f1_rows.append({"file": r.file, "population": pop, "auto_f1": f1(auto.masks[pop], masks[pop]),
                                "static_f1": f1(static_masks[pop], masks[pop])})
    df = pd.DataFrame(rows)
    df["auto_err"] = (df.auto_pct - df.truth_pct).abs()
    df["static_err"] = (df.static_pct - df.truth_pct).abs()
    return df, pd.DataFrame(f1_rows)


def mouse_f1(shared: Path) -> dict[str, float]:
    base = shared / "flowsom_68983"
    if not (base / "68983.fcs").exists():
        return {}
    res = load_strategy("mouse_lymphocytes").apply(read_fcs(base / "68983.fcs"), qc=False)
    lab = pd.read_csv(base / "gatingResult.csv", header=None).iloc[:, 0].to_numpy()
    expert = {"T cells": np.isin(lab, ["CD4 T cells", "CD8 T cells", "gd T cells"]), "CD4 T": lab == "CD4 T cells",
              "CD8 T": lab == "CD8 T cells", "B cells": lab == "B cells", "NK cells": lab == "NK cells",
              "gd T": lab == "gd T cells", "NKT cells": lab == "NK T cells"}
    return {k: round(f1(res.masks[k], v), 4) for k, v in expert.items()}


def speed(n_events: int = 1_000_000, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` wall time to read + gate one file (automated tmem strategy: fit + evaluate)
    and for FlowKit to read the same file and evaluate the same (exported, static) gates, interleaved in
    this process so machine load affects both alike."""
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "big_tmem.fcs"
    simulate_file(path, n_events=n_events, tube="tmem", instrument="bd", seed=5)
    strategy = load_strategy("tmem")
    result = strategy.apply(read_fcs(path), qc=False)  # warm-up (imports, JIT); gates only, as FlowKit below
    xml = tmp / "gates.xml"
    result.to_gatingml(xml)
    ours, theirs = [], []
    out: dict = {"events": n_events}
    try:
        import flowkit as fk

        gs = fk.parse_gating_xml(str(xml))
    except Exception as exc:  # FlowKit is only the reference here: report, don't fail
        gs, out["flowkit_error"] = None, f"{type(exc).__name__}: {exc}"[:200]
    for _ in range(repeats):
        t0 = time.perf_counter()
        strategy.apply(read_fcs(path), qc=False)
        ours.append(time.perf_counter() - t0)
        if gs is not None:
            t0 = time.perf_counter()
            gs.gate_sample(fk.Sample(str(path)))
            theirs.append(time.perf_counter() - t0)
    out["cytokit_read_fit_and_gate_s"] = round(min(ours), 3)
    if theirs:
        out["flowkit_read_and_static_gates_s"] = round(min(theirs), 3)
        out["speedup"] = round(min(theirs) / min(ours), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=3, help="patients per arm")
    ap.add_argument("--events", type=int, default=30000, help="events per file")
    ap.add_argument("--out", type=Path, default=None, help="folder for the simulated trial (default: temp)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args(argv)
    if args.speed_only:
        print("speed (1M-event tmem file, read + gate):", json.dumps(speed()))
        return 0
    trial = args.out or Path(tempfile.mkdtemp()) / "trial"
    cfg = SimulationConfig(seed=2024, patients_per_arm=args.patients, visits=["W0", "W24", "W74"],
                           events=args.events)
    simulate_trial(trial, cfg, force=True)
    df, f1s = accuracy(trial)
    evaluated = df[~df.template_file]
    per_pop = df.groupby("population").agg(
        auto_median_pp=("auto_err", "median"), auto_p95_pp=("auto_err", lambda x: np.quantile(x, 0.95)),
        static_median_pp=("static_err", lambda x: np.nanmedian(x)),
        static_p95_pp=("static_err", lambda x: np.nanquantile(x, 0.95))).round(2)
    static_eval = evaluated.groupby("population").static_err.median().round(2).rename("static_median_pp_non_template")
    per_pop = per_pop.join(static_eval)
    f1_table = f1s.groupby("population").agg(auto_median=("auto_f1", "median"), auto_min=("auto_f1", "min"),
                                              static_median=("static_f1", "median"),
                                              static_min=("static_f1", "min")).round(4)
    pd.set_option("display.width", 200)
    print(f"simulated trial: {df.file.nunique()} files ({', '.join(sorted(df.instrument.unique()))}), "
          f"{args.events} events each")
    print("\n|% of parent - truth| in percentage points, per population (median and 95th percentile over files)")
    print(per_pop.to_string())
    print(f"\noverall automated: median {df.auto_err.median():.2f} pp, 95th pct {np.quantile(df.auto_err, 0.95):.2f} pp; "
          f"static template (non-template files): median {evaluated.static_err.median():.2f} pp, "
          f"95th pct {np.nanquantile(evaluated.static_err, 0.95):.2f} pp")
    ev = evaluated.dropna(subset=["static_err"])
    print(f"(file, population) pairs off by > 1 pp: automated {100 * (ev.auto_err > 1).mean():.1f}%, "
          f"static template {100 * (ev.static_err > 1).mean():.1f}% (non-template files); "
          f"worst: automated {ev.auto_err.max():.2f} pp, static {ev.static_err.max():.2f} pp")
    print("\nper-event F1\n" + f1_table.to_string())
    shared = Path(os.environ.get("CYTOKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    mf = mouse_f1(shared)
    print("\nflowsom_68983 mouse strategy F1 vs expert labels:", json.dumps(mf))
    if not args.no_speed:
        print("\nspeed (1M-event tmem file, read + gate):", json.dumps(speed()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
