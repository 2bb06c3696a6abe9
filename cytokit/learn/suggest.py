"""Which samples should the expert gate? Suggest the samples whose expert gates would best determine a strategy.

Contract
--------
:func:`suggest_samples` runs before any expert gating. It reads a study's FCS files (events only) and a
base strategy, and proposes the ``n`` samples on which an expert's gates would best decide the parameters
that :func:`cytokit.learn.learn_strategy` chooses between.

For every threshold of the strategy (each dimension of a ``threshold``, ``quadrant``, ``phenotype`` or
``interval`` population; thresholds that siblings share — same parent, dimension and parameters — count
once) a *committee* of candidate placements is fitted on every sample:

* the base parameters;
* the rule candidates the learner searches (:func:`cytokit.learn.slots.rule_candidates`: another valley
  choice, depth cut-offs on :data:`~cytokit.learn.slots.DEPTH_GRID`, no plausible range, no dim-mode
  tail) — none of them is fitted to any data;
* a tail of the negative peak at :data:`TAIL_WIDTHS` SD (the other kind of candidate the learner fits).

Each member is a possible lab rule. Gating a sample shows which members the expert agrees with there:
those whose gate on it has per-event F1 >= 1 - :data:`~cytokit.learn.search.RULE_TIE` against the rule's
(the learner's near tie). Among the members that agree on every gated sample the learner keeps the one
closest to the base strategy (its minimal-change rule), and so gates the other samples with it. The
*expected disagreement left* by a set of gated samples is, averaged over the members taken in turn as the
lab's rule and summed over the thresholds, the mean over the study's other samples of 1 - per-event F1
between that kept member's gate and the rule's. The suggestion is built one sample at a time: each next
sample is the one that, gated with those already chosen (``gated``), leaves the least expected disagreement;
equal ones go to the sample on which the committee disagrees most (mean over the committee's pairs of
1 - F1), then to study order. Without ``expert``, nothing here reads an expert gate or knows a lab's rule: the
rule could be any member, and members outside the committee (a quantile, another width) are only as well
covered as their nearest members. With the expert's gates of the samples gated so far (``expert=``, or
``cytokit learn --suggest N expert.wsp fcs/``), only the members that reproduce them (as well as the best
member does, within the learner's near tie) are taken as possible lab rules: the next samples are those that
decide between the rules the gates so far leave open (:meth:`Question.possible`).

:class:`Suggestion` carries the chosen samples, one row per study sample (committee disagreement, and for
chosen ones the disagreement left after choosing it) and the reasons: per chosen sample and threshold, the
lowest F1 between the base gate and a member and that member in words. All F1 are per event (0..1) among
the population's parent events; values are on the gate's scale.
"""
from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, CytokitError
from ..io_utils import fcs_paths
from ..gating import Strategy, load_strategy
from ..gating.engine import fit_population
from ..gating.fit_state import FitState
from ..gating.methods.density import ThresholdParams
from ..gating.methods.shared_fits import shared_threshold_fits
from ..gating.model import StrategyDefinition
from .agreement import f1_score
from .search import RULE_TIE, TUNERS, TrainingSample, _Ctx, tune_thresholds
from .slots import DEPTH_GRID, get_param, rule_candidates, set_param, threshold_slots

log = logging.getLogger(__name__)

#: widths (SD of the negative peak's lower half) of the tail members of every threshold's committee
TAIL_WIDTHS = (1.5, 2.0, 2.5, 3.0)
#: a committee member and a sample's rule agree there when their gates' per-event F1 is at least this
AGREE_F1 = 1.0 - RULE_TIE
#: F1 below which the reasons call two members' gates on a sample different (the learner's F1 target)
DIFFER_F1 = 0.95


