"""Run every benchmark script in turn with its default settings (``make benchmarks``).

Each script measures cytokit against a peer in the same process and prints its own table; this runner
only sequences them (one at a time, so they do not compete for the cores) and stops at the first failure.
Pass script names to run a subset: ``python benchmarks/run_all.py transforms_logicle fcs_read``.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("startup", "fcs_read", "transforms_logicle", "compensation_speed", "simulate_speed", "interop_gating",
         "gating_accuracy", "independent_lab", "clustering", "pipeline_speed")


def main(argv: list[str]) -> int:
    names = argv or list(ORDER)
    unknown = [n for n in names if not (HERE / f"{n}.py").is_file()]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {unknown}; available: {', '.join(ORDER)}\n")
        return 2
    for name in names:
        sys.stdout.write(f"\n=== {name} ===\n")
        sys.stdout.flush()
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        sys.stdout.write(f"=== {name}: exit {code}, {time.perf_counter() - start:.0f} s ===\n")
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
