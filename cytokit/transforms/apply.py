"""Applying scales to a :class:`~cytokit.sample.Sample` and undoing them.

A *spec* says which channel gets which scale:

* a mapping ``channel → transform`` where ``channel`` is a marker, $PnN or $PnS, or a selector
  ``"@fluorescence"``, ``"@scatter"``, ``"@time"``, ``"@all"`` (every channel of that ``kind`` not named
  explicitly); the transform is a :class:`Transform`, a name/``describe()`` text (``"arcsinh(cofactor=150)"``)
  or a mapping ``{name: logicle, W: 0.5}``. ``{name: logicle, estimate: true}`` estimates the logicle
  parameters per channel from the sample (``T`` = the channel's $PnR range, see :func:`estimate_logicle`);
* a single transform, meaning ``{"@fluorescence": transform}``.

The result is a new Sample whose transformed columns hold the forward values (float32) and whose
``transforms`` maps each transformed channel's $PnN to the ``describe()`` text of its scale; transforming
an already transformed channel raises :class:`TransformError` (no silent double transformation).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import PanelError, TransformError
from ..sample import Sample
from .base import Transform
from .estimate import estimate_logicle
from .registry import as_transform, parse_transform

log = logging.getLogger(__name__)

SELECTORS = ("@fluorescence", "@scatter", "@time", "@all")


def _channel_range(sample: Sample, idx: int) -> float | None:
    """Top of the channel's scale in decoded linear units: $PnR/$PnG, or f2·10^f1 for $PnE = f1,f2."""
    row = sample.channels.iloc[idx]

    def num(key: str, default: float) -> float:
        try:
            v = float(row.get(key, default))
        except (TypeError, ValueError):
            return default
        return v if np.isfinite(v) else default

    decades, offset = num("log_decades", 0.0), num("log_offset", 0.0)
    if decades > 0:
        return (offset if offset > 0 else 1.0) * 10.0 ** decades
    r, gain = num("range", 0.0), num("gain", 1.0)
    if r <= 0:
        return None
    return r / gain if gain > 0 else r


def _resolve_one(sample: Sample, idx: int, spec: Any) -> Transform:
    if isinstance(spec, Mapping) and spec.get("estimate"):
        opts = {k: v for k, v in spec.items() if k not in ("estimate", "name", "transform")}
        name = str(spec.get("name", spec.get("transform", "logicle"))).lower()
        if name != "logicle":
            raise TransformError(f"only logicle parameters can be estimated from data, not {name!r}")
        unknown = set(opts) - {"T", "M", "A", "q"}
        if unknown:
            raise TransformError(f"estimated logicle: unknown option(s) {sorted(unknown)}; accepted: T, M, A, q")
        opts.setdefault("T", _channel_range(sample, idx))
        pnn = str(sample.channels["pnn"].iloc[idx])
        return estimate_logicle(sample.events[:, idx], label=f"{sample.name} {pnn}", **opts)
    return as_transform(spec)


def plan_transforms(sample: Sample, spec: Any) -> dict[int, Transform]:
    """Channel index → Transform that :func:`transform` would apply (validates the whole spec first)."""
    if not isinstance(spec, Mapping) or "name" in spec or "transform" in spec:
        spec = {"@fluorescence": spec}
    explicit: dict[int, Any] = {}
    by_kind: dict[str, Any] = {}
    for key, value in spec.items():
        key = str(key)
        if key.startswith("@"):
            if key not in SELECTORS:
                raise TransformError(f"unknown channel selector {key!r}; use one of {', '.join(SELECTORS)}",
                                     path=sample.path or sample.name)
            by_kind[key[1:]] = value
            continue
        try:
            idx = sample.channel_index(key)
        except PanelError as exc:
            raise TransformError(f"transform spec names channel {key!r}: {exc}",
                                 path=sample.path or sample.name) from None
        explicit[idx] = value
    kinds = list(sample.channels["kind"].astype(str))
    plan: dict[int, Transform] = {}
    for idx in range(sample.n_channels):
        value = explicit.get(idx)
        if value is None:
            value = by_kind.get(kinds[idx], by_kind.get("all"))
        if value is None:
            continue
        plan[idx] = _resolve_one(sample, idx, value)
    return plan


def transform(sample: Sample, spec: Any) -> Sample:
    """A new Sample with the scales of ``spec`` applied (see the module docstring).

    Input values are on the linear scale (after compensation, if any); output columns are on each
    transform's scale (logicle/Gating-ML scales: 0..1 at top of scale T).
    """
    plan = plan_transforms(sample, spec)
    pnn = list(sample.channels["pnn"].astype(str))
    again = [pnn[i] for i in plan if pnn[i] in sample.transforms]
    if again:
        raise TransformError(
            f"channel(s) {', '.join(again)} are already transformed "
            f"({'; '.join(f'{p}: {sample.transforms[p]}' for p in again)}); untransform first",
            path=sample.path or sample.name,
        )
    events = sample.events.copy()
    applied = dict(sample.transforms)
    for idx, tr in plan.items():
        events[:, idx] = tr.forward(sample.events[:, idx]).astype(np.float32)
        applied[pnn[idx]] = tr.describe()
    note = "transformed " + ", ".join(f"{pnn[i]}: {tr.describe()}" for i, tr in plan.items())
    log.debug("%s: %s", sample.name, note)
    return sample.replace(events=events, transforms=applied, provenance=sample.provenance + (note,))


def untransform(sample: Sample, channels: Iterable[str] | None = None) -> Sample:
    """Undo recorded transforms (all, or those of ``channels``) with each scale's inverse."""
    pnn = list(sample.channels["pnn"].astype(str))
    if channels is None:
        targets = [p for p in pnn if p in sample.transforms]
    else:
        targets = [pnn[sample.channel_index(c)] for c in channels]
        missing = [p for p in targets if p not in sample.transforms]
        if missing:
            raise TransformError(f"channel(s) {', '.join(missing)} are not transformed",
                                 path=sample.path or sample.name)
    events = sample.events.copy()
    applied = dict(sample.transforms)
    for p in targets:
        idx = pnn.index(p)
        events[:, idx] = parse_transform(applied.pop(p)).inverse(sample.events[:, idx]).astype(np.float32)
    note = "untransformed " + ", ".join(targets)
    return sample.replace(events=events, transforms=applied, provenance=sample.provenance + (note,))
