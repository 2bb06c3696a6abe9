"""Whole-process start-up and one-file gating time: ``cytokit --help`` and ``cytokit gate`` vs FlowKit.

Run:  .venv/bin/python benchmarks/startup.py [--events 1000000] [--repeats 5] [--workdir DIR] [--json PATH]

1. Workload: one simulated tmem-tube file of ``--events`` events x 12 channels
   (:func:`cytokit.simulate.simulate_file`, seed 0), written once to ``--workdir``.
2. ``cytokit --help``: a fresh interpreter each time (``python -m cytokit --help``), so interpreter
   start-up and every import the CLI needs are counted.
3. ``cytokit gate FILE --strategy tmem``: read, compensate, transform, fit every automated gate, print the
   population table; a fresh process each time.
4. ``imports of cytokit gate``: a fresh process that imports exactly the modules a ``cytokit gate`` run
   imported (listed by running it once in this process's child), without reading or gating: the
   start-up part of row 3; row 3 minus this row is the analysis (read, QC, compensation, transforms, fits,
   table).
5. FlowKit's equivalent script, in a fresh process: import FlowKit, read the same file
   (``flowkit.Sample``), parse the *same* fitted gates (the Gating-ML that ``GatingResult.to_flowkit()``
   hands to FlowKit: QC gates as root, then the fitted gates with their compensation and logicle
   transforms) and ``GatingStrategy.gate_sample``; print the counts. FlowKit cannot fit gates, so it is given them: its time is a lower bound for a FlowKit workflow.
   The counts of both tools are compared as a check.

Each command runs ``--repeats`` times (after one unmeasured warm-up that fills the OS file cache and writes
the ``.pyc`` files, as an installed package has them: ``PYTHONDONTWRITEBYTECODE`` is removed from the
children's environment, otherwise every run would compile cytokit's modules from source again) and the
median and minimum wall time and CPU time (user + system of the child, its threads included) are
printed, with the 1-minute load average before and after. Wall time is what a user
waits; on a busy shared machine CPU time is the steadier number. Ratio = FlowKit / cytokit (> 1: cytokit
is faster). No timing is asserted anywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOWKIT_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import flowkit as fk
strategy = fk.parse_gating_xml(sys.argv[2])
result = strategy.gate_sample(fk.Sample(sys.argv[1]))
for name, count in zip(result.report["gate_name"], result.report["count"]):
    print(f"{name}\\t{count}")
"""


def _child_env() -> dict[str, str]:
    """The children's environment: a wide table, and bytecode cached as in an installed package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "200"
    return env


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, child CPU s, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def _measure(name: str, cmd: list[str], repeats: int) -> dict:
    _run(cmd)  # warm-up: file cache, .pyc files
    walls, cpus, stdout = [], [], ""
    for _ in range(repeats):
        wall, cpu, stdout = _run(cmd)
        walls.append(wall)
        cpus.append(cpu)
    row = {"command": name, "wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
           "wall_min_s": min(walls), "cpu_min_s": min(cpus)}
    print(f"{name:<34} wall {row['wall_s']:6.2f} s (min {row['wall_min_s']:.2f})   "
          f"cpu {row['cpu_s']:6.2f} s (min {row['cpu_min_s']:.2f})", flush=True)
    row["stdout"] = stdout
    return row


IMPORT_PROBE = """
import json, sys
from cytokit.cli.main import main
code = main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
raise SystemExit(code)
"""


IMPORT_ONLY = """
import contextlib, importlib
for name in {modules!r}:
    with contextlib.suppress(Exception):  # a few entries of sys.modules are not importable by name
        importlib.import_module(name)
"""


def _gate_modules(py: str, gate_cmd: list[str]) -> list[str]:
    """Top-level-importable modules loaded by one ``cytokit gate`` run (private ones left to their parents)."""
    out = subprocess.run([py, "-c", IMPORT_PROBE, *gate_cmd], capture_output=True, text=True, check=True,
                         env=_child_env())
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return [m for m in loaded if not any(part.startswith("_") for part in m.split(".")) and m != "__main__"]


def _cytokit_counts(table: str) -> dict[str, int]:
    """Population -> count from the rich table `cytokit gate` prints."""
    counts = {}
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line)]
        if len(cells) > 4 and re.fullmatch(r"[\d,]+", cells[3] or "x"):
            counts[cells[1]] = int(cells[3].replace(",", ""))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cytokit-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    fcs = work / f"tmem_{args.events}.fcs"
    if not fcs.exists():
        from cytokit.simulate import simulate_file

        simulate_file(fcs, args.events, "tmem", "bd", seed=0)
    # the fitted gates (under the QC gates) as FlowKit is given them by GatingResult.to_flowkit()
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy
    from cytokit.interop import flowkit_gate_ids, flowkit_gatingml

    result = load_strategy("tmem").apply(read_fcs(fcs))
    gates = work / "gates_flowkit.xml"
    gates.write_bytes(flowkit_gatingml(result))
    gate_ids = flowkit_gate_ids(result)
    py = sys.executable
    script = work / "flowkit_gate.py"
    script.write_text(FLOWKIT_SCRIPT)
    gate_cmd = ["gate", str(fcs), "--strategy", "tmem"]
    imports = work / "gate_imports.py"
    imports.write_text(IMPORT_ONLY.format(modules=_gate_modules(py, gate_cmd)))
    load_before = os.getloadavg()[0]
    print(f"workload: {fcs} ({args.events:,} events x 12 channels), {args.repeats} runs each, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f}")
    rows = [
        _measure("python -c pass (interpreter)", [py, "-c", "pass"], args.repeats),
        _measure("cytokit --help", [py, "-m", "cytokit", "--help"], args.repeats),
        _measure("cytokit gate --strategy tmem", [py, "-m", "cytokit", *gate_cmd], args.repeats),
        _measure("imports of cytokit gate", [py, str(imports)], args.repeats),
        _measure("FlowKit script (same gates)", [py, str(script), str(fcs), str(gates)], args.repeats),
    ]
    load_after = os.getloadavg()[0]
    ours, theirs = rows[2], rows[4]
    print(f"cytokit gate analysis (gate - imports): wall {ours['wall_s'] - rows[3]['wall_s']:.2f} s, "
          f"cpu {ours['cpu_s'] - rows[3]['cpu_s']:.2f} s; load average after {load_after:.1f}")
    print(f"ratio FlowKit / cytokit gate: wall {theirs['wall_s'] / ours['wall_s']:.2f}, "
          f"cpu {theirs['cpu_s'] / ours['cpu_s']:.2f}")
    ck = _cytokit_counts(ours["stdout"])
    fk = {line.split("\t")[0]: int(line.split("\t")[1]) for line in theirs["stdout"].splitlines() if "\t" in line}
    # FlowKit names gates by their Gating-ML ids ("CD4 T" -> "CD4_T"); QC gates have no cytokit row
    diffs = {name: (count, fk.get(gate_ids.get(name, ""))) for name, count in ck.items()}
    same = all(a == b for a, b in diffs.values())
    print(f"counts identical in both tools: {same} ({len(diffs)} populations)")
    if not same:
        for name, (a, b) in diffs.items():
            if a != b:
                print(f"  {name}: cytokit {a}, FlowKit {b}")
    if args.json:
        payload = {"events": args.events, "repeats": args.repeats, "counts_identical": same,
                   "load_average": [load_before, load_after],
                   "rows": [{k: v for k, v in r.items() if k != "stdout"} for r in rows]}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
