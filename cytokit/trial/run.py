"""The trial stage: ``run_comparisons(results_dir, config)`` reads the results store, analyses, writes
``RESULTS_DIR/trial/``.

:func:`analyse` is the pure in-memory part (tables in, :class:`TrialResult` out) that notebooks and tests
call; :func:`write_results` writes every table as Parquet + CSV through :mod:`cytokit.io_utils`, the
figures as PNG and the HTML summary. Existing outputs are not overwritten unless ``force=True``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import __version__
from ..errors import PipelineError, StatsError
from ..gating.count_error import FEW_EVENTS
from ..io_utils import atomic_write_bytes, atomic_write_text, safe_name, write_table
from ..provenance import inputs_digest, sample_hashes, stamp_inputs, table_sha256
from ..results import schema as S
from ..results.schema import TRIAL_CONFIG
from .baseline import baseline_table, baseline_wide
from .comparisons import run_tests, summarise
from .config import TrialConfig, load_trial_config
from .headline import headline_table
from .inputs import TrialInputs, check_clinical, check_populations, load_inputs, visit_order
from .responders import flag_labels, flag_names, responder_flags
from .values import patient_summaries, patient_visit_values

log = logging.getLogger(__name__)

#: tables written to RESULTS_DIR/trial/ (stem -> TrialResult attribute)
TABLES: dict[str, str] = {
    "patient_visit_values": "patient_visit_values",
    "patient_summaries": "patient_summaries",
    "summaries": "summaries",
    "responder_rates": "rates",
    "tests": "tests",
    "headline": "headline",
    "baseline_characteristics": "baseline",
}


@dataclass
class TrialResult:
    """Everything one analysis produced (tables are tidy DataFrames, figures PNG bytes)."""

    config: TrialConfig
    visits: list[str]
    final_visit: str
    responder_visit: str
    values: pd.DataFrame
    flags: pd.DataFrame
    patient_summaries: pd.DataFrame
    summaries: pd.DataFrame
    rates: pd.DataFrame
    tests: pd.DataFrame
    headline: pd.DataFrame
    baseline: pd.DataFrame
    figures: dict[str, bytes] = field(default_factory=dict)
    html: str | None = None
    notes: list[str] = field(default_factory=list)
    sample_sha256: dict[str, str] = field(default_factory=dict)  # sample_id -> FCS sha256
    inputs_sha256: str = ""  # digest over every input (FCS files and clinical table)

    @property
    def patient_visit_values(self) -> pd.DataFrame:
        """Per patient × visit × population values, changes and that visit's responder flags."""
        cols = ["cd4_cd8_ratio", *flag_names(self.config)]
        flags = self.flags[[S.PATIENT, S.VISIT, *cols]]
        return self.values.merge(flags, on=[S.PATIENT, S.VISIT], how="left")


def _pick_visit(visits: list[str], which: str | None, what: str) -> str:
    """``which`` if it is a known visit, the last visit when None, else StatsError."""
    if which is None:
        return visits[-1]
    if which not in visits:
        raise StatsError(f"{what} {which!r} not found; visits are {visits}")
    return which


