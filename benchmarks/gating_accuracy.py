"""Automated-gating accuracy on scenario families (tuning vs held-out), flag calibration, mouse F1, speed.

The shipped ``tmem`` and ``nkb`` strategies are run unchanged on simulated trials whose scenario families vary
what labs vary (activation markers bimodal or continuous, nearly all-positive / all-negative populations,
dim stains and low or high detector gains, broad negative peaks, CD56dim/bright proportions). Families are
split: gate rules and flag limits were chosen looking only at the **tuning** draws (each family's
``tuning_seeds``: seeds 101, 404, 505, 606 and 707 have all been looked at); the **held-out** draws (every family
re-drawn with ``HELD_OUT_SEED``) were not looked at while tuning. For every split the script
prints, per population: median, 95th percentile and maximum of |% of parent - truth| (percentage points),
per-event F1 (median), and the flag calibration: recall =
share of estimates > 2 pp off that carry a review flag (the populations table's ``review`` column, the one
users read: :func:`cytokit.gating.methods.needs_review` of ``flags``);
"flagged within 1 pp" = share of flagged estimates that were in fact within 1 pp (target <= 10 %). The same
figures are printed for "any flag word" (``flags`` non-empty, placement notes included): what a reader who
took every word for a warning would get.

What a cytometrist would report is not always the simulator's label: a positive continuum that starts inside
the negative peak labels cells positive that no gate can tell from negatives. For every one-marker ``+``
threshold population the script therefore also prints the % an *ideal FMO gate* would report (threshold at
the 99.5th percentile of the parent's truly negative events, known from the simulator) and its distance to
the truth: where that is large, the truth label lies inside the negative peak. For CD25+ CD4
(:data:`DECOMPOSED`) the error is split per family: |ideal FMO - truth| (truth definition) and
|ours - ideal FMO| (placement), median and p95.

    .venv/bin/python benchmarks/gating_accuracy.py [--split all|tuning|held-out|untuned] [--families a,b]
        [--patients 2] [--events 20000] [--untuned-seeds 101,404,505] [--no-speed] [--speed-only] [--csv out.csv]

The **untuned** families (:data:`UNTUNED_FAMILIES`: advanced HIV-1 with low CD4 and high CD8 counts, files of
3,000-4,000 events) were added after every rule was chosen and no rule is tuned on them: they are drawn with
``--untuned-seeds`` (or the held-out seed under ``--split held-out``) and reported in their own group, with
the error per band of the parent's event count and the counting SD of the % (``count_sd_pp``).

Default: 2 patients per arm x W0/W74 x 2 tubes per family (16 files, both instrument styles), 20,000 events.

Each distinct simulated file is counted once per group (tuning / held-out): a family that changes only one
tube's markers (CD56/CD16 for ``nkb``; CD25/CD28 for ``tmem``) simulates the other tube's files byte for byte
as the reference family does with the same seed, and counting those again would weigh the reference's
estimates twice in the per-population statistics and the flag recall. Files whose bytes (SHA-256) were
already gated in the group are skipped; each run's line says how many.
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods import REVIEW_FLAGS, needs_review
from cytokit.simulate import load_config, simulate_file, simulate_trial, truth_masks

#: Held-out draws are used once each: seed 202, then 303, showed failures (high gains, CD56bright-dominant NK,
#: all-positive CD28, beads at low gain) that led to rule changes; then 404 showed the high-gain CD25 failure
#: (a lone negative mode above ``negative_max`` read as all-positive); 505 (with four families added for it)
#: measured the negative-reference rule once, then joined the tuning draws. 606 (with three families added
#: after 505 and never drawn with a tuning seed) measured the held-out figures once (CD25+ CD4 p95 6.6 pp:
#: dim continua without a valley), then joined the tuning draws. 707 measured the shipped rule (CD25+ CD4
#: median 0.19, p95 6.53, max 15.2 pp) and an excess-over-negative placement tuned on 101-606 (0.19 / 3.36 /
#: 8.3 pp); the placement was not adopted because it was worse on the independent lab's trial (see
#: docs/gating.md, "Counting the excess instead of the tail"). 808 was then drawn while the review flags were
#: recalibrated (a misfit check chosen on it) and 909 once, after every rule was final (README numbers); neither
#: is a tuning seed. 1010 was drawn once after back-gating, the CD25 tail widening and the count_misfit rule
#: were final (README numbers) and is looked at now; 1111 likewise after the redrawn lymphocyte gate, the CD56
#: crossing, the one-mode rule, the CD25 knee/dim-mode rules and the est_error_pp rules (README numbers); 1212
#: likewise after the whole-cloud lymphocyte gate, the CD16 NK rule, count_sd_pp/few_events and the count
#: rules of est_error_pp (main at afae4e3; README numbers); 1313 likewise after the redraw through a viability
#: gate, the CD45 x SSC denominator share, Treg's CD25 floor and the review column (main at 3189a9c; README
#: numbers); 1414 likewise after the CD45 x SSC lymphocyte core, the red-cell re-choice, the spike bandwidth, the
#: crossing cap and the lone mode read by its shape (2026-12-05, main at 5e4fd07; README numbers). The next
#: held-out draw was 1515 (main at 57bfba2, after the tail-count and Lymphocytes in-and-out rules; README
#: numbers); 1616 the next (2026-12-06, main at c3fbc55, after the dilution, overlap-correction, compensation-row
#: and myeloid back-gating rules; README numbers; 1717 was a check seed); 1818 the next (2026-12-06, main at 91d8018,
#: after the polygon back-gating and the Treg disagreement rules; 2020 was a check seed); 1919 the next (2026-12-06,
#: main at 527aefd, after the CD56 crossing/noise-peak, count_low and subset-myeloid rules; 2121 was a check seed);
#: 2222 the next (2026-12-06, main at a5f15ce, after the Lymphocytes-row in-and-out bounds, the net debris edge,
#: the count flags and compensation_suspect; 2323 was a check seed); 2424 the next (2026-12-06, main at 2f3850f,
#: after rule B for unstable valleys, the debris strip's singles, the left-out composition and lab B's stated
#: doublet convention; 2525 and 2626 were check seeds); 2727 the next (2026-12-06, main at 47e22a9, after the
#: merged reading of noise valleys, the viability denominator's removed events and the singlet band's estimate;
#: 2828 was a check seed); the next is 2929.
TUNING_SEED, HELD_OUT_SEED = 101, 2929
#: seeds already looked at while choosing rules (every family defined before a seed was drawn is tuned on it)
SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4 = 404, 505, 606, 707
#: populations whose F1 (per event, against the simulator's labels) is reported
F1_POPULATIONS = ("Lymphocytes", "T cells", "CD4 T", "CD8 T", "CD25+ CD4", "CD28+ CD4", "NK cells",
                  "CD56dim NK", "CD56bright NK", "B cells")


@dataclass(frozen=True)
class Family:
    """One scenario family: simulator overrides (see :class:`cytokit.simulate.SimulationConfig`)."""

    split: str  # "tuning", "held-out" or "untuned": the family's origin (held-out/untuned = to test, not to tune on)
    description: str
    overrides: dict = field(default_factory=dict)
    #: seeds this family was looked at with while rules were chosen (empty: only ever drawn held-out)
    tuning_seeds: tuple[int, ...] = (TUNING_SEED, SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)
    #: events per file for this family (None: the command line's ``--events``)
    events: int | None = None


def _instruments(scale_bd: float, scale_attune: float, gain_spill: float = 1.0) -> list[dict]:
    return [{"name": "BD FACSCanto II", "style": "bd", "fluorescence_scale": scale_bd},
            {"name": "Attune NxT", "style": "attune", "fluorescence_scale": scale_attune, "fsc_scale": 0.8,
             "ssc_scale": 1.25, "spillover_scale": 1.2 * gain_spill}]


FAMILIES: dict[str, Family] = {
    # --- tuning families ---------------------------------------------------------------------------
    "reference": Family("tuning", "the bundled trial's settings (CD25 dim-to-bright continuum)"),
    "cd25_bimodal": Family("tuning", "CD25 activation as a separate lognormal mode (bimodal)",
                           {"phenotype": {"marker_levels": {"CD25": {"cont": (3000.0, 0.45)}}}}),
    "broad_negative": Family("tuning", "broad, brighter negative peaks (autofluorescence x2, log-sd 0.7)",
                             {"phenotype": {"negative_spread": 0.7, "autofluorescence_scale": 2.0}}),
    "cd28_all_positive": Family("tuning", "nearly all CD4 (97%) and most CD8 (85%) CD28+",
                                {"course": {"cd28_cd4_fraction": 0.97, "cd28_cd8_fraction": 0.85}}),
    "cd56_dim_stain": Family("tuning", "CD56 on a dimmer fluorochrome (x0.5)",
                             {"phenotype": {"marker_brightness": {"CD56": 0.5}}}),
    # --- families held out until seed 404 was looked at (tuned on that draw since) -------------------
    "cd25_bimodal_broad_negative": Family(
        "tuning", "bimodal CD25 above a broad negative peak (the tail rule's failure case)",
        {"phenotype": {"marker_levels": {"CD25": {"cont": (2500.0, 0.5)}}, "negative_spread": 0.6,
                       "autofluorescence_scale": 2.5}}, (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "cd25_rare": Family("tuning", "CD25 nearly absent (3% of CD4 at baseline; all-negative population)",
                        {"course": {"cd25_cd4_fraction": 0.03, "treg_fraction": 0.01}}, (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "dim_stains_low_gain": Family(
        "tuning", "low detector gains (x0.45/x0.3) and dimmer CD28, CD25, CD56 stains, more gain drift",
        {"instruments": _instruments(0.45, 0.3),
         "acquisition": {"gain_cv": 0.2},
         "phenotype": {"marker_brightness": {"CD28": 0.6, "CD25": 0.7, "CD56": 0.7}}}, (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "high_gain": Family("tuning", "high detector gains (x2.2/x1.6), brighter negatives",
                        {"instruments": _instruments(2.2, 1.6), "phenotype": {"autofluorescence_scale": 1.5}},
                        (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "cd28_all_positive_wide_cd25": Family(
        "tuning", "CD28+ on 99% of CD4; CD25 continuum extending brighter (300-15000)",
        {"course": {"cd28_cd4_fraction": 0.99, "cd28_cd8_fraction": 0.9},
         "phenotype": {"marker_levels": {"CD25": {"cont": ("cont", 300.0, 15000.0)}}}}, (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "no_cd127_other_gains": Family(
        "tuning", "7-colour tube without CD127 (no Treg row), gains x1.4/x0.5, brighter CD25 continuum",
        {"instruments": _instruments(1.4, 0.5), "phenotype": {"absent_markers": ["CD127"],
                                                             "marker_brightness": {"CD25": 1.5}}}, (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "nk_shifted": Family(
        "tuning", "more CD56bright NK (25%), CD56dim dimmer and broader, CD16 dimmer",
        {"course": {"cd56bright_fraction": 0.25},
         "phenotype": {"marker_levels": {"CD56": {"dim": (1600.0, 0.55), "bright": (16000.0, 0.35)},
                                         "CD16": {"bright": (15000.0, 0.45)}}}}, (SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    # --- families held out until seed 505 was looked at (tuned on that draw since) -------------------
    "very_high_gain": Family(
        "tuning", "very high detector gains (x3.0/x2.4) with more per-file gain drift (log-sd 0.15)",
        {"instruments": _instruments(3.0, 2.4), "acquisition": {"gain_cv": 0.15}}, (SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "mixed_gain_cd25_bimodal_majority": Family(
        "tuning", "one low- and one high-gain instrument (x0.6/x2.8); bimodal CD25 on 40% of CD4",
        {"instruments": _instruments(0.6, 2.8), "course": {"cd25_cd4_fraction": 0.4},
         "phenotype": {"marker_levels": {"CD25": {"cont": (2200.0, 0.5)}}}}, (SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "high_gain_dim_cd25_shoulder": Family(
        "tuning", "gains x1.8/x1.9, bright broad negatives; CD25 a dim shoulder (continuum 250-3000)",
        {"instruments": _instruments(1.8, 1.9),
         "phenotype": {"marker_levels": {"CD25": {"cont": ("cont", 250.0, 3000.0)}}, "negative_spread": 0.5,
                       "autofluorescence_scale": 1.8}}, (SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    "cd25_mostly_positive": Family(
        "tuning", "CD25 on 75% of CD4 (strong IL-2 response), gains x1.2/x0.9",
        {"instruments": _instruments(1.2, 0.9), "course": {"cd25_cd4_fraction": 0.75}}, (SEEN_SEED_2, SEEN_SEED_3, SEEN_SEED_4)),
    # --- families held out until seed 606 was looked at (tuned on that draw since) -------------------
    "cd25_dim_continuum_low_gain": Family(
        "tuning", "low gains (x0.7/x0.5), CD25 a dim continuum (300-5000) over negatives of log-sd 0.45",
        {"instruments": _instruments(0.7, 0.5),
         "phenotype": {"marker_levels": {"CD25": {"cont": ("cont", 300.0, 5000.0)}}, "negative_spread": 0.45}},
        (SEEN_SEED_3, SEEN_SEED_4)),
    "cd25_bright_bimodal_broad_high_gain": Family(
        "tuning", "gains x2.0/x2.5, bright bimodal CD25 (4000, log-sd 0.4) on 30% of CD4 over broad negatives",
        {"instruments": _instruments(2.0, 2.5), "course": {"cd25_cd4_fraction": 0.3},
         "phenotype": {"marker_levels": {"CD25": {"cont": (4000.0, 0.4)}}, "negative_spread": 0.55,
                       "autofluorescence_scale": 2.0}}, (SEEN_SEED_3, SEEN_SEED_4)),
    "nk_bright_dominant_high_gain": Family(
        "tuning", "CD56bright 40% of NK (strong IL-2 response), gains x2.4/x2.0, CD16 dimmer",
        {"instruments": _instruments(2.4, 2.0), "course": {"cd56bright_fraction": 0.4},
         "phenotype": {"marker_levels": {"CD16": {"bright": (18000.0, 0.45)}}}}, (SEEN_SEED_3, SEEN_SEED_4)),
    # --- a dim CD56 reagent lot and a dim CD28 mode (added after an independent generator showed them; tuned
    # on the tuning seeds 101/404/505/606, the held-out variants never drawn with one) -------------------------
    "cd56_dim_lot": Family(
        "tuning", "dim CD56 lot: CD56dim a narrow mode (450, log-sd 0.2) near the T cells' CD56 negative_max, "
                  "CD56bright 4000, 15% CD56- NK (often a separate mode below the dim one)",
        {"course": {"cd56neg_fraction": 0.15},
         "phenotype": {"marker_levels": {"CD56": {"dim": (450.0, 0.2), "bright": (4000.0, 0.3)}}}},
        (TUNING_SEED, SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3)),
    "cd28_dim_mode": Family(
        "tuning", "CD28+ a dim mode (~5x the negatives: 700, log-sd 0.35) close to the CD28- peak",
        {"phenotype": {"marker_levels": {"CD28": {"pos": (700.0, 0.35)}}}},
        (TUNING_SEED, SEEN_SEED, SEEN_SEED_2, SEEN_SEED_3)),
    "cd56_dim_lot_low_gain": Family(
        "held-out", "dim CD56 lot (dim 550, log-sd 0.25; bright 5000) with gains x0.7/x0.6 and 10% CD56- NK",
        {"instruments": _instruments(0.7, 0.6), "course": {"cd56neg_fraction": 0.1},
         "phenotype": {"marker_levels": {"CD56": {"dim": (550.0, 0.25), "bright": (5000.0, 0.3)}}}}, ()),
    "cd28_dim_mode_broad_negative": Family(
        "held-out", "CD28+ a dim mode (900, log-sd 0.4) over broad negatives (log-sd 0.55), gains x1.3/x0.8",
        {"instruments": _instruments(1.3, 0.8), "phenotype": {
            "marker_levels": {"CD28": {"pos": (900.0, 0.4)}}, "negative_spread": 0.55}}, ()),
    # --- scatter families: the Lymphocytes gate among heavy debris, monocytes, low-FSC lymphocytes -------
    "scatter_heavy_debris": Family(
        "tuning", "debris 45 % of events, larger (FSC 20k, log-sd 0.55) and reaching the lymphocytes; monocytes 15 %",
        {"event_mix": {"debris": 0.45, "monocytes": 0.15},
         "phenotype": {"cell_scatter": {"debris": (20000.0, 0.55, 9000.0, 0.65)}}}, (TUNING_SEED,)),
    "scatter_low_fsc_lymphocytes": Family(
        "tuning", "low-FSC, broader lymphocytes (FSC 38k, log-sd 0.13) over 30 % debris; monocytes 20 %, lower",
        {"event_mix": {"debris": 0.30, "monocytes": 0.20},
         "phenotype": {"cell_scatter": {"lymphocyte": (38000.0, 0.13, 12000.0, 0.2),
                                        "monocyte": (80000.0, 0.12, 35000.0, 0.22)}}}, (TUNING_SEED,)),
    "scatter_monocytes_near": Family(
        "held-out", "monocytes 25 % close to the lymphocytes (FSC 70k, SSC 28k, broad); debris 25 %, granulocytes 20 %",
        {"event_mix": {"debris": 0.25, "monocytes": 0.25, "granulocytes": 0.20},
         "phenotype": {"cell_scatter": {"lymphocyte": (50000.0, 0.11, 15000.0, 0.22),
                                        "monocyte": (70000.0, 0.13, 28000.0, 0.25)}}}, ()),
}


#: advanced HIV-1 disease as in the founding study's hard cases: CD4 20-150 cells/µL, CD8 expanded (CD4/CD8
#: 0.1-0.3), smaller IL-2 gains; the arms' gains are scaled down so that W74 stays low as well
def _advanced_hiv(cd4: float, cd8: float, gain_il2: float, gain_control: float) -> dict:
    return {"course": {"baseline_cd4_median": cd4, "baseline_cd4_log_sd": 0.35, "baseline_cd8_median": cd8,
                       "arms": {"IL-2": {"cd4_gain_median": gain_il2, "pct_reaching_80": 75.0},
                                "control": {"cd4_gain_median": gain_control, "pct_reaching_80": 40.0}}}}


#: few-event and low-CD4 families (split "untuned"): no rule or limit of the gating was chosen on them; run with
#: any seed (``--split untuned``), reported apart from the tuning and held-out groups
UNTUNED_FAMILIES: dict[str, Family] = {
    "advanced_hiv_low_cd4": Family(
        "untuned", "advanced HIV-1: CD4 median 80 cells/µL (log-sd 0.35), CD8 500 (CD4/CD8 ~0.16), "
                   "IL-2 gain 150 / control 30 by W74; 10,000 events per file (CD4 subsets from ~100-400 events)",
        _advanced_hiv(80.0, 500.0, 150.0, 30.0), (), events=10000),
    "advanced_hiv_very_low_cd4": Family(
        "untuned", "very advanced HIV-1: CD4 median 30 cells/µL, CD8 700 (CD4/CD8 ~0.04-0.1), IL-2 gain 60 / "
                   "control 12; 10,000 events (Treg and CD25+ from a few to a few dozen events)",
        _advanced_hiv(30.0, 700.0, 60.0, 12.0), (), events=10000),
    "low_event_files": Family(
        "untuned", "poor samples: 3,000 events per file, the reference's immunology",
        {}, (), events=3000),
    "advanced_hiv_low_events": Family(
        "untuned", "advanced HIV-1 (CD4 80, CD8 500) in 4,000-event files: CD4 ~40-150 events",
        _advanced_hiv(80.0, 500.0, 150.0, 30.0), (), events=4000),
}
FAMILIES.update(UNTUNED_FAMILIES)
#: the seeds an untuned family is drawn with by default (``--split untuned``): tuning seeds, already looked at
UNTUNED_SEEDS = (TUNING_SEED, SEEN_SEED, SEEN_SEED_2)


def f1(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _max_key(info: object, key: str) -> float:
    """Largest value of ``key`` anywhere in a nested fit-info dict (NaN if absent)."""
    if isinstance(info, dict):
        vals = [float(v) for k, v in info.items() if k == key and v is not None]
        vals += [_max_key(v, key) for v in info.values() if isinstance(v, dict)]
        vals = [v for v in vals if np.isfinite(v)]
        return max(vals) if vals else float("nan")
    return float("nan")


def run_family(name: str, seed: int, *, patients: int, events: int, root: Path,
               seen: set[str] | None = None) -> pd.DataFrame:
    """Simulate one family's trial with ``seed``, gate every file, compare with truth (one row per estimate).

    ``seen``: SHA-256 digests of files already gated (updated in place); a file with one of them is skipped
    (the same simulated file as another family's, see the module docstring). ``df.attrs["skipped"]`` counts
    the files skipped."""
    fam = FAMILIES[name]
    cfg = load_config(None, seed=seed, patients_per_arm=patients, visits=["W0", "W74"],
                      events=fam.events or events, **fam.overrides)
    trial = root / f"{name}_{seed}"
    simulate_trial(trial, cfg, force=True)
    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    strategies = {tube: load_strategy(tube) for tube in man.tube.unique()}
    rows, skipped = [], 0
    for r in man.itertuples():
        if seen is not None:
            digest = hashlib.sha256((trial / r.file).read_bytes()).hexdigest()
            if digest in seen:
                skipped += 1
                continue
            seen.add(digest)
        res = strategies[r.tube].apply(read_fcs(trial / r.file), qc=False)  # per-event truth: every event
        t = truth[truth.file == r.file].set_index("population")
        masks = truth_masks(trial, r.file)
        for p in res.populations.itertuples():
            if p.population not in t.index:
                continue
            rows.append({"family": name, "split": fam.split, "seed": seed, "file": r.file,
                         "instrument": r.instrument, "tube": r.tube, "population": p.population,
                         "truth_pct": float(t.loc[p.population, "pct_parent"]), "auto_pct": float(p.pct_parent),
                         "flag_words": p.flags if isinstance(p.flags, str) else "",
                         "review": bool(p.review),  # the table's own column: what users read as flagged
                         "sensitivity_pp": res.fits[p.population].info.get("sensitivity_pp", np.nan),
                         "est_error_pp": float(p.est_error_pp),
                         "count_sd_pp": float(getattr(p, "count_sd_pp", np.nan)),
                         "est_error_rel": _num(res.fits[p.population].info.get("est_error_rel")),
                         "edge_share": _num(res.fits[p.population].info.get("edge_share")),
                         "max_valley_ratio": _max_key(res.fits[p.population].info, "valley_ratio"),
                         "parent": p.parent, "count": int(p.count), "parent_count": int(p.parent_count),
                         **_error_parts(res.fits[p.population].info),
                         "f1": f1(res.masks[p.population], masks[p.population])
                         if p.population in F1_POPULATIONS else np.nan,
                         "fmo_pct": ideal_fmo_pct(res, p.population, masks)})
    df = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["auto_pct", "truth_pct", "flag_words", "review"])
    df["err"] = (df.auto_pct - df.truth_pct).abs()
    df["review"] = df["review"].astype(bool)
    df.attrs["skipped"] = skipped
    return df


def _error_parts(info: dict) -> dict[str, object]:
    """What ``est_error_pp`` was made of (``info["est_error_parts"]``, pp) and how the thresholds were placed."""
    parts = info.get("est_error_parts") or {}
    methods = sorted({str(v["method"]) for v in info.values() if isinstance(v, dict) and v.get("method")})
    keys = ("spread_pp", "second_gap_pp", "second_sd_pp", "n_second", "second_shift_pp", "set_aside", "set_apart_pp",
            "spread_lower_pp", "spread_upper_pp")
    return {**{k: _num(parts.get(k)) for k in keys},
            "valley_empty": _num(parts.get("valley_empty")), "parent_edge_pp": _num(info.get("parent_edge_pp")),
            "placement": "+".join(methods),
            "fit_detail": json.dumps(_compact({k: v for k, v in info.items() if k != "params"}))}


def _compact(v: object) -> object:
    """A fit-info value as plain JSON (floats rounded to 5 digits), for re-computing flag rules from ``--csv``."""
    if isinstance(v, dict):
        return {str(k): _compact(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_compact(x) for x in v]
    if isinstance(v, (bool, np.bool_)) or v is None:
        return None if v is None else bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return round(float(v), 5) if np.isfinite(v) else None
    return str(v)


def _num(v: object) -> float:
    """A fit-info number, NaN when not recorded."""
    return float(v) if isinstance(v, (int, float)) else float("nan")


#: an ideal FMO gate keeps this share (fraction) of the truly negative events below it
FMO_QUANTILE = 0.995


def ideal_fmo_pct(res: object, population: str, truth: dict[str, np.ndarray]) -> float:
    """% of the gated parent at or above the :data:`FMO_QUANTILE` quantile of the truly negative events (in
    the gated and the true parent, not in the population) on the population's marker (transformed scale):
    what a gate set on a perfect FMO control reports.
    NaN for populations that are not a one-marker ``+`` threshold."""
    fit = res.fits[population]  # type: ignore[attr-defined]
    info = fit.info
    parent = res.definition.population(population).parent  # type: ignore[attr-defined]
    if info.get("gate_method") != "threshold" or info.get("sign") != "+" or parent not in res.masks:  # type: ignore[attr-defined]
        return float("nan")
    gated = res.masks[parent]  # type: ignore[attr-defined]
    x = res.sample.column(fit.gate.dims[0])[gated]  # type: ignore[attr-defined]
    true_parent = truth.get(parent, np.ones_like(gated))
    neg = x[(true_parent & ~truth[population])[gated]]
    neg = neg[np.isfinite(neg)]
    if neg.size < 50:
        return float("nan")
    return float(100.0 * np.mean(x >= np.quantile(neg, FMO_QUANTILE)))


def static_template(trial: Path) -> pd.DataFrame:
    """Automated gates vs a *static template*: the gates fitted on the first file of each instrument x tube,
    exported to Gating-ML and applied unchanged to the other files (as a FlowJo template is).

    One row per (non-template file, population): |% of parent - truth| for both (pp)."""
    from cytokit.gating.export import xml_id
    from cytokit.panel import load_panel

    man = pd.read_csv(trial / "manifest.csv")
    truth = pd.read_csv(trial / "truth" / "populations.csv")
    templates: dict[tuple[str, str], object] = {}
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for r in man.itertuples():
        sample = read_fcs(trial / r.file)
        auto = load_strategy(r.tube).apply(sample, qc=False)
        key = (r.instrument, r.tube)
        if key not in templates:
            xml = tmp / f"template_{len(templates)}.xml"
            auto.to_gatingml(xml)
            templates[key] = load_strategy(xml)
            continue
        static = templates[key].apply(load_panel("il2_trial").resolve(sample, tube=r.tube), qc=False)
        masks = {name: static.masks.get(name, static.masks.get(xml_id(name))) for name in auto.masks}
        t = truth[truth.file == r.file].set_index("population")
        for p in auto.populations.itertuples():
            if p.population not in t.index or masks.get(p.population) is None:
                continue
            parent = t.loc[p.population, "parent"]
            parent_n = int(masks[parent].sum()) if isinstance(parent, str) and parent else sample.n_events
            s_pct = 100.0 * int(masks[p.population].sum()) / parent_n if parent_n else np.nan
            rows.append({"file": r.file, "population": p.population,
                         "auto_err": abs(p.pct_parent - t.loc[p.population, "pct_parent"]),
                         "static_err": abs(s_pct - t.loc[p.population, "pct_parent"])})
    return pd.DataFrame(rows)


def per_population(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("population", sort=False).agg(
        n=("err", "size"), median_pp=("err", "median"), p95_pp=("err", lambda x: np.quantile(x, 0.95)),
        max_pp=("err", "max"), f1_median=("f1", "median"), flagged=("review", "mean")).round(3)


def fmo_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per one-marker ``+`` population: |ideal FMO gate % - truth| (how far the label lies inside the
    negative peak) and |automated % - ideal FMO gate %| (pp): median, p95, max."""
    d = df[df.fmo_pct.notna()].assign(fmo_vs_truth=lambda t: (t.fmo_pct - t.truth_pct).abs(),
                                      auto_vs_fmo=lambda t: (t.auto_pct - t.fmo_pct).abs())
    q95 = ("p95", lambda x: np.quantile(x, 0.95))
    return d.groupby("population", sort=False)[["fmo_vs_truth", "auto_vs_fmo"]].agg(
        ["median", q95, "max"]).round(2)


#: populations whose error is split per family into truth-definition error and placement error
DECOMPOSED = ("CD25+ CD4",)


def fmo_decomposition(df: pd.DataFrame, population: str, by: str = "family") -> pd.DataFrame:
    """One population's error split per group (``by``), pp: ``err`` = |automated % - truth|; ``fmo_vs_truth``
    = |ideal FMO gate % - truth| (the truth-definition error: what the simulator labels positive inside the
    negative peak, no gate can count); ``auto_vs_fmo`` = |automated % - ideal FMO gate %| (the placement
    error: how far our gate is from a gate set on a perfect FMO control); median and p95 of each."""
    d = df[(df.population == population) & df.fmo_pct.notna()]
    if d.empty:
        return pd.DataFrame()
    d = d.assign(fmo_vs_truth=(d.fmo_pct - d.truth_pct).abs(), auto_vs_fmo=(d.auto_pct - d.fmo_pct).abs())
    q95 = ("p95", lambda x: np.quantile(x, 0.95))
    t = d.groupby(by, sort=False)[["err", "fmo_vs_truth", "auto_vs_fmo"]].agg(["median", q95]).round(2)
    t.insert(0, ("n", ""), d.groupby(by, sort=False).size())
    return t


#: columns of :func:`flags_against_fmo`
FMO_FLAG_COLUMNS = ["population", "estimates", "flagged", "flagged_within_1pp", "flagged_within_1pp_of_fmo",
                    "gt_2pp", "gt_2pp_caught", "fmo_off_gt_2pp", "fmo_off_caught", "placement_gt_2pp",
                    "placement_caught"]


def flags_against_fmo(df: pd.DataFrame) -> pd.DataFrame:
    """The review flags of the one-marker ``+`` populations read against the truth and against the ideal FMO gate
    (``fmo_pct``, :func:`ideal_fmo_pct`: a gate on a perfect FMO control, applied to the same gated parent), per
    population and over all of them (``population`` "all"); counts of estimates, errors in pp of % of parent.
    ``flagged_within_1pp``: flagged and within 1 pp of the truth (the issue's precision measure);
    ``flagged_within_1pp_of_fmo``: flagged and within 1 pp of the FMO gate (placed as well as that gate);
    ``gt_2pp`` / ``gt_2pp_caught``: > 2 pp off the truth / of them flagged; ``fmo_off_gt_2pp`` / ``fmo_off_caught``:
    of those, the ones whose FMO gate is itself > 2 pp from the truth -- not this gate's placement: the truth labels
    events inside the negative peak (CD25+ CD4 on the simulator), or the gated parent holds other events (the rows
    below a scatter gate) -- / of them flagged; ``placement_gt_2pp`` / ``placement_caught``: estimates > 2 pp from
    the FMO gate (this gate's own placement error) / of them flagged. A review flag is read from where the gate
    could lie: the placement columns are what it can see."""
    d = df[df.fmo_pct.notna()] if "fmo_pct" in df else df.iloc[0:0]
    rows = []
    for pop, sub in [*d.groupby("population", sort=False), ("all", d)]:
        if sub.empty:
            continue
        flagged = sub.review.astype(bool)
        off = sub.err > 2
        fmo_off = off & ((sub.fmo_pct - sub.truth_pct).abs() > 2)
        placement = (sub.auto_pct - sub.fmo_pct).abs() > 2
        rows.append((pop, len(sub), int(flagged.sum()), int((flagged & (sub.err <= 1)).sum()),
                     int((flagged & ((sub.auto_pct - sub.fmo_pct).abs() <= 1)).sum()), int(off.sum()),
                     int((off & flagged).sum()), int(fmo_off.sum()), int((fmo_off & flagged).sum()),
                     int(placement.sum()), int((placement & flagged).sum())))
    return pd.DataFrame(rows, columns=FMO_FLAG_COLUMNS)


def calibration(df: pd.DataFrame) -> dict[str, float]:
    """Flag recall on estimates > 2 pp off, the share of flagged estimates that were within 1 pp and
    precision = the share of flagged estimates more than 1 pp off (1 - that share)."""
    bad = df.err > 2
    flagged = df.review
    within = float((df.err[flagged] <= 1).mean()) if flagged.any() else 0.0
    return {"estimates": int(len(df)), "off_gt_2pp": int(bad.sum()), "flagged": int(flagged.sum()),
            "caught_gt_2pp": int((flagged & bad).sum()),
            "recall_gt_2pp": round(float(flagged[bad].mean()), 3) if bad.any() else float("nan"),
            "flagged_within_1pp": round(within, 3),
            "precision_gt_1pp": round(1.0 - within, 3) if flagged.any() else float("nan"),
            "unflagged_median_pp": round(float(df.err[~flagged].median()), 3),
            "unflagged_p95_pp": round(float(np.quantile(df.err[~flagged], 0.95)), 3)}


#: bands of ``est_error_pp`` (pp) in which the observed error is reported (the meaning of the number)
EST_BANDS = (0.0, 0.5, 1.5, 3.0, 10.0, np.inf)


def est_error_bands(df: pd.DataFrame) -> pd.DataFrame:
    """Observed |% of parent - truth| per band of the estimated error ``est_error_pp`` ("not measured":
    scatter/fixed gates): how many estimates, median and 90th percentile of the error, share > 2 pp and
    share within 1 pp. A calibrated estimate has errors that grow with the band."""
    labels = [f"{lo:g}-{hi:g} pp" if np.isfinite(hi) else f"> {lo:g} pp" for lo, hi in zip(EST_BANDS, EST_BANDS[1:])]
    band = pd.cut(df.est_error_pp, EST_BANDS, labels=labels, include_lowest=True).astype(object)
    band = band.where(df.est_error_pp.notna(), "not measured")
    out = df.groupby(band.rename("est_error_pp"))["err"].agg(
        n="size", median_pp="median", p90_pp=lambda x: np.quantile(x, 0.9),
        share_gt_2pp=lambda x: (x > 2).mean(), share_le_1pp=lambda x: (x <= 1).mean())
    return out.reindex([b for b in [*labels, "not measured"] if b in out.index]).round(3)


def limit_tradeoff(df: pd.DataFrame, limits: tuple[float, ...] = (0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
                   ) -> list[tuple[float, float, float, int]]:
    """(limit, recall on > 2 pp, share of flagged within 1 pp, flagged) if ``uncertain`` meant
    ``est_error_pp > limit``: the trade-off the shipped limit (UNCERTAIN_PP) was chosen from."""
    words = df["flag_words"].str.split(";").map(lambda ws: [w for w in ws if w.split(":")[-1] != "uncertain"])
    other = words.map(needs_review)
    bad = df.err > 2
    out = []
    for lim in limits:
        f = other | (df.est_error_pp > lim)
        out.append((lim, float(f[bad].mean()) if bad.any() else float("nan"),
                    float((df.err[f] <= 1).mean()) if f.any() else 0.0, int(f.sum())))
    return out


def flag_table(df: pd.DataFrame) -> pd.DataFrame:
    """How often each flag word fires and how far off its estimates were (for choosing review flags)."""
    rows = []
    words = df["flag_words"].str.split(";").explode()
    words = words[words.astype(bool)].str.split(":").str[-1]
    for w in sorted(words.unique()):
        hit = df.loc[sorted(set(words.index[words == w]))]
        rows.append({"flag": w, "review": w in REVIEW_FLAGS, "n": len(hit), "n_gt_2pp": int((hit.err > 2).sum()),
                     "n_le_1pp": int((hit.err <= 1).sum()), "share_gt_2pp": round(float((hit.err > 2).mean()), 3),
                     "share_le_1pp": round(float((hit.err <= 1).mean()), 3)})
    return pd.DataFrame(rows)


def _review_words(flags: str) -> list[str]:
    """The review flag words of a ``;``-joined flags string, without marker/side prefixes."""
    return sorted({w.split(":")[-1] for w in flags.split(";") if w and w.split(":")[-1] in REVIEW_FLAGS})


def uncertain_driver(df: pd.DataFrame) -> pd.Series:
    """What an estimate's ``est_error_pp`` rests on (columns of :func:`_error_parts`): ``second disagrees``
    (a second estimate more than DISAGREEMENT_SDS of its SDs away), ``second agrees``, ``spread only`` (no
    second estimate), ``spread (count set aside)`` (:data:`~cytokit.gating.methods.confidence.MISFIT_SDS`),
    ``not measured``."""
    from cytokit.gating.methods.confidence import DISAGREEMENT_SDS

    has = df.get("n_second", pd.Series(np.nan, index=df.index)).fillna(0) > 0
    far = df.get("second_gap_pp", 0.0) > DISAGREEMENT_SDS * df.get("second_sd_pp", 0.0)
    aside = df.get("set_aside", pd.Series(np.nan, index=df.index)).fillna(0) > 0
    out = np.where(aside, "spread (count set aside)", np.where(
        has & far, "second disagrees", np.where(has, "second agrees", "spread only")))
    return pd.Series(out, index=df.index).where(df.est_error_pp.notna(), "not measured")


def _count_sd(df: pd.DataFrame) -> pd.Series:
    """The rows' counting SD of % of parent (pp): the ``count_sd_pp`` column, or computed from ``count`` and
    ``parent_count`` (:func:`cytokit.gating.count_error.count_sd_pp`) for tables written without it."""
    from cytokit.gating.count_error import count_sd_pp

    if "count_sd_pp" in df and df.count_sd_pp.notna().any():
        return df.count_sd_pp
    if {"count", "parent_count"} <= set(df.columns):
        return pd.Series([count_sd_pp(int(c), int(n)) for c, n in zip(df["count"], df.parent_count)], index=df.index,
                         dtype=float)
    return pd.Series(np.nan, index=df.index)


def _median(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.median()) if len(x) else float("nan")


def _group_row(by: str, group: str, hit: pd.DataFrame, sd: pd.Series, only_catch: float = np.nan) -> tuple:
    err, est = hit.err, hit.est_error_pp
    return (by, group, len(hit), int((err <= 1).sum()), int(((err > 1) & (err <= 2)).sum()), int((err > 2).sum()),
            only_catch, float((err <= 1).mean()), _median(est), _median(est[err <= 1]), _median(est[err > 2]),
            _median(sd.loc[hit.index]))


#: columns of :func:`flag_breakdown`
BREAKDOWN_COLUMNS = ["by", "group", "flagged", "n_within_1pp", "n_1_2pp", "gt_2pp", "only_catch", "within_1pp",
                     "est_error_pp_median", "est_error_pp_median_within_1pp", "est_error_pp_median_gt_2pp",
                     "count_sd_pp_median"]


def flag_breakdown(df: pd.DataFrame) -> pd.DataFrame:
    """The flagged estimates broken down (one row per group): ``all review`` (every flagged estimate), by review
    flag word, by what ``uncertain`` rested on (:func:`uncertain_driver`), by how the thresholds were placed
    (``placement``: valley, tail, excess, or none measured), by population and by scenario family. Columns:
    ``flagged`` (estimates with it), how far they were off -- ``n_within_1pp`` (<= 1 pp: the precision cost),
    ``n_1_2pp`` (1-2 pp), ``gt_2pp`` (> 2 pp: recall contribution) --, ``only_catch`` (> 2 pp off and caught by
    nothing else of the group kind: recall lost without it; for words only), ``within_1pp`` (share <= 1 pp), and
    what they carried: median ``est_error_pp`` (all of them, those within 1 pp, those > 2 pp off; pp of % of
    parent) and median counting SD ``count_sd_pp`` (pp). The one breakdown both benchmarks print
    (``gating_accuracy.py`` per split, ``independent_lab.py`` per lab and seed)."""
    flagged = df[df.review]
    sd = _count_sd(flagged)
    words = flagged.flag_words.map(_review_words)
    drv = uncertain_driver(flagged)
    rows = [_group_row("all review", "any review word", flagged, sd)]
    for w in sorted({x for ws in words for x in ws}):
        hit = flagged[words.map(lambda ws: w in ws)]
        only = flagged[words.map(lambda ws: ws == [w])]
        rows.append(_group_row("word", w, hit, sd, int((only.err > 2).sum())))
    unc = words.map(lambda ws: "uncertain" in ws)
    for d in sorted(drv[unc].unique()):
        rows.append(_group_row("uncertain rests on", d, flagged[unc & (drv == d)], sd))
    placement = flagged.get("placement", pd.Series("", index=flagged.index)).fillna("").replace("", "none measured")
    keys = [("placement", placement), ("population", flagged.population)]
    keys += [("family", flagged.family)] if "family" in flagged else []
    for by, key in keys:
        for group, hit in flagged.groupby(key, sort=False):
            rows.append(_group_row(by, str(group), hit, sd))
    out = pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)
    order = {"all review": -1, "word": 0, "uncertain rests on": 1, "placement": 2, "population": 3, "family": 4}
    return out.sort_values(["by", "flagged"], key=lambda c: c.map(order) if c.name == "by" else c,
                           ascending=[True, False]).round(3)


#: bands of the parent's event count in which the untuned families' error is reported
PARENT_EVENT_BANDS = (0, 50, 100, 200, 500, 1000, 2500, np.inf)


def by_parent_events(df: pd.DataFrame) -> pd.DataFrame:
    """|% of parent - truth| per band of the parent's event count: estimates, median / p95 / max (pp), share
    flagged for review, recall on estimates > 2 pp off, share of flagged within 1 pp, and the median binomial
    SD of the % (``count_sd_pp``, :mod:`cytokit.gating.count_error`) -- what another tube of the same blood would
    differ by even with perfect gates; the simulator's truth is each file's own labels, so that noise is not in
    ``err``."""
    labels = [f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
              for lo, hi in zip(PARENT_EVENT_BANDS, PARENT_EVENT_BANDS[1:])]
    band = pd.cut(df.parent_count, PARENT_EVENT_BANDS, labels=labels, right=False).astype(object)
    d = df.assign(band=band, count_sd=df.count_sd_pp, bad=df.err > 2, ok=df.err <= 1)
    rows = []
    for b in labels:
        g = d[d.band == b]
        if g.empty:
            continue
        rows.append({"parent_events": b, "n": len(g), "median_pp": g.err.median(),
                     "p95_pp": float(np.quantile(g.err, 0.95)), "max_pp": g.err.max(), "flagged": g.review.mean(),
                     "n_gt_2pp": int(g.bad.sum()),
                     "recall_gt_2pp": g.review[g.bad].mean() if g.bad.any() else np.nan,
                     "flagged_within_1pp": g.ok[g.review].mean() if g.review.any() else np.nan,
                     "count_sd_pp_median": g.count_sd.median()})
    return pd.DataFrame(rows).set_index("parent_events").round(3)


def any_word_calibration(df: pd.DataFrame) -> dict[str, float]:
    """:func:`calibration` if a non-empty ``flags`` (any word, placement notes included) counted as flagged
    instead of the ``review`` column, and the rows that differ: notes without a review flag."""
    any_word = df["flag_words"].fillna("").astype(str).ne("")
    c = calibration(df.assign(review=any_word))
    notes_only = any_word & ~df.review
    return {**c, "notes_only": int(notes_only.sum()), "notes_only_within_1pp": int((df.err[notes_only] <= 1).sum()),
            "notes_only_gt_2pp": int((df.err[notes_only] > 2).sum())}


def report(df: pd.DataFrame, title: str, *, flag_words: bool = True) -> None:
    if df.empty:
        return
    n_files = df.groupby(["family", "seed", "file"]).ngroups
    print(f"\n=== {title}: {n_files} files in {df.family.nunique()} families, {len(df)} estimates ===")
    print(per_population(df).to_string())
    if "fmo_pct" in df and df.fmo_pct.notna().any():
        print(f"ideal FMO gate ({100 * FMO_QUANTILE:g}th percentile of the truly negative events), pp:\n"
              + fmo_table(df).to_string())
        for pop in DECOMPOSED:
            dec = fmo_decomposition(df, pop)
            if not dec.empty:
                print(f"{pop} per family: err = |ours - truth|, fmo_vs_truth = |ideal FMO - truth| (truth "
                      f"definition), auto_vs_fmo = |ours - ideal FMO| (placement), pp:\n" + dec.to_string())
        print("review flags of the one-marker + gates against the truth and the ideal FMO gate (fmo_off: > 2 pp off "
              "with the FMO gate itself > 2 pp from the truth; placement: > 2 pp from the FMO gate):\n"
              + flags_against_fmo(df).to_string(index=False))
    for fam, sub in df.groupby("family", sort=False):
        worst = per_population(sub).sort_values("p95_pp").iloc[-1]
        print(f"  {fam:30s} median {sub.err.median():.2f} pp, p95 {np.quantile(sub.err, 0.95):.2f} pp; "
              f"worst p95 {worst.name} {worst.p95_pp:.2f} pp (median {worst.median_pp:.2f})")
    c = calibration(df)
    print(f"flags: recall on estimates > 2 pp off {c['recall_gt_2pp']:.3f} ({c['caught_gt_2pp']} of "
          f"{c['off_gt_2pp']}; target >= 0.90); precision {c['precision_gt_1pp']:.3f} = flagged estimates "
          f"> 1 pp off; flagged within 1 pp {c['flagged_within_1pp']:.3f} of {c['flagged']} flagged "
          f"(target <= 0.10); unflagged estimates: median {c['unflagged_median_pp']:.2f} pp, "
          f"p95 {c['unflagged_p95_pp']:.2f} pp")
    a = any_word_calibration(df)
    print(f"if 'flagged' were read as 'any flag word' (flags non-empty, notes included; not the review column): "
          f"recall {a['recall_gt_2pp']:.3f} ({a['caught_gt_2pp']} of {a['off_gt_2pp']}); flagged within 1 pp "
          f"{a['flagged_within_1pp']:.3f} of {a['flagged']}; rows with notes but no review flag "
          f"{a['notes_only']}, of them within 1 pp {a['notes_only_within_1pp']}, > 2 pp off {a['notes_only_gt_2pp']}")
    print("observed error per band of est_error_pp:\n" + est_error_bands(df).to_string())
    print("if 'uncertain' were est_error_pp > L (other review flags unchanged): " + "; ".join(
        f"L={lim:g}: recall {r:.2f}, within 1 pp {w:.2f} of {n}" for lim, r, w, n in limit_tradeoff(df)))
    if flag_words:
        print("flag words:\n" + flag_table(df).to_string(index=False))
        if df.review.any():
            print("flagged estimates broken down (n_within_1pp / n_1_2pp / gt_2pp: how far off; only_catch: > 2 pp "
                  "off and caught by no other review word; est_error_pp / count_sd_pp: medians they carried, pp):\n"
                  + flag_breakdown(df).to_string(index=False))


def mouse_f1(shared: Path) -> dict[str, float]:
    base = shared / "flowsom_68983"
    if not (base / "68983.fcs").exists():
        return {}
    res = load_strategy("mouse_lymphocytes").apply(read_fcs(base / "68983.fcs"), qc=False)
    lab = pd.read_csv(base / "gatingResult.csv", header=None).iloc[:, 0].to_numpy()
    expert = {"T cells": np.isin(lab, ["CD4 T cells", "CD8 T cells", "gd T cells"]), "CD4 T": lab == "CD4 T cells",
              "CD8 T": lab == "CD8 T cells", "B cells": lab == "B cells", "NK cells": lab == "NK cells",
              "gd T": lab == "gd T cells", "NKT cells": lab == "NK T cells"}
    return {k: round(f1(res.masks[k], v), 4) for k, v in expert.items() if k in res.masks}


def speed(n_events: int = 1_000_000, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` wall time to read + gate one file (automated tmem strategy: fit + evaluate)
    and for FlowKit to read the same file and evaluate the same (exported, static) gates, interleaved in
    this process so machine load affects both alike."""
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "big_tmem.fcs"
    simulate_file(path, n_events=n_events, tube="tmem", instrument="bd", seed=5)
    strategy = load_strategy("tmem")
    result = strategy.apply(read_fcs(path), qc=False)  # warm-up (imports); gates only, as FlowKit below
    xml = tmp / "gates.xml"
    result.to_gatingml(xml)
    ours, theirs = [], []
    out: dict = {"events": n_events}
    try:
        import flowkit as fk

        gs = fk.parse_gating_xml(str(xml))
    except Exception as exc:  # FlowKit is only the reference here: report, don't fail
        gs, out["flowkit_error"] = None, f"{type(exc).__name__}: {exc}"[:200]
    for _ in range(repeats):
        t0 = time.perf_counter()
        strategy.apply(read_fcs(path), qc=False)
        ours.append(time.perf_counter() - t0)
        if gs is not None:
            t0 = time.perf_counter()
            gs.gate_sample(fk.Sample(str(path)))
            theirs.append(time.perf_counter() - t0)
    out["cytokit_read_fit_and_gate_s"] = round(min(ours), 3)
    if theirs:
        out["flowkit_read_and_static_gates_s"] = round(min(theirs), 3)
        out["speedup"] = round(min(theirs) / min(ours), 2)
    return out


def planned_runs(families: list[str], split: str, held_out_seed: int,
                 untuned_seeds: list[int]) -> list[tuple[str, int, str]]:
    """(family, seed, group) of every draw: tuning families with their ``tuning_seeds`` (group ``tuning``) and
    every tuning/held-out family with ``held_out_seed`` (group ``held-out``); the untuned families only in
    their own group ``untuned`` -- with ``untuned_seeds``, or with ``held_out_seed`` under ``--split held-out``
    -- so that they never enter the tuning or held-out statistics."""
    runs = []
    for name in families:
        if FAMILIES[name].split == "untuned":  # reported apart, whatever the seed
            seeds = [held_out_seed] if split == "held-out" else untuned_seeds if split in ("all", "untuned") else []
            runs.extend((name, seed, "untuned") for seed in seeds)
            continue
        if split in ("all", "tuning"):
            runs.extend((name, seed, "tuning") for seed in FAMILIES[name].tuning_seeds)
        if split in ("all", "held-out"):
            # held-out: every family re-drawn with a seed no rule was chosen on (held-out families only so)
            runs.append((name, held_out_seed, "held-out"))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("all", "tuning", "held-out", "untuned"), default="all",
                    help="untuned: only the untuned families (few events, low CD4), with --untuned-seeds")
    ap.add_argument("--untuned-seeds", default=",".join(map(str, UNTUNED_SEEDS)),
                    help="seeds the untuned families are drawn with (with --split all/untuned; --split held-out "
                         "draws them with --held-out-seed)")
    ap.add_argument("--families", default="", help="comma-separated family names (default: all of the split)")
    ap.add_argument("--patients", type=int, default=2, help="patients per arm")
    ap.add_argument("--events", type=int, default=20000, help="events per file")
    ap.add_argument("--held-out-seed", type=int, default=HELD_OUT_SEED)
    ap.add_argument("--csv", type=Path, default=None, help="write every (file, population) estimate here")
    ap.add_argument("--flag-table", action="store_true",
                    help="(always printed now: how each flag word relates to the error; kept for old command lines)")
    ap.add_argument("--static", action="store_true",
                    help="also compare with a static Gating-ML template on the reference family (held-out seed)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args(argv)
    if args.speed_only:
        print("speed (1M-event tmem file, read + gate):", json.dumps(speed()))
        return 0
    chosen = [f for f in args.families.split(",") if f] or list(FAMILIES)
    unknown = set(chosen) - set(FAMILIES)
    if unknown:
        ap.error(f"unknown families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    runs = planned_runs(chosen, args.split, args.held_out_seed,
                        [int(x) for x in args.untuned_seeds.split(",") if x])
    root = Path(tempfile.mkdtemp(prefix="gating_accuracy_"))
    atexit.register(shutil.rmtree, root, True)  # the simulated draws (0.3-1 GB each) go when the run ends
    t0 = time.perf_counter()
    frames = []
    distinct: dict[str, set[str]] = {}  # group -> digests of the files gated (each distinct file counted once)
    for name, seed, group in runs:
        df = run_family(name, seed, patients=args.patients, events=args.events, root=root,
                        seen=distinct.setdefault(group, set()))
        skipped = df.attrs["skipped"]
        df["group"] = group
        frames.append(df)
        dup = f", {skipped} files skipped (already gated)" if skipped else ""
        if df.empty:
            print(f"  {group:8s} {name:30s} seed {seed}: no distinct files{dup}", flush=True)
            continue
        print(f"  {group:8s} {name:30s} seed {seed}: median {df.err.median():.2f} pp, "
              f"p95 {np.quantile(df.err, 0.95):.2f} pp, max {df.err.max():.2f} pp{dup} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.concat(frames, ignore_index=True)
    if args.csv:
        df.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    for group in ("tuning", "held-out"):
        report(df[df.group == group], f"{group} scenarios", flag_words=True)
    untuned = df[df.group == "untuned"]
    if not untuned.empty:
        seeds = ", ".join(map(str, sorted(untuned.seed.unique())))
        report(untuned, f"untuned families (few events, low CD4; seeds {seeds})", flag_words=True)
        print("by parent events (|% of parent - truth|, pp; the truth is the file's own labels: counting noise "
              "of the % is not in err):\n" + by_parent_events(untuned).to_string())
    held = df[df.group == "held-out"]
    if not held.empty:
        report(held[held.split == "held-out"], "held-out families only", flag_words=True)
    if args.static:
        trial = root / f"reference_{args.held_out_seed}"
        if not (trial / "manifest.csv").exists():
            run_family("reference", args.held_out_seed, patients=args.patients, events=args.events, root=root)
        st = static_template(trial)
        print("\nstatic template vs automated (reference family, non-template files), |% parent - truth| pp:")
        print(st.groupby("population", sort=False)[["auto_err", "static_err"]].agg(["median", "max"]).round(2)
              .to_string())
        print(f"overall: automated median {st.auto_err.median():.2f} / p95 {np.quantile(st.auto_err, 0.95):.2f}; "
              f"static median {st.static_err.median():.2f} / p95 {np.nanquantile(st.static_err, 0.95):.2f}")
    shared = Path(os.environ.get("CYTOKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    mf = mouse_f1(shared)
    print("\nflowsom_68983 mouse strategy F1 vs expert labels:", json.dumps(mf))
    if not args.no_speed:
        print("\nspeed (1M-event tmem file, read + gate):", json.dumps(speed()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
