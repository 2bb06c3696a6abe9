"""The cohort gating stage: gate positions across the files of a tube, outliers flagged and re-fitted.

Contract
--------
:func:`run_cohort_gating` reads the stored concrete gates of every successfully analysed sample
(``OUT/samples/<id>/result.json``, with each threshold's landmarks: the file's lowest and highest mode and
the lowest mode's SD), groups the files into cohorts (same ``tube`` and, when the manifest has it, the same
``instrument``), and applies :mod:`cytokit.gating.cohort`: a position is an **outlier** when it lies more
than ``k`` robust SDs and ``min_shift`` (transformed scale) from the cohort median both on the common scale
and in ``frame`` (default ``modes``: where the gate lies between the file's own lowest and highest mode, or
in SDs of the lowest mode for a one-mode marker); a position outlying on the common scale only is
**shifted** (the file's data moved, e.g. a detector gain, and the gate moved with them) and is recorded,
not re-fitted. Each outlying population of a threshold-type method is re-fitted on that file's events (the
per-sample chain re-run with its stored transforms, :func:`~cytokit.pipeline.events.prepared_from_store`)
with its threshold search restricted to the cohort's range mapped into the file's own coordinates. The
re-fit is **accepted** (it may replace the file's numbers) only when the file's own fit of the outlying
population carries one of ``accept_flags`` (flag words, marker prefixes ignored, e.g. the review flags
:data:`cytokit.gating.methods.REVIEW_FLAGS`); ``accept_flags=None`` accepts every outlier's re-fit. The
default (:data:`ACCEPT_FLAGS`, empty) accepts none: on simulated cohorts with truth
(``benchmarks/cohort_accuracy.py``) accepted re-fits did not make reliably more estimates better than
worse. Every outlying population's row in the tables carries the note ``cohort_outlier`` (not a review
flag); nothing stored is changed. Written to ``OUT/gating_cohort/`` (Parquet + CSV):

``positions``  one row per sample × population × dimension × side: ``position``, the file's landmarks
               (``low_mode``, ``low_sd``, ``high_mode``), ``frame``, the cohort ``median``, ``spread`` and
               ``range_low``/``range_high`` in the file's own coordinates, ``abs_median``/``abs_spread`` on the
               common scale, ``rel_position``/``rel_median``/``rel_spread`` in the frame, ``n_cohort``,
               ``outlier_absolute``, ``outlier_relative``, ``outlier`` (both), ``shifted``
``refits``     one row per re-fitted sample × population (the outlier and its descendants): ``count``,
               ``pct_parent`` (%) of the original fit and of the re-fit (``refit_count``,
               ``refit_pct_parent``), ``fit_flags`` (the outlier's own per-file fit flags),
               ``accepted`` (see above), ``changed`` (accepted and % of parent moved by >= ``min_change_pp``),
               ``method`` (``<method>+cohort``), ``flags`` (with ``cohort_outlier``) split as the populations
               tables split them (``review``, ``review_flags``, ``notes``), the original and
               re-fitted gates (JSON), the cohort range used

In the pipeline (``outputs.cohort_gating``) the stage runs before the tables are assembled: populations
whose re-fit ``changed`` are reported with the re-fit's numbers, method ``<method>+cohort`` and flag
``cohort_outlier`` (the stored per-sample result keeps the original fit; both are in ``refits``); other
outlying populations keep their numbers and get the note. A re-fit that moves no percentage leaves the
numbers as they are (an atypical position alone is no error).

The result depends only on the stored results (never on the executor or worker order): a run with the
local and the Dask executor gives identical tables.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from ..errors import CytokitError, PipelineError
from ..gating.cohort import OUTLIER_FLAG, cohort_outliers, gate_positions, refit_within
from ..gating.model import dependents
from ..io_utils import atomic_write_bytes, write_table
from ..results import ResultsFolder
from ..results import schema as S
from ..results.review import review_columns
from .events import prepared_from_store

log = logging.getLogger(__name__)

OUTPUT_DIR = S.COHORT_DIR
#: manifest columns that define a cohort besides the tube (used when present in the samples table)
COHORT_COLUMNS: tuple[str, ...] = (S.TUBE, "instrument")
#: a re-fit replaces a population's row in the tables only when its % of parent moves by at least this (pp)
MIN_CHANGE_PP = 0.5
#: per-file fit flags that let a cohort outlier's re-fit replace the file's numbers (see module contract):
#: none by default — on simulated cohorts with truth the re-fits made more estimates worse than better
ACCEPT_FLAGS: tuple[str, ...] = ()


def run_cohort_gating(results_dir: str | Path, *, k: float = 4.0, min_shift: float = 0.05,
                      min_samples: int = 5, frame: str = "modes", min_change_pp: float = MIN_CHANGE_PP,
                      accept_flags: Iterable[str] | None = ACCEPT_FLAGS,
                      group_columns: tuple[str, ...] = COHORT_COLUMNS,
                      samples: pd.DataFrame | None = None, stored: Mapping[str, dict[str, Any]] | None = None,
                      thumbnails: bool = False, gatingml: bool = False, records: bool = False) -> CohortGating:
    """Run the stage (see module contract). ``samples`` (sample_id + manifest columns of the analysed
    samples) and ``stored`` (sample id -> stored result) default to the folder's samples table (status
    ok) and stored results; the pipeline passes them before it writes its tables. With ``thumbnails``,
    a sample whose tables report a re-fit gets ``samples/<id>/gates_cohort.png`` (the re-fitted gates, shown
    by the reports instead of ``gates.png``); with ``gatingml``, ``samples/<id>/gates_cohort.xml`` (those gates as
    Gating-ML under the QC gates, which the FlowJo workspace uses instead of ``gates.xml``, so its counts are
    the tables'); stale ones of an earlier run are removed. With ``records`` (the pipeline, whose tables report
    the re-fits), ``samples/<id>/gates_cohort.json``: the re-fitted gates as stored records, which every
    per-event reader takes instead of ``result.json``'s (:meth:`~cytokit.results.ResultsFolder.reported_gates`;
    without it, as on a finished folder, those files are left as they are)."""
    root = Path(results_dir)
    folder = ResultsFolder(root)
    if samples is None:
        table = folder.table(S.SAMPLES, required=True, error=PipelineError)
        assert table is not None
        samples = table[table[S.STATUS] == "ok"]
    ok = samples.sort_values(S.SAMPLE_ID, kind="stable")
    if stored is None:
        stored = {sid: folder.sample_result(sid) for sid in ok[S.SAMPLE_ID]}
    ok = ok[ok[S.SAMPLE_ID].isin(list(stored))]
    groups = tuple(c for c in group_columns if c in ok.columns)
    frames = []
    for sid, result in stored.items():
        methods = {str(p[S.POPULATION]): str(p[S.METHOD]) for p in result.get("populations", [])}
        frames.append(gate_positions({sid: result.get("gates", [])}, methods))
    positions = pd.concat(frames, ignore_index=True) if frames else gate_positions({})
    positions = positions.merge(ok[[S.SAMPLE_ID, *groups]], on=S.SAMPLE_ID, how="left")
    positions = cohort_outliers(positions, k=k, min_shift=min_shift, min_samples=min_samples,
                                group_columns=groups, frame=frame)
    accept = None if accept_flags is None else frozenset(accept_flags)
    refits, populations, refitted = _refits(root, positions, stored, min_change_pp, accept)
    _note_outliers(positions, stored, populations)
    _write_refit_files(folder, list(stored), refitted, thumbnails=thumbnails, gatingml=gatingml, records=records)
    out = root / OUTPUT_DIR
    for name, df in (("positions", positions), ("refits", refits)):
        write_table(df, out / name, force=True)
    n_out = int(positions["outlier"].sum()) if len(positions) else 0
    log.info("cohort gating: %d gate positions, %d outliers, %d populations re-fitted -> %s", len(positions),
             n_out, len(refits), out)
    return CohortGating(positions, refits, populations)


@dataclass(frozen=True)
class CohortGating:
    """The stage's tables and, per re-fitted sample, its population rows after the re-fit (the stored
    rows' columns; re-fitted populations have method ``<method>+cohort`` and the ``cohort_outlier`` flag)."""

    positions: pd.DataFrame
    refits: pd.DataFrame
    populations: dict[str, list[dict[str, Any]]]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return {"positions": self.positions, "refits": self.refits}[name]

    def apply(self, results: Mapping[str, dict[str, Any]]) -> "RefittedResults":
        """``results`` (sample id -> stored result, a dict or the store's lazy mapping) seen with the
        re-fitted samples' population rows replaced; nothing stored is changed and nothing is read early."""
        return RefittedResults(results, self.populations)


