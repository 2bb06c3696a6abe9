"""Assemble everything one patient's report shows, as plain data for the template.

Units: ``pct_parent`` and ``pct_lymphocytes`` are percent (0–100); absolute counts are cells/µL
(= 10^6 cells/L); weeks are weeks since the baseline visit; days are calendar days.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..compensation.check import FLAG_OVER, NOTE_SUSPECT, NOTE_UNCHECKED
from ..errors import CytokitError, ReportError
from ..panel import DETECTOR_ONLY_FLAG
from ..transforms.estimate import CLIPPED_FLAG
from ..io_utils import safe_name
from ..results import schema as S
from ..results.denominators import recorded_lymphocytes
from ..results import ResultsFolder
from ..trial.config import TrialConfig
from ..trial.inputs import check_clinical, check_populations
from ..trial.responders import flag_labels, responder_flags
from ..trial.values import COUNT_REVIEW, patient_visit_values, select_tubes
from .config import ReportOptions
from .reference import ReferenceIntervals, flag
from .store import ResultsStore
from .visit_rows import as_number, rule_text, visit_rows

log = logging.getLogger(__name__)


def _dates(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, errors="coerce")


@dataclass
class PatientReport:
    """All content of one patient's report (consumed by :mod:`cytokit.report.render`)."""

    patient: str
    arm: str
    identity: dict[str, Any]
    visits: list[dict[str, Any]]
    derived: list[dict[str, Any]]
    flag_labels: dict[str, str]
    trends: pd.DataFrame
    cycles_weeks: list[tuple[float, float]]
    qc: list[dict[str, Any]]
    methods: dict[str, Any]
    intervals: dict[tuple[str, str], Any] = field(default_factory=dict)
    tube_rule: str = ""


