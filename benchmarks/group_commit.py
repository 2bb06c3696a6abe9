"""Storing results: group commit against one durable commit per sample, in the same process and run.

Run:  nice .venv/bin/python benchmarks/group_commit.py [--source results] [--samples 600] [--rounds 2]

The stored outputs of an analysed results folder (``--source``, e.g. the demo's ``results/``) are saved
again, ``--samples`` times in all (cycling over the stored samples under new ids), into fresh folders on
the same file system as ``--source``, by two writers in alternating rounds:

* *per sample*: what the store did before group commit: every file written with fsync, then one ledger
  transaction (``synchronous=FULL``) per sample;
* *group commit*: :class:`cytokit.pipeline.store.ResultsStore` with its defaults (background fsync, one
  folder fsync pass and one ledger transaction per batch).

Both end with every file and ledger row durable. Reported: wall-clock and CPU ms per sample of the
parent and the ratio per-sample / group. Wall time on a shared machine depends on the disk and the load;
the ratio is taken within each round.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cytokit.io_utils import atomic_write_text, sha256_bytes
from cytokit.pipeline.ledger import Ledger, open_ledger, read_ledger, utc_now
from cytokit.pipeline.store import ResultsStore, dumps
from cytokit.pipeline.task import SampleJob, SampleOutput


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stored_outputs(source: Path) -> list[tuple[dict[str, Any], str | None]]:
    ledger = read_ledger(source)
    try:
        store = ResultsStore(source, ledger)
        ids = sorted(s for s, row in ledger.samples().items() if row["status"] == "ok")
        out = []
        for sid in ids:
            gml = store.sample_dir(sid) / "gates.xml"
            out.append((store.load(sid), gml.read_text(encoding="utf-8") if gml.is_file() else None))
        return out
    finally:
        ledger.close()


def job_and_output(i: int, stored: dict[str, Any], gatingml: str | None) -> tuple[SampleJob, SampleOutput]:
    sid = f"S{i:06d}"
    job = SampleJob(sample_id=sid, path=f"{sid}.fcs", sha256=stored.get("sha256", ""), tube=stored.get("tube", ""),
                    panel="", panel_tube=None, strategy="", qc={}, gatingml=gatingml is not None, thumbnails=False,
                    bead_population=None, key=f"key-{sid}")
    output = SampleOutput(sample_id=sid, populations=stored["populations"], summary=stored["summary"],
                          gates=stored["gates"], timings=stored["timings"], gatingml=gatingml)
    return job, output


def save_per_sample(out: Path, ledger: Ledger, job: SampleJob, output: SampleOutput) -> None:
    """The previous store: each file fsync'ed before its rename, one ledger transaction per sample."""
    folder = out / "samples" / job.sample_id
    if output.gatingml:
        atomic_write_text(folder / "gates.xml", output.gatingml)
    text = dumps({"sample_id": job.sample_id, "file": job.path, "sha256": job.sha256, "tube": job.tube,
                  "key": job.key, "populations": output.populations, "summary": output.summary,
                  "gates": output.gates, "timings": output.timings})
    atomic_write_text(folder / "result.json", text)
    ledger.record_sample({"sample_id": job.sample_id, "file": job.path, "sha256": job.sha256, "key": job.key,
                          "status": "ok", "error": "", "result_sha256": sha256_bytes(text.encode()),
                          "seconds": 0.0, "peak_rss_mb": 0.0, "timings": "{}", "run_id": 1, "finished": utc_now()})


def one_round(base: Path, mode: str, outputs: list[tuple[SampleJob, SampleOutput]]) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(prefix=f"store-{mode}-", dir=base))
    ledger = open_ledger(out)
    store = ResultsStore(out, ledger)
    try:
        t, c = time.perf_counter(), cpu_seconds()
        for job, output in outputs:
            if mode == "group":
                store.save(job, output, run_id=1)
            else:
                save_per_sample(out, ledger, job, output)
        store.commit()
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        assert len(ledger.samples()) == len(outputs)
        return wall, cpu
    finally:
        store.close()
        ledger.close()
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=Path("results"))
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    stored = stored_outputs(args.source)
    if not stored:
        raise SystemExit(f"{args.source}: no stored ok samples to replay")
    outputs = [job_and_output(i, *stored[i % len(stored)]) for i in range(args.samples)]
    base = Path(tempfile.mkdtemp(prefix=".group-commit-bench-", dir=args.source.resolve().parent))
    rows = []
    try:
        for r in range(args.rounds):
            per_wall, per_cpu = one_round(base, "per_sample", outputs)
            grp_wall, grp_cpu = one_round(base, "group", outputs)
            n = args.samples
            rows.append({"round": r + 1, "per_sample_ms": 1000 * per_wall / n, "per_sample_cpu_ms": 1000 * per_cpu / n,
                         "group_ms": 1000 * grp_wall / n, "group_cpu_ms": 1000 * grp_cpu / n,
                         "ratio": per_wall / grp_wall})
            x = rows[-1]
            print(f"round {r + 1}: per-sample commit {x['per_sample_ms']:.2f} ms/sample (CPU {x['per_sample_cpu_ms']:.2f}), "
                  f"group commit {x['group_ms']:.2f} ms/sample (CPU {x['group_cpu_ms']:.2f}): {x['ratio']:.1f}x less wall")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result = {"samples": args.samples, "source": str(args.source), "rounds": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
