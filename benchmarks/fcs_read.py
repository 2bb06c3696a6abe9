"""Read time of a 1M-event x 12-channel float32 FCS 3.1 file: cytokit.fcs.read_fcs vs FlowIO and FlowKit,
and the time of cytokit.qc.run_qc (default parameters) on the events read.

Run: ``python benchmarks/fcs_read.py [--events N] [--repeats R]``. Writes the file with
``cytokit.fcs.write_fcs`` into a temporary folder, reads it with each reader ``R`` times in this process
and prints the median wall time of each and the ratio to cytokit (all readers end with a float32/float64
numpy event array on the linear scale). Also reports peak traced memory of one cytokit read.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from cytokit.fcs import read_fcs, write_fcs
from cytokit.qc import run_qc


def _cytokit(path: Path) -> np.ndarray:
    return read_fcs(path).events


def _flowio(path: Path) -> np.ndarray:
    import flowio

    return flowio.FlowData(str(path)).as_array(preprocess=True)


def _flowkit(path: Path) -> np.ndarray:
    import flowkit

    return flowkit.Sample(str(path)).get_events(source="raw")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    events = (rng.random((args.events, args.channels), dtype=np.float32) * 2.6e5).astype(np.float32)
    events[:, -1] = np.sort(rng.uniform(0, 60_000, args.events))  # last channel: Time (acquisition order)
    names = [f"FL{i}-A" for i in range(1, args.channels)] + ["Time"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fcs(Path(tmp) / "bench.fcs", events, names, metadata={"$CYT": "bench"})
        size_mb = path.stat().st_size / 1e6
        readers = (("cytokit", _cytokit), ("flowio", _flowio), ("flowkit", _flowkit))
        times: dict[str, list[float]] = {name: [] for name, _ in readers}
        for _ in range(args.repeats):  # interleaved so machine load affects every reader alike
            for name, fn in readers:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    out = fn(path)
                    times[name].append(time.perf_counter() - t0)
                assert out.shape == events.shape and np.allclose(out[:1000], events[:1000])
                del out
        results = {name: statistics.median(t) for name, t in times.items()}
        tracemalloc.start()
        sample = read_fcs(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        qc_times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            qc = run_qc(sample)
            qc_times.append(time.perf_counter() - t0)
    print(f"file: {args.events} events x {args.channels} channels float32, {size_mb:.1f} MB")
    base = results["cytokit"]
    for name, t in results.items():
        print(f"{name:8s} median {t * 1000:8.1f} ms   ratio to cytokit {t / base:6.2f}x")
    print(f"cytokit peak traced memory: {peak / 1e6:.1f} MB ({peak / 1e6 / size_mb:.2f}x file size)")
    print(f"run_qc   median {statistics.median(qc_times) * 1000:8.1f} ms on {sample.n_events} events "
          f"({qc.n_kept} kept, flags: {';'.join(qc.flags) or 'none'})")


if __name__ == "__main__":
    main()
