"""Valley thresholds whose smoothing refit below them was dropped from ``est_error_pp`` (docs/gating.md, "The silent
CD25+ CD4 rows: a valley inside a sparse plateau of dim positives, capped as empty").

Offline, from the CSVs that ``gating_accuracy.py --csv`` and ``independent_lab.py --csv`` write (their
``fit_detail`` JSON and ``est_error_parts``): which rows with no review word a candidate rule would flag, and
what that gains (rows > 2 pp off now flagged) and costs (flagged rows within 1 pp), per CSV. Rules, all on a
one-marker valley threshold noted ``unstable`` whose lower refit moves the row by ``spread_lower_pp`` > 1 pp
(:data:`SPREAD_LOWER_PP`, the ``uncertain`` limit):

* ``A``: as such (the refit's move read into ``est_error_pp`` whatever capped it);
* ``B``: and the valley above the negative reference's ``negative_max`` (marker scale, logicle 0..1);
* ``D``: B, with the lower refit within :data:`REFIT_HALF_SDS` half-SDs of ``negative_max`` and a floor ratio
  (:func:`recorded_floor_ratio`) of at most :data:`FLOOR_RATIO_MAX`.

Rules on any one-marker valley above ``negative_max``, ``unstable`` or not (docs/gating.md, "The silent CD25+ CD4
rows without an `unstable` note"), reading :func:`move_to_negative_max` (the ±0.02 move carried down to
``negative_max``, pp of parent) against the same 1 pp:

* ``N``: that move > :data:`SPREAD_LOWER_PP`;
* ``NC``: N, with the negative model's count within :data:`COUNT_SDS_MAX` of its SDs of the threshold (either side);
* ``NCH``: NC, with the valley at least :data:`ABOVE_HALF_SDS` half-SDs above ``negative_max``.

Rule B is the library's since (``confidence.ThresholdUncertainty.unstable_above_negatives``): on CSVs written
after it, the rows it selects are already flagged (``uncertain``) and count as ``current``.

On events (a regenerated file), :func:`floor_ratio` and :func:`mirrored_negative_edge` measure what the recorded
numbers only approximate. Simulator CSVs are read for their held-out families only (``group == "held-out"``), as
``gating_accuracy.py`` reports them.

    .venv/bin/python benchmarks/unstable_valley.py /tmp/final/d6/sim2222.csv /tmp/final/d6/labA14140.csv
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

#: a rule selects a refit below the valley that moves the row by more than this (pp of parent): UNCERTAIN_PP
SPREAD_LOWER_PP = 1.0
#: rule D: the lower refit lies within this many half-SDs of the negative reference's ``negative_max``
REFIT_HALF_SDS = 0.7
#: rule D: at most this floor ratio (1 = as many events per unit between the refit and the valley as at the valley)
FLOOR_RATIO_MAX = 2.5
#: the move that ``sensitivity_pp`` records (marker scale), ``confidence.SHIFT``
SHIFT = 0.02
#: rules NC/NCH: the count lies within this many of its (counting) SDs of the threshold, on either side
COUNT_SDS_MAX = 4.0
#: rule NCH: the valley lies at least this many half-SDs of the reference's peak above its ``negative_max``
ABOVE_HALF_SDS = 1.0


def valley_features(fit_detail: object) -> dict[str, float | str | None]:
    """The one-marker threshold fit of a row's ``fit_detail`` JSON: ``method``, ``threshold``, ``low_refit`` (the
    lowest smoothing refit below the threshold, NaN without one), ``negative_max`` and ``half_sd`` of the negative
    reference (marker scale), ``spread_lower_pp`` (pp of parent) and ``count_sds`` (how far the negative model's
    count moves the row, signed, in its counting SDs: > 0 more positives; NaN without a count). Empty values
    (method None, NaN numbers) for a row with no such fit or with a fit on more than one marker."""
    try:
        fd = json.loads(fit_detail) if isinstance(fit_detail, str) else {}
    except ValueError:
        fd = {}
    parts = fd.get("est_error_parts") or {}
    fits = [v for v in fd.values() if isinstance(v, dict) and "method" in v]
    fit: dict[str, Any] = fits[0] if len(fits) == 1 else {}
    ref = fit.get("negative_reference") or {}
    thr = fit.get("threshold")
    below = [float(a) for a in fit.get("stability_thresholds") or () if a is not None and thr is not None and a < thr]
    sd = float(parts.get("second_sd_pp", 0.0) or 0.0) if fit else 0.0
    count_sds = float(parts["second_shift_pp"]) / sd if parts.get("n_second") and sd > 0 else np.nan
    return {"method": fit.get("method"), "threshold": float(thr) if thr is not None else np.nan,
            "low_refit": min(below, default=np.nan), "negative_max": float(ref.get("negative_max", np.nan)),
            "half_sd": float(ref.get("half_sd", np.nan)),
            "spread_lower_pp": float(parts.get("spread_lower_pp", np.nan)), "count_sds": count_sds}


def recorded_floor_ratio(spread_lower_pp: float, threshold: float, low_refit: float, sensitivity_pp: float) -> float:
    """The refit's move per unit of marker scale over the ±:data:`SHIFT` move's (both pp of parent per unit):
    ~1 when the events between the refit and the valley are as sparse as at the valley (a plateau), large when
    the refit reached a dense edge from an empty valley. NaN when either move or distance is not positive."""
    dist = threshold - low_refit
    if not (dist > 0 and sensitivity_pp > 0):
        return float("nan")
    return (spread_lower_pp / dist) / (sensitivity_pp / SHIFT)


def move_to_negative_max(sensitivity_pp: float, threshold: float, negative_max: float) -> float:
    """The events between the negative reference's ``negative_max`` and a threshold above it, read at the density
    at the cut (pp of parent): the ±:data:`SHIFT` move (``sensitivity_pp``) times the distance (marker scale) over
    :data:`SHIFT`; 0 for a threshold at or below ``negative_max``, NaN where a number is missing. On a plateau of dim
    positives starting where the reference's negatives end it approximates the move of the threshold down to
    ``negative_max``."""
    if not (np.isfinite(sensitivity_pp) and np.isfinite(threshold) and np.isfinite(negative_max)):
        return float("nan")
    return float(sensitivity_pp) * max(0.0, float(threshold) - float(negative_max)) / SHIFT


def floor_ratio(x: np.ndarray, threshold: float, refit: float, shift: float = SHIFT) -> float:
    """On events (marker scale): the share of ``x`` per unit between ``refit`` and ``threshold`` over the share
    per unit within ±``shift`` of ``threshold``. NaN when ``refit`` is not below ``threshold`` or no event lies
    within ±``shift``."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not refit < threshold or x.size == 0:
        return float("nan")
    local = np.mean(np.abs(x - threshold) <= shift) / (2 * shift)
    if local == 0:
        return float("nan")
    return float(np.mean((x >= refit) & (x < threshold)) / (threshold - refit) / local)