def few_event_note(values: pd.DataFrame, populations: pd.DataFrame) -> str:
    """A note naming the patient-visit values (``values``, one per patient x visit x population) whose parent
    held fewer than :data:`~cytokit.gating.count_error.FEW_EVENTS` events in the tube they were taken from
    (``populations``: the results store's rows; an empty parent included): their % of parent carries a counting
    SD of several pp that the summaries and tests do not show; '' when there are none."""
    keys = [S.PATIENT, S.VISIT, S.TUBE, S.POPULATION]
    if S.PARENT_COUNT not in populations.columns or not set(keys) <= set(values.columns) | set(populations.columns):
        return ""
    counts = populations[keys + [S.PARENT_COUNT]].drop_duplicates(keys)
    merged = values[keys].merge(counts, on=keys, how="inner")
    few = merged[pd.to_numeric(merged[S.PARENT_COUNT], errors="coerce") < FEW_EVENTS]
    if few.empty:
        return ""
    per_pop = few.groupby(S.POPULATION, sort=True).size()
    listed = ", ".join(f"{pop} ({n})" for pop, n in per_pop.items())
    empty = int((pd.to_numeric(few[S.PARENT_COUNT], errors="coerce") == 0).sum())
    return (f"{len(few)} patient-visit values rest on a parent of fewer than {FEW_EVENTS} events (flag few_events): "
            f"{listed}; their % of parent is uncertain by several pp from counting alone (count_sd_pp in the "
            f"populations table)" + (f"; {empty} with an empty parent have no % of parent (missing, not 0)." if empty else "."))


def _listed(pairs: list[str], most: int = 10) -> str:
    return ", ".join(pairs[:most]) + (f" and {len(pairs) - most} more" if len(pairs) > most else "")


def missing_values_note(values: pd.DataFrame, samples: pd.DataFrame, clinical: pd.DataFrame,
                        arms: tuple[str, str]) -> list[str]:
    """Notes naming what the per-visit n leave out without a row of their own: samples of the compared arms that
    failed (``samples``' ``status`` not ok: no population values, so every summary and test of that patient ×
    visit × tube has one patient fewer) and patient × visit rows of the clinical table with no population value
    at all (a visit without a sample). [] when nothing is missing or the tables are not known."""
    notes: list[str] = []
    if not samples.empty and {S.STATUS, S.PATIENT, S.VISIT}.issubset(samples.columns):
        failed = samples[(samples[S.STATUS].astype(str) != "ok")
                         & (samples[S.ARM].astype(str).isin(arms) if S.ARM in samples.columns else True)]
        if not failed.empty:
            tube = failed[S.TUBE].astype(str) if S.TUBE in failed.columns else pd.Series("", index=failed.index)
            err = failed[S.ERROR].fillna("").astype(str) if S.ERROR in failed.columns else tube.map(lambda _: "")
            which = [f"{p} {v} {t}".strip() + (f" ({e[:60]})" if e else "")
                     for p, v, t, e in zip(failed[S.PATIENT].astype(str), failed[S.VISIT].astype(str), tube, err)]
            notes.append(f"{len(failed)} sample(s) failed and have no population values: {_listed(which)}; every "
                         "summary and test of their patient x visit (populations of that tube) leaves them out "
                         "(the n shown counts the others; no value is imputed).")
    if not clinical.empty and {S.PATIENT, S.VISIT}.issubset(clinical.columns):
        in_arms = values.loc[values[S.ARM].isin(arms), S.PATIENT].astype(str).unique()
        seen = set(zip(values[S.PATIENT].astype(str), values[S.VISIT].astype(str)))
        clin = clinical[clinical[S.PATIENT].astype(str).isin(in_arms)]
        absent = [f"{p} {v}" for p, v in zip(clin[S.PATIENT].astype(str), clin[S.VISIT].astype(str))
                  if (p, v) not in seen]
        if absent:
            notes.append(f"{len(absent)} patient x visit row(s) of the clinical table have no population value "
                         f"(no sample analysed): {_listed(absent)}; they are missing from every summary and test "
                         "of that visit.")
    for n in notes:
        log.warning("%s", n)
    return notes


def small_arm_note(values: pd.DataFrame, config: TrialConfig) -> list[str]:
    """A note (and a warning) per compared arm with fewer than ``config.min_per_arm`` patients: no test involving
    it is run (P empty), its medians and proportions are still given."""
    per_arm = values.groupby(S.ARM)[S.PATIENT].nunique()
    notes = [f"arm {arm!r} has {int(per_arm.get(arm, 0))} patient(s), fewer than trial.min_per_arm = "
             f"{config.min_per_arm}: no rank-sum, signed-rank, Fisher, logistic or longitudinal test involving it is "
             "run (P empty); its medians and proportions are descriptive only."
             for arm in config.arms if int(per_arm.get(arm, 0)) < config.min_per_arm]
    for n in notes:
        log.warning("%s", n)
    return notes