@dataclass
class Question:
    """One threshold the learner may change, and its committee's gates compared on every sample."""

    populations: tuple[str, ...]
    dim: str
    members: list[dict[str, Any]]  #: the threshold parameters of each member (members[0] = base)
    labels: list[str]  #: each member in words (differences from the base)
    #: per sample (study order): members x members per-event F1 between the members' gates
    f1: list[np.ndarray]
    #: per sample index whose expert gates are known: each member's per-event F1 against the expert's gate
    expert_f1: dict[int, np.ndarray] = field(default_factory=dict)

    def possible(self, gated: Sequence[int]) -> np.ndarray:
        """Members that could be the lab's rule (bool per member): all of them, or where the expert's gates of
        ``gated`` samples are known, those reproducing them as well as the best member does on each (within
        :data:`~cytokit.learn.search.RULE_TIE`; all of them if none does on every such sample)."""
        ok = np.ones(len(self.members), dtype=bool)
        for s in gated:
            f = self.expert_f1.get(s)
            if f is not None:
                ok &= f >= float(np.max(f)) - RULE_TIE
        return ok if ok.any() else np.ones(len(self.members), dtype=bool)

    def disagreement(self) -> np.ndarray:
        """Per sample: mean over the committee's pairs of 1 - F1 (0 = every member gates it alike)."""
        m = len(self.members)
        iu = np.triu_indices(m, 1)
        return np.array([float(np.mean(1.0 - f[iu])) if m > 1 else 0.0 for f in self.f1])

    def expected_left(self, gated: Sequence[int]) -> float:
        """Expected disagreement left on the samples not in ``gated`` (see module docstring), F1 units."""
        n = len(self.f1)
        m = len(self.members)
        rest = [s for s in range(n) if s not in set(gated)]
        if not rest or m < 2:
            return 0.0
        F = np.stack(self.f1)  # samples x members x members
        if gated:
            consistent = np.all(F[list(gated)] >= AGREE_F1, axis=0)  # rule (row) x member (column)
        else:
            consistent = np.ones((m, m), dtype=bool)
        change = np.mean(1.0 - F[rest][:, 0, :], axis=0)  # each member's change from the base's gates
        left = []
        for h in np.flatnonzero(self.possible(gated)):
            ok = np.flatnonzero(consistent[h])
            if ok.size == 0:
                ok = np.array([h])
            kept = 0 if consistent[h, 0] else int(ok[np.argmin(change[ok])])
            left.append(float(np.mean(1.0 - F[rest][:, kept, h])))
        return float(np.mean(left))


@dataclass
class Suggestion:
    """The samples suggested for expert gating, in the order chosen, and why."""

    samples: list[str]
    #: one row per study sample: sample, rank (1.. for suggested, else empty), disagreement (committee mean
    #: 1 - F1 summed over thresholds), left_after (expected disagreement left once gated with the previous
    #: ranks), differ (thresholds whose committee gates the sample differently: worst F1 first)
    table: pd.DataFrame
    #: one row per suggested sample x threshold where members differ: sample, populations, dim, f1 (lowest
    #: between the base gate and a member), member (that member in words), n_pairs_differ
    reasons: pd.DataFrame
    gated: list[str]

    def save(self, out_dir: str | Path, *, force: bool = False) -> dict[str, Path]:
        """Write ``suggestion.csv``, ``suggestion_reasons.csv`` and ``suggestion.html`` into ``out_dir``."""
        from ..io_utils import atomic_write_text

        out = Path(out_dir)
        paths = {"table": out / "suggestion.csv", "reasons": out / "suggestion_reasons.csv",
                 "html": out / "suggestion.html"}
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing and not force:
            raise ConfigError(f"output exists: {', '.join(existing)}; use --force to overwrite")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(paths["table"], self.table.to_csv(index=False))
        atomic_write_text(paths["reasons"], self.reasons.to_csv(index=False))
        atomic_write_text(paths["html"], suggestion_html(self))
        return paths


def describe(member: dict[str, Any], base: dict[str, Any]) -> str:
    """A committee member in words: what it changes from the base threshold parameters."""
    if member == base:
        return "base"
    default = ThresholdParams.model_fields
    if member.get("mode") == "tail" and (base.get("mode", "valley") != "tail"
                                         or {k: v for k, v in member.items() if k != "tail_sd"}
                                         == {k: v for k, v in base.items() if k != "tail_sd"}):
        return f"tail {member.get('tail_sd')} SD"
    parts = []
    for key in ("mode", "valley", "max_valley_ratio", "bounds", "dim_mode_tail", "fallback", "tail_sd"):
        a = member.get(key, default[key].default if key in default else None)
        b = base.get(key, default[key].default if key in default else None)
        if a != b:
            if key == "bounds" and a is None:
                parts.append("no range")
            elif key == "dim_mode_tail" and a is None:
                parts.append("no dim-mode tail")
            elif key == "max_valley_ratio":
                parts.append(f"depth {a:g}")
            elif key == "valley":
                parts.append(f"{a} valley")
            elif key != "fallback":
                parts.append(f"{key} {a}")
    return ", ".join(parts) or "base (equivalent)"


