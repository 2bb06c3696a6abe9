"""``parent_edge_pp`` with the per-parent cache against the per-child computation, in one process.

:func:`cytokit.gating.parent_edge.record_parent_edges` gathers a parent's grandparent events and evaluates
the parent and each moved parent once per parent, then only the population's own dims per child. The
per-child computation it replaced (:func:`per_child`, kept here as the reference) gathered the
grandparent's events in the parent's and the child's dims and re-evaluated the parent and its moved copies
for every child. For every simulated file both run on the same fitted state (interleaved, ``repeats`` times,
best kept, wall and CPU time) and must give the same ``parent_edge_pp`` for every population; the script
also writes each file's population table (CSV bytes) with both and counts the files whose tables differ
(expected 0).

    nice .venv/bin/python benchmarks/parent_edge_cache.py [--seeds 101,404] [--events 20000] [--repeats 5]

Default: the gating_accuracy scenario families ``reference``, ``broad_negative``, ``high_gain`` and
``dim_stains_low_gain`` drawn with tuning seed 101 (2 patients per arm x W0/W74 x 2 tubes: 16 files each, 64 files).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gating_accuracy import FAMILIES, HELD_OUT_SEED  # noqa: E402

from cytokit.fcs import read_fcs  # noqa: E402
from cytokit.gating import load_strategy  # noqa: E402
from cytokit.gating.engine import population_table  # noqa: E402
from cytokit.gating.fit_state import FitState  # noqa: E402
from cytokit.gating.methods.base import every_nth, gather  # noqa: E402
from cytokit.gating.model import StrategyDefinition  # noqa: E402
from cytokit.gating.methods.confidence import ThresholdUncertainty  # noqa: E402
from cytokit.gating.parent_edge import (MAX_EVENTS, MOVABLE, PARENT_EDGE_KEY, _moved, _threshold,  # noqa: E402
                                        record_parent_edges)
from cytokit.gates import BooleanGate, Gate  # noqa: E402
from cytokit.sample import Sample  # noqa: E402
from cytokit.simulate import load_config, simulate_trial  # noqa: E402

DEFAULT_FAMILIES = ("reference", "broad_negative", "high_gain", "dim_stains_low_gain")


def _edge_per_child(parent_gate: Gate, parent_info: dict, child_gate: Gate, grand: np.ndarray,
                    n_parent_dims: int) -> float | None:
    """One population's ``parent_edge_pp`` as computed before the cache: the parent and each moved parent
    evaluated on ``grand`` (parent's dims, then the child's), the child's gate on each one's events."""
    Xp, Xc = grand[:, :n_parent_dims], grand[:, n_parent_dims:]
    inside = parent_gate.contains(Xp)
    if not inside.any():
        return None
    base = float(child_gate.contains(Xc[inside]).mean())
    total, measured = 0.0, False
    for i, dim in enumerate(parent_gate.dims):
        value = _threshold(parent_gate, i)
        alts = ThresholdUncertainty.from_fit(value, parent_info.get(dim)).alternatives if value is not None else ()
        worst = 0.0
        for alt in alts:
            moved = _moved(parent_gate, i, alt)
            if moved is None:
                continue
            measured = True
            rows = moved.contains(Xp)
            if rows.any():
                worst = max(worst, abs(float(child_gate.contains(Xc[rows]).mean()) - base))
        total += worst * worst
    return 100.0 * float(np.sqrt(total)) if measured else None


def per_child(definition: StrategyDefinition, sample: Sample, state: FitState) -> dict[str, float]:
    """``parent_edge_pp`` of every measured population, computed per child (no cache): the grandparent's
    events in the parent's and the child's dims gathered and the parent's moves re-evaluated each time."""
    methods = {spec.name: spec.method for spec in definition.populations}
    out: dict[str, float] = {}
    for spec in definition.populations:
        fit = state.fits.get(spec.name)
        parent = state.fits.get(spec.parent) if spec.parent is not None else None
        if fit is None or parent is None or methods.get(spec.parent) not in MOVABLE or fit.components \
                or isinstance(fit.gate, BooleanGate):
            continue
        pspec = definition.population(spec.parent)
        grand = state.masks[pspec.parent] if pspec.parent else np.ones(sample.n_events, dtype=bool)
        rows = every_nth(np.flatnonzero(grand), MAX_EVENTS)
        cols = np.array([sample.channel_index(d) for d in (*pspec.dims, *spec.dims)], dtype=np.intp)
        X = gather(sample.events, rows, cols)
        value = _edge_per_child(parent.gate, parent.info, fit.gate, X, len(pspec.dims))
        if value is not None:
            out[spec.name] = round(value, 3)
    return out


