"""Compensation kernel speed and memory: the blocked kernel vs the previous full-float64 approach.

Run: ``python benchmarks/compensation_speed.py [--events 1000000] [--channels 12] [--repeats 5]
[--threads 1] [--json PATH]``.

Workload: float32 events (``--channels`` columns, log-normal fluorescence with negatives around zero)
and an 8-detector spillover matrix over columns 3..10 with the sparsity of the simulated tmem panel
(about half the off-diagonal coefficients are zero), as the pipeline compensates a 1M-event file.
Implementations, all in this process on the same events:

* ``previous_sample`` — what ``compensate(sample)`` did before: copy the events, take the matrix
  columns, convert them to float64, multiply by ``inv(spillover)``, convert back to float32;
* ``previous_kernel`` — the previous ``compensate_events``: a float64 copy of the whole event matrix,
  then the product on the matrix columns;
* ``blocked_f64[rows]`` — ``cytokit.compensation.compensate_events(..., dtype=float32)``: row blocks,
  float64 product per block written into the float32 output (``rows`` = block size);
* ``blocked_f32[rows]`` — the alternative: the same blocks multiplied in float32 by the float64-computed
  inverse rounded to float32.

For each: best and median of N wall times; the time of the first call in a fresh process ("cold": its
buffers are new pages from the system, as for each file in a pipeline worker, where freed event arrays
go back to the system between files); peak memory traced by ``tracemalloc`` during one call (numpy
reports its buffers to it; the input events are not counted); and the largest error against a float64
reference, relative to ``max(1, |reference|)``. ``--threads 1`` (default) limits BLAS to one thread as the
pipeline's workers do; ``--threads 0`` leaves the BLAS default (a notebook, the CLI, the main process of
``benchmarks/pipeline_speed.py``). The kernel itself always multiplies its blocks with one BLAS thread.
Numbers are reported, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import numpy as np


def workload(n: int, k: int, seed: int = 2003):
    from cytokit.compensation import SpilloverMatrix

    rng = np.random.default_rng(seed)
    cols = list(range(3, 11))
    events = rng.lognormal(6.0, 1.5, (n, k)).astype(np.float32)
    events[:, cols] += rng.normal(0, 80, (n, len(cols))).astype(np.float32)
    spill = rng.uniform(0.0, 0.18, (len(cols), len(cols)))
    spill[rng.random(spill.shape) < 0.5] = 0.0
    np.fill_diagonal(spill, 1.0)
    matrix = SpilloverMatrix(tuple(f"D{i}" for i in cols), spill, source="benchmark")
    return events, matrix, cols


def previous_sample(events: np.ndarray, matrix, idx: list[int]) -> np.ndarray:
    comp = matrix.compensation_matrix()
    out = events.copy()
    out[:, idx] = (events[:, idx].astype(np.float64) @ comp).astype(np.float32)
    return out


def previous_kernel(events: np.ndarray, matrix, idx: list[int]) -> np.ndarray:
    out = np.array(events, dtype=np.float64)
    out[:, idx] = out[:, idx] @ matrix.compensation_matrix()
    return out


def blocked_f32(events: np.ndarray, matrix, idx: list[int], rows: int) -> np.ndarray:
    """Float32 product per block (inverse computed in float64, rounded to float32)."""
    comp = matrix.compensation_matrix().astype(np.float32)
    lo, hi = idx[0], idx[-1] + 1  # the workload's matrix columns are consecutive
    out = np.empty_like(events)
    buf = np.empty((min(rows, len(events)), len(idx)), dtype=np.float32)
    for r0 in range(0, len(events), rows):
        r1 = min(len(events), r0 + rows)
        out[r0:r1] = events[r0:r1]
        np.matmul(events[r0:r1, lo:hi], comp, out=buf[: r1 - r0])
        out[r0:r1, lo:hi] = buf[: r1 - r0]
    return out


def measure(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, float, float, np.ndarray]:
    """(best seconds, median seconds, peak traced MB of one call, result)."""
    result = fn()  # warm-up (BLAS initialisation)
    del result
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return min(times), statistics.median(times), peak / 2**20, result


def candidates_for(events: np.ndarray, matrix, idx: list[int]) -> dict[str, Callable[[], np.ndarray]]:
    from cytokit.compensation import compensate_events

    candidates: dict[str, Callable[[], np.ndarray]] = {
        "previous_sample": lambda: previous_sample(events, matrix, idx),
        "previous_kernel": lambda: previous_kernel(events, matrix, idx),
    }
    for rows in (8192, 16384, 32768, 65536, 131072):
        candidates[f"blocked_f64[{rows}]"] = (
            lambda rows=rows: compensate_events(events, matrix, idx, dtype=np.float32, block_rows=rows))
    candidates["blocked_f64[default]"] = lambda: compensate_events(events, matrix, idx, dtype=np.float32)
    for rows in (32768, 65536):
        candidates[f"blocked_f32[{rows}]"] = lambda rows=rows: blocked_f32(events, matrix, idx, rows)
    return candidates


def cold_call(name: str, n: int, k: int, threads: int) -> float:
    """Seconds of the first full-size call of ``name`` in this (fresh) process."""
    from threadpoolctl import threadpool_limits

    events, matrix, idx = workload(n, k)
    small = candidates_for(np.ascontiguousarray(events[:64]), matrix, idx)[name]
    fn = candidates_for(events, matrix, idx)[name]
    with threadpool_limits(threads or None):
        small()  # imports and BLAS initialisation, not the full-size buffers
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (the pipeline's workers use 1; 0 = the BLAS default)")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = ap.parse_args(argv)

    events, matrix, idx = workload(args.events, args.channels)
    reference = events.astype(np.float64)
    reference[:, idx] = reference[:, idx] @ matrix.compensation_matrix()
    scale = np.maximum(1.0, np.abs(reference))
    others = [j for j in range(args.channels) if j not in idx]
    candidates = candidates_for(events, matrix, idx)

    cold = {}
    ctx = multiprocessing.get_context("spawn")
    for name in candidates:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            cold[name] = pool.submit(cold_call, name, args.events, args.channels, args.threads).result()

    results = {}
    with threadpool_limits(args.threads or None):
        for name, fn in candidates.items():
            seconds, median, peak_mb, out = measure(fn, args.repeats)
            err = float(np.max(np.abs(out - reference) / scale))
            untouched = bool(np.array_equal(out[:, others], events[:, others]))
            del out
            results[name] = {"seconds": round(seconds, 4), "median_seconds": round(median, 4),
                             "cold_seconds": round(cold[name], 4), "peak_traced_mb": round(peak_mb, 1),
                             "max_rel_error": err, "other_columns_unchanged": untouched}
            print(f"{name:22s} best {seconds * 1000:6.1f} ms  median {median * 1000:6.1f} ms  "
                  f"cold {cold[name] * 1000:6.1f} ms  peak {peak_mb:6.1f} MB  max rel error {err:.2e}"
                  f"{'' if untouched else '  (other columns changed!)'}")
    base, new = results["previous_sample"], results["blocked_f64[default]"]
    print(f"blocked float64 kernel vs previous compensate(): {base['seconds'] / new['seconds']:.1f}x faster warm, "
          f"{base['cold_seconds'] / new['cold_seconds']:.1f}x cold; peak {base['peak_traced_mb']:.0f} -> "
          f"{new['peak_traced_mb']:.0f} MB traced (the float32 output array is {events.nbytes / 2**20:.0f} MB of that)")
    summary = {"events": args.events, "channels": args.channels, "matrix_channels": len(idx),
               "threads": args.threads, "results": results}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1)
    return summary


if __name__ == "__main__":
    main()
