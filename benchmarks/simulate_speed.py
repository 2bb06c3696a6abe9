"""Time to simulate and write one 1M-event x 12-channel file (tmem tube) with cytokit.simulate.simulate_file.

Run: ``python benchmarks/simulate_speed.py [--events N] [--repeats R]``. Peer, in the same process and
interleaved: drawing the same number of i.i.d. normal values and writing them with
``cytokit.fcs.write_fcs`` (the floor any simulator pays for random numbers plus the FCS write). Prints the
median wall time of each, the ratio simulator/peer and the peak traced memory of one simulation.
Target: a 1M-event file in a couple of seconds on a laptop-class core. On a shared machine, the CPU
seconds (process time) are the steadier number.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from cytokit.fcs import write_fcs
from cytokit.simulate import simulate_file
from cytokit.simulate.channels import channel_names


def _peer(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    events = (rng.standard_normal((n, 12)) * 1000).astype(np.float32)
    pnn, pns = channel_names("tmem", "bd")
    write_fcs(path, events, pnn, pns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"simulate_file": [], "peer (normals + write_fcs)": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    with tempfile.TemporaryDirectory() as tmp:
        sim_path, peer_path = Path(tmp) / "sim.fcs", Path(tmp) / "peer.fcs"
        simulate_file(sim_path, 10_000, "tmem", "bd", seed=0)  # warm-up (imports, calibration cache)
        for r in range(args.repeats):
            for name, fn in (("simulate_file", lambda: simulate_file(sim_path, args.events, "tmem", "bd", seed=r)),
                             ("peer (normals + write_fcs)", lambda: _peer(peer_path, args.events, r))):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        size_mb = sim_path.stat().st_size / 1e6
        tracemalloc.start()
        simulate_file(sim_path, args.events, "tmem", "bd", seed=99)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"file: {args.events} events x 12 channels float32, {size_mb:.1f} MB")
    for k, t in med.items():
        print(f"{k:28s} median wall {t:6.2f} s   cpu {statistics.median(cpu[k]):6.2f} s")
    print(f"ratio simulate_file / peer: {med['simulate_file'] / med['peer (normals + write_fcs)']:.2f}x")
    print(f"simulate_file peak traced memory: {peak / 1e6:.0f} MB ({peak / 1e6 / size_mb:.1f}x file size)")


if __name__ == "__main__":
    main()