def _edges(state: FitState) -> dict[str, float]:
    return {name: fit.info[PARENT_EDGE_KEY] for name, fit in state.fits.items() if PARENT_EDGE_KEY in fit.info}


def _timed(fn, *args) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    ap.add_argument("--seeds", default="101")
    ap.add_argument("--patients", type=int, default=2)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(s >= HELD_OUT_SEED for s in seeds):
        ap.error(f"seeds from {HELD_OUT_SEED} on are reserved for held-out measurement")
    root = Path(tempfile.mkdtemp(prefix="parent_edge_cache_"))
    try:
        return _run(args, seeds, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(args: argparse.Namespace, seeds: list[int], root: Path) -> int:
    strategies: dict[str, object] = {}
    cached_wall = child_wall = cached_cpu = child_cpu = 0.0
    n_files = n_values = n_nonzero = differing_values = differing_tables = 0
    for family in args.families.split(","):
        for seed in seeds:
            cfg = load_config(None, seed=seed, patients_per_arm=args.patients, visits=["W0", "W74"],
                              events=args.events, **FAMILIES[family].overrides)
            trial = root / f"{family}_{seed}"
            simulate_trial(trial, cfg, force=True)
            man = pd.read_csv(trial / "manifest.csv")
            for r in man.itertuples():
                strategy = strategies.setdefault(r.tube, load_strategy(r.tube))
                res = strategy.apply(read_fcs(trial / r.file), qc=False)
                definition, sample, state = strategy.definition, res.sample, res.state
                cached = _edges(state)
                table_cached = population_table(definition, state, sample.n_events).to_csv(index=False)
                reference = per_child(definition, sample, state)
                n_files += 1
                n_values += len(reference)
                n_nonzero += sum(v != 0 for v in reference.values())
                differing_values += sum(cached.get(k) != v for k, v in reference.items()) + len(
                    set(cached) - set(reference))
                for name, fit in state.fits.items():  # the table with the per-child values
                    fit.info.pop(PARENT_EDGE_KEY, None)
                    if name in reference:
                        fit.info[PARENT_EDGE_KEY] = reference[name]
                table_child = population_table(definition, state, sample.n_events).to_csv(index=False)
                differing_tables += table_child != table_cached
                best_c, best_p = (np.inf, np.inf), (np.inf, np.inf)
                for _ in range(args.repeats):  # interleaved: load affects both alike
                    best_c = min(best_c, _timed(record_parent_edges, definition, sample, state))
                    best_p = min(best_p, _timed(per_child, definition, sample, state))
                cached_wall += best_c[0]
                cached_cpu += best_c[1]
                child_wall += best_p[0]
                child_cpu += best_p[1]
    print(f"{n_files} files, {n_values} parent_edge_pp values ({n_nonzero} non-zero); values differing: {differing_values}; "
          f"population tables differing: {differing_tables}")
    print(f"per file (best of {args.repeats}): per-child {1000 * child_wall / n_files:.2f} ms wall "
          f"({1000 * child_cpu / n_files:.2f} ms CPU), cached {1000 * cached_wall / n_files:.2f} ms wall "
          f"({1000 * cached_cpu / n_files:.2f} ms CPU); ratio per-child / cached {child_wall / cached_wall:.2f} "
          f"wall, {child_cpu / max(cached_cpu, 1e-9):.2f} CPU")
    return 1 if differing_values or differing_tables else 0


if __name__ == "__main__":
    raise SystemExit(main())
