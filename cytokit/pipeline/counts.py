"""Absolute counts (cells/µL = 10^6 cells/L) and per-sample consistency checks.

Contract
--------
* Dual-platform: ``abs = pct_lymphocytes / 100 × lymphocytes_per_uL`` where ``pct_lymphocytes`` is in
  percent of the strategy's lymphocyte denominator (``Singlets``, single lymphocytes, in the shipped
  strategies) and the lymphocyte count (cells/µL) comes from
  the clinical table row of the same patient and visit (a haematology analyser's count). So the
  denominator's row carries the clinical lymphocyte count itself; gates above it (``Lymphocytes``) have
  NaN, in both methods (:func:`above_denominator`).
* The lymphocyte denominator of a sample is decided by :func:`cytokit.results.denominators.tube_denominator`
  (the one rule used by the reports and ``cytokit gate`` too): the strategy's declared ``lymphocytes``
  population when the caller passes it, else the documented inference for stored results.
* Single-platform (bead-based): ``abs = count × beads_per_tube / (bead_events × sample_volume_uL)``
  with bead events from the bead gate and beads per tube / sample volume (µL) from the manifest.
* A single-platform count of a row whose gating notes :data:`~cytokit.gating.edge_loss.EDGE_LOSS_NOTE` (the
  gates above it and its own divider left out more of its cells than the count's tolerance allows,
  :mod:`cytokit.gating.edge_loss`) gets the count flag :data:`COUNT_LOW_FLAG` in its row's ``count_flags``
  column (:func:`count_flags`): the count may be wrong, not the row's percentages, so ``flags`` / ``review``
  (the gating's, as ``Strategy.apply`` gives them) do not carry it. A dual-platform count is not flagged for it: the
  clinical lymphocyte count holds the cells the scatter gate left out, and the % of lymphocytes misses only a
  population's loss beyond the lymphocytes' own. A dual-platform count of a row whose gating notes
  :data:`~cytokit.gating.edge_loss.LINEAGE_LOSS_NOTE` (that loss beyond the denominator's above the flag level,
  :func:`cytokit.gating.edge_loss.lineage_loss_pct`) gets the same :data:`COUNT_LOW_FLAG`.
* A count of either method whose estimated relative error (:func:`count_error_pct`: over the row and its ancestors
  below the lymphocyte denominator, the root sum of squares of ``hypot(est_error_pp, count_sd_pp) / pct_parent``)
  exceeds :data:`COUNT_UNCERTAIN_PCT` (10 % of the count) gets the count flag :data:`COUNT_UNCERTAIN_FLAG` in
  ``count_flags``: a 0.3 pp error is 20 % of a subset at 1.5 % of lymphocytes, which the pp flags do not weigh.
* Checks, flagged per sample (``check_flags``, ``;``-joined): ``lymphosum`` (T + B + NK within
  100 ± tolerance % of lymphocytes, for tubes that gate all three), ``cd4_cd8_vs_cd3`` (CD4 T + CD8 T as %
  of T cells within a range), ``too_few_<denominator>(n<min)`` (fewer events in the strategy's lymphocyte
  population, e.g. ``too_few_Singlets``, than the minimum; the
  :func:`cytokit.qc.min_events_flag` helper), and
  ``no_absolute_count:<reason>`` when the chosen method lacks its inputs or, with ``method: auto``, the
  sample has neither counting beads nor a clinical lymphocyte count.

All functions are pure: they take and return DataFrames.
"""
from __future__ import annotations

import math
from typing import TypedDict

import numpy as np
import pandas as pd

from ..gating.edge_loss import COUNT_TOLERANCE_PCT, EDGE_LOSS_NOTE, LINEAGE_LOSS_NOTE
from ..qc import min_events_flag
from ..results import schema as S
from ..results.denominators import Denominator, table_denominator
from .config import CountsConfig

DUAL, SINGLE = "dual_platform", "single_platform"
LYMPHOSUM_POPS = ("T cells", "B cells", "NK cells")
#: count flag (column ``count_flags``) of a row whose single-platform count likely reads low by more than the
#: tolerance (:func:`count_flags`)
COUNT_LOW_FLAG = "count_low"
#: count flag (column ``count_flags``) of a row whose count's estimated relative error
#: (:func:`count_error_pct`) exceeds :data:`COUNT_UNCERTAIN_PCT`
COUNT_UNCERTAIN_FLAG = "count_uncertain"
#: :func:`count_error_pct` above this (% of the count) flags the count :data:`COUNT_UNCERTAIN_FLAG`: the counts'
#: tolerance itself (chosen among 6-12 % on seen seeds, docs/gating.md "Absolute counts of small subsets")
COUNT_UNCERTAIN_PCT = COUNT_TOLERANCE_PCT