class RefittedResults(Mapping):
    """Read-only mapping sample id -> stored result with the cohort re-fits' population rows in place
    (lazy like the store's mapping; picklable, so table assembly can hand :meth:`subset` to workers)."""

    def __init__(self, base: Mapping[str, dict[str, Any]], populations: dict[str, list[dict[str, Any]]]) -> None:
        self._base = base
        self._populations = populations

    def __getitem__(self, sample_id: str) -> dict[str, Any]:
        result = self._base[sample_id]
        rows = self._populations.get(sample_id)
        return result if rows is None else {**result, "populations": rows}

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._base

    def subset(self, sample_ids: list[str]) -> "RefittedResults":
        narrow = getattr(self._base, "subset", None)
        base = narrow(sample_ids) if narrow is not None else {s: self._base[s] for s in sample_ids if s in self._base}
        return RefittedResults(base, {s: self._populations[s] for s in sample_ids if s in self._populations})


REFIT_COLUMNS = (S.SAMPLE_ID, S.POPULATION, "outlier_population", S.COUNT, S.PCT_PARENT, "refit_count",
                 "refit_pct_parent", "fit_flags", "accepted", "changed", S.METHOD, S.FLAGS, *S.REVIEW_COLUMNS,
                 "range", "gate", "refit_gate")


