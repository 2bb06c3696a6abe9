"""Accuracy of strategies learned from expert gates (``cytokit learn``).

1. Simulated studies whose "expert" gates follow rules the shipped defaults do not know:
   * lab "valley": CD25+ (and Treg's CD25 side) and CD28+ set at the deepest density valley;
   * lab "bright": CD25+ and Treg's CD25 at the last (highest) clear valley (CD25bright convention),
     CD28+ CD4 at the deepest valley;
   * lab "negq": CD25+ and Treg's CD25 set at a fixed quantile (99th) of the *negative peak* (mode +
     99th percentile of the mirrored lower half), placed per sample on the data;
   * lab "bright60": as "bright" (CD25+ and Treg's CD25 only), but a dip counts as a valley only down to
     0.6 of the smaller peak (the library's valley method counts dips down to 0.8): checks a learned
     valley rule on a lab whose notion of a valley is not the library's.
   Each lab's gates are written as a FlowJo workspace (cytokit.flowjo.write_workspace) over simulated
   tmem files (IL-2 and control arms, two visits). The tmem strategy is learned from 2 gated samples and
   scored on the others (per-event F1 per population), next to the untuned shipped strategy. The 2 samples
   are the baseline pair, the treated pair, named ones (``--train``), or (``--train-on suggested``) the pair
   :func:`cytokit.learn.suggest_samples` proposes from the files' events before any lab's gates are read
   (one pair for every lab).
2. flowsom_68983 (real, one sample, FlowJo expert gates): the mouse strategy learned from its own expert
   gates, and a strategy derived from the workspace's gate tree (no base) learned likewise (ceiling checks).

Run: ``nice .venv/bin/python benchmarks/learn_accuracy.py [--events 20000] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import read_fcs
from cytokit.flowjo import write_workspace
from cytokit.gating import Strategy, load_strategy
from cytokit.gating.methods.density import ThresholdParams, find_peaks, fit_threshold, kde_1d
from cytokit.gatingml import read_gatingml
from cytokit.learn import learn_strategy
from cytokit.learn.suggest import suggest_samples
from cytokit.simulate import SimulationConfig, simulate_trial

ROOT = Path(__file__).resolve().parents[1]


def negq_cut(x: np.ndarray, q: float = 0.99) -> float:
    """Lab rule: the negative peak's mode + the ``q`` quantile of its mirrored lower half. The negative
    peak is the lowest density peak at least 20% as high as the highest (small bumps are ignored)."""
    x = x[np.isfinite(x)]
    d = kde_1d(x)
    mode = float(d.grid[find_peaks(d, 0.2)[0]])
    low = mode - x[x <= mode]
    return float(mode + np.quantile(low, q))


def bright_cut(x: np.ndarray) -> float:
    """Lab rule (CD25bright convention): the last (highest) clear valley in 0.05..0.95 (logicle)."""
    return fit_threshold(x[np.isfinite(x)], ThresholdParams(mode="valley", valley="last", bounds=(0.05, 0.95))).value


def bright60_cut(x: np.ndarray) -> float:
    """Lab rule: as :func:`bright_cut`, but a dip counts as a valley only when its density is at most 0.6
    of the smaller neighbouring peak (the method's default is 0.8): a lab whose idea of a valley differs
    from the library's, on which a learned valley rule is checked too."""
    return fit_threshold(x[np.isfinite(x)], ThresholdParams(mode="valley", valley="last", bounds=(0.05, 0.95),
                                                            max_valley_ratio=0.6)).value


def valley_cut(x: np.ndarray) -> float:
    """Lab rule: the deepest valley of the density anywhere in 0.05..0.95 (logicle)."""
    return fit_threshold(x[np.isfinite(x)], ThresholdParams(mode="valley", bounds=(0.05, 0.95))).value


#: lab -> population -> per-dimension rule (None = keep the shipped placement)
LAB_RULES = {
    "valley": {"CD25+ CD4": [valley_cut], "Treg": [valley_cut, None], "CD28+ CD4": [valley_cut],
               "CD28+ CD8": [valley_cut]},
    "negq": {"CD25+ CD4": [negq_cut], "Treg": [negq_cut, None]},
    "bright": {"CD25+ CD4": [bright_cut], "Treg": [bright_cut, None], "CD28+ CD4": [valley_cut]},
    "bright60": {"CD25+ CD4": [bright60_cut], "Treg": [bright60_cut, None]},
}


def expert_document(strategy: Strategy, path: Path, rules: dict):
    """The lab's gates on one file: the shipped strategy, with the rule populations' thresholds replaced
    by fixed values the rule places on this sample's data (on the strategy's scale)."""
    sample = read_fcs(path)
    result = strategy.apply(sample)
    data = strategy.definition.model_dump()
    for p in data["populations"]:
        rule = rules.get(p["name"])
        if not rule:
            continue
        parent = result.masks[p["parent"]]
        X = result.sample.columns(p["dims"])[parent]
        if p["method"] == "threshold":
            p["params"]["threshold"] = {"mode": "fixed", "value": rule[0](X[:, 0])}
        else:
            ths = list(p["params"]["thresholds"])
            ths = [dict(ths[0]) for _ in p["dims"]] if len(ths) == 1 else [dict(t) for t in ths]
            for i, r in enumerate(rule):
                if r is not None:
                    ths[i] = {"mode": "fixed", "value": r(X[:, i])}
            p["params"]["thresholds"] = ths
    lab = Strategy(type(strategy.definition).model_validate(data))
    return sample, read_gatingml(lab.apply(sample).to_gatingml().encode())


def simulated(out: Path, events: int, n_train: int = 2, labs: list[str] | None = None,
              train_on: str = "baseline", train: list[str] | None = None, then_suggest: int = 0) -> pd.DataFrame:
    """Learn each lab's rules from 2 samples: the first IL-2 and control patients at baseline (W0), or
    (``train_on="treated"``) the IL-2 patient at W24 (CD25 raised by IL-2) and the control at W0, or the
    samples named in ``train`` (file stems). ``then_suggest``: that many more samples, suggested per lab by
    :func:`cytokit.learn.suggest.suggest_samples` from the lab's gates of the training samples (only those are
    read), are added to the training samples."""
    trial = out / "trial"
    if not (trial / "manifest.csv").exists():
        simulate_trial(trial, SimulationConfig(patients_per_arm=3, visits=["W0", "W24"], tubes=["tmem"],
                                               events=events, seed=11), force=True)
    files = sorted((trial / "fcs").glob("*_tmem.fcs"))
    tmem = load_strategy("tmem")
    rows = []
    suggested: list[str] = []
    if train_on == "suggested":  # chosen from the files' events alone, before any lab's gates: one pair for all labs
        t0, c0 = time.perf_counter(), time.process_time()
        suggestion = suggest_samples(files, n_train, strategy=tmem)
        print(f"suggested for expert gating: {', '.join(suggestion.samples)} ({time.perf_counter() - t0:.0f} s wall, "
              f"{time.process_time() - c0:.0f} s CPU)")
        suggestion.save(out / "suggestion", force=True)
        suggested = suggestion.samples
    for lab, rules in LAB_RULES.items():
        if labs is not None and lab not in labs:
            continue
        wsp = out / f"expert_{lab}.wsp"
        documents = [expert_document(tmem, f, rules) for f in files]
        write_workspace(wsp, documents)
        # train on one IL-2 and one control sample
        manifest = pd.read_csv(trial / "manifest.csv")
        arms = dict(zip(manifest.file.map(lambda f: Path(f).stem), manifest.arm))
        visits = dict(zip(manifest.file.map(lambda f: Path(f).stem), manifest.visit))
        il2_visit = "W24" if train_on == "treated" else "W0"
        pair = [next(f.stem for f in files if arms[f.stem] == "IL-2" and visits[f.stem] == il2_visit),
                next(f.stem for f in files if arms[f.stem] == "control" and visits[f.stem] == "W0")][:n_train]
        label = train_on
        if suggested:
            pair = suggested
            label = "suggested " + "+".join(t.removesuffix("_tmem") for t in pair)
        elif train:
            pair = [t if t.endswith("_tmem") else f"{t}_tmem" for t in train]
            label = "+".join(t.removesuffix("_tmem") for t in pair)
        if then_suggest:  # the lab's gates of the training samples only: which sample decides what they leave open
            gated_wsp = out / f"expert_{lab}_gated.wsp"
            write_workspace(gated_wsp, [d for f, d in zip(files, documents) if f.stem in pair])
            t0, c0 = time.perf_counter(), time.process_time()
            more = suggest_samples(files, then_suggest, strategy=tmem, expert=gated_wsp)
            print(f"lab {lab}: after {', '.join(pair)} suggested {', '.join(more.samples)} "
                  f"({time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU)")
            more.save(out / f"suggestion_{lab}", force=True)
            pair = [*pair, *more.samples]
            label += " then " + "+".join(t.removesuffix("_tmem") for t in more.samples)
        t0, c0 = time.perf_counter(), time.process_time()
        res = learn_strategy(wsp, files, strategy="tmem", train=pair)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        res.save(out / f"learned_{lab}_{label}".replace(" ", "_"), force=True)
        a = res.agreement
        changed = {c["population"] for c in res.changes}
        rejected = {d["population"] for d in res.not_adopted}
        for pop in a.population.unique():
            sub = a[a.population == pop]
            hold = sub[sub.role == "holdout"].set_index("sample")
            base = sub[sub.role == "untuned"].set_index("sample").loc[hold.index]
            loso = sub[sub.role == "loso"]
            rows.append({"study": f"simulated lab '{lab}' ({label})", "population": pop, "n_holdout": len(hold),
                         "f1_untuned_min": base.f1.min(), "f1_untuned_median": base.f1.median(),
                         "f1_learned_min": hold.f1.min(), "f1_learned_median": hold.f1.median(),
                         "n_below_untuned": int((hold.f1 < base.f1 - 1e-9).sum()),
                         "max_loss_vs_untuned": float(max(0.0, (base.f1 - hold.f1).max())),
                         "abs_delta_pct_max": hold.abs_delta_pct.max(),
                         "f1_loso_min": loso.f1.min() if len(loso) else np.nan, "seconds": round(secs, 1),
                         "cpu_seconds": round(cpu, 1),
                         "tuning": "adopted" if pop in changed else "not adopted" if pop in rejected else ""})
    return pd.DataFrame(rows)


def flowsom(out: Path) -> pd.DataFrame:
    shared = Path(os.environ.get("CYTOKIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "flowsom_68983"
    if not (shared / "gating.wsp").exists():
        print(f"flowsom_68983 not found at {shared}; skipped", file=sys.stderr)
        return pd.DataFrame()
    mapping = {"Lymphocytes": "Lymphocytes", "Singlets2": "Singlets", "T cells": "T cells", "gd T cells": "gd T",
               "CD4 T cells": "CD4 T", "CD8 T cells": "CD8 T", "B cells": "B cells", "NK cells": "NK cells",
               "NK T cells": "NKT cells", "NK1_1+": "NK1.1+"}
    t0, c0 = time.perf_counter(), time.process_time()
    res = learn_strategy(shared / "gating.wsp", [shared / "68983.fcs"], strategy="mouse_lymphocytes",
                         mapping=mapping)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    res.save(out / "learned_flowsom", force=True)
    rows = []
    for study, r, s, c in (("flowsom_68983 (own gates)", res, secs, cpu), *_derived(shared, out)):
        a = r.agreement
        for pop in a.population.unique():
            sub = a[a.population == pop].set_index("role")
            rows.append({"study": study, "population": pop, "n_holdout": 0,
                         "f1_untuned_min": sub.loc["untuned", "f1"], "f1_learned_min": sub.loc["train", "f1"],
                         "abs_delta_pct_max": sub.loc["train", "abs_delta_pct"], "seconds": round(s, 1),
                         "cpu_seconds": round(c, 1)})
    return pd.DataFrame(rows)


def _derived(shared: Path, out: Path) -> list:
    """No base strategy: derived from the workspace's gate tree, then learned (ceiling check)."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = learn_strategy(shared / "gating.wsp", [shared / "68983.fcs"])
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    res.save(out / "learned_flowsom_derived", force=True)
    return [("flowsom_68983 (derived from gates)", res, secs, cpu)]


def depth_sweep(out: Path, events: int, depths: list[float], labs: list[str],
                held_out: tuple[str, ...] = ("P001_W0_tmem", "P002_W0_tmem")) -> pd.DataFrame:
    """The valley depth cut-off the baseline pair leaves open (labs *bright*, *bright60*): per cut-off in
    ``depths``, CD25+ CD4 of the rule the learner adopts there ("last valley, no range", the shipped tail as
    fallback) against each lab's gate on the other samples (per-event F1 within CD4 T: worst, median, number
    below the untuned shipped rule), and per sample the cut-offs (0.01 grid) at which that rule's gate moves
    (the study's own dip depths). No learning: the rule is applied as given."""
    trial = out / "trial"
    if not (trial / "manifest.csv").exists():
        simulate_trial(trial, SimulationConfig(patients_per_arm=3, visits=["W0", "W24"], tubes=["tmem"],
                                               events=events, seed=11), force=True)
    tmem = load_strategy("tmem")
    shipped = ThresholdParams.model_validate(tmem.definition.population("CD25+ CD4").params["threshold"])
    rule = shipped.model_copy(update={"valley": "last", "bounds": None})
    cuts = {"bright": bright_cut, "bright60": bright60_cut, "valley": valley_cut, "negq": negq_cut}
    fine = np.round(np.arange(0.5, 0.961, 0.01), 2)
    rows, moves = [], []
    for f in sorted((trial / "fcs").glob("*_tmem.fcs")):
        if f.stem in held_out:
            continue
        r = tmem.apply(read_fcs(f))
        x = r.sample.columns(["CD25"])[r.masks["CD4 T"]][:, 0]
        x = np.where(np.isfinite(x), x, -np.inf)
        ref = r.sample.columns(["CD25"])[r.masks["Singlets"]][:, 0]
        untuned = fit_threshold(x, shipped, reference=ref).value
        at = [fit_threshold(x, rule.model_copy(update={"max_valley_ratio": float(d)}), reference=ref,
                            check_stability=False).value for d in fine]
        moves.append({"sample": f.stem, "moves_at": [float(fine[i]) for i in range(1, fine.size)
                                                    if abs(at[i] - at[i - 1]) > 1e-9]})
        for lab in labs:
            expert = x >= cuts[lab](x[np.isfinite(x)])
            base = f1_mask(x >= untuned, expert)
            for d in depths:
                t = fit_threshold(x, rule.model_copy(update={"max_valley_ratio": d}), reference=ref).value
                rows.append({"lab": lab, "depth": d, "sample": f.stem, "f1": f1_mask(x >= t, expert),
                             "f1_untuned": base})
    for m in moves:
        print(f"{m['sample']}: the rule's gate moves at depth cut-offs {m['moves_at']}")
    t = pd.DataFrame(rows)
    return (t.assign(below=t.f1 < t.f1_untuned - 1e-9).groupby(["lab", "depth"])
            .agg(f1_min=("f1", "min"), f1_median=("f1", "median"), n_below_untuned=("below", "sum")).reset_index())


def f1_mask(a: np.ndarray, b: np.ndarray) -> float:
    from cytokit.learn.agreement import f1_score

    return float(f1_score(a, b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--labs", default=",".join(LAB_RULES), help="simulated labs to run (comma-separated; empty: flowsom_68983 only)")
    ap.add_argument("--no-flowsom", action="store_true", help="skip the flowsom_68983 ceiling checks")
    ap.add_argument("--train-on", choices=("baseline", "treated", "suggested"), default="baseline",
                    help="training samples: IL-2 and control at W0 (baseline), IL-2 at W24 + control at W0, or "
                         "the 2 samples cytokit.learn.suggest_samples proposes from the files' events (suggested)")
    ap.add_argument("--n-suggested", type=int, default=2,
                    help="with --train-on suggested: how many suggested samples to train on (the issue's protocol: 2)")
    ap.add_argument("--then-suggest", type=int, default=0,
                    help="after the training samples: this many more, suggested per lab from its gates of them "
                         "(suggest_samples(expert=...)), added to the training samples")
    ap.add_argument("--train", default="", help="training samples instead (comma-separated, e.g. P001_W0,P003_W24)")
    ap.add_argument("--depth-sweep", default="", help="instead of learning: the valley depth cut-offs to sweep "
                    "for labs bright/bright60 (comma-separated, e.g. 0.6,0.65,0.7,0.8; see depth_sweep)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or Path(tempfile.mkdtemp(prefix="cytokit_learn_"))
    out.mkdir(parents=True, exist_ok=True)
    labs = [x for x in args.labs.split(",") if x]
    if args.depth_sweep:
        sweep = depth_sweep(out, args.events, [float(d) for d in args.depth_sweep.split(",")],
                            [lab for lab in labs if lab in ("bright", "bright60")] or ["bright", "bright60"])
        print(sweep.round(4).to_string(index=False))
        sweep.to_csv(out / "depth_sweep.csv", index=False)
        return 0
    train = [t for t in args.train.split(",") if t] or None
    n_train = args.n_suggested if args.train_on == "suggested" else 2
    table = pd.concat([simulated(out, args.events, n_train=n_train, labs=labs, train_on=args.train_on, train=train,
                                 then_suggest=args.then_suggest),
                       pd.DataFrame() if args.no_flowsom else flowsom(out)],
                      ignore_index=True)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 20)
    print(table.round(4).to_string(index=False))
    table.to_csv(out / "learn_accuracy.csv", index=False)
    sim = table[table.study.str.startswith("simulated")]
    if len(sim):
        print(f"\nsimulated held-out samples: min F1 {sim.f1_learned_min.min():.4f} (target >= 0.95); "
              f"populations below untuned on some sample: {int((sim.n_below_untuned > 0).sum())}")
    for study in table.study.unique():
        if study.startswith("flowsom"):
            fs = table[table.study == study]
            print(f"{study}: min F1 {fs.f1_learned_min.min():.4f} (target >= 0.97)")
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