def _grouped(q: Question, f1_vs_base: np.ndarray, most: int = 4) -> str:
    """The members whose gate differs from the base's (F1 < :data:`DIFFER_F1`) in words, those differing only
    in the depth cut-off together ("last valley, no range at depth 0.6-0.95: F1 0.57"), lowest F1 first."""
    groups: dict[str, list[tuple[float, float | None]]] = {}
    for k in range(1, len(q.members)):
        if f1_vs_base[k] >= DIFFER_F1:
            continue
        m = re.search(r"depth ([0-9.]+)", q.labels[k])
        key = re.sub(r"(, )?depth [0-9.]+", "", q.labels[k]).strip(", ") or "valley"
        groups.setdefault(key, []).append((float(f1_vs_base[k]), float(m.group(1)) if m else None))
    items = []
    for key, vals in groups.items():
        depths = sorted(d for _, d in vals if d is not None)
        at = (f" at depth {depths[0]:g}" + (f"-{depths[-1]:g}" if depths[-1] != depths[0] else "")) if depths else ""
        items.append((min(v for v, _ in vals), f"{key}{at}: F1 {min(v for v, _ in vals):.2f}"))
    items.sort()
    more = f"; {len(items) - most} more" if len(items) > most else ""
    return "; ".join(text for _, text in items[:most]) + more


def _members(threshold: dict[str, Any]) -> list[dict[str, Any]]:
    """The committee of one threshold: base, rule candidates, tails (no duplicates, base first)."""
    out = [threshold, *rule_candidates(threshold, DEPTH_GRID)]
    if threshold.get("mode", "valley") == "tail":  # other widths of the same tail
        out += [{**threshold, "tail_sd": w} for w in TAIL_WIDTHS]
    else:
        keep = {k: v for k, v in threshold.items() if k == "bounds"}
        out += [{**keep, "mode": "tail", "tail_sd": w} for w in TAIL_WIDTHS]
    seen, uniq = set(), []
    for m in out:
        key = json.dumps(m, sort_keys=True)
        if key not in seen:
            seen.add(key)
            uniq.append(m)
    return uniq


