"""Assemble the tidy tables of a run from the stored per-sample results (deterministically sorted).

Contract (schema in :mod:`cytokit.results.schema`, dtypes by :func:`cytokit.results.coerce`)
-----------------------------------------------------------------------------------------
:func:`assemble_tables` returns ``(populations, samples)``:

* ``populations``: one row per sample x population, sorted by ``sample_id`` then strategy order, with
  ``sample_id, file, sha256, patient, visit, week, arm, tube, population, parent, count, parent_count,
  pct_parent (%), pct_lymphocytes (%), abs_count_per_uL (cells/µL), abs_method, marker_medians (JSON,
  transformed scale), method, flags, review (bool), review_flags, notes (flags split by
  :func:`cytokit.gating.methods.review_columns`), est_error_pp, count_sd_pp, qc_flags, phenotype``, and
  ``count_flags`` (after ``abs_method``: the absolute count's own review flags, e.g. ``count_low`` on a
  count the gates above it left low, :func:`cytokit.pipeline.counts.count_flags`). ``flags``,
  ``review``, ``review_flags`` and ``notes`` are the gating's alone, as ``Strategy.apply`` gives them: a count
  flag does not put the row's percentages in doubt;
* ``samples``: one row per manifest sample, sorted by ``sample_id``: ``sample_id, file, sha256``, the
  manifest columns, ``status`` (ok|failed), ``error``, ``n_events``, ``n_events_qc``, ``lymphocytes``
  (events in the lymphocyte denominator, e.g. Singlets), ``lymphosum_pct`` (%), ``cd4_cd8_vs_cd3_pct`` (%),
  ``abs_method``, ``qc_flags``, ``check_flags``.

Both depend only on the stored results, the manifest and the clinical table, never on timing or worker
order, so identical inputs give byte-identical files.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..gating.methods import review_columns
from ..results import schema as S
from ..results.reader import coerce
from .config import PipelineConfig
from .counts import absolute_counts, consistency_checks, count_flags

log = logging.getLogger(__name__)

#: the populations table's columns and the samples table's result columns (owned by cytokit.results.schema)
POPULATION_COLUMNS: tuple[str, ...] = S.POPULATION_COLUMNS
SAMPLE_RESULT_COLUMNS: tuple[str, ...] = S.SAMPLE_RESULT_COLUMNS


def _lymph_count(clinical: pd.DataFrame | None, column: str, patient: str, visit: str) -> float:
    if clinical is None or column not in clinical.columns:
        return math.nan
    hit = clinical.loc[(clinical[S.PATIENT] == patient) & (clinical[S.VISIT] == visit), column]
    try:
        return float(hit.iloc[0]) if len(hit) and str(hit.iloc[0]).strip() else math.nan
    except ValueError:
        return math.nan


def _flags_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return "" if value is None else str(value)


#: sample-level columns written on every population row (from the manifest row of the sample)
_SAMPLE_KEYS = (S.PATIENT, S.VISIT, S.WEEK, S.ARM, S.TUBE, S.SAMPLE_ID, S.FILE, S.SHA256)


def _population_rows(pops: pd.DataFrame, base: dict[str, Any], abs_counts: np.ndarray, method: str,
                     qc_flags: str, count_words: pd.Series) -> pd.DataFrame:
    """One sample's populations with the table's columns, built in one step (adding ~20 columns one at a
    time to a small frame cost ~10 ms per sample, the bulk of assembling 10,000 samples)."""
    columns: dict[str, Any] = {}
    for col in POPULATION_COLUMNS:
        if col in _SAMPLE_KEYS and col in base:
            columns[col] = base[col]
        elif col == S.ABS_COUNT:
            columns[col] = abs_counts
        elif col == S.ABS_METHOD:
            columns[col] = np.where(pd.notna(abs_counts), method, "")
        elif col == S.COUNT_FLAGS:
            columns[col] = count_words.to_numpy()
        elif col == S.QC_FLAGS:
            columns[col] = qc_flags
        elif col == S.FLAGS:
            columns[col] = pops[col].map(_flags_text) if col in pops.columns else ""
            # from the final flags (the cohort stage adds words to stored rows), never from a stored copy
            review = [review_columns(f) for f in (columns[col] if col in pops.columns else [""] * len(pops))]
            for key in S.REVIEW_COLUMNS:
                columns[key] = [r[key] for r in review]
        elif col in S.REVIEW_COLUMNS:
            continue  # set with flags
        elif col in pops.columns:
            columns[col] = pops[col]
        else:
            columns[col] = ""
    return pd.DataFrame(columns, index=pops.index)


#: from this many samples on, the rows are built by worker processes in chunks (see assemble_tables)
PARALLEL_MIN_SAMPLES = 500


def _assemble_chunk(config: PipelineConfig, records: list[dict[str, Any]], results: Mapping[str, dict[str, Any]],
                    states: dict[str, dict[str, Any]], clinical: pd.DataFrame | None, manifest_cols: list[str],
                    lymphocytes: Mapping[str, str] | None = None) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    """Population rows (one frame, untyped) and sample rows of ``records`` (manifest rows, in order)."""
    counts = config.counts
    lymph_col = config.clinical.lymphocytes_column if config.clinical else S.LYMPHOCYTES_PER_UL
    pop_frames, sample_rows = [], []
    for row in records:
        sid = row[S.SAMPLE_ID]
        base = {S.SAMPLE_ID: sid, S.FILE: row[S.FILE], S.SHA256: row.get(S.SHA256, "")}
        base.update({c: row.get(c, "") for c in manifest_cols})
        result = results.get(sid)
        state = states.get(sid, {})
        if result is None:
            status = state.get(S.STATUS) or "failed"
            error = state.get(S.ERROR) or "not analysed"
            if status == "ok":  # recorded ok but the stored result is missing or altered
                error = "stored result missing or altered; run again to recompute"
            sample_rows.append({**base, S.STATUS: "failed", S.ERROR: error})
            continue
        summary = result.get("summary", {})
        qc_flags = _flags_text(summary.get(S.QC_FLAGS, ""))
        pops = pd.DataFrame(result["populations"])
        lymph = _lymph_count(clinical, lymph_col, row[S.PATIENT], row[S.VISIT])
        declared = (lymphocytes or {}).get(str(row.get(S.TUBE, "")))  # the tube strategy's denominator
        abs_counts, method, abs_flags = absolute_counts(pops, row, counts, lymph, declared)
        checks = consistency_checks(pops, counts, declared)
        check_flags = checks[S.CHECK_FLAGS] + abs_flags
        if row.get(_SAME_DATA):
            check_flags = check_flags + [f"{SAME_DATA_FLAG}:{','.join(row[_SAME_DATA])}"]
        pop_frames.append(_population_rows(pops, base, abs_counts.to_numpy(), method, qc_flags,
                                          count_flags(pops, abs_counts, method, declared)))
        sample_rows.append({**base, S.STATUS: "ok", S.ERROR: "", S.N_EVENTS: summary.get(S.N_EVENTS),
                            S.N_EVENTS_QC: summary.get(S.N_EVENTS_QC), **checks, S.ABS_METHOD: method,
                            S.QC_FLAGS: qc_flags, S.CHECK_FLAGS: ";".join(check_flags),
                            S.LOGICLE_W: logicle_w_text(summary.get("transforms", []))})
    return (pd.concat(pop_frames, ignore_index=True) if pop_frames else None), sample_rows


#: check flag of a sample whose FCS file is byte-identical to another sample's (``same_data_as:<ids>``)
SAME_DATA_FLAG = "same_data_as"
_SAME_DATA = "_same_data_as"  # record key (not a column): the other samples with the same file content


def same_data_samples(samples: pd.DataFrame) -> dict[str, list[str]]:
    """sample_id -> the other sample ids whose FCS file has the same sha256 (byte-identical data).

    Two acquisitions never give identical files: the same file under two names (a copy saved as another
    visit or patient) would otherwise report one sample's numbers for both, silently."""
    if S.SHA256 not in samples.columns or samples.empty:
        return {}
    ids = samples[S.SAMPLE_ID].astype(str)
    sha = samples[S.SHA256].astype("string").fillna("")
    out: dict[str, list[str]] = {}
    for _, group in ids[sha != ""].groupby(sha[sha != ""]):
        if len(group) > 1:
            for sid in group:
                out[sid] = sorted(other for other in group if other != sid)
    return out


