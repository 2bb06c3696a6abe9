"""The clustering cohort stage: results store in, ``OUT/clustering/`` tables and figures out.

Contract
--------
:func:`analyse` works in memory: ``samples`` (sample id -> events on the transformed scale, columns =
``markers``) -> :class:`ClusteringRun` holding the clustering, annotation and tidy tables:

=========================  =====================================================================
``metacluster_abundance``  sample_id, population, metacluster, name, count, total, pct (+ manifest)
``population_abundance``   sample_id, population, clustered_population, count, total, pct, level (+ manifest)
``metaclusters``           metacluster, name, matches, n_nodes, events, pct_events, median_<marker>
``nodes``                  node, grid_x, grid_y, metacluster, name, events, median_<marker>
``thresholds``             marker, positive_threshold, high_threshold, source
``agreement``              gating vs clustering per sample and population (pp), ``flagged``
``agreement_summary``      per population: mean/max |difference| (pp), samples flagged
``differential``           between-arm tests per visit and metacluster, FDR-adjusted
``differential_populations`` the same per visit and named population (from clustering)
=========================  =====================================================================

``pct`` is percent (0-100) of the clustered population. :func:`run_clustering` reads the pipeline's
results store (``samples`` table, ``populations`` table, ``cytokit.pipeline.load_gated_events`` for the
events), calls :func:`analyse` and writes every table as Parquet + CSV, ``heatmap.png``, ``map.png``,
``abundance.png`` and ``clustering.json`` (parameters, markers, thresholds, skipped samples) into
``OUT/clustering/``. Existing outputs are not overwritten without ``force``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ClusterError, CytokitError, PipelineError
from ..io_utils import atomic_write_text, write_table
from ..pipeline.events import load_gated_events
from ..provenance import inputs_digest, sample_hashes, stamp_inputs
from ..results import ResultsFolder, read_run_info, read_table
from ..results import schema as S
from .abundance import (Annotation, annotate, metacluster_abundance, metacluster_table, node_table,
                        population_abundance)
from .agreement import agreement_summary, agreement_table
from .differential import differential_abundance
from .model import ClusteringResult, cluster_samples
from .params import ClusterParams
from .phenotype import PhenotypeTable, load_phenotypes
from .thresholds import Thresholds, estimate_thresholds, thresholds_from_gates

log = logging.getLogger(__name__)

#: manifest columns copied from the samples table onto abundance rows
MANIFEST_COLUMNS = S.MANIFEST_COLUMNS
#: channels never clustered by default (canonical scatter/time names)
NON_MARKERS = ("FSC-A", "FSC-H", "FSC-W", "SSC-A", "SSC-H", "SSC-W", "Time")
OUTPUT_DIR = "clustering"

Loader = Callable[[Path, str, str], Any]
#: ``progress(done, total, sample_id)`` after each sample's events are loaded
ProgressFn = Callable[[int, int, str], None]


@dataclass
class ClusteringRun:
    """Everything one clustering stage produced (see module docstring for the tables)."""

    result: ClusteringResult
    annotation: Annotation
    tables: dict[str, pd.DataFrame]
    skipped: dict[str, str] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)


def _with_meta(df: pd.DataFrame, meta: pd.DataFrame | None) -> pd.DataFrame:
    if meta is None or meta.empty:
        return df
    cols = [S.SAMPLE_ID] + [c for c in MANIFEST_COLUMNS if c in meta.columns and c not in df.columns]
    return df.merge(meta[cols].drop_duplicates(S.SAMPLE_ID), on=S.SAMPLE_ID, how="left")


def analyse(samples: Mapping[str, np.ndarray], markers: Sequence[str], *, population: str = "T cells",
            params: ClusterParams | None = None, phenotypes: PhenotypeTable | None = None,
            thresholds: Mapping[str, Any] | None = None, meta: pd.DataFrame | None = None,
            gating: pd.DataFrame | None = None, gating_thresholds: Mapping[str, Mapping[str, float]] | None = None,
            level: str = "node", da_test: str = "quasibinomial") -> ClusteringRun:
    """Cluster, annotate and tabulate (no file IO). ``meta``: samples table (sample_id + manifest columns);
    ``gating``: the results store's populations table (for the agreement table); ``gating_thresholds``:
    from :func:`~cytokit.cluster.thresholds.thresholds_from_gates` (used unless ``thresholds`` names the
    marker)."""
    params = params or ClusterParams()
    result = cluster_samples(samples, markers, params=params, population=population)
    if result.train_events is None:  # pragma: no cover - cluster_samples always keeps them
        raise ClusterError("the clustering result holds no training events to estimate thresholds on")
    thr: Thresholds = estimate_thresholds(result.train_events, list(markers), given=thresholds,
                                          gating=gating_thresholds, seed=params.seed)
    ann = annotate(result, phenotypes or PhenotypeTable.default(), thr)
    mc_ab = _with_meta(metacluster_abundance(result, ann), meta)
    pop_ab = _with_meta(population_abundance(result, ann, level=level), meta)
    tables = {
        "metacluster_abundance": mc_ab,
        "population_abundance": pop_ab,
        "metaclusters": metacluster_table(result, ann),
        "nodes": node_table(result, ann),
        "thresholds": thr.to_frame(),
    }
    if gating is not None and not gating.empty:
        agr = agreement_table(pop_ab, gating, root=population, margin_pp=params.margin_pp)
        tables["agreement"] = _with_meta(agr, meta)
        tables["agreement_summary"] = agreement_summary(agr)
    if {S.ARM, S.VISIT} <= set(mc_ab.columns) and mc_ab[S.ARM].dropna().nunique() == 2:
        tables["differential"] = differential_abundance(mc_ab, cluster_col="metacluster", test=da_test,
                                                        alpha=params.alpha)
        tables["differential_populations"] = differential_abundance(pop_ab, cluster_col=S.POPULATION,
                                                                    test=da_test, alpha=params.alpha)
    elif meta is not None:
        log.info("no between-arm comparison: need 'arm' (two groups) and 'visit' in the samples table")
    return ClusteringRun(result, ann, tables)


# -- results store -----------------------------------------------------------------------------------


def _unpack(loaded: Any, where: str) -> tuple[np.ndarray, list[str]]:
    """Events and marker names from what a loader returns: (events, markers), a Sample, or an object
    with ``events`` and ``markers`` attributes."""
    if isinstance(loaded, tuple) and len(loaded) == 2:
        events, names = loaded
    elif hasattr(loaded, "channels") and hasattr(loaded, "events"):
        events, names = loaded.events, list(loaded.channels["marker"].astype(str))
    elif hasattr(loaded, "events") and hasattr(loaded, "markers"):
        events, names = loaded.events, loaded.markers
    else:
        raise ClusterError(f"{where}: the event loader returned {type(loaded).__name__}, not (events, markers)")
    events = np.asarray(events)
    names = [str(n) for n in names]
    if events.ndim != 2 or events.shape[1] != len(names):
        raise ClusterError(f"{where}: events of shape {events.shape} do not match markers {names}")
    return events, names


def load_population_events(results_dir: str | Path, *, population: str, markers: Sequence[str] | None = None,
                           tube: str | None = None, loader: Loader | None = None,
                           progress: ProgressFn | None = None,
                           ) -> tuple[dict[str, np.ndarray], list[str], pd.DataFrame, dict[str, str]]:
    """Events of ``population`` for every ok sample of the store: (samples, markers, meta, skipped).

    Samples whose events cannot be loaded, or that lack a requested marker, are skipped with the reason
    recorded (a batch goes on past one bad sample). Raises :class:`ClusterError` when nothing is left.
    """
    results_dir = Path(results_dir)
    meta = read_table(results_dir, S.SAMPLES, required=True, error=ClusterError)
    if S.SAMPLE_ID not in meta.columns:
        raise ClusterError("samples table has no 'sample_id' column", path=results_dir / S.SAMPLES)
    if S.STATUS in meta.columns:
        meta = meta[meta[S.STATUS].astype(str) == "ok"]
    if tube is not None:
        if S.TUBE not in meta.columns:
            raise ClusterError("samples table has no 'tube' column to select --tube from", path=results_dir)
        meta = meta[meta[S.TUBE].astype(str) == tube]
    elif S.TUBE in meta.columns and meta[S.TUBE].nunique() > 1:
        raise ClusterError(f"samples come from tubes {sorted(meta[S.TUBE].astype(str).unique())}; "
                           "choose one (--tube, or 'tube:' in the pipeline's clustering options)", path=results_dir)
    if meta.empty:
        raise ClusterError("no successfully processed samples to cluster"
                           + (f" in tube {tube!r}" if tube else ""), path=results_dir)
    meta = meta.sort_values(S.SAMPLE_ID, kind="stable").reset_index(drop=True)
    loader = loader or load_gated_events
    samples: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    chosen = list(markers) if markers else None
    ids = list(meta[S.SAMPLE_ID].astype(str))
    for i, sid in enumerate(ids):
        if progress is not None and i:
            progress(i, len(ids), ids[i - 1])
        try:
            events, names = _unpack(loader(results_dir, sid, population), f"sample {sid}")
        except CytokitError as exc:
            skipped[sid] = str(exc)
            log.warning("sample %s skipped: %s", sid, exc)
            continue
        if chosen is None:
            chosen = [n for n in names if n not in NON_MARKERS]
            log.info("clustering on markers %s", chosen)
        missing = [m for m in chosen if m not in names]
        if missing:
            skipped[sid] = f"markers {missing} not among {names}"
            log.warning("sample %s skipped: lacks markers %s", sid, missing)
            continue
        samples[sid] = events[:, [names.index(m) for m in chosen]]
    if progress is not None and ids:
        progress(len(ids), len(ids), ids[-1])
    if not samples:
        raise ClusterError(f"no sample could be loaded for population {population!r}: "
                           + "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:5]), path=results_dir)
    return samples, list(chosen or []), meta, skipped


def _phenotypes_from_store(results_dir: Path, tube: str | None) -> PhenotypeTable | None:
    """The strategy's phenotype table named in ``run_info.json`` (when it has phenotypes)."""
    tubes = read_run_info(results_dir).get("tubes", {})
    if not isinstance(tubes, dict):
        return None
    from ..definitions import resolve_definition

    for name, spec in sorted(tubes.items()):
        if tube is not None and name != tube:
            continue
        strategy = spec.get("strategy") if isinstance(spec, dict) else None
        if not strategy:
            continue
        try:
            return load_phenotypes(resolve_definition(strategy, "gating"))
        except CytokitError as exc:
            log.info("strategy %s has no usable phenotypes (%s); using the built-in table", strategy, exc)
    return None