def _pairwise_f1(masks: list[np.ndarray]) -> np.ndarray:
    """members x members per-event F1 between boolean masks over the same events (1 where both empty)."""
    M = np.stack(masks).astype(np.float32)
    inter = M @ M.T
    size = M.sum(axis=1)
    denom = size[:, None] + size[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(denom > 0, 2.0 * inter / denom, 1.0)
    return f.astype(np.float64)


def _questions(definition: StrategyDefinition, samples: Sequence[TrainingSample],
               populations: Iterable[str] | None = None) -> list[Question]:
    """The strategy's thresholds (shared ones once) with their committees fitted on every sample."""
    wanted = set(populations) if populations is not None else None
    threshold_methods = {m for m, tuner in TUNERS.items() if tuner is tune_thresholds}
    specs = [p for p in definition.populations if p.method in threshold_methods
             and (wanted is None or p.name in wanted)]
    found: dict[tuple[Any, ...], tuple[list[str], Any, Any]] = {}
    for spec in specs:
        params, slots = threshold_slots(spec)
        for slot in slots:
            th = get_param(params, slot.path) or {}
            key = (spec.parent, spec.dims[slot.dim], slot.positive, json.dumps(th, sort_keys=True))
            if key in found:
                found[key][0].append(spec.name)
            else:
                found[key] = ([spec.name], spec, slot)
    base_states = []
    for s in samples:
        st = FitState()
        with shared_threshold_fits():
            for spec in definition.populations:
                try:
                    fit_population(spec, s.prepared, st)
                except CytokitError as exc:
                    log.debug("%s: %s could not be fitted: %s", s.name, spec.name, exc)
        base_states.append(st)
    out = []
    for names, spec, slot in found.values():
        params, _ = threshold_slots(spec)
        members = _members(get_param(params, slot.path) or {})
        ctx = _Ctx(spec, [], [], definition)
        f1s = []
        expert_f1: dict[int, np.ndarray] = {}
        for s, st in zip(samples, base_states):
            parent = st.masks.get(spec.parent) if spec.parent is not None else np.ones(s.prepared.n_events, bool)
            if parent is None:
                f1s.append(np.ones((len(members), len(members))))
                continue
            masks = []
            with shared_threshold_fits():
                for m in members:
                    tmp = ctx._fit_on(set_param(params, slot.path, m), s, st)
                    got = None if tmp is None else tmp.masks.get(spec.name)
                    masks.append(np.zeros(int(parent.sum()), bool) if got is None else got[parent])
            f1s.append(_pairwise_f1(masks))
            if spec.name in s.expert:  # the expert gated this population here: which members reproduce it
                expert = s.expert[spec.name][parent]
                expert_f1[len(f1s) - 1] = np.array([f1_score(m, expert) for m in masks])
        base = members[0]
        out.append(Question(tuple(names), spec.dims[slot.dim], members, [describe(m, base) for m in members], f1s,
                            expert_f1))
    return out


def choose(questions: Sequence[Question], n: int, names: Sequence[str],
           gated: Sequence[int] = ()) -> tuple[list[int], list[float]]:
    """Indices of ``n`` samples (greedy, see module docstring) and the expected disagreement left after each."""
    chosen = list(gated)
    disagreement = np.sum([q.disagreement() for q in questions], axis=0) if questions else np.zeros(len(names))
    picks, left = [], []
    for _ in range(min(n, len(names) - len(chosen))):
        best: tuple[float, float, int] | None = None
        for s in range(len(names)):
            if s in chosen:
                continue
            val = float(sum(q.expected_left([*chosen, s]) for q in questions))
            key = (round(val, 9), -float(disagreement[s]), s)
            if best is None or key < best:
                best = key
        assert best is not None
        chosen.append(best[2])
        picks.append(best[2])
        left.append(best[0])
    return picks, left


def suggest_samples(files: Iterable[str | Path], n: int = 2, *, strategy: str | Path | Strategy,
                    gated: Sequence[str] = (), populations: Iterable[str] | None = None, panel: Any = None,
                    tube: str | None = None, qc: Any = True, expert: str | Path | None = None,
                    mapping: str | Path | dict[str, str] | None = None) -> Suggestion:
    """The ``n`` samples of the study (``files``: FCS files or folders) whose expert gates would best
    determine ``strategy``'s thresholds (see module docstring). ``gated``: samples (file stems) the expert
    has gated already (they count as chosen). ``populations``: only these populations' thresholds. Events are
    prepared by the pipeline's per-sample chain (``qc`` as in :func:`cytokit.learn.learn_strategy`).

    ``expert``: the expert's gates so far (FlowJo workspace or Gating-ML; ``mapping`` as for
    :func:`~cytokit.learn.learn_strategy`). Its gated samples count as chosen (with ``gated``), and their gates
    are read: only the committee members that reproduce them are still taken as possible lab rules, so the
    next sample is the one that best decides between the rules the gates so far leave open."""
    from .api import _training_samples, _unlabelled_samples
    from .expert import load_expert, load_mapping

    if n < 1:
        raise ConfigError(f"the number of samples to suggest must be at least 1 (got {n})")
    files_ = fcs_paths(files)
    if not files_:
        raise ConfigError("no FCS files given")
    base = strategy if isinstance(strategy, Strategy) else load_strategy(strategy)
    samples = _unlabelled_samples(base.definition, files_, panel=panel, tube=tube, qc=qc)
    if expert is not None:
        experts = load_expert(expert, files_)
        known = {t.name: t for t in _training_samples(base.definition, experts, load_mapping(mapping), panel=panel,
                                                      tube=tube, where=Path(expert), qc=qc)}
        samples = [known.get(s.name, s) for s in samples]
        gated = list(dict.fromkeys([*gated, *(name for name in known if name in {s.name for s in samples})]))
    return suggest_from_samples(base.definition, samples, n, gated=gated, populations=populations)


def suggest_from_samples(definition: StrategyDefinition, samples: Sequence[TrainingSample], n: int = 2, *,
                         gated: Sequence[str] = (), populations: Iterable[str] | None = None) -> Suggestion:
    """:func:`suggest_samples` on samples already prepared (compensated, transformed). The expert gates of
    ``gated`` samples, where a sample carries them (:attr:`TrainingSample.expert`), narrow the possible lab
    rules (:meth:`Question.possible`); other samples' expert gates are not read."""
    if n < 1:
        raise ConfigError(f"the number of samples to suggest must be at least 1 (got {n})")
    names = [s.name for s in samples]
    if not names:
        raise ConfigError("no sample could be read and prepared (see the warnings above)")
    if n > len(names) - len(gated):
        log.warning("%d samples asked for, %d not gated yet: all of them are suggested", n, len(names) - len(gated))
    unknown = [g for g in gated if g not in names]
    if unknown:
        raise ConfigError(f"gated samples {unknown} are not among the files ({', '.join(names)})")
    if populations is not None:
        missing = [p for p in populations if p not in {q.name for q in definition.populations}]
        if missing:
            raise ConfigError(f"populations {missing} are not in strategy {definition.name}")
    questions = _questions(definition, samples, populations)
    picks, left = choose(questions, n, names, [names.index(g) for g in gated])
    dis = np.sum([q.disagreement() for q in questions], axis=0) if questions else np.zeros(len(names))
    rows, reasons = [], []
    for i, name in enumerate(names):
        differ = []
        for q in questions:
            f = q.f1[i]
            if f.shape[0] > 1 and f[0, 1:].min() < DIFFER_F1:
                differ.append((float(f[0, 1:].min()), "/".join(q.populations) + f" ({q.dim})"))
        differ.sort()
        rank = picks.index(i) + 1 if i in picks else None
        rows.append({"sample": name, "rank": rank, "disagreement": round(float(dis[i]), 4),
                     "left_after": round(left[rank - 1], 4) if rank else None,
                     "differ": "; ".join(f"{d} F1 {f:.2f}" for f, d in differ)})
    for rank, i in enumerate(picks, 1):
        for q in questions:
            f = q.f1[i]
            if f.shape[0] < 2:
                continue
            k = 1 + int(np.argmin(f[0, 1:]))
            iu = np.triu_indices(f.shape[0], 1)
            n_pairs = int(np.sum(f[iu] < DIFFER_F1))
            if f[0, k] < DIFFER_F1 or n_pairs:
                reasons.append({"rank": rank, "sample": names[i], "populations": ", ".join(q.populations),
                                "dim": q.dim, "f1": round(float(f[0, k]), 4), "member": q.labels[k],
                                "differ_from_base": _grouped(q, f[0]),
                                "n_pairs_differ": n_pairs, "n_pairs": int(iu[0].size)})
    table = pd.DataFrame(rows)
    table = pd.concat([table[table["rank"].notna()].sort_values("rank"),
                       table[table["rank"].isna()].sort_values("disagreement", ascending=False)], ignore_index=True)
    reasons_t = pd.DataFrame(reasons, columns=["rank", "sample", "populations", "dim", "f1", "member",
                                               "differ_from_base", "n_pairs_differ", "n_pairs"])
    chosen = [names[i] for i in picks]
    log.info("suggested for expert gating: %s", ", ".join(chosen))
    return Suggestion(chosen, table, reasons_t.sort_values(["rank", "f1"], kind="stable").reset_index(drop=True),
                      list(gated))


def suggestion_html(s: Suggestion) -> str:
    """A page: the suggested samples with their reasons, then every sample by committee disagreement."""
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Samples to gate</title><style>"
             "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}"
             ".chosen{background:#fff6d5}</style></head><body>",
             "<h1>Samples to gate next</h1>",
             "<p>Each threshold of the strategy has a committee of candidate placements: the base rule, the rule "
             "changes the learner searches (valley choice, depth cut-off, range) and tails of the negative peak. "
             "An expert gate on a sample shows which of them the lab's rule agrees with there. The suggested "
             "samples are chosen one at a time: each next sample is the one after whose gating, whichever "
             "candidate the lab follows, the learner's choice is expected to disagree least with it on the other "
             "samples (<i>left after</i>, summed over thresholds, 1 &minus; per-event F1).</p>"]
    if s.gated:
        parts.append(f"<p>Already gated: {esc(', '.join(s.gated))}.</p>")
    parts.append("<h2>Suggested</h2><ol>")
    for name in s.samples:
        r = s.reasons[s.reasons["sample"] == name]
        items = "".join(f"<li>{esc(str(x.populations))} ({esc(str(x.dim))}): candidates gating it differently from "
                        f"the base (per-event F1 with the base gate): <i>{esc(str(x.differ_from_base))}</i>; "
                        f"{x.n_pairs_differ} of {x.n_pairs} candidate pairs differ (F1 &lt; {DIFFER_F1})</li>"
                        for x in r.itertuples())
        parts.append(f"<li><b>{esc(name)}</b><ul>{items or '<li>no threshold differs much here</li>'}</ul></li>")
    parts.append("</ol><h2>Every sample</h2><table><tr><th>rank</th><th>sample</th><th>committee disagreement</th>"
                 "<th>left after</th><th>thresholds where the base and a candidate differ (lowest F1)</th></tr>")
    for row in s.table.itertuples():
        rank = "" if pd.isna(row.rank) else str(int(row.rank))
        left = "" if pd.isna(row.left_after) else f"{row.left_after:.4f}"
        parts.append(f"<tr class='{'chosen' if rank else ''}'><td>{rank}</td><td>{esc(str(row.sample))}</td>"
                     f"<td>{row.disagreement:.4f}</td><td>{left}</td><td>{esc(str(row.differ))}</td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts)
