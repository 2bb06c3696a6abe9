"""Prepare a Sample for gating as a strategy says: resolve markers, compensate, transform.

Kept apart from the fitting so a notebook can prepare once and refit many times. Compensation and
transforms come from :mod:`cytokit.compensation` and :mod:`cytokit.transforms`; this module only decides
which channel gets which transform (by kind and marker) and estimates logicle widths.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CompensationError, GatingError, TransformError
from ..sample import Sample
from .model import StrategyDefinition, TransformChoice

log = logging.getLogger(__name__)

#: Top of scale (linear units) used when a channel has no $PnR.
DEFAULT_T = 262144.0


@dataclass(frozen=True)
class ChannelTransform:
    """The transform actually applied to one channel, with numeric Gating-ML parameters."""

    pnn: str
    marker: str
    name: str
    params: dict[str, float]
    transform: Any = field(default=None, compare=False, repr=False)  # the built Transform, when known

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


def compensate(sample: Sample, definition: StrategyDefinition) -> Sample:
    """Apply the file's acquisition matrix when the strategy asks for it (and the sample isn't yet)."""
    if definition.compensation == "none" or sample.compensated:
        return sample
    from ..compensation import compensate as compensate_sample

    try:
        return compensate_sample(sample)
    except CompensationError:
        if definition.compensation == "file_if_present":
            log.info("%s: no usable acquisition matrix; gating uncompensated data", sample.name)
            return sample.with_note("gating: no compensation (no acquisition matrix)")
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
    """Logicle for channel ``i`` with W from its negative values (flowCore's rule, on <= 50k events)."""
    from ..transforms import estimate_logicle

    x = sample.events[:: max(1, sample.n_events // 50000), i]
    label = str(sample.channels["pnn"].iloc[i])
    try:
        return estimate_logicle(x, T=T, M=M, A=A, label=label)
    except TransformError as exc:
        raise GatingError(f"channel {label}: {exc}", path=sample.path) from None


def plan_transforms(sample: Sample, definition: StrategyDefinition) -> list[ChannelTransform]:
    """The transform (with numbers: T from $PnR, W estimated when asked) for every channel to transform."""
    plan = []
    for i, row in enumerate(sample.channels.itertuples()):
        choice = _choice_for(row, definition)
        if choice is None or choice.name == "linear" or row.pnn in sample.transforms:
            continue
        rng = float(row.range) if row.range and np.isfinite(row.range) and float(row.range) > 0 else DEFAULT_T
        T = rng if choice.T == "range" else float(choice.T)
        M = 4.5 if choice.M is None else float(choice.M)
        params: dict[str, float] = {"T": T}
        built = None
        if choice.name in ("logicle", "hyperlog"):
            W = choice.W
            A = 0.0 if choice.A is None else float(choice.A)
            if W == "estimate" or W is None:
                est = _estimated_logicle(sample, i, T, M, A)
                W, A = est.W, est.A
                built = est if choice.name == "logicle" else None
            params.update(W=float(W), M=M, A=float(A))
        elif choice.name == "fasinh":
            params.update(M=M, A=0.0 if choice.A is None else float(choice.A))
        elif choice.name == "flog":
            params.update(M=M)
        elif choice.name == "flin":
            params.update(A=0.0 if choice.A is None else float(choice.A))
        plan.append(ChannelTransform(str(row.pnn), str(row.marker), choice.name, params, built))
    return plan


def apply_transforms(sample: Sample, plan: list[ChannelTransform]) -> Sample:
    """A new Sample with each planned channel transformed (events float32; provenance recorded)."""
    if not plan:
        return sample
    from ..transforms import get_transform

    events = sample.events.copy()
    recorded = dict(sample.transforms)
    for ct in plan:
        idx = sample.channel_index(ct.pnn)
        try:
            tf = ct.transform if ct.transform is not None else get_transform(ct.name, **ct.params)
        except TransformError as exc:
            raise GatingError(f"channel {ct.pnn} ({ct.marker}): {exc}", path=sample.path) from None
        events[:, idx] = np.asarray(tf.forward(events[:, idx].astype(np.float64)), dtype=np.float32)
        recorded[ct.pnn] = ct.describe()
    return sample.replace(events=events, transforms=recorded,
                          provenance=sample.provenance + ("gating: transformed " + ", ".join(
                              f"{c.marker}={c.describe()}" for c in plan),))


def prepare(sample: Sample, definition: StrategyDefinition, *, panel: Any = None,
            tube: str | None = None) -> tuple[Sample, list[ChannelTransform]]:
    """Resolve, compensate and transform ``sample`` for ``definition``; returns the new Sample and the plan."""
    s = resolve_panel(sample, panel, tube, definition)
    s = compensate(s, definition)
    plan = plan_transforms(s, definition)
    return apply_transforms(s, plan), plan