def _write_refit_files(folder: ResultsFolder, sample_ids: list[str], refitted: dict[str, Any], *,
                       thumbnails: bool, gatingml: bool, records: bool) -> None:
    """Per sample where the tables report a re-fit: the re-fitted gates' thumbnails and Gating-ML (each when
    switched on) and, with ``records``, as stored records (:meth:`~cytokit.results.ResultsFolder.reported_gates`
    reads them for every per-event output); none elsewhere (an earlier run's are removed)."""
    from .analyse import _thumbnails, export_gatingml, gate_records

    writers: list[tuple[str, bool, Callable[[Any], bytes]]] = [
        (S.GATES_COHORT_PNG, thumbnails, _thumbnails),
        (S.GATES_COHORT_XML, gatingml, lambda result: export_gatingml(result).encode("utf-8"))]
    if records:
        writers.append((S.GATES_COHORT_JSON, True, lambda result: json.dumps(gate_records(result)).encode("utf-8")))
    for sid in sample_ids:
        for name, wanted, render in writers:
            path = folder.sample_dir(sid) / name
            if wanted and sid in refitted:
                atomic_write_bytes(path, render(refitted[sid]))
            else:
                path.unlink(missing_ok=True)


def _accepts(flags: Iterable[str], accept: frozenset[str] | None) -> bool:
    """Whether a fit with ``flags`` (words, ``marker:`` prefixes allowed) may take a cohort re-fit."""
    return accept is None or any(part in accept for w in flags for part in str(w).split(":"))


