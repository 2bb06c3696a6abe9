"""Helpers for the pipeline/batch tests: a small simulated trial, pipeline YAML writer, and a toy task.

The toy task reads the real FCS file and resolves the real panel, then "gates" with fixed quantile rules
so the framework (executors, store, ledger, resume, faults) can be tested independently of the gating
engine. Fault injection for tests, through environment variables inherited by worker processes:
``CYTOKIT_TOY_CRASH`` (sample ids whose worker calls ``os._exit``), ``CYTOKIT_TOY_FAIL`` (sample ids
that raise), ``CYTOKIT_TOY_SLEEP`` (seconds per sample); a file ``<fcs path>.crash`` also makes the
worker exit (for workers started before the test sets variables, e.g. a Dask cluster).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import yaml

from cytokit.pipeline.task import SampleJob, SampleOutput

TOY_TASK = "test_pipeline_support:toy_task"
TESTS_DIR = Path(__file__).resolve().parent


def simulate_small_trial(folder: Path, *, events: int = 3000, patients_per_arm: int = 1,
                         visits: tuple[str, ...] = ("W0", "W12")) -> Path:
    from cytokit.simulate import load_config, simulate_trial

    cfg = load_config(None, patients_per_arm=patients_per_arm, visits=list(visits), events=events)
    simulate_trial(folder, cfg, force=True)
    return folder


def write_pipeline(folder: Path, trial: Path, name: str = "toy_trial", **overrides) -> Path:
    """A pipeline YAML in ``folder`` pointing at ``trial`` (relative paths), with top-level overrides
    (dict values are merged into the defaults, except ``manifest`` which is replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(trial, folder)
    data = {
        "name": name,
        "manifest": {"path": f"{rel}/manifest.csv"},
        "clinical": {"path": f"{rel}/clinical.csv", "il2_cycles": f"{rel}/il2_cycles.csv"},
        "tubes": {"tmem": {"panel": "il2_trial", "strategy": "tmem"},
                  "nkb": {"panel": "il2_trial", "strategy": "nkb"}},
        "qc": {"enabled": False, "min_events": 100},
        "outputs": {"flowjo_workspace": False, "thumbnails": False, "gatingml": False},
        "executor": {"jobs": 2, "task": TOY_TASK},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "manifest":
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _ids(var: str) -> set[str]:
    return {s for s in os.environ.get(var, "").split(",") if s}


def toy_task(job: SampleJob) -> SampleOutput:
    """Quantile 'gating' of the real file: Lymphocytes (all) > Singlets > T cells > CD4 T / CD8 T (tmem),
    or > T cells / NK cells / B cells and Beads (nkb)."""
    from cytokit.fcs import read_fcs
    from cytokit.panel import load_panel

    if job.sample_id in _ids("CYTOKIT_TOY_CRASH") or Path(job.path + ".crash").exists():
        os._exit(3)
    if job.sample_id in _ids("CYTOKIT_TOY_FAIL"):
        raise ValueError("injected failure")
    time.sleep(float(os.environ.get("CYTOKIT_TOY_SLEEP", "0") or 0))
    sample = load_panel(job.panel).resolve(read_fcs(job.path), tube=job.panel_tube)
    fsc = sample.column("FSC-A")
    n = sample.n_events
    lym = np.ones(n, dtype=bool)
    singlets = fsc >= np.quantile(fsc, 0.1)
    cd3 = sample.column("CD3")
    t = singlets & (cd3 >= np.quantile(cd3[singlets], 0.4))
    pops = [("Lymphocytes", "", lym), ("Singlets", "Lymphocytes", singlets), ("T cells", "Singlets", t)]
    if job.tube == "tmem":
        cd4 = sample.column("CD4")
        thr = np.quantile(cd4[t], 0.5)
        pops += [("CD4 T", "T cells", t & (cd4 >= thr)), ("CD8 T", "T cells", t & (cd4 < thr))]
    else:
        rest = singlets & ~t
        cd19 = sample.column("CD19")
        b = rest & (cd19 >= np.quantile(cd19[rest], 0.6))
        pops += [("NK cells", "Singlets", rest & ~b), ("B cells", "Singlets", b),
                 (job.bead_population, "", fsc < np.quantile(fsc, 0.02))]
    masks = {name: m for name, _, m in pops}
    rows = []
    for name, parent, m in pops:
        pc = int(masks[parent].sum()) if parent else n
        in_lym = name not in ("Lymphocytes", job.bead_population)
        rows.append({"population": name, "parent": parent, "count": int(m.sum()), "parent_count": pc,
                     "pct_parent": 100.0 * m.sum() / pc, "dims": "FSC-A",
                     "pct_lymphocytes": 100.0 * m.sum() / singlets.sum() if in_lym else float("nan"),
                     "method": "toy", "flags": "", "phenotype": "",
                     "marker_medians": json.dumps({"FSC-A": float(np.median(fsc[m]))})})
    return SampleOutput(sample_id=job.sample_id, populations=rows,
                        summary={"n_events": n, "n_events_qc": n, "qc_flags": []},
                        timings={"toy": 0.0})


def test_support_pipeline_and_toy_task(tmp_path):
    """The helpers themselves: the YAML written here validates and the toy task gates a real file."""
    from cytokit.pipeline import load_pipeline
    from cytokit.pipeline.preflight import preflight
    from cytokit.pipeline.runner import make_jobs

    trial = simulate_small_trial(tmp_path / "trial", events=1000, visits=("W0",))
    config = load_pipeline(write_pipeline(tmp_path / "cfg", trial, executor={"jobs": 1}))
    assert config.executor.task == TOY_TASK and config.executor.jobs == 1
    jobs = make_jobs(preflight(config), TOY_TASK)
    out = toy_task(next(j for j in jobs if j.tube == "nkb"))
    pops = {p["population"]: p for p in out.populations}
    assert pops["Singlets"]["count"] == 900 and pops["Lymphocytes"]["count"] == 1000
    assert pops["T cells"]["count"] + pops["NK cells"]["count"] + pops["B cells"]["count"] == 900
