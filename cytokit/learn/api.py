"""Learn a strategy from expert gates, and compare any gating with expert gates.

Contract
--------
:func:`learn_strategy` takes expert gates (FlowJo workspace or Gating-ML) on some FCS files, a base
strategy (or None: one is derived from the expert's gate tree, :mod:`.derive`) and a mapping of expert
population names to strategy populations. It tunes the strategy on the training samples
(:func:`cytokit.learn.search.tune_definition`) and measures per-event agreement:

* ``untuned`` — the base strategy on every expert-gated sample;
* ``loso`` — leave-one-sample-out: tuned on the other training samples, evaluated on the one left out
  (needs >= 2 training samples);
* ``train`` — the final strategy (tuned on all training samples) on the training samples (resubstitution);
* ``holdout`` — the final strategy on expert-gated samples not used for training.

:func:`compare_gates` measures the same agreement for any strategy or a finished run's stored gates.
Agreement rows: see :data:`cytokit.learn.agreement.COLUMNS` (+ ``role``); F1 per event over all the
sample's events; percentages are percent (0-100) of each side's parent.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io_utils import fcs_paths
from ..gating import Strategy, load_strategy
from ..gating.model import StrategyDefinition
from ..results import ResultsFolder
from ..results import schema as S
from .agreement import agreement_rows, summarise, worst_first
from .expert import ExpertSample, expert_masks, load_expert, load_mapping, resolve_nodes
from .search import RULE_TIE, TrainingSample, changed_params, tune_definition

log = logging.getLogger(__name__)

#: a learned valley depth cut-off whose range of equally fitting values is at least this wide is warned about
DEPTH_WARN_WIDTH = 0.1


@dataclass
class LearnResult:
    """The tuned strategy, the base it started from, agreement rows and the parameter changes."""

    strategy: Strategy
    base: Strategy
    agreement: pd.DataFrame
    changes: list[dict[str, Any]]
    train: list[str]
    nodes: dict[str, str] = field(default_factory=dict)
    #: populations whose tuning raised the training score, adopted or not (leave-one-out check), see
    #: :func:`cytokit.learn.search.tune_definition`
    decisions: list[dict[str, Any]] = field(default_factory=list)
    #: threshold dimensions whose equally fitting candidates gate some unlabelled samples differently, see
    #: :func:`cytokit.learn.search.tune_definition`
    undetermined: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What the training samples left undetermined: in the adopted parameters (:func:`depth_warnings`)
        and on the unlabelled samples (:func:`undetermined_warnings`)."""
        return depth_warnings(self.decisions) + undetermined_warnings(self.undetermined)

    @property
    def not_adopted(self) -> list[dict[str, Any]]:
        """Tunings that fitted the training samples better but failed the leave-one-out check."""
        return [d for d in self.decisions if not d["adopted"]]

    def summary(self, role: str | None = None) -> pd.DataFrame:
        """Per population (and role): median/min F1, median/max |Δ%| over samples, worst first."""
        t = self.agreement if role is None else self.agreement[self.agreement.role == role]
        return summarise(t, by=("role", S.POPULATION) if role is None else (S.POPULATION,))

    def save(self, out_dir: str | Path, *, force: bool = False) -> dict[str, Path]:
        """Write ``<strategy>.yaml`` (tuned), ``agreement.csv`` and ``agreement.html`` into ``out_dir``."""
        from ..io_utils import atomic_write_text, safe_name
        from .report import agreement_html

        out = Path(out_dir)
        paths = {"strategy": out / f"{safe_name(self.strategy.name)}.yaml", "agreement": out / "agreement.csv",
                 "html": out / "agreement.html"}
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing and not force:
            raise ConfigError(f"output exists: {', '.join(existing)}; use --force to overwrite")
        out.mkdir(parents=True, exist_ok=True)
        self.strategy.save(paths["strategy"])
        atomic_write_text(paths["agreement"], self.agreement.to_csv(index=False))
        atomic_write_text(paths["html"], agreement_html(self.agreement, title=f"Strategy {self.strategy.name} "
                                                        f"learned from expert gates", changes=self.changes,
                                                        train=self.train, not_adopted=self.not_adopted,
                                                        warnings=self.warnings))
        return paths


