"""Logicle forward/inverse speed: cytokit vs flowutils (FlowKit's kernel) on the same data, same process.

Run: ``python benchmarks/transforms_logicle.py [--events 1000000] [--channels 7] [--repeats 3]``.
Reports the best-of-N wall time of each implementation, the ratio (flowutils / cytokit; > 1 means
cytokit is faster; target ≥ 5 for the forward scale) and the largest absolute difference between them.
Timings are ratios measured in one run, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def best_of(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    import flowutils

    from cytokit.transforms import get_transform

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(2003)
    n, k = args.events, args.channels
    # compensated-looking data: log-normal positives, a spread of negatives around zero, a few saturated
    x = rng.lognormal(6.0, 2.0, (n, k)) * np.where(rng.random((n, k)) < 0.2, -0.02, 1.0)
    x += rng.normal(0, 60, (n, k))
    x[rng.random((n, k)) < 1e-4] = 262143.0
    params = dict(T=262144.0, W=0.5, M=4.5, A=0.0)
    ours = get_transform("logicle", **params)
    ours.forward(x[:10])  # build the lookup table outside the timing

    t_ours, y_ours = best_of(lambda: ours.forward(x), args.repeats)
    t_ref, y_ref = best_of(lambda: flowutils.transforms.logicle(x, None, t=262144, m=4.5, w=0.5, a=0),
                           args.repeats)
    ti_ours, xi_ours = best_of(lambda: ours.inverse(y_ref), args.repeats)
    ti_ref, xi_ref = best_of(lambda: flowutils.transforms.logicle_inverse(y_ref, None, t=262144, m=4.5, w=0.5,
                                                                          a=0), args.repeats)
    result = {
        "values": n * k,
        "forward_seconds": {"cytokit": round(t_ours, 4), "flowutils": round(t_ref, 4)},
        "forward_speedup": round(t_ref / t_ours, 2),
        "forward_max_abs_diff": float(np.max(np.abs(y_ours - y_ref))),
        "inverse_seconds": {"cytokit": round(ti_ours, 4), "flowutils": round(ti_ref, 4)},
        "inverse_speedup": round(ti_ref / ti_ours, 2),
        "inverse_max_rel_diff": float(np.max(np.abs(xi_ours - xi_ref) / np.maximum(1.0, np.abs(xi_ref)))),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
