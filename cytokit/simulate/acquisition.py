"""Acquisition anomalies over time: clogs, flow interruptions, bursts and drifts, with per-event truth.

Contract
--------
:class:`AnomalyConfig` (the ``acquisition.anomalies`` block of the simulation config) describes which
families of acquisition problems a file may have and how large they may be. :func:`draw_acquisition`
``(n_events, events_per_second, config, rng, allow=True) -> AcquisitionDraw`` returns, for ``n_events``
events in acquisition order, their times (seconds), a per-event fluorescence and scatter multiplier,
the per-event truth mask (events acquired while the acquisition was abnormal) and a description of the
anomaly (family, start/end in seconds, parameters).

The event rate is a profile ``r(u)`` over normalised time ``u`` in [0, 1] (1 = the nominal rate);
event times are drawn by inverting its cumulative integral, so exactly ``n_events`` arrive with the
profile's shape. Every file (clean or not) gets a slow rate wander of up to ``wander`` (e.g. ±8 %, as
sample pressure and temperature settle), so QC is not tuned to a perfectly flat stream. Families:

* ``clog`` — partial blockage: rate × ``clog_rate`` (0.05–0.5) and fluorescence × ``clog_signal``
  (0.55–0.9), scatter slightly dimmer, for 2–12 % of the run, with short ramps in and out;
* ``interruption`` — flow stops (no events) for 2–10 % of the run, then a recovery of 1–3 % of the
  run at 2–4× the rate with the signal off by 15–40 % (up or down); the recovery events are the truth;
* ``burst`` — 1–5 % of the run at 2.5–5× the rate (a released clog, a bubble), signal × 0.8–0.95;
* ``drift`` — from 20–60 % of the run to its end the rate falls linearly to 0.3–0.6 and the
  fluorescence to 0.6–0.85 of nominal (a clog building up); truth = events whose signal is off by
  ≥ 8 %.

The anomaly may sit anywhere in the run, including its first and last seconds. The legacy single-clog
model of :class:`~cytokit.simulate.config.AcquisitionConfig` is used when ``anomalies`` is None (the
bundled sample trial keeps its exact files).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

Family = Literal["clog", "interruption", "burst", "drift"]
FAMILIES: tuple[Family, ...] = ("clog", "interruption", "burst", "drift")
_GRID = 4001


class AnomalyConfig(BaseModel):
    """Which acquisition anomalies a file may have (one per file at most) and the clean rate wander."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probability: float = Field(0.3, ge=0, le=1, description="chance that a file has one anomaly")
    families: tuple[Family, ...] = Field(FAMILIES, min_length=1, description="drawn with equal chance")
    wander: float = Field(0.08, ge=0, lt=0.5, description="max slow rate wander of every file (fraction)")

    @field_validator("families")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("families must be distinct")
        return v