def _refits(root: Path, positions: pd.DataFrame, stored: Mapping[str, dict[str, Any]], min_change_pp: float,
            accept: frozenset[str] | None) -> tuple[pd.DataFrame, dict[str, list[dict[str, Any]]], dict[str, Any]]:
    from ..gating.loading import load_strategy

    rows: list[dict[str, Any]] = []
    replaced: dict[str, list[dict[str, Any]]] = {}
    refitted: dict[str, Any] = {}
    outliers = positions[positions["outlier"]] if len(positions) else positions
    for sid, group in outliers.groupby(S.SAMPLE_ID, sort=True):
        try:
            prepared, plan, result, strategy_path = prepared_from_store(root, str(sid))
            strategy = load_strategy(strategy_path)
            original = strategy.apply_prepared(prepared, plan)
        except CytokitError as exc:
            log.warning("cohort gating: sample %s not re-fitted: %s", sid, exc)
            continue
        stored_counts = {str(p[S.POPULATION]): int(p[S.COUNT]) for p in result.get("populations", [])}
        if original.counts() != {k: v for k, v in stored_counts.items() if k in original.counts()}:
            log.warning("cohort gating: sample %s does not reproduce its stored counts; not re-fitted", sid)
            continue
        current, tuned = original, strategy
        order = [p.name for p in strategy.definition.populations]
        for population in sorted(set(group[S.POPULATION]), key=order.index):
            sub = group[group[S.POPULATION] == population]
            ranges = {str(r.dim): (float(r.range_low), float(r.range_high)) for r in sub.itertuples()}
            own_flags = tuple(original.fit(population).flags)
            accepted = _accepts(own_flags, accept)
            try:
                trial_strategy, trial = refit_within(tuned, current, population, ranges)
            except CytokitError as exc:
                log.warning("cohort gating: %s / %s not re-fitted: %s", sid, population, exc)
                continue
            if accepted:
                tuned, current = trial_strategy, trial
            before = original.populations.set_index(S.POPULATION)
            after = trial.populations.set_index(S.POPULATION)
            for name in dependents(strategy.definition, population):
                if name not in after.index or name not in before.index:
                    continue
                fit = trial.fit(name)
                rows.append({
                    S.SAMPLE_ID: sid, S.POPULATION: name, "outlier_population": population,
                    S.COUNT: int(before.loc[name, S.COUNT]), S.PCT_PARENT: float(before.loc[name, S.PCT_PARENT]),
                    "refit_count": int(after.loc[name, S.COUNT]),
                    "refit_pct_parent": float(after.loc[name, S.PCT_PARENT]),
                    "fit_flags": ";".join(own_flags), "accepted": accepted,
                    "changed": accepted and _moved(before.loc[name, S.PCT_PARENT], after.loc[name, S.PCT_PARENT],
                                                   min_change_pp),
                    S.METHOD: f"{after.loc[name, 'method']}+cohort",
                    S.FLAGS: (flags := ";".join(dict.fromkeys([OUTLIER_FLAG, *fit.flags]))),
                    **review_columns(flags),  # the re-fit's review flags apart from its notes, as in the tables
                    "range": json.dumps({d: [round(lo, 6), round(hi, 6)] for d, (lo, hi) in ranges.items()},
                                        sort_keys=True),
                    "gate": json.dumps(original.fit(name).gate.to_dict(), sort_keys=True),
                    "refit_gate": json.dumps(fit.gate.to_dict(), sort_keys=True),
                })
        changed = {r[S.POPULATION] for r in rows if r[S.SAMPLE_ID] == sid and r["changed"]}
        if changed:  # the tables report the re-fit of the populations it moved
            replaced[str(sid)] = _population_rows(current, prepared, changed)
            refitted[str(sid)] = current
    df = pd.DataFrame(rows, columns=list(REFIT_COLUMNS))
    # one row per sample x population: the last one, except that a row the tables report (changed) wins
    # over a later rejected re-fit of an outlier below it
    keep = df.sort_values("changed", kind="stable").drop_duplicates([S.SAMPLE_ID, S.POPULATION], keep="last")
    return df.loc[sorted(keep.index)].reset_index(drop=True), replaced, refitted


def _note_outliers(positions: pd.DataFrame, stored: Mapping[str, dict[str, Any]],
                   populations: dict[str, list[dict[str, Any]]]) -> None:
    """Add the note ``cohort_outlier`` to the table row of every population whose own gate is a cohort
    outlier (a re-fitted row has it already); ``populations`` (sample id -> rows) gains the samples."""
    if not len(positions):
        return
    out = positions[positions["outlier"]]
    for sid, group in out.groupby(S.SAMPLE_ID, sort=True):
        names = set(group[S.POPULATION])
        rows = populations.get(str(sid)) or [dict(r) for r in stored[str(sid)].get("populations", [])]
        for rec in rows:
            if rec[S.POPULATION] in names:
                given = rec.get(S.FLAGS)
                words = [w for w in given.split(";") if w] if isinstance(given, str) else []
                rec[S.FLAGS] = ";".join(dict.fromkeys([OUTLIER_FLAG, *words]))
        populations[str(sid)] = rows


def _moved(before: float, after: float, min_change_pp: float) -> bool:
    if np.isnan(before) or np.isnan(after):
        return bool(np.isnan(before) != np.isnan(after))
    return bool(abs(after - before) >= min_change_pp)


def _population_rows(result: Any, prepared: Any, refitted: set[str]) -> list[dict[str, Any]]:
    """Population rows as the per-sample task stores them (marker medians included), re-fitted ones
    marked with method ``<method>+cohort`` and the ``cohort_outlier`` flag."""
    from .analyse import marker_medians

    table = result.populations
    dims = [[d for d in str(v).split(";") if d] for v in table["dims"]]
    columns = {d: prepared.channel_index(d) for d in dict.fromkeys(d for names in dims for d in names)}
    masks = result.masks
    table[S.MARKER_MEDIANS] = marker_medians(prepared.events, columns, [masks[p] for p in table[S.POPULATION]], dims)
    rows = []
    for rec in table.to_dict("records"):
        rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        if rec[S.POPULATION] in refitted:
            rec[S.METHOD] = f"{rec['method']}+cohort"
            rec[S.FLAGS] = ";".join(dict.fromkeys(f for f in [OUTLIER_FLAG, *str(rec[S.FLAGS]).split(";")] if f))
        rows.append(rec)
    return rows
