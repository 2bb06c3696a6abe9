"""Same input, same answer: the gating of one file does not depend on how its work is shared or scheduled."""
from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods.base import every_nth, gather
from cytokit.gating.parent_edge import MAX_EVENTS, PARENT_EDGE_KEY, child_negative_max, parent_edge_pp
from cytokit.pipeline.task import SampleJob, SampleOutput


def test_parent_edges_shared_per_parent_equal_each_child_measured_alone(shared_data, repo_root):
    """record_parent_edges evaluates a parent's moved thresholds once for all its children; each child's
    value equals the one measured alone on the grandparent's events in the parent's and the child's dims.
    A2004 (real): three threshold parents (Live, APC, Monocytes) with two or three children each."""
    strategy = load_strategy(repo_root / "benchmarks" / "real_data" / "dc_monocyte_strategy.yaml")
    result = strategy.apply(read_fcs(shared_data / "flowjo9_diva" / "a2004_O1T2pb05i_A2_A02.fcs"))
    definition, sample, state = strategy.definition, result.sample, result.state
    measured = {name: fit.info[PARENT_EDGE_KEY] for name, fit in state.fits.items() if PARENT_EDGE_KEY in fit.info}
    parents = [definition.population(name).parent for name in measured]
    assert len(set(parents)) >= 3 and len(parents) >= 2 * len(set(parents))
    assert len(set(measured.values())) >= 5  # distinct values: a child given another's would show
    for name, value in measured.items():
        spec = definition.population(name)
        pspec = definition.population(spec.parent)
        grand = state.masks[pspec.parent] if pspec.parent else np.ones(sample.n_events, dtype=bool)
        rows = every_nth(np.flatnonzero(grand), MAX_EVENTS)
        cols = np.array([sample.channel_index(d) for d in (*pspec.dims, *spec.dims)], dtype=np.intp)
        alone = parent_edge_pp(state.fits[spec.parent].gate, state.fits[spec.parent].info, state.fits[name].gate,
                               gather(sample.events, rows, cols), np.arange(len(pspec.dims), len(cols)),
                               child_negative_max(tuple(spec.dims), state.fits[name].info),
                               own=pspec.method != "phenotype")
        assert alone is not None and round(alone, 3) == value, name


def _table_and_gates(result) -> tuple[str, list[dict]]:
    table = result.populations.to_csv(index=False, float_format="%.17g")
    return table, [result.fits[name].gate.to_dict() for name in result.fits]


def _max_blas_threads() -> int:
    """OpenBLAS/OpenMP threads this process can use (the libraries cap a limit at the cores they see)."""
    with threadpool_limits(limits=max(os.cpu_count() or 1, 2)):
        return min(i["num_threads"] for i in threadpool_info()) if threadpool_info() else 1


def test_gating_is_the_same_with_one_or_several_blas_threads(repo_root):
    """BLAS threads split some reductions (a long dot product, vector @ matrix), which changes their rounding;
    the gating avoids them: the same file gated with one and with every BLAS thread gives the same table
    (all digits) and gates, and the scatter gates' mixture fit on enough events to be threaded is equal."""
    from cytokit.gating.methods.mixture import fit_gaussian_mixture

    n = _max_blas_threads()
    if n < 2:
        pytest.skip("one BLAS thread only on this machine: nothing to compare")
    fcs = repo_root / "sample_data" / "fcs"
    for name, tube in (("P001_W0_tmem.fcs", "tmem"), ("P001_W0_nkb.fcs", "nkb")):
        if not (fcs / name).is_file():
            pytest.skip(f"sample_data/fcs/{name} is not present (make sample-data)")
        strategy = load_strategy(tube)
        with threadpool_limits(limits=1):
            one = _table_and_gates(strategy.apply(read_fcs(fcs / name)))
        with threadpool_limits(limits=n):
            several = _table_and_gates(strategy.apply(read_fcs(fcs / name)))
        assert one == several, name
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(m, s, size=(20000, 3)) for m, s in ((0, 1), (3, 0.5), (-2, 0.7))])
    with threadpool_limits(limits=1):
        a = fit_gaussian_mixture(X, 6)
    with threadpool_limits(limits=n):
        b = fit_gaussian_mixture(X, 6)
    for field in ("weights", "means", "covariances"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def blas_threads_task(job: SampleJob) -> SampleOutput:
    """A task reporting the BLAS threads its process runs with (summary ``blas_threads``)."""
    return SampleOutput(sample_id=job.sample_id, summary={"blas_threads": [i["num_threads"] for i in threadpool_info()],
                                                            "pid": os.getpid()})


def test_dask_tasks_run_with_the_local_executors_blas_threads(monkeypatch):
    """Dask workers run with whatever BLAS threads their site gave them (a nanny's default is one; a worker
    started without a nanny, or a site's own setting, may use every core); the Dask executor pins each
    task's process to one thread, as the local executor's worker initializer does. The cluster here lets
    its workers use every core."""
    distributed = pytest.importorskip("distributed", reason="the dask executor needs cytokit[distributed]")
    import dask

    from cytokit.pipeline.executors import DaskExecutor, LocalExecutor

    n = _max_blas_threads()
    jobs = [SampleJob(sample_id=f"s{i}", path=f"/nonexistent/{i}.fcs", sha256="", tube="tmem", panel="", panel_tube=None,
                      strategy="") for i in range(3)]
    with LocalExecutor(jobs=1) as local:
        assert all(set(o.summary["blas_threads"]) == {1} for o in local.map(blas_threads_task, jobs))
    every_core = {var: str(n) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    for var, value in every_core.items():  # inherited by the spawned workers, whatever this process was given
        monkeypatch.setenv(var, value)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": every_core}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster:
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            unpinned = client.run(lambda: [i["num_threads"] for i in threadpool_info()])
        with DaskExecutor(scheduler=cluster.scheduler_address) as dask_executor:
            outputs = list(dask_executor.map(blas_threads_task, jobs))
    assert [o.status for o in outputs] == ["ok"] * 3
    assert all(set(o.summary["blas_threads"]) == {1} for o in outputs), [o.summary for o in outputs]
    if n > 1:  # the pinning is the executor's, not the cluster's default
        assert all(max(threads) == n for threads in unpinned.values()), unpinned
