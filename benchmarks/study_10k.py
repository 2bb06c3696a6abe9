"""A many-file study: bookkeeping overhead per file, header validation time and table-assembly memory.

Run:  nice .venv/bin/python benchmarks/study_10k.py [--files 10000] [--events 2000] [--jobs 2]
          [--workdir DIR] [--json PATH] [--preflight-only]

1. Workload: ``--files`` small tmem files of ``--events`` events x 12 channels. ``--distinct`` files are
   simulated (cytokit.simulate, different seeds, both arms); the others are byte copies of them under
   their own names (each is its own sample; the per-file work is the same as for distinct files).
2. Preflight: :func:`cytokit.pipeline.preflight.preflight` over all files (manifest, sha256 of every file,
   HEADER/TEXT of every file resolved against the panel), timed alone: seconds and files/s.
3. The study: :func:`cytokit.pipeline.run` into a fresh output folder with the real ``analyse`` task on
   ``--jobs`` local workers (Gating-ML per sample, Parquet + CSV tables; no cohort stages: the ad-hoc
   study has no clinical design). Every file goes through the per-sample analysis: the script counts the
   run's attempt rows in the ledger and stops when they are fewer than ``--files``. The run's own phase timings (``run_info.json`` ``timings_s``) split the wall-clock time into
   preflight, analysis (workers busy; the parent storing results meanwhile), store (parent: result
   files, their group commits (fsync + one ledger transaction per batch), overlapped with the workers), assemble (reading stored results, building the
   tables), outputs (writing tables) and the rest (setup: job list, resume check, ledger run record).
   Bookkeeping = preflight + store + assemble + outputs + setup, counted in full even where it overlaps
   the workers (an upper bound); reported per file (ms) and as % of the total.
4. Re-run with nothing changed (every sample reused): seconds.
5. Assembly memory: in a fresh process per size (a tenth, a third and all of the samples), the peak
   resident memory added by reading the stored results and assembling the tables (VmHWM after minus
   VmRSS before, MB), to show it is linear in the number of samples; the per-sample slope extrapolates
   to 10,000 files when fewer were run.

Timings are wall-clock on a shared machine; memory is not load-dependent.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from cytokit.pipeline import adhoc_pipeline, run
from cytokit.pipeline.preflight import preflight


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished child processes."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def vm(field: str) -> float:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_workload(folder: Path, n_files: int, n_events: int, distinct: int) -> Path:
    from cytokit.simulate import simulate_file

    fcs = folder / f"fcs_{n_files}"
    fcs.mkdir(parents=True, exist_ok=True)
    sources = folder / "distinct"
    sources.mkdir(exist_ok=True)
    for i in range(min(distinct, n_files)):
        path = sources / f"D{i:04d}.fcs"
        if not path.exists():
            simulate_file(path, n_events=n_events, tube="tmem", instrument="bd", seed=1000 + i,
                          arm="IL-2" if i % 2 else "control", week=0)
    for i in range(n_files):
        path = fcs / f"S{i:05d}_W0_tmem.fcs"
        if not path.exists():
            shutil.copyfile(sources / f"D{i % distinct:04d}.fcs", path)
    return fcs


def analysed_in_last_run(out: Path) -> int:
    """Samples the last run of ``out`` really analysed: its attempt rows in the ledger (one per sample that
    went through the per-sample task; reused samples get none)."""
    from cytokit.pipeline.ledger import read_ledger

    ledger = read_ledger(out)
    try:
        run_id = ledger.runs()[-1]["run_id"]
        return len({a["sample_id"] for a in ledger.attempts() if a["run_id"] == run_id})
    finally:
        ledger.close()


def config_for(fcs: Path):
    return adhoc_pipeline(fcs, "il2_trial", "tmem", tube="tmem", name=f"study_{fcs.name}",
                          outputs={"gatingml": True, "flowjo_workspace": False, "tables": ["parquet", "csv"]})


def assembly_probe(fcs: Path, out: Path, n: int) -> dict:
    """In this (fresh) process: peak memory and time of reading + assembling the first ``n`` samples."""
    from cytokit.pipeline.assemble import assemble_tables
    from cytokit.pipeline.ledger import read_ledger
    from cytokit.pipeline.manifest import build_manifest
    from cytokit.pipeline.store import ResultsStore

    config = config_for(fcs)
    samples, _ = build_manifest(config)
    samples = samples.sort_values("sample_id").head(n).reset_index(drop=True)
    ledger = read_ledger(out)
    states = ledger.samples()
    samples = samples.assign(sha256=[states[s]["sha256"] for s in samples["sample_id"]])
    store = ResultsStore(out, ledger)
    before = vm("VmRSS")
    t0 = time.perf_counter()
    results = store.verified({s: states[s]["key"] for s in samples["sample_id"]}, states)
    populations, table = assemble_tables(config, samples, results, states, None)
    seconds = time.perf_counter() - t0
    return {"samples": n, "rows": len(populations), "seconds": seconds,
            "peak_added_mb": vm("VmHWM") - before, "rss_before_mb": before}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=2_000)
    ap.add_argument("--distinct", type=int, default=200, help="simulated files; the rest are copies")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the workload here (reused when present)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--preflight-only", action="store_true", help="only build the files and time preflight")
    ap.add_argument("--probe", nargs=3, metavar=("FCS", "OUT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.probe:
        print(json.dumps(assembly_probe(Path(args.probe[0]), Path(args.probe[1]), int(args.probe[2]))))
        return {}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cytokit-study-"))
    t = time.perf_counter()
    fcs = build_workload(work, args.files, args.events, args.distinct)
    print(f"workload: {args.files} files x {args.events} events x 12 channels ({args.distinct} simulated, "
          f"the rest copies) in {fcs} ({time.perf_counter() - t:.0f}s to build)")
    config = config_for(fcs)
    t, c = time.perf_counter(), cpu_seconds()
    plan = preflight(config, jobs=args.jobs)
    pre, pre_cpu = time.perf_counter() - t, cpu_seconds() - c
    print(f"preflight (manifest, sha256, HEADER/TEXT + panel of every file, {args.jobs} processes): {pre:.1f}s "
          f"for {len(plan.samples)} files = {1000 * pre / args.files:.2f} ms/file, {args.files / pre:.0f} files/s; "
          f"CPU {pre_cpu:.1f}s (= {pre_cpu / min(args.jobs, os.cpu_count() or 1):.1f}s wall on "
          f"{min(args.jobs, os.cpu_count() or 1)} idle cores; target <= 60s for 10,000 files)")
    result: dict = {"files": args.files, "events": args.events, "preflight_s": pre, "preflight_cpu_s": pre_cpu}
    if args.preflight_only:
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return result

    out = work / f"out_{args.files}"
    if out.exists():
        shutil.rmtree(out)  # a fresh study: nothing stored, every file analysed
    t, c = time.perf_counter(), cpu_seconds()
    summary = run(config, out, jobs=args.jobs, force=True, recompute=True)
    run_cpu = cpu_seconds() - c
    analysed = analysed_in_last_run(out)
    print(f"analysed in this run: {analysed} of {args.files} files (ok {summary.ok}, failed {summary.failed}, "
          f"reused {summary.skipped})")
    if analysed != args.files or summary.skipped:
        raise SystemExit(f"not every file was analysed ({analysed} of {args.files}): the figures would not be "
                         f"those of a {args.files}-file study")
    if summary.failed:
        print(f"warning: {summary.failed} sample(s) failed, e.g. {list(summary.failures.items())[:2]}")
    tm = dict(summary.timings)
    total = summary.seconds
    setup = total - sum(tm.get(k, 0.0) for k in ("preflight", "analyse", "assemble", "outputs"))
    book = {"preflight": tm["preflight"], "store (result files + ledger)": tm["store"],
            "assemble": tm["assemble"], "outputs (tables)": tm["outputs"], "setup": setup}
    book_total = sum(book.values())
    print(f"run: {total:.1f}s wall, CPU {run_cpu:.1f}s (parent + workers) for {args.files} files with {args.jobs} "
          f"workers ({args.files / total:.1f} files/s); analysis phase {tm['analyse']:.1f}s")
    for name, sec in book.items():
        print(f"  {name:32s} {sec:8.2f}s  {1000 * sec / args.files:7.2f} ms/file  {100 * sec / total:5.1f}%")
    print(f"bookkeeping total: {book_total:.1f}s = {1000 * book_total / args.files:.2f} ms/file = "
          f"{100 * book_total / total:.1f}% of the run (target <= 10%)")

    t = time.perf_counter()
    again = run(config, out, jobs=args.jobs)
    rerun = time.perf_counter() - t
    print(f"re-run with nothing changed: {rerun:.1f}s ({again.skipped} of {again.total} samples reused)")

    probes = []
    for n in sorted({max(1, args.files // 10), max(1, args.files // 3), args.files}):
        proc = subprocess.run([sys.executable, __file__, "--probe", str(fcs), str(out), str(n)],
                              capture_output=True, text=True, check=True)
        probes.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        p = probes[-1]
        print(f"assembly of {n} samples ({p['rows']} rows): +{p['peak_added_mb']:.0f} MB peak, {p['seconds']:.1f}s")
    if len(probes) >= 2:
        a, b = probes[0], probes[-1]
        slope = (b["peak_added_mb"] - a["peak_added_mb"]) / (b["samples"] - a["samples"])
        print(f"assembly memory slope: {1000 * slope:.1f} MB per 1,000 samples; "
              f"extrapolated to 10,000 samples: {a['peak_added_mb'] + slope * (10_000 - a['samples']):.0f} MB "
              f"(target <= 2048 MB)")
        result["assembly_mb_per_1000"] = 1000 * slope
    result.update({"run_s": total, "run_cpu_s": run_cpu, "analysed": analysed, "timings_s": tm, "setup_s": setup, "bookkeeping_s": book_total,
                   "bookkeeping_pct": 100 * book_total / total, "rerun_s": rerun, "assembly": probes,
                   "failed": summary.failed})
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
