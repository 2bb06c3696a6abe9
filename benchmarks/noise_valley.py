"""Valley thresholds placed between noise peaks (docs/gating.md, "A valley between noise bumps on a one-mode parent").

A 1-D valley fit (:func:`cytokit.gating.methods.density.fit_threshold`, ``mode: valley``) keeps every peak of the
KDE above ``min_peak_fraction`` of the highest whose dip is deeper than ``max_valley_ratio``. Without ``separates``
the sampling-noise test (:func:`~cytokit.gating.methods.density.merge_sparse`) is not applied, so on a one-mode
parent with a sparse scatter of events above its mode (CD4 inside B cells of flowsom_68983) the dips between a few
events each are valleys, and the deepest of them inside ``bounds`` becomes the threshold.

This helper measures, for every valley-placed threshold, what separates such a valley from a valley between
populations, and what two candidate rules would do, *without changing the library*:

* :func:`valley_features` (on events): the chosen valley's depth in SDs of the KDE's sampling noise
  (:func:`~cytokit.gating.methods.density.valley_noise`, the library's own computation behind the review flag
  ``noise_valley``; the quantity ``merge_sparse`` tests against ``MIN_MODE_SDS`` = 2), the shares (% of the parent) of the events in the basins of its two neighbouring modes
  and above it, and whether its lower mode is the parent's highest (main) mode;
* :func:`merged_threshold` (on events): where the threshold would go if the noise test applied to every valley
  (``separates: any`` too; the main mode's valleys left alone, as ``merge_sparse`` does), i.e. rule ``M``;
* rule ``F``: a review flag on a chosen valley with fewer than ``MIN_MODE_SDS`` noise SDs, no move; rule ``FI``: the
  same, only where neither of its modes is the parent's main one (an isolated noise valley, not a boundary of the
  main population). FI is adopted as a note: the library notes such rows ``noise_valley`` (column ``fi_flag`` of
  :func:`rule_table`) and takes rule M's threshold (the merged reading) as a plausible position of theirs, so the
  row is review-flagged (``uncertain``) where that move of the row exceeds ``UNCERTAIN_PP``.

:func:`recording` wraps the fit so that ``gating_accuracy.py`` / ``independent_lab.py`` / ``real_data_check.py``
runs record these numbers in each fit's info (``info["noise_valley"]``, which their ``--csv`` writes into
``fit_detail``); :func:`rule_table` reads such CSVs.

    PYTHONPATH=. .venv/bin/python benchmarks/noise_valley.py run gating_accuracy --split held-out \
        --held-out-seed 2222 --families reference --csv /tmp/nv_sim.csv
    PYTHONPATH=. .venv/bin/python benchmarks/noise_valley.py table /tmp/nv_sim.csv
"""
from __future__ import annotations

import contextlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from cytokit.gating.methods import density, shared_fits
from cytokit.gating.methods.density import MIN_MODE_SDS, Threshold, ThresholdParams, find_valleys, valley_noise
from cytokit.gating.methods.kde import kde_1d

#: a row this far off the truth (pp of parent) is an error a flag must catch; within WITHIN_PP a flag is a false alarm
OFF_PP = 2.0
WITHIN_PP = 1.0


def _grid_index(grid: np.ndarray, pos: float) -> int:
    return int(np.argmin(np.abs(grid - pos)))


def _subsample(x: np.ndarray, p: ThresholdParams) -> np.ndarray:
    """The events :func:`~cytokit.gating.methods.density.fit_threshold` estimates the density from."""
    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size > p.max_events:
        x = x[np.random.default_rng(p.seed).choice(x.size, size=p.max_events, replace=False)]
    return x