def _visit_week_table(pops: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """One row per visit with its week and sample date (manifest date, else clinical date)."""
    cols = [c for c in (S.VISIT, S.WEEK, "sample_date") if c in pops.columns]
    visits = pops[cols].drop_duplicates(S.VISIT).copy()
    if S.WEEK not in visits.columns and not clinical.empty and S.WEEK in clinical.columns:
        visits = visits.merge(clinical[[S.VISIT, S.WEEK]].drop_duplicates(S.VISIT), on=S.VISIT, how="left")
    if "sample_date" not in visits.columns:
        visits["sample_date"] = pd.NaT
    if not clinical.empty and {S.VISIT, "date"} <= set(clinical.columns):
        dates = clinical[[S.VISIT, "date"]].drop_duplicates(S.VISIT)
        visits = visits.merge(dates, on=S.VISIT, how="left")
        visits["sample_date"] = visits["sample_date"].where(visits["sample_date"].notna(), visits["date"])
        visits = visits.drop(columns=["date"])
    if S.WEEK not in visits.columns:
        visits[S.WEEK] = np.arange(len(visits), dtype=float)
    visits["sample_date"] = _dates(visits["sample_date"])
    return visits.sort_values([S.WEEK, S.VISIT]).reset_index(drop=True)


def _days_since_cycle(date: pd.Timestamp, cycles: pd.DataFrame, *, baseline: bool = False) -> str:
    """Text: the sample's timing relative to IL-2 cycles ('12 days after cycle 2', 'during cycle 3',
    'cycle 4 starts that day'); the baseline visit is named as such."""
    lead = "baseline" if baseline else ""
    if cycles.empty or "start_date" not in cycles.columns or pd.isna(date):
        return lead
    starts = _dates(cycles["start_date"])
    ends = _dates(cycles.get("end_date", cycles["start_date"]))
    label = cycles["cycle"] if "cycle" in cycles.columns else pd.Series("", index=cycles.index)
    parts = []
    same_day = starts[starts.dt.normalize() == date.normalize()]
    if not same_day.empty:  # sampled on a cycle's first day: drawn before the first infusion
        parts.append(f"cycle {label[same_day.index[0]]} starts that day")
    before = starts[starts < date.normalize()]
    if before.empty:
        if same_day.empty:
            parts.append("before the first cycle")
    else:
        i = before.idxmax()
        if pd.notna(ends[i]) and date <= ends[i]:
            parts.append(f"during cycle {label[i]}")
        else:
            parts.append(f"{int((date - ends[i]).days)} days after cycle {label[i]}")
    return "; ".join([lead] + parts if lead else parts)


#: sample flags about the data themselves (cytokit.qc.data_flags) that a reader must see next to the values
DATA_FLAG_TEXT = {
    DETECTOR_ONLY_FLAG: "markers were assigned from detector names only ($PnS empty in the file): check that "
                        "the panel matches the staining before trusting these values",
    FLAG_OVER: "the compensation check failed (overcompensated, e.g. data already compensated on the "
               "instrument): percentages may be wrong",
    NOTE_UNCHECKED: "the compensation could not be checked (no detector pair with enough events bright enough to "
                    "show its spillover): data already compensated on the instrument would not have been noticed",
    NOTE_SUSPECT: "the compensation looks too strong (the negative cells of bright events sit below zero, as with a "
                  "spillover matrix whose values are a third or more too large): review the matrix",
}


#: marker-prefixed data flags (``<marker>:<word>``): the word's meaning, ``{marker}`` filled in
MARKER_FLAG_TEXT = {
    CLIPPED_FLAG: "the {marker} axis is not the logicle scale fitted to this file (estimated W below 0: its "
                  "negative events lie closer to zero than the scale allows, W = 0 used); the populations "
                  "gated on {marker} carry this note under Quality control (gate placement notes): check their "
                  "gates in the thumbnails",
}


def _data_warnings(samples: pd.DataFrame) -> list[dict[str, str]]:
    """Per tube, the data flags of its sample with their meaning (from ``qc_flags``)."""
    out: list[dict[str, str]] = []
    if samples.empty or S.QC_FLAGS not in samples.columns:
        return out
    for s in samples.itertuples(index=False):
        flags = [f.strip() for f in str(getattr(s, "qc_flags", "") or "").split(";")]
        for f in flags:
            marker, _, word = f.rpartition(":")
            if f in DATA_FLAG_TEXT:
                out.append({S.TUBE: str(getattr(s, "tube", "")), "flag": f, "text": DATA_FLAG_TEXT[f]})
            elif marker and word in MARKER_FLAG_TEXT:
                out.append({S.TUBE: str(getattr(s, "tube", "")), "flag": f,
                            "text": MARKER_FLAG_TEXT[word].format(marker=marker)})
    return out


def _phenotype(row: pd.Series) -> str:
    for key in (S.PHENOTYPE, "definition"):
        if key in row.index and isinstance(row[key], str) and row[key]:
            return row[key]
    if S.MARKER_MEDIANS in row.index and isinstance(row[S.MARKER_MEDIANS], str) and row[S.MARKER_MEDIANS]:
        try:
            return " ".join(json.loads(row[S.MARKER_MEDIANS]).keys())
        except ValueError:
            return ""
    return ""


def build_patient_report(store: ResultsStore, patient: str, options: ReportOptions,
                         intervals: ReferenceIntervals) -> PatientReport:
    """Collect one patient's values, derived measures, QC and methods from a results store."""
    pops = store.populations[store.populations[S.PATIENT] == str(patient)].copy()
    if pops.empty:
        raise ReportError(f"patient {patient!r} has no results; patients are: {', '.join(store.patients)}",
                          path=store.root)
    clinical = store.clinical[store.clinical[S.PATIENT] == str(patient)] if S.PATIENT in store.clinical else pd.DataFrame()
    cycles = store.cycles[store.cycles[S.PATIENT] == str(patient)] if S.PATIENT in store.cycles else pd.DataFrame()
    samples = store.samples[store.samples[S.PATIENT] == str(patient)] if S.PATIENT in store.samples else pd.DataFrame()
    sex = str(clinical["sex"].dropna().iloc[0]) if "sex" in clinical and clinical["sex"].notna().any() else None
    arm = str(pops[S.ARM].dropna().iloc[0]) if S.ARM in pops and pops[S.ARM].notna().any() else ""

    visits = _visit_week_table(pops, clinical)
    trial_config = trial_config_of(store)
    baseline_visit = trial_config.baseline_visit
    if baseline_visit not in set(visits[S.VISIT].astype(str)):
        baseline_visit = str(visits[S.VISIT].iloc[0])
    base_date = visits.loc[visits[S.VISIT].astype(str) == baseline_visit, "sample_date"].iloc[0]
    lymph = {}
    if {S.VISIT, S.LYMPHOCYTES_PER_UL} <= set(clinical.columns):
        lymph = dict(zip(clinical[S.VISIT].astype(str), clinical[S.LYMPHOCYTES_PER_UL]))

    identity = {
        S.PATIENT: patient, S.ARM: arm, "sex": sex or "", "age": (
            as_number(clinical["age"].dropna().iloc[0]) if "age" in clinical and clinical["age"].notna().any() else None),
        "stratum": (str(clinical["stratum"].dropna().iloc[0]) if "stratum" in clinical and clinical["stratum"].notna().any() else ""),
        "visits": ", ".join(visits[S.VISIT].astype(str)),
        "baseline": baseline_visit,
        "n_cycles": int(len(cycles)),
    }

    rule = trial_config.tubes
    lymphocytes = recorded_lymphocytes(store.run_info)
    visit_blocks = []
    for v in visits.itertuples():
        vp = pops[pops[S.VISIT].astype(str) == str(v.visit)]
        rows, dens = visit_rows(vp, rule, intervals, sex, options.low_event_threshold, _phenotype, lymphocytes)
        thumbs = []
        if not samples.empty and S.SAMPLE_ID in samples.columns:
            for s in samples[samples[S.VISIT].astype(str) == str(v.visit)].itertuples():
                sid = str(s.sample_id)
                png = ResultsFolder(store.root).reported_gates(sid).thumbnails  # a cohort re-fit's, if any
                usable = safe_name(sid) == sid and png.is_file()  # never follow an unsanitised id
                thumbs.append({S.TUBE: getattr(s, "tube", ""), "path": png if usable else None, S.SAMPLE_ID: sid})
        visit_blocks.append({
            S.VISIT: str(v.visit), S.WEEK: as_number(v.week),
            "date": "" if pd.isna(v.sample_date) else v.sample_date.date().isoformat(),
            "days_since_il2": _days_since_cycle(v.sample_date, cycles,
                                                baseline=str(v.visit) == baseline_visit),
            S.LYMPHOCYTES_PER_UL: as_number(lymph.get(str(v.visit))),
            "rows": rows, "thumbnails": thumbs, "denominators": dens,
            "data_warnings": _data_warnings(samples[samples[S.VISIT].astype(str) == str(v.visit)]
                                            if S.VISIT in samples.columns else samples),
            "multi_tube": sorted({r[S.POPULATION] for r in rows if r["n_tubes"] > 1}),
        })

    # trend plots from the same tube as the tables (one value per visit and population)
    chosen = select_tubes(pops.assign(**{S.TUBE: pops[S.TUBE].astype(str) if S.TUBE in pops else ""}), rule)
    trends = chosen.drop(columns=[c for c in (S.WEEK,) if c in chosen.columns]).merge(
        visits[[S.VISIT, S.WEEK]], on=S.VISIT, how="left")
    trends = trends[[c for c in (S.VISIT, S.WEEK, S.TUBE, S.POPULATION, S.PCT_PARENT, S.PCT_LYMPHOCYTES,
                                 S.ABS_COUNT) if c in trends.columns]]
    derived, flag_labels_ = _derived(store, str(patient), trial_config, intervals, sex)
    cycles_weeks = []
    if not cycles.empty and "start_date" in cycles.columns and pd.notna(base_date):
        for c in cycles.itertuples():
            s, e = pd.to_datetime(c.start_date, errors="coerce"), pd.to_datetime(getattr(c, "end_date", c.start_date), errors="coerce")
            if pd.notna(s):
                cycles_weeks.append(((s - base_date).days / 7.0, ((e if pd.notna(e) else s) - base_date).days / 7.0 + 1 / 7))

    return PatientReport(
        patient=str(patient), arm=arm, identity=identity, visits=visit_blocks, derived=derived,
        flag_labels=flag_labels_,
        trends=trends, cycles_weeks=cycles_weeks, qc=_qc_rows(samples, pops), methods=_methods(store, samples),
        intervals=_intervals_for(intervals, sex), tube_rule=rule_text(rule),
    )


def _intervals_for(intervals: ReferenceIntervals, sex: str | None) -> dict[tuple[str, str], Any]:
    """(population, measure) -> the interval that applies to ``sex`` (sex-specific before ``any``),
    chosen exactly as :meth:`ReferenceIntervals.lookup` chooses it for the tables."""
    out: dict[tuple[str, str], Any] = {}
    for key in dict.fromkeys((iv.population, iv.measure) for iv in intervals.intervals):
        iv = intervals.lookup(key[0], key[1], sex)
        if iv is not None:
            out[key] = iv
    return out


def _derived(store: ResultsStore, patient: str, trial_config: TrialConfig, intervals: ReferenceIntervals,
             sex: str | None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Per visit: CD4/CD8 counts and ratio, CD4 change from baseline and the trial's responder flags.

    Uses the trial module's definitions (:func:`cytokit.trial.values.patient_visit_values`,
    :func:`cytokit.trial.responders.responder_flags`) with the run's trial configuration, so a report
    and the trial analysis never disagree on who is a responder. Returns (rows, flag column → label).
    """
    pops = check_populations(store.populations[store.populations[S.PATIENT] == patient], "populations")
    clinical = check_clinical(store.clinical if not store.clinical.empty else None, "clinical")
    try:
        values = patient_visit_values(pops, clinical, trial_config)
    except CytokitError as exc:
        log.warning("patient %s: no derived values (%s)", patient, exc)
        return [], {}
    flags = responder_flags(values, trial_config)
    labels = flag_labels(trial_config)
    ratio_iv = intervals.lookup("CD4/CD8 ratio", "ratio", sex)
    cd8 = values[values[S.POPULATION] == trial_config.cd8_population].set_index(S.VISIT)[S.ABS_COUNT]
    tubes = values.groupby([S.POPULATION, S.VISIT])[S.TUBE].first()
    # the values (and baselines of the changes) resting on an estimate that may be wrong (review flags)
    # the derived values are cells/µL: a count flag (count_review, from count_flags) puts them in doubt as well
    columns = [c for c in (S.REVIEW, f"{S.REVIEW}_baseline", COUNT_REVIEW, f"{COUNT_REVIEW}_baseline")
               if c in values.columns]
    review = values.set_index([S.POPULATION, S.VISIT])[columns] if S.REVIEW in values.columns else None

    def _review(population: str, visit: str, column: str = S.REVIEW) -> bool:
        key = (population, visit)
        if review is None or key not in review.index:
            return False
        count_column = column.replace(S.REVIEW, COUNT_REVIEW, 1)
        value = review.loc[key, [c for c in (column, count_column) if c in review.columns]]
        return bool(value.fillna(False).astype(bool).to_numpy().any())

    rows = []
    for f in flags.itertuples(index=False):
        d = f._asdict()
        ratio = as_number(d["cd4_cd8_ratio"])
        rows.append({
            S.VISIT: d[S.VISIT], "cd4": as_number(d["cd4_value"]), "cd8": as_number(cd8.get(d[S.VISIT])),
            "cd4_tube": str(tubes.get((trial_config.cd4_population, d[S.VISIT]), "")),
            "cd8_tube": str(tubes.get((trial_config.cd8_population, d[S.VISIT]), "")),
            "ratio": ratio, "ratio_flag": flag(ratio, ratio_iv), "ratio_reference": ratio_iv.text() if ratio_iv else "",
            "cd4_change": as_number(d["cd4_change"]), "cd4_change_pct": as_number(d["cd4_change_pct"]),
            "cd4_review": _review(trial_config.cd4_population, d[S.VISIT]),
            "cd8_review": _review(trial_config.cd8_population, d[S.VISIT]),
            "cd4_change_review": _review(trial_config.cd4_population, d[S.VISIT])
            or _review(trial_config.cd4_population, d[S.VISIT], f"{S.REVIEW}_baseline"),
            S.FLAGS: {name: ("—" if pd.isna(d[name]) else ("yes" if d[name] else "no")) for name in labels},
        })
    return rows, labels


def trial_config_of(store: ResultsStore) -> TrialConfig:
    """The trial configuration the run used (``OUT/trial/trial_config.json``), else the defaults."""
    path = store.root / "trial" / "trial_config.json"
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            return TrialConfig.model_validate(recorded.get("config", recorded))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable trial configuration (%s); using defaults", path, exc)
    return TrialConfig()


def _qc_rows(samples: pd.DataFrame, pops: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if samples.empty:
        return rows
    for s in samples.sort_values([c for c in (S.WEEK, S.VISIT, S.TUBE) if c in samples.columns]).itertuples(index=False):
        d = s._asdict()
        n, nq = as_number(d.get(S.N_EVENTS)), as_number(d.get(S.N_EVENTS_QC))
        # (population, its flags) of the estimates that may be wrong (review flags) and, apart, of the notes on how
        # gates were placed: one entry per population, so the report can show each on its own line
        gate_review: list[tuple[str, str]] = []
        gate_notes: list[tuple[str, str]] = []
        if S.SAMPLE_ID in pops.columns and S.REVIEW in pops.columns:
            f = pops[pops[S.SAMPLE_ID] == d.get(S.SAMPLE_ID)]
            gate_review = [(str(p), str(fl)) for p, r, fl in zip(f[S.POPULATION], f[S.REVIEW], f[S.REVIEW_FLAGS]) if r]
            gate_notes = [(str(p), str(n)) for p, n in zip(f[S.POPULATION], f[S.NOTES]) if n]
            if S.COUNT_FLAGS in f.columns:  # an absolute count that may be wrong though its % is not in doubt
                gate_review += [(f"{p} (cells/µL)", str(c)) for p, c in zip(f[S.POPULATION], f[S.COUNT_FLAGS]) if c]
        rows.append({
            S.VISIT: d.get(S.VISIT, ""), S.TUBE: d.get(S.TUBE, ""), S.FILE: d.get(S.FILE, ""),
            S.STATUS: d.get(S.STATUS, ""), S.ERROR: d.get(S.ERROR, "") if isinstance(d.get(S.ERROR), str) else "",
            S.N_EVENTS: n, S.N_EVENTS_QC: nq,
            "removed_pct": (100.0 * (n - nq) / n) if n and nq is not None else None,
            S.LYMPHOCYTES: as_number(d.get(S.LYMPHOCYTES)), S.LYMPHOSUM_PCT: as_number(d.get(S.LYMPHOSUM_PCT)),
            S.CD4_CD8_VS_CD3_PCT: as_number(d.get(S.CD4_CD8_VS_CD3_PCT)),
            S.QC_FLAGS: d.get(S.QC_FLAGS, "") if isinstance(d.get(S.QC_FLAGS), str) else "",
            S.CHECK_FLAGS: d.get(S.CHECK_FLAGS, "") if isinstance(d.get(S.CHECK_FLAGS), str) else "",
            "gate_review": gate_review, "gate_notes": gate_notes,
        })
    return rows


def _methods(store: ResultsStore, samples: pd.DataFrame) -> dict[str, Any]:
    info = store.run_info
    files = []
    if not samples.empty:
        for s in samples.itertuples(index=False):
            d = s._asdict()
            files.append({S.FILE: d.get(S.FILE, ""), S.SHA256: d.get(S.SHA256, ""), S.TUBE: d.get(S.TUBE, ""),
                          S.VISIT: d.get(S.VISIT, "")})
    tubes = {}
    for name, t in (info.get("tubes") or {}).items():
        t = dict(t)
        # only the markers the tube measures: a panel may name markers (CCR7, CD45RO) no tube stains for
        t["reagents"] = {m: f for m, f in (t.get("reagents") or {}).items() if str(f or "").strip()}
        tubes[name] = t
    return {
        "tubes": tubes,
        "versions": info.get("package_versions", {}),
        "cytokit_version": info.get("cytokit_version", ""),
        "config_hash": info.get("config_hash", ""),
        "pipeline": info.get("pipeline", ""),
        "files": files,
    }
