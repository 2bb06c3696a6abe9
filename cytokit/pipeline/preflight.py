"""Validate a whole run before any file is processed.

Contract
--------
:func:`preflight` checks the configuration's definitions (every panel and strategy loads), the manifest
against the files on disk, the clinical table, and that each file's panel resolves from its HEADER and
TEXT segments alone (no DATA is read). A file whose HEADER/TEXT cannot be decoded is not a problem of
the run: it is logged and its sample fails alone when analysed (one bad file never stops a batch). It returns a :class:`RunPlan`, or raises one
:class:`~cytokit.errors.PipelineError` listing *every* problem found, so a user fixes them all at once.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CytokitError, FCSError, PipelineError
from ..io_utils import sha256_file
from ..results import schema as S
from ..sample import Sample
from .config import PipelineConfig
from .manifest import build_manifest, read_clinical

log = logging.getLogger(__name__)

#: how much of a file is read to reach the end of its TEXT segment when the HEADER does not say
MAX_TEXT_BYTES = 1 << 22


@dataclass(frozen=True)
class TubeDefinitions:
    """The loaded panel and strategy of one tube, with the sha256 of their definition files."""

    tube: str
    panel_path: str
    panel_hash: str
    strategy_path: str
    strategy_hash: str
    panel: Any = field(repr=False, compare=False)
    strategy: Any = field(repr=False, compare=False)
    panel_tube: str | None = None


@dataclass
class RunPlan:
    """A validated run: the sample table (with sha256), clinical tables and per-tube definitions."""

    config: PipelineConfig
    samples: pd.DataFrame
    clinical: pd.DataFrame | None
    il2_cycles: pd.DataFrame | None
    tubes: dict[str, TubeDefinitions]
    warnings: list[str] = field(default_factory=list)


def _file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_tube_definitions(config: PipelineConfig, problems: list[str]) -> dict[str, TubeDefinitions]:
    """Load every tube's panel and strategy; problems are appended, not raised."""
    from ..definitions import resolve_definition
    from ..gating.loading import load_strategy
    from ..panel import load_panel

    out: dict[str, TubeDefinitions] = {}
    for tube, tc in sorted(config.tubes.items()):
        try:
            panel_path = resolve_definition(tc.panel, "panels")
            panel = load_panel(panel_path)
            strategy_path = resolve_definition(tc.strategy, "gating")
            strategy = load_strategy(strategy_path)
        except CytokitError as exc:
            problems.append(f"tube {tube!r}: {exc}")
            continue
        panel_tube = None if tc.any_tube else (tc.panel_tube or tube)
        if panel_tube is not None and panel.tubes and panel_tube not in panel.tubes:
            problems.append(f"tube {tube!r}: panel {panel.name!r} ({panel_path}) has no tube {panel_tube!r}; "
                            f"its tubes are {panel.tubes} (set tubes.{tube}.panel_tube)")
            continue
        out[tube] = TubeDefinitions(tube, str(panel_path), _file_hash(panel_path), str(strategy_path),
                                    _file_hash(strategy_path), panel, strategy, panel_tube)
    return out


def read_header_sample(path: str | Path) -> Sample:
    """A zero-event Sample with the channel table and keywords of an FCS file, from HEADER + TEXT only."""
    from ..fcs.channels import channel_table
    from ..fcs.header import HEADER_LEN, parse_header
    from ..fcs.reader import read_dataset_text

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_LEN)
            header = parse_header(head, path=path)
            end = header.text_end if 0 < header.text_end < MAX_TEXT_BYTES else MAX_TEXT_BYTES
            fh.seek(0)
            buf = fh.read(end + 1)
    except OSError as exc:
        raise FCSError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    try:
        text = read_dataset_text(buf, 0, path)
        kw = text.keywords
        n_par = int(str(kw.get("par", "0")).strip() or 0)
        if n_par <= 0:
            raise FCSError("$PAR is missing or 0: the file declares no channels", path=path)
        channels, _ = channel_table(kw, n_par, str(kw.get("datatype", "F")).strip().upper(), path=path)
    except CytokitError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError) as exc:
        raise FCSError(f"cannot decode HEADER/TEXT ({type(exc).__name__}: {exc})", path=path) from exc
    return Sample(events=np.zeros((0, n_par), dtype=np.float32), channels=channels, metadata=kw, path=path)