def mirrored_negative_edge(x: np.ndarray, mode: float, quantile: float = 0.995) -> float:
    """Where a population's own negatives end (marker scale): the ``quantile`` of the events below ``mode``
    mirrored about it (``mode + (mode - x)``), so the positives above the mode do not enter it. NaN without
    events below the mode."""
    x = np.asarray(x, dtype=float)
    below = x[np.isfinite(x) & (x <= mode)]
    if below.size == 0:
        return float("nan")
    return float(np.quantile(np.concatenate([below, 2 * mode - below]), quantile))


def load(path: Path) -> pd.DataFrame:
    """A benchmark CSV's rows with an error (``err``, pp), ``review`` as bool, ``notes`` (the flag words) and the
    columns of :func:`valley_features` (in place of the CSV's own of those names); a simulator CSV's held-out
    families only."""
    df = pd.read_csv(path, low_memory=False).dropna(subset=["err"])
    if "group" in df:
        df = df[df.group == "held-out"]
    df = df.copy()
    df["review"] = df.review.astype(str).str.lower().eq("true")
    df["notes"] = df.flag_words.fillna("") if "flag_words" in df else ""
    feats = pd.DataFrame([valley_features(v) for v in df.fit_detail], index=df.index)
    return pd.concat([df.drop(columns=[c for c in feats.columns if c in df]), feats], axis=1)


def _unstable_valley(df: pd.DataFrame) -> pd.Series:
    words = df.notes.astype(str).str.split(";")
    return ((df.method == "valley") & words.apply(lambda w: "unstable" in w) & (df.spread_lower_pp > SPREAD_LOWER_PP))


def _above(df: pd.DataFrame) -> pd.Series:
    return _unstable_valley(df) & (df.threshold > df.negative_max)


def _at_edge(df: pd.DataFrame) -> pd.Series:
    ratio = pd.Series([recorded_floor_ratio(r.spread_lower_pp, r.threshold, r.low_refit, r.sensitivity_pp)
                       for r in df.itertuples()], index=df.index, dtype=float)
    near = (df.low_refit - df.negative_max).abs() <= REFIT_HALF_SDS * df.half_sd
    return _above(df) & near & (ratio <= FLOOR_RATIO_MAX)


def _negative_max_move(df: pd.DataFrame) -> pd.Series:
    move = pd.Series([move_to_negative_max(r.sensitivity_pp, r.threshold, r.negative_max) for r in df.itertuples()],
                     index=df.index, dtype=float)
    return (df.method == "valley") & (move > SPREAD_LOWER_PP)


def _count_fits(df: pd.DataFrame) -> pd.Series:
    return _negative_max_move(df) & (df.count_sds.abs() < COUNT_SDS_MAX)


def _well_above(df: pd.DataFrame) -> pd.Series:
    return _count_fits(df) & (df.threshold - df.negative_max >= ABOVE_HALF_SDS * df.half_sd)


RULES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {"A": _unstable_valley, "B": _above, "D": _at_edge,
                                                         "N": _negative_max_move, "NC": _count_fits,
                                                         "NCH": _well_above}


def outcome(df: pd.DataFrame, flagged: pd.Series) -> dict[str, int]:
    """Rows > 2 pp off (``gt2``) and how many of them ``flagged`` holds (``caught``); flagged rows and those within
    1 pp."""
    off = df.err > 2
    return {"caught": int((off & flagged).sum()), "gt2": int(off.sum()), "flagged": int(flagged.sum()),
            "within_1pp": int((flagged & (df.err <= 1)).sum())}


def rule_table(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """:func:`outcome` of the current review flags (``current``) and of each rule of :data:`RULES` added to them."""
    out = {"current": outcome(df, df.review)}
    for name, rule in RULES.items():
        out[name] = outcome(df, df.review | (rule(df).fillna(False).astype(bool) & ~df.review))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+", type=Path, help="gating_accuracy.py / independent_lab.py --csv outputs")
    args = ap.parse_args(argv)
    for path in args.csv:
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
        try:
            df = load(path)
        except (KeyError, AttributeError, ValueError, pd.errors.ParserError) as exc:
            print(f"error: {path}: not a benchmark CSV with err / review / fit_detail ({exc})", file=sys.stderr)
            return 2
        cells = [f"{k} {v['caught']}/{v['gt2']}, {v['within_1pp']} of {v['flagged']}" for k, v in rule_table(df).items()]
        print(f"{path.stem}: " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