def _number(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def choose_method(counts: CountsConfig, sample: dict, lymphocytes_per_uL: float) -> str:
    """The absolute-count method for one sample ('' when none applies)."""
    if counts.method == "none":
        return ""
    has_beads = (_number(sample.get(counts.beads_per_tube_column)) > 0
                 and _number(sample.get(counts.sample_volume_column)) > 0)
    if counts.method == SINGLE or (counts.method == "auto" and has_beads):
        return SINGLE
    if counts.method == DUAL or (counts.method == "auto" and not math.isnan(lymphocytes_per_uL)):
        return DUAL
    return ""


def absolute_counts(pops: pd.DataFrame, sample: dict, counts: CountsConfig,
                    lymphocytes_per_uL: float, lymphocytes: str | None = None) -> tuple[pd.Series, str, list[str]]:
    """Absolute counts (cells/µL) for one sample's populations, the method used, and flags.

    ``pops`` holds one sample's rows (``population``, ``parent``, ``count``, ``pct_lymphocytes``);
    ``lymphocytes`` is the strategy's lymphocyte population when known (see :func:`sample_denominator`).
    Returns a float Series aligned with ``pops`` (NaN where undefined, e.g. the bead gate itself).
    """
    method = choose_method(counts, sample, lymphocytes_per_uL)
    nan = pd.Series(np.nan, index=pops.index, dtype="float64")
    flags: list[str] = []
    if method == DUAL:
        if math.isnan(lymphocytes_per_uL):
            return nan, method, ["no_absolute_count:no_lymphocyte_count"]
        pct = pd.to_numeric(pops[S.PCT_LYMPHOCYTES], errors="coerce")
        return pct / 100.0 * lymphocytes_per_uL, method, flags
    if method == SINGLE:
        beads = pops.loc[pops[S.POPULATION] == counts.bead_population, S.COUNT]
        bead_events = float(beads.iloc[0]) if len(beads) else 0.0
        per_tube = _number(sample.get(counts.beads_per_tube_column))
        volume = _number(sample.get(counts.sample_volume_column))
        if not bead_events > 0 or not per_tube > 0 or not volume > 0:
            return nan, method, ["no_absolute_count:no_bead_events" if not bead_events > 0
                                 else "no_absolute_count:no_bead_concentration"]
        out = pd.to_numeric(pops[S.COUNT], errors="coerce") * per_tube / (bead_events * volume)
        out[pops[S.POPULATION] == counts.bead_population] = np.nan
        out[above_denominator(pops, lymphocytes)] = np.nan
        return out, method, flags
    if counts.method == "auto":  # wanted but neither beads nor a clinical lymphocyte count for this visit
        return nan, "", ["no_absolute_count:no_lymphocyte_count_or_beads"]
    return nan, "", flags


def count_flags(pops: pd.DataFrame, abs_counts: pd.Series, method: str, lymphocytes: str | None = None
                ) -> pd.Series:
    """Per row of one sample's populations, its ``count_flags`` value (the flags of the absolute count alone,
    ``;``-joined, never added to the row's gating ``flags``; '' for none and for rows without a count):

    * :data:`COUNT_LOW_FLAG`: a single-platform count (``method``, from :func:`absolute_counts`) of a row whose
      ``flags`` hold :data:`~cytokit.gating.edge_loss.EDGE_LOSS_NOTE`, a dual-platform count of one whose ``flags``
      hold :data:`~cytokit.gating.edge_loss.LINEAGE_LOSS_NOTE`;
    * :data:`COUNT_UNCERTAIN_FLAG`: a count (either method) whose :func:`count_error_pct` (with the strategy's
      ``lymphocytes`` population when known) exceeds :data:`COUNT_UNCERTAIN_PCT` % of the count."""
    if method not in (SINGLE, DUAL):
        return pd.Series("", index=pops.index, dtype=object)
    counted = abs_counts.notna().to_numpy()
    low = np.zeros(len(pops), dtype=bool)
    note = EDGE_LOSS_NOTE if method == SINGLE else LINEAGE_LOSS_NOTE  # the cells each method's count misses
    if S.FLAGS in pops.columns:
        low = pops[S.FLAGS].map(lambda f: note in (f.split(";") if isinstance(f, str)
                                                   else list(f or []))).to_numpy(dtype=bool)
    uncertain = (count_error_pct(pops, lymphocytes) > COUNT_UNCERTAIN_PCT).to_numpy()
    words = [";".join(w for w, on in ((COUNT_LOW_FLAG, lo), (COUNT_UNCERTAIN_FLAG, un)) if on) if c else ""
             for c, lo, un in zip(counted, low, uncertain)]
    return pd.Series(words, index=pops.index, dtype=object)


def count_error_pct(pops: pd.DataFrame, lymphocytes: str | None = None, *, sampling: bool = True) -> pd.Series:
    """Per row of one sample's populations, the estimated relative error of its share of lymphocytes, and so of
    its absolute count (% of the count; both methods multiply it): the root sum of squares, over the row and each
    ancestor below the lymphocyte denominator (:func:`sample_denominator`), of that step's error over its share,
    ``100 x hypot(est_error_pp, count_sd_pp) / pct_parent`` (``est_error_pp`` NaN, not measured, counts 0;
    ``count_sd_pp`` only with ``sampling``). A step's error moves the count of every population below it, so a
    subset's count carries its ancestors' errors. Infinite where a step of zero share has an error; NaN for the
    denominator's ancestors, rows outside it (beads) and the denominator itself is 0."""
    out = pd.Series(np.nan, index=pops.index, dtype="float64")
    denominator = sample_denominator(pops, lymphocytes).name
    if not denominator or S.PARENT not in pops.columns:
        return out
    names = pops[S.POPULATION].astype(str).tolist()

    def column(name: str) -> np.ndarray:
        if name not in pops.columns:
            return np.zeros(len(pops))
        return np.nan_to_num(pd.to_numeric(pops[name], errors="coerce").to_numpy(dtype="float64"), nan=0.0)

    err = np.hypot(column(S.EST_ERROR_PP), column(S.COUNT_SD_PP)) if sampling else column(S.EST_ERROR_PP)
    pct = pd.to_numeric(pops[S.PCT_PARENT], errors="coerce").to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.where(err > 0, 100.0 * err / pct, 0.0) ** 2
    step, parent = {}, {}
    for name, up, sq in zip(names, pops[S.PARENT].tolist(), steps):
        if name not in step:  # the first row of a population (a table of one sample holds one)
            step[name], parent[name] = float(sq), up if isinstance(up, str) else ""
    variance: dict[str, float] = {denominator: 0.0}

    def chain(name: str, depth: int = 0) -> float:
        if name not in variance:
            up = parent.get(name, "")
            variance[name] = (math.nan if not up or up not in parent or depth > len(parent)
                              else chain(up, depth + 1) + step[name])
        return variance[name]

    return pd.Series([math.sqrt(chain(p)) for p in names], index=pops.index, dtype="float64")


def sample_denominator(pops: pd.DataFrame, lymphocytes: str | None = None) -> Denominator:
    """One sample's lymphocyte denominator and the gates above it, from its population rows and the
    strategy's ``lymphocytes`` population when known: :func:`cytokit.results.denominators.table_denominator`."""
    return table_denominator(pops, lymphocytes)


def above_denominator(pops: pd.DataFrame, lymphocytes: str | None = None) -> pd.Series:
    """Rows of one sample's populations that are gates *above* the lymphocyte denominator
    (:func:`sample_denominator`).

    Such a gate (``Lymphocytes`` before ``Singlets``) has no ``pct_lymphocytes`` (NaN, see
    :func:`cytokit.gating.engine.population_table`) but is the ``parent`` ancestor of the denominator.
    Its events include doublets, so it is not a lymphocyte count: no absolute count either (the lymphocyte
    count is the denominator's row). Populations outside the lymphocytes (counting beads) are not above it.
    """
    above = sample_denominator(pops, lymphocytes).above
    return pops[S.POPULATION].astype(str).isin(above) if above else pd.Series(False, index=pops.index)


class SampleChecks(TypedDict):
    """Per-sample consistency values (event counts; percentages 0-100) and the flags they raised."""

    lymphocytes: float
    lymphosum_pct: float
    cd4_cd8_vs_cd3_pct: float
    check_flags: list[str]


def consistency_checks(pops: pd.DataFrame, counts: CountsConfig, lymphocytes: str | None = None) -> SampleChecks:
    """Per-sample checks: ``lymphocytes`` (events in the lymphocyte denominator, :func:`sample_denominator`
    with the strategy's ``lymphocytes`` population when known; NaN when there is none),
    ``lymphosum_pct``, ``cd4_cd8_vs_cd3_pct`` and ``check_flags``."""
    by_pop = pops.drop_duplicates(S.POPULATION).set_index(S.POPULATION)
    count = pd.to_numeric(by_pop.get(S.COUNT, pd.Series(dtype=float)), errors="coerce")
    pct_lym = pd.to_numeric(by_pop.get(S.PCT_LYMPHOCYTES, pd.Series(dtype=float)), errors="coerce")
    flags: list[str] = []
    denominator = sample_denominator(pops, lymphocytes).name
    n_lymphocytes = float(count.get(denominator, np.nan)) if denominator else np.nan
    if not math.isnan(n_lymphocytes):
        flag = min_events_flag(int(n_lymphocytes), counts.min_lymphocyte_events, population=denominator)
        if flag:
            flags.append(flag)
    lymphosum = np.nan
    if all(p in pct_lym.index for p in LYMPHOSUM_POPS):
        lymphosum = float(sum(pct_lym[p] for p in LYMPHOSUM_POPS))
        if not abs(lymphosum - 100.0) <= counts.lymphosum_tolerance_pct:
            flags.append("lymphosum")
    cd4_cd8 = np.nan
    if all(p in count.index for p in ("CD4 T", "CD8 T", "T cells")) and count["T cells"] > 0:
        cd4_cd8 = float((count["CD4 T"] + count["CD8 T"]) / count["T cells"] * 100.0)
        lo, hi = counts.cd4_cd8_vs_cd3_range
        if not lo <= cd4_cd8 <= hi:
            flags.append("cd4_cd8_vs_cd3")
    return {S.LYMPHOCYTES: n_lymphocytes, S.LYMPHOSUM_PCT: lymphosum, S.CD4_CD8_VS_CD3_PCT: cd4_cd8,
            S.CHECK_FLAGS: flags}