def check_file(path: str, tube: TubeDefinitions) -> str | None:
    """None when the file's header resolves with the tube's panel, else the problem text.

    A file whose HEADER/TEXT cannot be decoded raises :class:`FCSError` (a bad file, not a bad
    configuration: the run records that sample as failed and goes on)."""
    try:
        sample = read_header_sample(path)
    except FCSError:
        raise
    except CytokitError as exc:
        raise FCSError(str(exc), path=path) from exc
    try:
        resolved = tube.panel.resolve(sample, tube=tube.panel_tube)
    except CytokitError as exc:
        return str(exc)
    if _yaml_strategy(tube):
        return missing_strategy_channel(tube.strategy, resolved, tube.panel.name)
    return None


def _yaml_strategy(tube: TubeDefinitions) -> bool:
    """Whether ``tube``'s strategy is a loaded YAML strategy, whose populations the header check reads (an imported
    Gating-ML / FlowJo strategy names its channels only when it gates)."""
    return tube.strategy is not None and Path(tube.strategy_path).suffix.lower() in (".yaml", ".yml")


def missing_strategy_channel(strategy: Any, sample: Sample, panel_name: str) -> str | None:
    """The problem text when a population of a YAML strategy gates on a marker no channel of ``sample``
    (a resolved header) carries, else None; as the engine does, an ``optional`` population without its
    marker is skipped with the populations below it. Every sample of the tube would fail on it."""
    skipped: set[str] = set()
    for spec in strategy.definition.populations:
        if spec.parent is not None and spec.parent in skipped:
            skipped.add(spec.name)
            continue
        absent = []
        for dim in spec.dims:
            try:
                sample.channel_index(dim)
            except CytokitError:
                absent.append(dim)
        if absent and spec.optional:
            skipped.add(spec.name)
        elif absent:
            channels = ", ".join(f"{r.pnn} ({r.marker})" for r in sample.channel_table.rows())
            return (f"{sample.path}: strategy {strategy.name!r}: population {spec.name!r} gates on "
                    f"{', '.join(map(repr, absent))}, which no channel resolves to with panel {panel_name!r} "
                    f"(channels: {channels}); add the marker to the panel or mark the population `optional: true`")
    return None


def _check_one(path: str, tube: TubeDefinitions | None) -> tuple[str, str | None, str | None]:
    """(sha256 or "", configuration problem or None, unreadable-file message or None) of one manifest
    file; ``tube`` None skips the header check. An unreadable HEADER/TEXT is not a configuration problem:
    that sample fails alone when the run reaches it (see :func:`check_file`)."""
    if not path or not Path(path).is_file():
        return "", None, None  # reported by the manifest check
    try:
        sha = sha256_file(path)
    except OSError as exc:
        return "", f"{path}: cannot read file: {exc.strerror or exc}", None
    if tube is None:
        return sha, None, None
    try:
        return sha, check_file(path, tube), None
    except FCSError as exc:
        return sha, None, str(exc)


def _check_chunk(items: list[tuple[str, TubeDefinitions | None]]) -> list[tuple[str, str | None, str | None]]:
    return [_check_one(path, tube) for path, tube in items]


#: below this many files the headers are checked in this process (starting workers would cost more)
PARALLEL_MIN_FILES = 200


@dataclass(frozen=True)
class StrategyOutline:
    """What :func:`missing_strategy_channel` reads of a YAML strategy (its name and definition), shipped to the
    header-check worker processes instead of the whole strategy."""

    name: str
    definition: Any


