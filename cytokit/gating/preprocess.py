"""The one per-sample preparation chain: resolve markers → QC → compensate → transform (then gate).

Contract
--------
:func:`prepare` is the only implementation of the chain. ``Strategy.apply`` (and so ``cytokit gate``),
the pipeline's per-sample task and the event loader of the cohort stages
(:func:`cytokit.pipeline.load_gated_events`) all call it, so they see the same events:

1. markers resolved with the panel (``panel=None``: the strategy's; ``False``: already resolved);
2. QC (:func:`cytokit.qc.run_qc`) on the linear, uncompensated events; removed events are dropped.
   ``qc=True`` is the pipeline's default ``qc:`` block, ``False``/``None`` skips QC, a dict is a
   pipeline ``qc:`` block (``enabled``, ``min_events`` and any :class:`~cytokit.qc.QCParams` field);
3. compensation as the strategy says (or forced on/off, for re-applying a stored analysis);
4. transforms: planned per channel (T from $PnR, logicle W estimated from the QC-kept events) or a
   stored plan re-applied as is.

It returns a :class:`Prepared` (the prepared Sample on the transformed scale, the plan and the
:class:`QCOutcome`). Kept apart from the fitting so a notebook can prepare once and refit many times.
Compensation and transforms come from :mod:`cytokit.compensation` and :mod:`cytokit.transforms`.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Mapping

import numpy as np

from ..errors import CompensationError, GatingError, QCError, TransformError
from ..sample import Sample
from .model import StrategyDefinition, TransformChoice

log = logging.getLogger(__name__)

#: Top of scale (linear units) used when a channel has no $PnR.
DEFAULT_T = 262144.0
#: Rows transformed together by :func:`apply_transforms` (16,384 rows x 12 float32 channels: 0.75 MB)
TRANSFORM_BLOCK_ROWS = 1 << 14


@dataclass(frozen=True)
class ChannelTransform:
    """The transform actually applied to one channel, with numeric Gating-ML parameters."""

    pnn: str
    marker: str
    name: str
    params: dict[str, float]
    transform: Any = field(default=None, compare=False, repr=False)  # the built Transform, when known
    #: for an estimated logicle whose parameters were clipped into range: the Sample warning that says so
    #: (:func:`cytokit.transforms.estimate.clipped_warning`), added by :func:`apply_transforms`
    warning: str | None = field(default=None, compare=False)
    #: for an estimated logicle/hyperlog W: the W the data asked for before clipping (0 without negative
    #: values; None: W not estimated)
    W_estimated: float | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.name == "linear":
            return "linear"
        return f"{self.name}(" + ", ".join(f"{k}={v:.4g}" for k, v in self.params.items()) + ")"


def resolve_panel(sample: Sample, panel: Any, tube: str | None, definition: StrategyDefinition) -> Sample:
    """Resolve channel names to markers with ``panel`` (a Panel, a name/path, or None = the strategy's)."""
    panel = panel if panel is not None else definition.panel
    if panel is None:
        return sample
    from ..panel import load_panel

    if isinstance(panel, (str, Path)):
        panel = load_panel(panel)
    return panel.resolve(sample, tube=tube if tube is not None else definition.tube)


def compensate(sample: Sample, definition: StrategyDefinition, *, in_place: bool = False) -> Sample:
    """Apply the file's acquisition matrix when the strategy asks for it (and the sample isn't yet);
    ``in_place``: compensate ``sample.events`` themselves (for a caller that owns them)."""
    if definition.compensation == "none" or sample.compensated:
        return sample
    from ..compensation import compensate as compensate_sample

    try:
        return compensate_sample(sample, in_place=in_place)
    except CompensationError as exc:
        if definition.compensation == "file_if_present":
            log.info("%s: no usable acquisition matrix; gating uncompensated data", sample.name)
            return sample.with_note("gating: no compensation (no acquisition matrix)")
        from ..compensation import acquisition_matrix

        if acquisition_matrix(sample) is None:  # say what the strategy can do about it
            raise CompensationError(
                f"{exc}; the strategy's 'compensation: file' needs one. Files unmixed on a spectral cytometer or "
                "exported already compensated need none: set 'compensation: none' in the strategy, or "
                "'compensation: file_if_present' when only some of the files carry a matrix",
                path=sample.path or sample.name) from exc
        raise


def _choice_for(row: Any, definition: StrategyDefinition) -> TransformChoice | None:
    t = definition.transforms
    if row.marker in t.markers:
        return t.markers[row.marker]
    if row.kind == "scatter":
        return t.scatter
    if row.kind == "fluorescence":
        return t.fluorescence
    return None


def _estimated_logicle(sample: Sample, i: int, T: float, M: float, A: float) -> Any:
    """Logicle for channel ``i`` with W from its negative values (flowCore's rule, on <= 50k events), as a
    :class:`~cytokit.transforms.LogicleEstimate` (what was clipped)."""
    from ..transforms import estimate_logicle_details

    x = sample.events[:: max(1, sample.n_events // 50000), i]
    label = str(sample.channel_table.column("pnn")[i])
    try:
        return estimate_logicle_details(x, T=T, M=M, A=A, label=label)
    except TransformError as exc:
        raise GatingError(f"channel {label}: {exc}", path=sample.path) from None


def plan_transforms(sample: Sample, definition: StrategyDefinition) -> list[ChannelTransform]:
    """The transform (with numbers: T from $PnR, W estimated when asked) for every channel to transform."""
    plan = []
    for i, row in enumerate(sample.channel_table.rows()):
        choice = _choice_for(row, definition)
        if choice is None or choice.name == "linear" or row.pnn in sample.transforms:
            continue
        rng = float(row.range) if row.range and np.isfinite(row.range) and float(row.range) > 0 else DEFAULT_T
        T = rng if choice.T == "range" else float(choice.T)
        M = 4.5 if choice.M is None else float(choice.M)
        params: dict[str, float] = {"T": T}
        built, warning, asked = None, None, None
        if choice.name in ("logicle", "hyperlog"):
            W = choice.W
            A = 0.0 if choice.A is None else float(choice.A)
            if W == "estimate" or W is None:
                from ..transforms.estimate import clipped_warning

                est = _estimated_logicle(sample, i, T, M, A)
                W, A = est.transform.W, est.transform.A
                built = est.transform if choice.name == "logicle" else None
                warning = clipped_warning(str(row.marker), str(row.pnn), est)
                asked = est.W_estimated if est.W_estimated is not None else est.transform.W  # no negatives: 0
            params.update(W=float(W), M=M, A=float(A))
        elif choice.name == "fasinh":
            params.update(M=M, A=0.0 if choice.A is None else float(choice.A))
        elif choice.name == "flog":
            params.update(M=M)
        elif choice.name == "flin":
            params.update(A=0.0 if choice.A is None else float(choice.A))
        plan.append(ChannelTransform(str(row.pnn), str(row.marker), choice.name, params, built, warning, asked))
    return plan


def apply_transforms(sample: Sample, plan: list[ChannelTransform], *, in_place: bool = False) -> Sample:
    """A new Sample with each planned channel transformed (events float32; provenance recorded).

    ``in_place``: transform ``sample.events`` itself instead of a copy (for a caller that owns them, e.g.
    :func:`prepare` after QC or compensation made a new array)."""
    if not plan:
        return sample
    from ..transforms import get_transform

    events = sample.events if in_place else sample.events.copy()
    recorded = dict(sample.transforms)
    steps = []
    for ct in plan:
        try:
            tf = ct.transform if ct.transform is not None else get_transform(ct.name, **ct.params)
        except TransformError as exc:
            raise GatingError(f"channel {ct.pnn} ({ct.marker}): {exc}", path=sample.path) from None
        steps.append((sample.channel_index(ct.pnn), tf))
        recorded[ct.pnn] = ct.describe()
    # a block of rows at a time, every channel of it before the next: the block's events stay in cache
    # (one channel after the other over all rows read and wrote every row's cache lines once per channel).
    # Transforms map each value on its own (float64, rounded once to float32), so blocks change nothing.
    for r0 in range(0, events.shape[0], TRANSFORM_BLOCK_ROWS):
        block = events[r0:r0 + TRANSFORM_BLOCK_ROWS]
        for idx, tf in steps:
            block[:, idx] = tf.forward(block[:, idx].astype(np.float64))
    warnings = tuple(c.warning for c in plan if c.warning and c.warning not in sample.warnings)
    return sample.replace(events=events, transforms=recorded, warnings=sample.warnings + warnings,
                          provenance=sample.provenance + ("gating: transformed " + ", ".join(
                              f"{c.marker}={c.describe()}" for c in plan),))


@dataclass(frozen=True)
class QCOutcome:
    """What QC did to one sample: the :class:`~cytokit.qc.QCResult` (None when QC was off), its flags, a
    summary (``removed`` events per check, ``removed_pct`` percent of events read), the ``qc:`` block
    used (``params``) and the events read (``n_events``) and kept (``n_kept``)."""

    result: Any
    flags: tuple[str, ...]
    info: dict[str, Any]
    params: dict[str, Any]
    n_events: int
    n_kept: int

    @property
    def keep(self) -> np.ndarray:
        """Boolean mask over the events read: True where the event was kept."""
        return self.result.keep if self.result is not None else np.ones(self.n_events, dtype=bool)


@dataclass(frozen=True)
class Prepared:
    """A Sample prepared for gating (QC-kept events, compensated, transformed), with the per-channel
    transforms applied and the QC outcome."""

    sample: Sample
    plan: tuple[ChannelTransform, ...]
    qc: QCOutcome


#: the pipeline's default ``qc:`` block (every :class:`~cytokit.qc.QCParams` field at its default)
DEFAULT_QC: dict[str, Any] = {"enabled": True}

Timer = Callable[[str], ContextManager[Any]]


def qc_block(qc: Any) -> dict[str, Any]:
    """A ``qc:`` block (dict) from ``True`` (the pipeline's default), ``False``/``None`` (no QC), a
    :class:`~cytokit.qc.QCParams` or a mapping (a pipeline ``qc:`` block)."""
    if qc is True:
        return dict(DEFAULT_QC)
    if qc is False or qc is None:
        return {"enabled": False}
    if isinstance(qc, Mapping):
        return dict(qc)
    if hasattr(qc, "model_dump"):
        return {"enabled": True, **qc.model_dump()}
    raise GatingError(f"qc must be True, False, a dict or QCParams, not {type(qc).__name__}")


def apply_qc(sample: Sample, qc: Any = True) -> tuple[Sample, QCOutcome]:
    """QC ``sample`` (linear scale) as the ``qc:`` block says; returns the kept events and the outcome.

    Fewer kept events than ``min_events`` (default 0) raise a :class:`~cytokit.errors.QCError`."""
    params = qc_block(qc)
    checks = dict(params)
    enabled = checks.pop("enabled", True)
    min_events = int(checks.pop("min_events", 0))
    kept, result = sample, None
    flags: tuple[str, ...] = ()
    info: dict[str, Any] = {}
    if enabled:
        from ..qc import QCParams, run_qc

        result = run_qc(sample, QCParams(**checks))
        kept = result.apply(sample)
        flags = tuple(result.flags)
        info = {"removed": dict(result.removed), "removed_pct": round(100.0 * result.removed_fraction, 4)}
    if kept.n_events < min_events:
        raise QCError(f"only {kept.n_events} events after QC (of {sample.n_events} read); the pipeline needs at "
                      f"least {min_events} (qc.min_events)", path=sample.path)
    return kept, QCOutcome(result, flags, info, params, sample.n_events, kept.n_events)


def _owned(sample: Sample, given: np.ndarray) -> bool:
    """Whether ``sample.events`` were made by the chain itself (QC's kept events, compensated events), so
    later steps may change them in place; the caller's events are never changed."""
    return bool(sample.events.flags.writeable) and not np.may_share_memory(sample.events, given)


@contextmanager
def _untimed(stage: str) -> Iterator[None]:
    yield


def prepare(sample: Sample, definition: StrategyDefinition, *, panel: Any = None, tube: str | None = None,
            qc: Any = True, plan: list[ChannelTransform] | tuple[ChannelTransform, ...] | None = None,
            compensate_events: bool | None = None, timer: Timer | None = None) -> Prepared:
    """The per-sample chain of the module contract: resolve → QC → compensate → transform.

    ``panel``: a Panel, a name/path, None (the strategy's panel and tube) or False (already resolved);
    ``qc``: see :func:`qc_block`; ``plan``: re-apply these transforms instead of planning them;
    ``compensate_events``: force compensation on/off (None: as the strategy says); ``timer(stage)``: a
    context manager timing the stages ``read`` (marker resolution), ``qc``, ``compensation``,
    ``transforms``. Each step replaces the previous Sample, so at most two copies of the events are alive.
    """
    timer = timer or _untimed
    given = sample.events
    if panel is not False:
        with timer("read"):
            sample = resolve_panel(sample, panel, tube, definition)
    with timer("qc"):
        sample, outcome = apply_qc(sample, qc)
    with timer("compensation"):
        if compensate_events is None or compensate_events:
            sample = compensate(sample, definition, in_place=_owned(sample, given))
    with timer("transforms"):
        steps = plan_transforms(sample, definition) if plan is None else list(plan)
        sample = apply_transforms(sample, steps, in_place=_owned(sample, given))
    return Prepared(sample, tuple(steps), outcome)