def analyse(inputs: TrialInputs, config: TrialConfig | None = None) -> TrialResult:
    """Run the whole analysis in memory (no files written)."""
    config = config or TrialConfig()
    pops = check_populations(inputs.populations, inputs.source)
    clinical = check_clinical(inputs.clinical, inputs.clinical_source)
    visits = visit_order(pops)
    final = _pick_visit(visits, config.final_visit, "trial.final_visit")
    resp_visit = _pick_visit(visits, config.responders.visit or final, "trial.responders.visit")
    values = patient_visit_values(pops, clinical, config)
    flags = responder_flags(values, config)
    summ_p = patient_summaries(values, config, final)
    summaries = summarise(values[values[S.ARM].isin(config.arms)], summ_p, config, visits)
    tests, rates = run_tests(values, flags, summ_p, clinical, config, visits,
                             clinical_source=inputs.clinical_source)
    headline = headline_table(summaries, tests, rates, config, final, resp_visit)
    base = baseline_table(values, flags, clinical, inputs.cycles, config)
    notes = [
        f"Change from baseline = value at visit - value at {config.baseline_visit}; relative change in % of baseline.",
        f"Tube selection: {config.tubes.rule} (preference {', '.join(config.tubes.preference)}).",
        f"AUC minus baseline by the trapezoid rule over {'actual sample dates' if config.auc_time == 'date' else 'nominal weeks'}.",
    ]
    n_derived = int((values["abs_source"] == "dual_platform_derived").sum())
    if n_derived:
        notes.append(f"{n_derived} absolute counts derived from % lymphocytes x clinical lymphocyte count.")
    few = few_event_note(values, pops)
    if few:
        notes.append(few)
    notes += missing_values_note(values, inputs.samples, clinical, config.arms)
    notes += small_arm_note(values, config)
    by_sample = sample_hashes(inputs.populations)
    digest = inputs_digest([*by_sample.values(), table_sha256(inputs.clinical) or ""])
    result = TrialResult(config, visits, final, resp_visit, values, flags, summ_p, summaries, rates, tests,
                         headline, base, notes=notes, sample_sha256=by_sample, inputs_sha256=digest)
    if config.figures:
        result.figures = make_figures(result)
    if config.html:
        result.html = render_html(result)
    return result


def make_figures(result: TrialResult) -> dict[str, bytes]:
    """PNG figures keyed by file name (trajectories and change per measure, forest plot of odds ratios)."""
    from . import figures as fg

    cfg = result.config
    arms = list(cfg.arms)
    out: dict[str, bytes] = {}
    for m in cfg.measures:
        png = fg.trajectories(result.values, cfg.headline_populations, m, arms)
        if png:
            out[f"trajectories_{safe_name(m)}.png"] = png
        png = fg.change_at_visit(result.values, cfg.headline_populations, m, arms, result.final_visit)
        if png:
            out[f"change_{safe_name(result.final_visit)}_{safe_name(m)}.png"] = png
    t = result.tests
    fisher = t[(t["test"] == "fisher") & (t[S.VISIT] == result.responder_visit)]
    logi = t[(t["test"] == "logistic") & t["term"].astype(str).str.startswith("arm[")].dropna(subset=["estimate"])
    labels = flag_labels(cfg)
    rows = pd.concat([  # arm effects only: covariate terms are adjustments, not results
        fisher.assign(label=fisher["endpoint"].map(labels).fillna(fisher["endpoint"]) + " @ " + fisher[S.VISIT]),
        logi.assign(label=logi["endpoint"] + " (adjusted)"),
    ])
    if not rows.empty:
        png = fg.forest(rows[["label", "estimate", "ci_low", "ci_high", "p"]],
                        title=f"Odds ratio {cfg.treatment_arm} vs {cfg.control_arm} (95% CI)")
        if png:
            out["forest_odds_ratios.png"] = png
    return out