def valley_features(x: np.ndarray, p: ThresholdParams, fit: Threshold) -> dict[str, Any] | None:
    """The chosen valley of a valley-placed fit ``fit`` of ``x`` (same scale, gate units) with ``p``, or None for
    another method: ``sds`` (its depth in SDs of the KDE's sampling noise below the smaller neighbouring peak),
    ``lower_pct`` / ``upper_pct`` (% of the parent in the basins of the modes below and above it, each down / up to
    the next valley), ``above_pct`` (% of the parent at or above it), ``lower_is_main`` (its lower mode is the
    highest one), ``beside_main`` (one of its two modes is the highest: a boundary of the parent's main
    population, whose valleys ``merge_sparse`` leaves alone), ``index`` (which valley, 0 = the lowest) and ``n_valleys``; plus ``merged``, the threshold rule M
    would place (:func:`merged_threshold`, same scale), and ``moved_pp``, the events (% of the parent) at or above it
    minus those at or above the fit's threshold (the move of a ``+`` row on this marker)."""
    info = fit.info
    if info.get("method") != "valley" or not info.get("valleys"):
        return None
    xs = _subsample(x, p)
    d = kde_1d(xs, adjust=p.adjust)
    peaks = np.array(sorted({_grid_index(d.grid, m) for m in info["peaks"]}), dtype=int)
    valleys = find_valleys(d, peaks)
    if not valleys:
        return None
    at = float((info.get("overlap_corrected") or {}).get("valley", info.get("below_floor", info["threshold"])))
    k = int(np.argmin([abs(d.grid[v] - at) for v, _ in valleys]))
    noise = valley_noise(d, peaks, int(valleys[k][0]), int(xs.size))
    edges = [-np.inf] + [float(d.grid[v]) for v, _ in valleys] + [np.inf]
    t = float(d.grid[valleys[k][0]])
    share = (lambda lo, hi: round(100.0 * float(np.mean((xs >= lo) & (xs < hi))), 3))
    merged = merged_threshold(xs, p, fit)
    return {"sds": round(noise.sds, 3), "lower_pct": share(edges[k], edges[k + 1]),
            "upper_pct": share(edges[k + 1], edges[k + 2]), "above_pct": share(t, np.inf),
            "lower_is_main": noise.lower_is_main, "beside_main": noise.beside_main, "index": k, "n_valleys": len(valleys), "merged": merged,
            "moved_pp": None if merged is None else round(
                100.0 * float(np.mean(xs >= merged) - np.mean(xs >= float(info["threshold"]))), 3)}


def merged_threshold(x: np.ndarray, p: ThresholdParams, fit: Threshold) -> float | None:
    """Rule M: the threshold when every pair of peaks whose valley is shallower than ``MIN_MODE_SDS`` noise SDs is
    one mode (``merge_sparse`` over the whole range, the main mode's valleys kept), the valley rule then applied as
    ``fit_threshold`` does (``bounds``, ``valley``, the tail fallback where no valley is left); same scale as ``x``.
    The library's merged reading (``fit_threshold(..., merge_noise=True)``, which a noise valley's fit records in
    ``info["valley_noise"]["merged"]``), here for every valley fit. The fit's own value where the merge keeps its
    valley. The re-read has no reference events (a count-based fallback becomes the tail) and no stability refits;
    None where it ends in another method."""
    alt = density.fit_threshold(x, p, check_stability=False, negative=fit.info.get("negative_reference"),
                                merge_noise=True)
    return round(float(alt.value), 5) if alt.info.get("method") in ("valley", "tail") else None


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """While active, every shared threshold fit records :func:`valley_features` in ``info["noise_valley"]`` (the
    benchmarks write it into their CSVs' ``fit_detail``). The threshold itself is unchanged."""
    original = shared_fits.fit_threshold

    def wrapped(x: np.ndarray, params: ThresholdParams | None = None, **kw: Any) -> Threshold:
        fit = original(x, params, **kw)
        if params is not None and params.mode == "valley" and kw.get("check_stability", True):
            feats = valley_features(x, params, fit)
            if feats is not None:
                fit.info["noise_valley"] = feats
        return fit

    shared_fits.fit_threshold = wrapped
    try:
        yield
    finally:
        shared_fits.fit_threshold = original


def row_features(fit_detail: object) -> dict[str, Any] | None:
    """The ``noise_valley`` record of a CSV row's ``fit_detail`` JSON (None: no valley fit recorded): of a gate of
    several thresholds, the least distinct valley's, with that fit's ``threshold``, ``n_markers``, ``any_moved``
    (rule M moves some marker's threshold) and ``max_moved_pp`` (the largest such move, pp of the parent on that
    marker alone)."""
    try:
        fd = json.loads(fit_detail) if isinstance(fit_detail, str) else {}
    except ValueError:
        return None
    fits = [v for v in fd.values() if isinstance(v, dict) and "noise_valley" in v]
    if not fits:
        return None
    fit = min(fits, key=lambda v: v["noise_valley"]["sds"])
    moved = [v["noise_valley"] for v in fits if v["noise_valley"]["merged"] is None
             or abs(float(v["noise_valley"]["merged"]) - float(v["threshold"])) > 1e-4]
    return {**fit["noise_valley"], "threshold": fit.get("threshold"), "n_markers": len(fits),
            "any_moved": bool(moved), "max_moved_pp": max((abs(m.get("moved_pp") or 0.0) for m in moved), default=0.0)}