def logicle_w_text(transforms: list[dict[str, Any]]) -> str:
    """The samples table's ``logicle_w``: per marker whose logicle W was estimated from the file (a
    ``W_estimated`` or a clipping ``warning`` in the stored transform), ``<marker>=<W used>``, with
    ``(estimated <W>)`` where the estimate was clipped into range; ``; ``-joined."""
    parts = []
    for t in transforms:
        asked = t.get("W_estimated")
        if t.get("name") not in ("logicle", "hyperlog") or (asked is None and not t.get("warning")):
            continue
        used = float(t.get("params", {}).get("W", float("nan")))
        text = f"{t.get('marker', t.get('pnn', ''))}={used:.2g}"
        if asked is not None and round(float(asked), 6) != round(used, 6):
            text += f" (estimated {float(asked):.2g})"
        parts.append(text)
    return "; ".join(parts)


def _chunk_results(results: Mapping[str, dict[str, Any]], ids: list[str]) -> Mapping[str, dict[str, Any]]:
    """What a worker needs of ``results`` for ``ids``: a lazy store mapping narrowed to them, or a dict."""
    narrow = getattr(results, "subset", None)
    return narrow(ids) if narrow is not None else {s: results[s] for s in ids if s in results}


def assemble_tables(config: PipelineConfig, samples: pd.DataFrame, results: Mapping[str, dict[str, Any]],
                    states: dict[str, dict[str, Any]], clinical: pd.DataFrame | None, *, jobs: int = 1,
                    lymphocytes: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the populations and samples tables (see module contract).

    ``samples``: the run's sample table (manifest + ``sha256``); ``results``: sample_id -> stored
    ``result.json`` for samples analysed ok (a dict, or the lazy mapping of
    :meth:`~cytokit.pipeline.store.ResultsStore.verified`); ``states``: sample_id -> ledger row (status,
    error); ``lymphocytes``: tube -> its strategy's lymphocyte population (the denominator of
    ``pct_lymphocytes``; without it the denominator is inferred from the stored rows, see
    :mod:`cytokit.results.denominators`). With ``jobs`` > 1 and at least :data:`PARALLEL_MIN_SAMPLES` samples, consecutive chunks of
    samples are assembled by ``jobs`` worker processes (each reading its own stored results) and joined
    in order: the tables are identical to the one-process path, which is also the fallback.
    """
    manifest_cols = [c for c in samples.columns if c not in ("path", S.SHA256, S.SAMPLE_ID, S.FILE)]
    records = samples.sort_values(S.SAMPLE_ID, kind="stable").to_dict("records")
    twins = same_data_samples(samples)
    for r in records:
        r[_SAME_DATA] = twins.get(str(r[S.SAMPLE_ID]), [])
    jobs = max(1, min(int(jobs or 1), os.cpu_count() or 1))
    parts = None
    if jobs > 1 and len(records) >= PARALLEL_MIN_SAMPLES:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        size = -(-len(records) // (jobs * 4))
        chunks = [records[i:i + size] for i in range(0, len(records), size)]
        try:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_assemble_chunk, config, chunk,
                                       _chunk_results(results, [r[S.SAMPLE_ID] for r in chunk]),
                                       {r[S.SAMPLE_ID]: states[r[S.SAMPLE_ID]] for r in chunk
                                        if r[S.SAMPLE_ID] in states}, clinical, manifest_cols, lymphocytes)
                           for chunk in chunks]
                parts = [f.result() for f in futures]
        except (BrokenProcessPool, OSError) as exc:
            log.warning("parallel table assembly unavailable (%s); assembling in this process", exc)
    if parts is None:
        parts = [_assemble_chunk(config, records, results, states, clinical, manifest_cols, lymphocytes)]
    pop_frames = [frame for frame, _ in parts if frame is not None]
    sample_rows = [row for _, rows in parts for row in rows]
    populations = (pd.concat(pop_frames, ignore_index=True) if pop_frames
                   else pd.DataFrame(columns=list(POPULATION_COLUMNS)))
    sample_cols = [S.SAMPLE_ID, S.FILE, S.SHA256, *manifest_cols, *SAMPLE_RESULT_COLUMNS]
    samples_table = pd.DataFrame(sample_rows).reindex(columns=sample_cols)
    return coerce(populations.reset_index(drop=True)), coerce(samples_table.reset_index(drop=True))