def depth_warnings(decisions: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per adopted valley rule whose depth cut-off the training samples do not fix (its range of
    equally fitting values, ``valley_depth`` of a tuning decision, is at least :data:`DEPTH_WARN_WIDTH`)."""
    out = []
    for d in decisions:
        for r in d.get("valley_depth", ()) if d.get("adopted") else ():
            if r["high"] - r["low"] >= DEPTH_WARN_WIDTH:
                out.append(f"{d['population']} ({r['dim']}): the training samples do not show how shallow a dip "
                           f"the expert still takes for a valley: depth cut-offs {r['low']:.2f}-{r['high']:.2f} "
                           f"reproduce them equally, {r['used']:.2f} is used; samples whose {r['dim']} dips lie in "
                           f"that range may be gated differently from the expert (check them with compare-gates, "
                           f"or train on one that has such a dip)")
    return out


def undetermined_warnings(undetermined: Sequence[dict[str, Any]], *, most: int = 5) -> list[str]:
    """One sentence per threshold dimension whose equally fitting candidates gate unlabelled samples
    differently (worst ``most`` samples named, lowest F1 between the gatings first)."""
    out = []
    for u in undetermined:
        rows = sorted(u["samples"], key=lambda r: r["f1"])
        named = ", ".join(f"{r['sample']} (F1 {r['f1']:.2f})" for r in rows[:most])
        more = f" and {len(rows) - most} more" if len(rows) > most else ""
        out.append(f"{u['population']} ({u['dim']}): rules that reproduce the training samples equally gate "
                   f"{len(rows)} other sample(s) differently: {named}{more} (per-event F1 between the "
                   f"gatings); the training samples do not show which the expert would choose, so the one "
                   f"closest to the base strategy is used; an expert gate on one of them would decide")
    return out


def _training_samples(definition: StrategyDefinition, experts: Sequence[ExpertSample],
                      mapping: Mapping[str, str] | None, *, panel: Any, tube: str | None,
                      where: Any, qc: Any = True) -> list[TrainingSample]:
    """Each expert sample prepared by the pipeline's per-sample chain (resolve, QC, compensate,
    transform); the expert's masks are restricted to the events QC kept, so both sides are scored on the
    events the pipeline gates."""
    from ..fcs import read_fcs
    from ..gating.preprocess import prepare

    names = [p.name for p in definition.populations]
    out = []
    for ex in experts:
        raw = read_fcs(ex.path)
        nodes = resolve_nodes(ex.document, mapping, names, where=where)
        masks, _parents = expert_masks(ex.document, raw, nodes)
        prep = prepare(raw, definition, panel=panel, tube=tube, qc=qc)
        keep = prep.qc.keep
        masks = {pop: m[keep] for pop, m in masks.items()}
        parents = {pop: (masks[ref] if ref is not None else None)
                   for pop, ref in ((p, _reference(definition, p, masks)) for p in masks)}
        out.append(TrainingSample(ex.name, prep.sample, tuple(prep.plan), masks, parents))
    return out


def _unlabelled_samples(definition: StrategyDefinition, paths: Sequence[str | Path], *, panel: Any,
                        tube: str | None, qc: Any = True) -> list[TrainingSample]:
    """Files without expert gates prepared by the same per-sample chain (no masks). A file that cannot be
    read or prepared is left out with a warning (it only informs tie-breaks)."""
    from ..errors import CytokitError
    from ..fcs import read_fcs
    from ..gating.preprocess import prepare

    out = []
    for path in paths:
        try:
            prep = prepare(read_fcs(path), definition, panel=panel, tube=tube, qc=qc)
        except CytokitError as exc:
            log.warning("%s: not used as an unlabelled sample: %s", path, exc)
            continue
        out.append(TrainingSample(Path(path).stem, prep.sample, tuple(prep.plan), {}))
    return out


def _reference(definition: StrategyDefinition, name: str, mapped: Mapping[str, Any]) -> str | None:
    """The denominator of a population's % on both sides: its nearest strategy ancestor that has expert
    gates too (None = all events)."""
    from ..gating.model import ancestors

    return next((a for a in ancestors(definition, name) if a in mapped), None)


def _evaluate(definition: StrategyDefinition, samples: Iterable[TrainingSample], role: str,
              nodes: Mapping[str, str]) -> list[dict]:
    strategy = Strategy(definition)
    rows = []
    for s in samples:
        result = strategy.apply_prepared(s.prepared, s.plan)
        masks = result.masks
        parents = {}
        for p in s.expert:
            ref = _reference(definition, p, s.expert)
            parents[p] = masks.get(ref) if ref is not None else None
        for r in agreement_rows(s.name, masks, s.expert, parents, s.expert_parents, names=nodes):
            rows.append({**r, "role": role})
    return rows


def learn_strategy(expert: str | Path, files: Iterable[str | Path], *, strategy: str | Path | Strategy | None = None,
                   mapping: str | Path | Mapping[str, str] | None = None, train: Sequence[str] | None = None,
                   panel: Any = None, tube: str | None = None, loso: bool = True, qc: Any = True,
                   use_unlabelled: bool = True) -> LearnResult:
    """Tune ``strategy`` (built-in name, YAML path, Strategy, or None = derive from the expert's gate
    tree) so that its gates agree with the expert's (``expert``: ``.wsp`` or Gating-ML, on ``files``).

    ``train`` names the samples (FCS file stems) to learn from (default: every expert-gated sample);
    the other expert-gated samples are scored as ``holdout``. ``qc`` is the pipeline's ``qc:`` block (True =
    its default): both sides are scored on the events QC keeps. Returns a :class:`LearnResult`.

    ``use_unlabelled``: the study's samples not trained on — ``files`` without expert gates and expert-gated
    samples not in ``train`` (their events only, never their expert gates) — decide between parameters
    that reproduce the training samples equally: the one whose gates on them differ least from the base
    strategy's is kept (minimal change, :func:`cytokit.learn.search.tune_definition`). Without them the
    earliest such candidate is kept (the base value, then the closest to it).
    """
    files_ = fcs_paths(files)
    experts = load_expert(expert, files_)
    where = Path(expert)
    mapping_ = load_mapping(mapping)
    if strategy is None:  # derived populations carry the expert's names (renamed by the mapping)
        from .derive import derive_strategy

        base = derive_strategy(experts[0].document, experts[0].path, mapping=mapping_, source=where)
    else:
        base = strategy if isinstance(strategy, Strategy) else load_strategy(strategy)
    definition = base.definition
    samples = _training_samples(definition, experts, mapping_, panel=panel, tube=tube, where=where, qc=qc)
    nodes = resolve_nodes(experts[0].document, mapping_, [p.name for p in definition.populations], where=where)
    names = [s.name for s in samples]
    if train is None:
        train_set = names
    else:
        unknown = [t for t in train if t not in names]
        if unknown:
            raise ConfigError(f"training samples {unknown} are not expert-gated samples ({', '.join(names)})",
                              path=where)
        train_set = list(train)
    tr = [s for s in samples if s.name in train_set]
    rest = [s for s in samples if s.name not in train_set]
    free: list[TrainingSample] = []
    if use_unlabelled:
        gated = {Path(ex.path).resolve() for ex in experts}
        free = rest + _unlabelled_samples(definition, [f for f in files_ if Path(f).resolve() not in gated],
                                          panel=panel, tube=tube, qc=qc)
        log.info("%d unlabelled samples (no expert gates read) decide between equally fitting parameters",
                 len(free))
    rows = _evaluate(definition, samples, "untuned", nodes)
    if loso and len(tr) >= 2:
        for i, held in enumerate(tr):
            others = tr[:i] + tr[i + 1:]
            log.info("leave-one-out: tuning without %s", held.name)
            loso_free = [*free, held] if use_unlabelled else []
            rows += _evaluate(tune_definition(definition, others, tie=RULE_TIE, unlabelled_samples=loso_free),
                              [held], "loso", nodes)
    decisions: list[dict[str, Any]] = []
    undetermined: list[dict[str, Any]] = []
    tuned = tune_definition(definition, tr, decisions=decisions, unlabelled_samples=free,
                            undetermined=undetermined)
    for d in decisions:
        if not d["adopted"]:
            log.warning("%s: tuning fitted the training samples better (score %.4f -> %.4f) but failed the "
                        "leave-one-out check (gain on each left-out sample: %s); kept the base parameters",
                        d["population"], d["score_before"], d["score_after"],
                        ", ".join(f"{g:+.4f}" for g in d["loo_gains"]))
    for w in depth_warnings(decisions) + undetermined_warnings(undetermined):
        log.warning("%s", w)
    rows += _evaluate(tuned, tr, "train", nodes)
    if rest:
        rows += _evaluate(tuned, rest, "holdout", nodes)
    table = pd.DataFrame(rows)
    final = Strategy(tuned.model_copy(update={"description": (tuned.description + " (tuned on expert gates: "
                                                               + ", ".join(train_set) + ")").strip()}))
    return LearnResult(final, base, table, changed_params(definition, tuned), train_set, dict(nodes), decisions,
                       undetermined)


def compare_gates(expert: str | Path, files: Iterable[str | Path], gates: str | Path | Strategy, *,
                  mapping: str | Path | Mapping[str, str] | None = None, panel: Any = None,
                  tube: str | None = None, qc: Any = True) -> pd.DataFrame:
    """Per-event agreement of ``gates`` with the expert's, one row per sample x population, worst first.

    ``gates`` is a strategy (name, YAML, Strategy) applied to each file, or a finished run's results
    folder, whose stored per-sample Gating-ML gates (``samples/<id>/gates.xml``, or ``gates_cohort.xml`` where the
    tables report a cohort re-fit) are evaluated as they are.
    Either way both sides are scored on the events QC kept: with a strategy, QC as ``qc`` says; with a
    run, the run's own QC, so ``n_auto`` and ``pct_auto`` are the run's populations table ``count`` and
    ``pct_parent`` when the expert gates every ancestor.
    """
    experts = load_expert(expert, files)
    mapping_ = load_mapping(mapping)
    where = Path(expert)
    if isinstance(gates, (str, Path)) and Path(gates).is_dir():
        return worst_first(pd.DataFrame(_compare_run(Path(gates), experts, mapping_, where)))
    strategy = gates if isinstance(gates, Strategy) else load_strategy(gates)
    samples = _training_samples(strategy.definition, experts, mapping_, panel=panel, tube=tube, where=where,
                                 qc=qc)
    nodes = resolve_nodes(experts[0].document, mapping_, strategy.population_names, where=where)
    return worst_first(pd.DataFrame(_evaluate(strategy.definition, samples, "compare", nodes)))


def _cohort_refits(run: Path) -> dict[str, list[str]]:
    """Sample id -> populations the run's tables report from a cohort re-fit (not the stored gates)."""
    from ..results import read_table

    pops = read_table(run, S.POPULATIONS)
    if pops is None or S.METHOD not in pops:
        return {}
    hit = pops[pops[S.METHOD].astype(str).str.endswith("+cohort")]
    return {str(sid): [str(p) for p in g[S.POPULATION]] for sid, g in hit.groupby(S.SAMPLE_ID, sort=False)}