def rule_table(df: pd.DataFrame, max_sds: float = MIN_MODE_SDS) -> pd.DataFrame:
    """One row per recorded valley fit of ``df`` (a benchmark CSV with ``fit_detail``, ``review``, ``truth_pct``,
    ``auto_pct``) with its features, the error (``err``, pp), and ``noise`` (the chosen valley is shallower than
    ``max_sds`` noise SDs: rule F flags it), ``isolated`` (and neither of its modes is the main one: rule FI),
    ``fi_flag`` (the row carries the library's review flag ``noise_valley``, i.e. rule FI as adopted) and
    ``moved`` (rule M's threshold differs on some marker; ``moved_pp`` its largest move, pp)."""
    out = []
    for _, r in df.iterrows():
        f = row_features(r.get("fit_detail"))
        if f is None:
            continue
        err = abs(float(r["auto_pct"]) - float(r["truth_pct"])) if pd.notna(r.get("truth_pct")) else np.nan
        merged = f.get("merged")
        out.append({"population": r["population"], "file": r.get("file"), "family": r.get("family"),
                    "err": err, "review": str(r.get("review")) == "True", **{k: f[k] for k in
                    ("sds", "lower_pct", "upper_pct", "above_pct", "lower_is_main", "index", "n_valleys")},
                    "beside_main": bool(f.get("beside_main", True)),
                    "fi_flag": "noise_valley" in str(r.get("flag_words", r.get("flags", ""))),
                    "threshold": f["threshold"], "merged": merged, "moved": f["any_moved"],
                    "moved_pp": f["max_moved_pp"], "noise": f["sds"] < max_sds,
                    "isolated": f["sds"] < max_sds and not f.get("beside_main", True)})
    return pd.DataFrame(out)


def summary(t: pd.DataFrame) -> dict[str, int]:
    """Counts of :func:`rule_table`'s rows: valley fits, noise valleys, of them already flagged, rows rules F and FI
    would newly flag, of those > ``OFF_PP`` off (caught) and within ``WITHIN_PP`` (false), rows rule M moves (and by
    more than 1 pp), and all rows > ``OFF_PP`` off with no review flag."""
    if t.empty:
        return {"valley_fits": 0}
    n = t[t.noise]
    new = n[~n.review]
    iso = new[new.isolated]
    return {"valley_fits": len(t), "noise_valleys": len(n), "already_flagged": int(n.review.sum()),
            "F_new_flags": len(new), "F_caught_gt2pp": int((new.err > OFF_PP).sum()),
            "F_within_1pp": int((new.err <= WITHIN_PP).sum()), "FI_new_flags": len(iso),
            "FI_caught_gt2pp": int((iso.err > OFF_PP).sum()), "FI_within_1pp": int((iso.err <= WITHIN_PP).sum()),
            "FI_library_flags": int(t.fi_flag.sum()), "FI_library_gt2pp": int((t.fi_flag & (t.err > OFF_PP)).sum()),
            "FI_library_within_1pp": int((t.fi_flag & (t.err <= WITHIN_PP)).sum()),
            "M_moved": int(t.moved.sum()),
            "M_moved_gt1pp": int((t.moved_pp > 1.0).sum()),
            "silent_gt2pp_all": int(((t.err > OFF_PP) & ~t.review).sum())}


def file_valleys(fcs: str | Path, strategy: str | Path, *, qc: bool = False) -> pd.DataFrame:
    """Every recorded valley fit of one file gated with ``strategy`` (``Strategy.apply``): population, marker, the
    features of :func:`valley_features`, the fit's threshold and the row's % of parent and review words."""
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy

    with recording():
        res = load_strategy(str(strategy)).apply(read_fcs(fcs), qc=qc)
    pops = res.populations.set_index("population")
    out = []
    for name, fit in res.fits.items():
        for marker, v in fit.info.items():
            if isinstance(v, dict) and "noise_valley" in v:
                row = pops.loc[name] if name in pops.index else None
                out.append({"file": Path(fcs).name, "population": name, "marker": marker, **v["noise_valley"],
                            "threshold": round(float(v["threshold"]), 5),
                            "pct_parent": float(row["pct_parent"]) if row is not None else np.nan,
                            "review": bool(row["review"]) if row is not None else False,
                            "flags": str(row["flags"]) if row is not None else ""})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    """``run <benchmark> <its args...>``: run ``benchmarks/<benchmark>.py`` recording the features; ``table
    <csv>...``: print the noise valleys and the rules' counts per CSV; ``gate <strategy> <fcs>...``: the valley
    fits of real files, noise valleys marked."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 3 and args[0] == "gate":
        frames = [file_valleys(f, args[1], qc=True) for f in args[2:]]
        t = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if not t.empty:
            t["noise"] = t["sds"] < MIN_MODE_SDS
            print(t.drop(columns=["n_valleys"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0
    if len(args) >= 2 and args[0] == "run":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        bench = importlib.import_module(args[1])
        with recording():
            return int(bench.main(args[2:]) or 0)
    if len(args) >= 2 and args[0] == "table":
        for path in args[1:]:
            df = pd.read_csv(path)
            if "group" in df.columns:
                df = df[df["group"] == "held-out"]
            t = rule_table(df)
            print(f"== {path}: {json.dumps(summary(t))}")
            if not t.empty:
                cols = ["population", "file", "err", "review", "sds", "lower_pct", "upper_pct", "above_pct",
                        "beside_main", "fi_flag", "threshold", "merged", "moved_pp"]
                print(t[t.noise][cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