def render_html(result: TrialResult) -> str:
    from .html import render_summary

    cfg = result.config
    patients = result.values.drop_duplicates(S.PATIENT)
    context = {
        "title": f"Trial analysis: {cfg.treatment_arm} vs {cfg.control_arm}",
        "treatment": cfg.treatment_arm, "control": cfg.control_arm,
        "n_treatment": int((patients[S.ARM] == cfg.treatment_arm).sum()),
        "n_control": int((patients[S.ARM] == cfg.control_arm).sum()),
        "baseline": cfg.baseline_visit, "final_visit": result.final_visit, "responder_visit": result.responder_visit,
        "multiplicity": f"{cfg.multiplicity.method} within each {cfg.multiplicity.family.replace('_', ' + ')} family",
        "longitudinal_model": cfg.longitudinal.model, "version": __version__, "notes": result.notes,
        "flag_labels": flag_labels(cfg),
    }
    return render_summary(headline=result.headline, rates=result.rates, tests=result.tests,
                          baseline_wide=baseline_wide(result.baseline, list(cfg.arms)), figures=result.figures,
                          context=context)


def _check_overwrite(out: Path, force: bool) -> None:
    if not force and (out / "tests.parquet").exists():
        raise PipelineError("trial results exist; use --force to overwrite", path=out)


def write_results(result: TrialResult, out_dir: str | Path, *, force: bool = False) -> list[Path]:
    """Write tables (Parquet + CSV), figures (PNG), ``summary.html`` and ``trial_config.json``.

    Without ``force`` an existing ``tests.parquet`` in ``out_dir`` stops the write with PipelineError.
    """
    out = Path(out_dir)
    _check_overwrite(out, force)
    written: list[Path] = []
    for stem, attr in TABLES.items():
        table = stamp_inputs(getattr(result, attr), result.sample_sha256, result.inputs_sha256)
        written += write_table(table, out / stem)
    for name, png in result.figures.items():
        written.append(atomic_write_bytes(out / "figures" / name, png))
    if result.html is not None:
        written.append(atomic_write_text(out / "summary.html", result.html))
    info = {"cytokit_version": __version__, "visits": result.visits, "final_visit": result.final_visit,
            "responder_visit": result.responder_visit, "config": result.config.model_dump(mode="json"),
            "notes": result.notes}
    written.append(atomic_write_text(out / TRIAL_CONFIG, json.dumps(info, indent=2, sort_keys=True)))
    log.info("trial analysis written to %s (%d files)", out, len(written))
    return written


def run_comparisons(results_dir: str | Path, config: TrialConfig | dict | str | Path | None = None, *,
                    out_dir: str | Path | None = None, force: bool = False) -> TrialResult:
    """Analyse a results folder and write ``RESULTS_DIR/trial/`` (or ``out_dir``).

    ``config`` is a :class:`TrialConfig`, a dict of its fields, a YAML path (pipeline with a ``trial:``
    block, or the block alone), or None for the IL-2 trial defaults.
    """
    if isinstance(config, (str, Path)):
        config = load_trial_config(config)
    elif isinstance(config, dict):
        from pydantic import ValidationError

        from ..errors import ConfigError

        try:
            config = TrialConfig.model_validate(config)
        except ValidationError as exc:
            raise ConfigError(f"invalid trial configuration: {exc}") from exc
    target = Path(out_dir) if out_dir else Path(results_dir) / "trial"
    _check_overwrite(target, force)  # before the work, not after it
    inputs = load_inputs(results_dir)
    result = analyse(inputs, config)
    write_results(result, target, force=force)
    return result