def _compare_run(run: Path, experts: Sequence[ExpertSample], mapping: Mapping[str, str] | None,
                 where: Path) -> list[dict]:
    """Agreement rows of the gates a run's tables report (:meth:`~cytokit.results.ResultsFolder.reported_gates`:
    ``samples/<id>/gates.xml``, or ``gates_cohort.xml`` of a cohort re-fit), scored on the events the run's
    tables count: the per-sample chain is re-run with the run's QC (:func:`cytokit.pipeline.events.
    prepare_from_store`) and both sides are restricted to the events QC kept, as in strategy mode."""
    from ..fcs import read_fcs
    from ..gatingml import evaluate_document, read_gatingml
    from ..pipeline.events import prepare_from_store

    table = run / "samples.csv"
    if not table.exists():
        raise ConfigError("not a cytokit results folder (no samples.csv)", path=run)
    samples = pd.read_csv(table, dtype=str).fillna("")
    by_file = {Path(f).name: sid for f, sid in zip(samples[S.FILE], samples[S.SAMPLE_ID])}
    kept_by_id = dict(zip(samples[S.SAMPLE_ID], samples.get(S.N_EVENTS_QC, pd.Series(dtype=str))))
    refitted = _cohort_refits(run)
    rows: list[dict] = []
    for ex in experts:
        sid = by_file.get(ex.path.name)
        gx = ResultsFolder(run).reported_gates(str(sid)).gatingml if sid is not None else None
        if gx is not None and not gx.is_file():  # the run wrote no Gating-ML of a re-fit: the stored fit's
            gx = ResultsFolder(run).sample_dir(str(sid)) / S.GATES_XML
        if sid is None or gx is None or not gx.exists():
            log.warning("%s: not in the run (or no stored gates); skipped", ex.path.name)
            continue
        if refitted.get(sid) and gx.name != S.GATES_COHORT_XML:
            log.warning("%s: %s reported in the run's tables from the cohort re-fit (method <method>+cohort); "
                        "the run wrote no Gating-ML of the re-fit (outputs.gatingml off), so compare-gates scores "
                        "the stored per-sample fit and these rows are not the tables' numbers", ex.path.name, ", ".join(refitted[sid]))
        doc = read_gatingml(gx)
        raw = read_fcs(ex.path)
        keep = np.asarray(prepare_from_store(run, sid, raw=raw)[0].qc.keep, dtype=bool)
        expected = kept_by_id.get(sid, "")
        if expected and int(float(expected)) != int(keep.sum()):
            raise ConfigError(f"{ex.path.name}: QC re-run keeps {int(keep.sum())} events, the run's tables "
                              f"counted {int(float(expected))}; the run cannot be scored on its own events", path=run)
        names = {n.id: n.name for n in doc.nodes}
        nodes = resolve_nodes(ex.document, mapping, list(names.values()), where=where)
        masks, _ = expert_masks(ex.document, raw, nodes)
        masks = {pop: m[keep] for pop, m in masks.items()}
        by_name = {names[k]: np.asarray(v, dtype=bool)[keep] for k, v in evaluate_document(doc, raw).items()}
        auto_par: dict[str, Any] = {}
        parents: dict[str, Any] = {}
        for n in doc.nodes:  # % of the nearest ancestor both sides have (see agreement module)
            ref, current = None, n.parent
            while current is not None and ref is None:
                ref = names[current] if names[current] in masks else None
                current = doc.node(current).parent
            auto_par[names[n.id]] = by_name[ref] if ref is not None else None
            parents[names[n.id]] = masks[ref] if ref is not None else None
        for r in agreement_rows(ex.name, by_name, masks, auto_par, parents, names=nodes):
            rows.append({**r, "role": "compare"})
    if not rows:
        raise ConfigError("none of the expert-gated files is in the run", path=run)
    return rows