def _resolve_phenotype_source(spec: str | Path) -> Path:
    """A YAML path, or the name of a built-in strategy (then panel) holding phenotypes."""
    from ..definitions import resolve_definition

    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ClusterError("phenotype file not found", path=path)
        return path
    for kind in ("gating", "panels"):
        try:
            return resolve_definition(str(spec), kind)
        except CytokitError:
            continue
    raise ClusterError(f"no phenotype file or built-in strategy/panel named {str(spec)!r}")


def stored_gate_records(results_dir: Path, sample_ids: Sequence[str]) -> list[dict]:
    """The concrete gates the pipeline stored for these samples (unreadable results are skipped)."""
    return ResultsFolder(results_dir).gate_records(sample_ids)


def run_clustering(results_dir: str | Path, *, population: str = "T cells", markers: Sequence[str] | None = None,
                   tube: str | None = None, params: ClusterParams | None = None,
                   phenotypes: str | Path | PhenotypeTable | None = None, thresholds: Mapping[str, Any] | None = None,
                   loader: Loader | None = None, level: str = "node", plots: bool = True,
                   force: bool = False, progress: ProgressFn | None = None,
                   da_test: str = "quasibinomial") -> ClusteringRun:
    """Cohort stage: cluster ``population`` across the store's samples and write ``OUT/clustering/``."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ClusterError("results folder not found", path=results_dir)
    out = results_dir / OUTPUT_DIR
    if not force and (out / "metacluster_abundance.parquet").exists():
        raise PipelineError("clustering results exist; use --force to overwrite", path=out)
    params = params or ClusterParams()
    samples, chosen, meta, skipped = load_population_events(results_dir, population=population, markers=markers,
                                                            tube=tube, loader=loader, progress=progress)
    if isinstance(phenotypes, (str, Path)):
        table = load_phenotypes(_resolve_phenotype_source(phenotypes))
    else:
        table = phenotypes or _phenotypes_from_store(results_dir, tube) or PhenotypeTable.default()
    gating = read_table(results_dir, S.POPULATIONS, error=ClusterError)
    if gating is not None and S.SAMPLE_ID in gating.columns:
        gating = gating[gating[S.SAMPLE_ID].astype(str).isin(samples)]
    gate_thr = thresholds_from_gates(stored_gate_records(results_dir, list(samples)), table)
    run = analyse(samples, chosen, population=population, params=params, phenotypes=table,
                  thresholds=thresholds, meta=meta, gating=gating, gating_thresholds=gate_thr, level=level,
                  da_test=da_test)
    run.skipped = skipped
    by_sample = sample_hashes(gating) if gating is not None else {}
    digest = inputs_digest(by_sample.values())
    for name, df in run.tables.items():
        run.paths += write_table(stamp_inputs(df, by_sample, digest), out / name, force=True)
    if plots:
        run.paths += write_figures(run, out, tube=tube)
    info = {
        S.POPULATION: population, S.TUBE: tube, "markers": chosen, "params": params.model_dump(),
        "n_samples": len(samples), S.N_EVENTS: run.result.info[S.N_EVENTS], "n_train": run.result.n_train,
        "level": level, "differential_test": da_test, "phenotypes": table.to_frame().to_dict(orient="records"),
        "thresholds": run.tables["thresholds"].to_dict(orient="records"), "skipped": skipped,
        "model": "batch SOM (PCA initialisation) + consensus average-linkage metaclustering (cytokit.cluster)",
    }
    run.paths.append(atomic_write_text(out / "clustering.json", json.dumps(info, indent=2, default=str)))
    log.info("clustering of %s: %d samples, %d events, %d metaclusters -> %s", population, len(samples),
             run.result.info[S.N_EVENTS], len(run.tables["metaclusters"]), out)
    return run


def _scale_text(results_dir: Path, tube: str | None) -> str:
    """What the clustered values are: the run's recorded transforms of the tube (run_info.json)."""
    from ..results import read_run_info

    tubes = read_run_info(results_dir).get("tubes") or {}
    texts = {str(t.get("transforms", "")) for name, t in tubes.items() if tube is None or name == tube}
    texts.discard("")
    if len(texts) == 1:
        text = texts.pop()
        parts = dict(p.split(":", 1) for p in text.split(";") if ":" in p)
        fluor = parts.get(" fluorescence", parts.get("fluorescence", "")).strip()
        return f"{fluor} scale" if fluor and fluor != "linear" else f"scale: {text}"
    return "transformed scale"


def write_figures(run: ClusteringRun, out: str | Path, *, tube: str | None = None) -> list[Path]:
    """Heatmap, MST map and (when visits are known) abundance-by-arm figures (arms coloured as in the trial
    figures; the heatmap's colour bar names the transform of the clustered values)."""
    from ..trial.config import recorded_arm_order
    from .plots import plot_abundance, plot_heatmap, plot_map

    out = Path(out)
    paths = [plot_heatmap(run.tables["metaclusters"], run.result.markers, out / "heatmap.png",
                          scale=_scale_text(out.parent, tube)),
             plot_map(run.tables["nodes"], run.result.codes, out / "map.png",
                      names=run.tables["metaclusters"].set_index("metacluster")["name"])]
    ab = run.tables["metacluster_abundance"]
    if S.VISIT in ab.columns and ab[S.VISIT].notna().any():
        arms = recorded_arm_order(out.parent, ab[S.ARM].dropna()) if S.ARM in ab.columns else None
        paths.append(plot_abundance(ab, out / "abundance.png", arm_order=arms))
    return paths
