"""Schema of the results folder: file names, table columns, their dtypes and units (one place).

Contract
--------
``OUT/populations.{parquet,csv}``: one row per sample × population, columns :data:`POPULATION_COLUMNS`.
``OUT/samples.{parquet,csv}``: one row per manifest sample: ``sample_id, file, sha256``, the manifest's
own columns (text), then :data:`SAMPLE_RESULT_COLUMNS`. Each column's dtype and unit is in
:data:`COLUMNS`: ``text`` (str, missing = ""), ``int`` (nullable Int64), ``float`` (float64, NaN =
missing), ``bool`` (bool; only ``review``, derived from ``flags`` where missing) and ``week`` (Int64, rounded, when every value is numeric; else as read). Percentages are percent
(0-100); absolute counts are cells/µL (= 10^6/L); ``marker_medians`` is JSON on the transformed scale.

:data:`SCHEMA_VERSION` changes whenever a column is renamed, removed or changes meaning (adding a column
is compatible); it is written to ``run_info.json`` as ``results_schema``. This module imports nothing
heavy: column constants can be used anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: version of the results-folder layout and table schema (``run_info.json`` key :data:`RUN_INFO_SCHEMA_KEY`)
SCHEMA_VERSION: Final = "2"  # 2: pct_lymphocytes / abs_count_per_uL NaN for gates above the denominator
# (review, review_flags, notes were added within schema 2: a compatible addition; the reader derives them from
# flags for folders written before them, cytokit.results.reader.coerce)
RUN_INFO_SCHEMA_KEY: Final = "results_schema"

# -- files and folders (relative to OUT) -------------------------------------------------------------
POPULATIONS: Final = "populations"            # table stem: populations.parquet / populations.csv
SAMPLES: Final = "samples"                    # table stem: samples.parquet / samples.csv
INPUTS: Final = "inputs"                      # inputs.csv: kind, name, path, sha256
CLINICAL: Final = "clinical"                  # clinical.csv (copy of the site table, lymphocytes column renamed)
IL2_CYCLES: Final = "il2_cycles"              # il2_cycles.csv (copy)
RUN_INFO: Final = "run_info.json"
SAMPLES_DIR: Final = "samples"                # OUT/samples/<safe sample_id>/
RESULT_FILE: Final = "result.json"            # per-sample stored result (populations, summary, gates)
GATES_XML: Final = "gates.xml"                # per-sample Gating-ML 2.0 (under the QC gates)
GATES_PNG: Final = "gates.png"                # per-sample gating thumbnails
GATES_COHORT_PNG: Final = "gates_cohort.png"  # thumbnails of a sample whose gates the cohort stage re-fitted
GATES_COHORT_XML: Final = "gates_cohort.xml"  # Gating-ML of those re-fitted gates (the FlowJo workspace uses it)
GATES_COHORT_JSON: Final = "gates_cohort.json"  # those re-fitted gates as stored records (result.json "gates")
COHORT_DIR: Final = "gating_cohort"           # cohort gating stage: positions, refits
TRIAL_DIR: Final = "trial"
TRIAL_CONFIG: Final = "trial_config.json"     # OUT/trial/trial_config.json: the trial configuration the run used
PATIENT_VISIT_VALUES: Final = "patient_visit_values"   # OUT/trial/patient_visit_values.{parquet,csv}
CLUSTERING_DIR: Final = "clustering"
REPORTS_DIR: Final = "reports"

# -- column names --------------------------------------------------------------------------------------
SAMPLE_ID: Final = "sample_id"
FILE: Final = "file"
SHA256: Final = "sha256"
PATIENT: Final = "patient"
VISIT: Final = "visit"
WEEK: Final = "week"
ARM: Final = "arm"
TUBE: Final = "tube"
POPULATION: Final = "population"
PARENT: Final = "parent"
COUNT: Final = "count"
PARENT_COUNT: Final = "parent_count"
PCT_PARENT: Final = "pct_parent"
PCT_LYMPHOCYTES: Final = "pct_lymphocytes"
ABS_COUNT: Final = "abs_count_per_uL"
ABS_METHOD: Final = "abs_method"
MARKER_MEDIANS: Final = "marker_medians"
METHOD: Final = "method"
FLAGS: Final = "flags"
REVIEW: Final = "review"
REVIEW_FLAGS: Final = "review_flags"
NOTES: Final = "notes"
COUNT_FLAGS: Final = "count_flags"
EST_ERROR_PP: Final = "est_error_pp"
COUNT_SD_PP: Final = "count_sd_pp"
QC_FLAGS: Final = "qc_flags"
PHENOTYPE: Final = "phenotype"
STATUS: Final = "status"
ERROR: Final = "error"
N_EVENTS: Final = "n_events"
N_EVENTS_QC: Final = "n_events_qc"
LYMPHOCYTES: Final = "lymphocytes"
LYMPHOSUM_PCT: Final = "lymphosum_pct"
CD4_CD8_VS_CD3_PCT: Final = "cd4_cd8_vs_cd3_pct"
CHECK_FLAGS: Final = "check_flags"
#: samples table: per marker whose logicle W was estimated from the file, the W used, and the estimate
#: where it was clipped into range (``CD3=0.52; CD45RA=0 (estimated -0.06)``)
LOGICLE_W: Final = "logicle_w"
#: clinical table column read by the cohort stages (cells/µL)
LYMPHOCYTES_PER_UL: Final = "lymphocytes_per_uL"
#: trial ``tests`` table (OUT/trial/tests.*): events per variable of a logistic model (the rarer outcome's
#: patients per model term; NaN for other tests); below ``cytokit.trial.config.EPV_MIN`` the odds
#: ratios are unreliable
EPV: Final = "epv"

#: the percentage/count measures of a population row
MEASURES: tuple[str, ...] = (PCT_PARENT, PCT_LYMPHOCYTES, ABS_COUNT)


@dataclass(frozen=True)
class Column:
    """One stored column: name, dtype kind (text|int|float|week) and unit ("" when none)."""

    name: str
    kind: str
    unit: str = ""
    doc: str = ""


COLUMNS: dict[str, Column] = {c.name: c for c in (
    Column(SAMPLE_ID, "text", doc="sample identifier (manifest)"),
    Column(FILE, "text", doc="FCS file, relative to the manifest's folder"),
    Column(SHA256, "text", doc="sha256 of the FCS file"),
    Column(PATIENT, "text"), Column(VISIT, "text"), Column(WEEK, "week", "weeks"),
    Column(ARM, "text"), Column(TUBE, "text"),
    Column(POPULATION, "text"), Column(PARENT, "text", doc="parent population ('' for a root)"),
    Column(COUNT, "int", "events"), Column(PARENT_COUNT, "int", "events"),
    Column(PCT_PARENT, "float", "%"), Column(PCT_LYMPHOCYTES, "float", "%", "percent of the strategy's lymphocyte "
           "denominator (its `lymphocytes:` population, Singlets = single lymphocytes; run_info "
           "tubes.<tube>.lymphocytes): 100 for the denominator, defined for it and the populations below "
           "it; NaN for gates above it (the Lymphocytes scatter gate, whose events include doublets, is "
           "not a fraction of single lymphocytes; reports and `cytokit gate` show 'above Singlets') and "
           "for populations outside it (counting beads)"),
    Column(ABS_COUNT, "float", "cells/µL", "dual platform: pct_lymphocytes/100 x the clinical lymphocyte "
           "count (so the denominator's row is that count); single platform: events x beads per tube / "
           "(bead events x µL); NaN for the bead gate and gates above the denominator"),
    Column(ABS_METHOD, "text", doc="dual_platform | single_platform | ''"),
    Column(COUNT_FLAGS, "text", doc="';'-joined review flags of the row's absolute count alone ('' = none), e.g. "
           "count_low (a single-platform count the gates above it likely left > 10 % low, or a dual-platform count "
           "whose population they left out beyond the lymphocytes' own share as much, "
           "cytokit.pipeline.counts.count_flags; count_uncertain, a count whose estimated relative error from the "
           "est_error_pp and count_sd_pp of its row and ancestors exceeds 10 %): the count may be wrong, its percentages are not in doubt for it "
           "(flags, review, review_flags and notes are the gating's, for the percentages)"),
    Column(MARKER_MEDIANS, "text", "transformed scale", "JSON {marker: median}"),
    Column(METHOD, "text", doc="gate method"),
    Column(FLAGS, "text", doc="';'-joined gating flag words, review flags and notes together in the order the "
           "gating recorded them (kept for compatibility: a non-empty flags does NOT mean the estimate may be "
           "wrong; read review)"),
    Column(REVIEW, "bool", doc="True = this estimate may be wrong: review its gate before using the number "
           "(flags holds a review flag, cytokit.gating.methods.REVIEW_FLAGS; recall and precision against "
           "truth in docs/gating.md, 'Flags'); False = no review flag (notes may still be present)"),
    Column(REVIEW_FLAGS, "text", doc="';'-joined words of flags that make review True (e.g. uncertain, "
           "few_events, CD25:ambiguous_mode)"),
    Column(NOTES, "text", doc="';'-joined words of flags that only record how a gate was placed (no_valley, "
           "fell_back:tail, unstable, cohort_outlier...): not a statement that the estimate is wrong"),
    Column(EST_ERROR_PP, "float", "pp", "estimated error of pct_parent from the uncertainty of the gate's "
           "thresholds (percentage points; NaN = not measured: scatter, fixed or imported gates); "
           "above confidence.UNCERTAIN_PP the row is flagged 'uncertain' (docs/gating.md)"),
    Column(COUNT_SD_PP, "float", "pp", "binomial SD of pct_parent from the event counts alone (another tube of "
           "the same blood would differ by about this much even with perfect gates; gating.count_error); the "
           "error against the patient's true share is about hypot(est_error_pp, count_sd_pp); NaN for an empty "
           "parent. Parents below count_error.FEW_EVENTS events flag the row 'few_events'"),
    Column(QC_FLAGS, "text", doc="';'-joined QC flags"), Column(PHENOTYPE, "text"),
    Column(STATUS, "text", doc="ok | failed"), Column(ERROR, "text"),
    Column(N_EVENTS, "int", "events", "events read"), Column(N_EVENTS_QC, "int", "events", "events kept by QC"),
    Column(LYMPHOCYTES, "int", "events", "events in the lymphocyte denominator (the strategy's "
           "`lymphocytes:` population, e.g. Singlets; the row at 100 % of lymphocytes)"),
    Column(LYMPHOSUM_PCT, "float", "%"), Column(CD4_CD8_VS_CD3_PCT, "float", "%"),
    Column(CHECK_FLAGS, "text", doc="';'-joined consistency-check flags"),
    Column(LOGICLE_W, "text", doc="per marker whose logicle W was estimated from the file: the W used (logicle "
           "decades), with the estimate where it was clipped into range ('CD45RA=0 (estimated -0.06)')"),
)}

POPULATION_COLUMNS: tuple[str, ...] = (
    SAMPLE_ID, FILE, SHA256, PATIENT, VISIT, WEEK, ARM, TUBE, POPULATION, PARENT, COUNT, PARENT_COUNT,
    PCT_PARENT, PCT_LYMPHOCYTES, ABS_COUNT, ABS_METHOD, COUNT_FLAGS, MARKER_MEDIANS, METHOD, FLAGS, REVIEW, REVIEW_FLAGS, NOTES,
    EST_ERROR_PP, COUNT_SD_PP, QC_FLAGS, PHENOTYPE,
)
#: the columns that split ``flags`` into review flags and notes (cytokit.results.review.review_columns)
REVIEW_COLUMNS: tuple[str, ...] = (REVIEW, REVIEW_FLAGS, NOTES)
#: samples table: these follow ``sample_id, file, sha256`` and the manifest's own columns
SAMPLE_KEY_COLUMNS: tuple[str, ...] = (SAMPLE_ID, FILE, SHA256)
SAMPLE_RESULT_COLUMNS: tuple[str, ...] = (
    STATUS, ERROR, N_EVENTS, N_EVENTS_QC, LYMPHOCYTES, LYMPHOSUM_PCT, CD4_CD8_VS_CD3_PCT, ABS_METHOD, QC_FLAGS,
    CHECK_FLAGS, LOGICLE_W,
)
#: manifest columns copied onto rows of the derived tables
MANIFEST_COLUMNS: tuple[str, ...] = (PATIENT, VISIT, WEEK, ARM, TUBE)
#: identifier columns that are always text (a patient "007" must never become 7)
ID_COLUMNS: tuple[str, ...] = (SAMPLE_ID, PATIENT, VISIT, ARM, TUBE)
#: tables whose every column is typed by :data:`COLUMNS` (others: text ids, the rest inferred)
STORE_TABLES: tuple[str, ...] = (POPULATIONS, SAMPLES)