@dataclass(frozen=True)
class AcquisitionDraw:
    """Times (s, sorted), per-event multipliers and truth of one file's acquisition."""

    times: np.ndarray
    fluorescence_factor: np.ndarray
    scatter_factor: np.ndarray
    truth: np.ndarray
    duration_s: float
    family: str | None = None
    window_s: tuple[float, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _ramp(u: np.ndarray, a: float, b: float, edge: float) -> np.ndarray:
    """1 inside [a, b], 0 outside, with linear ramps of width ``edge`` inside the window."""
    w = np.clip((u - a) / max(edge, 1e-9), 0, 1) * np.clip((b - u) / max(edge, 1e-9), 0, 1)
    return np.where((u >= a) & (u <= b), w, 0.0)


def _profiles(family: str | None, rng: np.random.Generator, u: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], tuple[float, float] | None]:
    """(rate, fluorescence factor, scatter factor, truth window) over the grid ``u`` for one family."""
    rate = np.ones_like(u)
    fl = np.ones_like(u)
    sc = np.ones_like(u)
    truth = np.zeros(u.shape, dtype=bool)
    info: dict[str, Any] = {}
    window = None
    if family == "clog":
        d = rng.uniform(0.02, 0.12)
        a = rng.uniform(0.0, 1.0 - d)
        f, g, s = rng.uniform(0.05, 0.5), rng.uniform(0.55, 0.9), rng.uniform(0.85, 0.97)
        w = _ramp(u, a, a + d, 0.1 * d)
        rate, fl, sc = 1 - (1 - f) * w, 1 - (1 - g) * w, 1 - (1 - s) * w
        truth = (u >= a) & (u <= a + d)
        info = {"rate_factor": f, "signal_factor": g, "scatter_factor": s}
        window = (a, a + d)
    elif family == "interruption":
        d = rng.uniform(0.02, 0.10)
        rd = rng.uniform(0.01, 0.03)
        a = rng.uniform(0.0, 1.0 - d - rd)
        boost, shift = rng.uniform(2.0, 4.0), rng.uniform(0.15, 0.40) * rng.choice([-1.0, 1.0])
        gap = (u >= a) & (u < a + d)
        rec = (u >= a + d) & (u <= a + d + rd)
        rate = np.where(gap, 0.0, np.where(rec, boost, 1.0))
        fl = np.where(rec, 1.0 + shift, 1.0)
        truth = rec
        info = {"gap_fraction": d, "recovery_rate": boost, "recovery_signal": 1.0 + shift}
        window = (a, a + d + rd)
    elif family == "burst":
        d = rng.uniform(0.01, 0.05)
        a = rng.uniform(0.0, 1.0 - d)
        boost, g = rng.uniform(2.5, 5.0), rng.uniform(0.8, 0.95)
        w = (u >= a) & (u <= a + d)
        rate = np.where(w, boost, 1.0)
        fl = np.where(w, g, 1.0)
        truth = w
        info = {"rate_factor": boost, "signal_factor": g}
        window = (a, a + d)
    elif family == "drift":
        a = rng.uniform(0.2, 0.6)
        f, g = rng.uniform(0.3, 0.6), rng.uniform(0.6, 0.85)
        x = np.clip((u - a) / (1 - a), 0, 1)
        rate, fl = 1 - (1 - f) * x, 1 - (1 - g) * x
        sc = 1 - 0.1 * (1 - g) * x
        truth = np.abs(fl - 1) >= 0.08
        info = {"rate_end": f, "signal_end": g}
        window = (a, 1.0)
    elif family is not None:
        raise ValueError(f"unknown anomaly family {family!r}; expected one of {FAMILIES}")
    return rate, fl, sc, truth, info, window


def draw_acquisition(n_events: int, events_per_second: float, config: AnomalyConfig,
                     rng: np.random.Generator, *, allow: bool = True,
                     family: str | None = None) -> AcquisitionDraw:
    """Draw one file's acquisition (see module contract). ``family`` forces one family (benchmarks;
    ``"none"`` = clean); otherwise a family is drawn with ``config.probability`` when ``allow``."""
    u = np.linspace(0.0, 1.0, _GRID)
    if family == "none":
        family = None
    elif family is None and allow and rng.random() < config.probability:
        family = str(rng.choice(list(config.families)))
    rate, fl, sc, truth, info, window = _profiles(family, rng, u)
    if config.wander > 0:  # slow wander: two random low-frequency sinusoids
        amp = rng.uniform(0, config.wander)
        k1, k2 = rng.uniform(0.5, 2.0), rng.uniform(2.0, 5.0)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        rate = rate * (1 + amp * (0.7 * np.sin(2 * np.pi * k1 * u + p1) + 0.3 * np.sin(2 * np.pi * k2 * u + p2)))
    rate = np.maximum(rate, 0.0)
    cum = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2)])
    total = cum[-1]
    duration = n_events / (events_per_second * total / (_GRID - 1))
    q = np.sort(rng.random(n_events)) * total
    # invert the cumulative cell by cell: a draw falls in a cell of positive width (rate > 0 somewhere
    # in it), so no event lands where the flow stopped
    cell = np.clip(np.searchsorted(cum, q, side="right") - 1, 0, _GRID - 2)
    width = cum[cell + 1] - cum[cell]
    ue = u[cell] + (u[cell + 1] - u[cell]) * np.clip((q - cum[cell]) / np.where(width > 0, width, 1.0), 0, 1)
    fl_e = np.interp(ue, u, fl)
    sc_e = np.interp(ue, u, sc)
    idx = np.minimum(np.searchsorted(u, ue), _GRID - 1)
    truth_e = truth[idx] | truth[np.maximum(idx - 1, 0)] if family else np.zeros(n_events, dtype=bool)
    if family == "drift":
        truth_e = np.abs(fl_e - 1) >= 0.08
    win = (window[0] * duration, window[1] * duration) if window else None
    return AcquisitionDraw(times=ue * duration, fluorescence_factor=fl_e, scatter_factor=sc_e, truth=truth_e,
                           duration_s=float(duration), family=family, window_s=win,
                           info={k: round(float(v), 4) for k, v in info.items()})