def _strategy_outline(tube: TubeDefinitions) -> StrategyOutline | None:
    """The outline of ``tube``'s strategy when :func:`check_file` reads it (a YAML strategy), else None."""
    if not _yaml_strategy(tube):
        return None
    return StrategyOutline(tube.strategy.name, tube.strategy.definition)


def check_files(items: list[tuple[str, TubeDefinitions | None]], *, jobs: int = 1
                ) -> list[tuple[str, str | None, str | None]]:
    """(sha256, configuration problem, unreadable-file message) of every ``(path, tube)``, in order
    (see :func:`_check_one`).

    From :data:`PARALLEL_MIN_FILES` files on, the files are checked in chunks by ``jobs`` worker processes
    (capped at the number of CPUs): hashing and HEADER/TEXT parsing of 10,000 files is CPU work, not only
    I/O. Results are identical to the one-process path, which is also the fallback when worker processes
    cannot be started.
    """
    jobs = max(1, min(int(jobs or 1), os.cpu_count() or 1))
    if jobs == 1 or len(items) < PARALLEL_MIN_FILES:
        return _check_chunk(items)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # ship only what the check needs (the panel; of a YAML strategy its name and definition), not the whole
    # strategy, to every worker
    slim = {id(t): replace(t, strategy=_strategy_outline(t)) for _, t in items if t is not None}
    light = [(path, slim[id(t)] if t is not None else None) for path, t in items]
    size = max(20, -(-len(light) // (jobs * 8)))
    chunks = [light[i:i + size] for i in range(0, len(light), size)]
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            return [r for part in pool.map(_check_chunk, chunks) for r in part]
    except (BrokenProcessPool, OSError) as exc:
        log.warning("parallel header check unavailable (%s); checking in this process", exc)
        return _check_chunk(items)


#: keywords of :func:`cytokit.cluster.stage.run_clustering` that the clustering stage sets itself
_CLUSTERING_FIXED = ("results_dir", "force", "loader", "progress")


def check_clustering_options(config: PipelineConfig, problems: list[str]) -> None:
    """The ``clustering:`` block must name only ``run_clustering`` options and valid ``params``.

    Checked here so that a typo stops the run before any file is processed, not after the whole batch.
    """
    options = config.clustering
    if not options:
        return
    import inspect

    from ..cluster.params import make_params
    from ..cluster.stage import run_clustering

    allowed = sorted(set(inspect.signature(run_clustering).parameters) - set(_CLUSTERING_FIXED))
    unknown = sorted(str(k) for k in set(options) - set(allowed))
    if unknown:
        problems.append(f"clustering: unknown option(s) {unknown}; allowed: {allowed}")
    params = options.get("params")
    if params is not None:
        if not isinstance(params, dict):
            problems.append("clustering.params: must be a mapping of clustering parameters")
        else:
            try:
                make_params(**params)
            except CytokitError as exc:
                problems.append(f"clustering.params: {exc}")


def check_reports(config: PipelineConfig, problems: list[str]) -> None:
    """The report stage's reference intervals load (a typo or a bad file stops the run before any sample)."""
    if not config.outputs.reports:
        return
    from ..report.reference import load_reference_intervals

    try:
        load_reference_intervals(config.report.reference_intervals)
    except CytokitError as exc:
        problems.append(f"report.reference_intervals: {exc}")


def check_weeks(config: PipelineConfig, samples: pd.DataFrame, problems: list[str]) -> None:
    """Every sample has a numeric ``week`` (weeks since randomisation) when the trial or report stage runs.

    Both stages order and space the visits by week; without it they would fail after every sample was
    analysed, so the run stops here instead, naming the samples and visits without one."""
    if not (config.outputs.trial or config.outputs.reports) or samples.empty:
        return
    stages = " and ".join(s for s, on in (("outputs.trial", config.outputs.trial),
                                         ("outputs.reports", config.outputs.reports)) if on)
    if S.WEEK not in samples.columns:
        problems.append(f"manifest: no 'week' column; {stages} need each visit's week (a number; add a 'week' "
                        "column, map one with manifest.columns, or switch the stage off)")
        return
    weeks = pd.to_numeric(samples[S.WEEK], errors="coerce")
    bad = samples[weeks.isna()]
    if len(bad):
        visits = sorted({str(v) for v in bad[S.VISIT]})
        problems.append(f"manifest: 'week' is empty or not a number for {len(bad)} sample(s) (e.g. "
                        f"{bad[S.SAMPLE_ID].astype(str).tolist()[:5]}, visits {visits[:10]}); {stages} need each "
                        "visit's week")


def check_trial(config: PipelineConfig, samples: pd.DataFrame, clinical: pd.DataFrame | None,
                problems: list[str]) -> PipelineConfig:
    """The trial stage's arms, visits, tube preference and logistic covariates match the data.

    Returns the configuration to run with: default logistic covariates missing from the clinical table
    (e.g. no ``stratum`` column) are dropped with a warning; covariates set explicitly must exist.
    """
    if not config.outputs.trial or samples.empty:
        return config
    from ..trial.config import TrialConfig

    trial = config.trial or TrialConfig()
    arms = sorted({str(a) for a in samples[S.ARM] if str(a)})
    for key in ("treatment_arm", "control_arm"):
        arm = getattr(trial, key)
        if arm not in arms:
            problems.append(f"trial.{key}: {arm!r} is not an arm of the manifest (arms: {arms})")
    visits = sorted({str(v) for v in samples[S.VISIT] if str(v)})
    for key in ("baseline_visit", "final_visit"):
        visit = getattr(trial, key)
        if visit is not None and visit not in visits:
            problems.append(f"trial.{key}: {visit!r} is not a visit of the manifest (visits: {visits})")
    tubes = sorted(config.tubes)
    if trial.tubes.rule == "preference":
        unknown = [t for t in trial.tubes.preference if t not in config.tubes]
        explicit = "preference" in trial.tubes.model_fields_set
        if unknown and (explicit or len(unknown) == len(trial.tubes.preference)):
            problems.append(f"trial.tubes.preference: {unknown} {'is' if len(unknown) == 1 else 'are'} not a tube "
                            f"of this pipeline (tubes: {tubes}); list the tubes in order of preference")
        elif len(tubes) > 1 and (missing := [t for t in tubes if t not in trial.tubes.preference]):
            log.warning("trial.tubes.preference %s does not rank tube(s) %s; they are used after it, "
                        "alphabetically", trial.tubes.preference, missing)
    for population, tube in sorted(trial.tubes.per_population.items()):
        if tube not in config.tubes:
            problems.append(f"trial.tubes.per_population.{population}: {tube!r} is not a tube (tubes: {tubes})")
    columns = set(clinical.columns) if clinical is not None else set()
    wanted = [c for c in trial.logistic.covariates if c != "baseline_cd4"]
    absent = [c for c in wanted if c not in columns]
    has_outcome = any(o in columns for o in trial.logistic.outcomes)
    if absent and has_outcome:
        if "covariates" in trial.logistic.model_fields_set:
            problems.append(f"trial.logistic.covariates: {absent} not in the clinical table "
                            f"(columns: {sorted(columns)})")
        else:
            log.warning("trial.logistic: default covariate(s) %s not in the clinical table; the logistic "
                        "models are adjusted for %s only", absent,
                        [c for c in trial.logistic.covariates if c not in absent] or "nothing")
            logistic = trial.logistic.model_copy(update={
                "covariates": [c for c in trial.logistic.covariates if c not in absent]})
            config = config.model_copy(update={"trial": trial.model_copy(update={"logistic": logistic})})
    return config


def check_clustering_population(config: PipelineConfig, tubes: dict[str, TubeDefinitions],
                                problems: list[str]) -> None:
    """The clustering stage's population and tube exist in the pipeline's strategies."""
    if not config.outputs.clustering:
        return
    options = dict(config.clustering or {})
    population = str(options.get("population", "T cells"))
    tube = options.get("tube")
    if tube is not None and tube not in config.tubes:
        problems.append(f"clustering.tube: {tube!r} is not a tube of this pipeline (tubes: {sorted(config.tubes)})")
        return
    phenotypes = options.get("phenotypes")
    if isinstance(phenotypes, str) and Path(phenotypes).is_absolute() and not Path(phenotypes).is_file():
        problems.append(f"clustering.phenotypes: file not found: {phenotypes}")
    candidates = [tubes[tube]] if tube is not None and tube in tubes else list(tubes.values())
    names: dict[str, list[str]] = {}
    for t in candidates:
        found = getattr(t.strategy, "population_names", None)
        if found is None:
            return  # an imported strategy: its populations are known only after gating
        names[t.tube] = list(found)
    if names and not any(population in n for n in names.values()):
        known = sorted({p for n in names.values() for p in n})
        where = f"tube {tube!r}" if tube is not None else "any tube"
        problems.append(f"clustering.population: {population!r} is not a population of {where} "
                        f"(populations: {known})")


def preflight(config: PipelineConfig, *, check_headers: bool = True, jobs: int | None = None) -> RunPlan:
    """Validate everything a run needs; raises PipelineError listing every problem (see module contract).

    ``jobs``: processes hashing and header-checking the files (default: the pipeline's ``executor.jobs``;
    see :func:`check_files`)."""
    problems: list[str] = []
    try:
        samples, manifest_problems = build_manifest(config)
    except CytokitError as exc:
        raise PipelineError(f"cannot start the run:\n  {exc}") from exc
    problems += manifest_problems
    try:
        clinical, cycles, clinical_problems = read_clinical(config)
        problems += clinical_problems
    except CytokitError as exc:
        clinical, cycles = None, None
        problems.append(str(exc))
    tubes = load_tube_definitions(config, problems)
    check_clustering_options(config, problems)
    check_clustering_population(config, tubes, problems)
    check_reports(config, problems)
    check_weeks(config, samples, problems)
    config = check_trial(config, samples, clinical, problems)
    items = [(str(row.path or ""), tubes.get(row.tube) if check_headers else None)
             for row in samples.itertuples(index=False)]
    hashes = []
    results = check_files(items, jobs=jobs if jobs is not None else config.executor.jobs)
    for sample_id, (sha, problem, unreadable) in zip(samples[S.SAMPLE_ID] if len(samples) else [], results):
        hashes.append(sha)
        if unreadable:  # one unreadable file never stops the batch: its sample fails alone
            log.warning("sample %s will fail: %s", sample_id, unreadable)
        elif problem:
            problems.append(problem)
    if len(samples):
        samples = samples.assign(sha256=hashes)
        from .assemble import SAME_DATA_FLAG, same_data_samples

        twins = same_data_samples(samples)
        if twins:
            first, others = next(iter(twins.items()))
            log.warning("%d sample(s) have byte-identical FCS files (e.g. %s and %s): the same acquisition listed "
                        "as different samples? Each is flagged %s:<ids> in samples.check_flags", len(twins),
                        first, ", ".join(others), SAME_DATA_FLAG)
    if clinical is not None and len(samples) and {S.PATIENT, S.VISIT} <= set(clinical.columns):
        known = set(zip(clinical[S.PATIENT], clinical[S.VISIT]))
        absent = sorted({(p, v) for p, v in zip(samples[S.PATIENT], samples[S.VISIT])} - known)
        if absent and config.counts.method == "dual_platform":
            problems.append(f"{config.clinical.path}: no clinical row for patient x visit {absent[:10]}"  # type: ignore[union-attr]
                            " (needed for dual-platform absolute counts)")
        elif absent:
            log.warning("no clinical row for %d patient x visit pair(s), e.g. %s", len(absent), absent[:3])
    if problems:
        where = config.source or "ad-hoc pipeline"
        raise PipelineError(f"{where}: {len(problems)} problem(s) found; nothing was processed:\n  "
                            + "\n  ".join(problems))
    return RunPlan(config, samples, clinical, cycles, tubes)
