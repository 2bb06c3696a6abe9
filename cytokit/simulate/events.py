"""Vectorised event kernel: leaf weights -> events (float32, linear scale), leaf labels and flags.

Contract
--------
:func:`simulate_events` draws ``n_events`` events of one tube for one acquisition and returns a
:class:`SimulatedEvents` with

* ``events``: float32 ``(n_events, n_channels)`` in file channel order (scatter, fluorescence, Time),
  linear scale, spillover applied (the acquisition matrix is ``spillover``), saturating at ``range - 1``;
* ``unspilled``: float32 fluorescence before spillover and detector noise, on the file's own gains —
  what compensating ``events`` with ``spillover`` recovers (exactly when both noise settings are 0);
* ``labels``: uint8 leaf codes (:mod:`.phenotypes`); ``flags``: uint8 bit mask (:data:`FLAG_BITS`);
* ``clog``: ``(start_s, end_s)`` of the clog, or ``None``.

Physics in brief: each cell class has log-normal FSC-A/SSC-A and per-marker modes; FSC-H follows FSC-A on
the singlet diagonal (ratio ~0.85). Doublets add the areas of two cells while FSC-H stays that of the
taller one, so they fall off the diagonal. Aggregates saturate scatter. Per file, every detector has its
own gain and every stain its own positive-mode shift; events arrive as a Poisson stream whose rate drops
during a clog, when signals also dim.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Mapping
from types import MappingProxyType

import numpy as np

from .channels import TUBES, spillover_matrix, tube_fluorochromes
from .config import AcquisitionConfig, InstrumentConfig, PhenotypeConfig
from .phenotypes import AUTOFLUORESCENCE, BEAD_LEVEL, CELL_TYPES, tube_leaves

FLAG_BITS: Mapping[str, int] = MappingProxyType({"clog": 1, "saturated": 2})
_NEG, _LOGNORMAL, _CONT, _BEAD = 0, 1, 2, 3
_COMPOSITE = ("doublet_debris", "doublet_cells", "aggregate")


@dataclass(frozen=True)
class SimulatedEvents:
    events: np.ndarray
    unspilled: np.ndarray
    labels: np.ndarray
    flags: np.ndarray
    spillover: np.ndarray
    gains: np.ndarray
    clog: tuple[float, float] | None
    duration_s: float
    anomaly: str | None = None  # acquisition anomaly family (AcquisitionConfig.anomalies), else None


@dataclass(frozen=True)
class _LeafTable:
    """Per-leaf parameter arrays of one tube (row = position in ``codes``)."""

    codes: np.ndarray
    kinds: tuple[str, ...]
    scatter: np.ndarray  # (n_leaves, 4): fsc med, fsc sd, ssc med, ssc sd
    autofl: np.ndarray   # (n_leaves, n_fluor)
    mode: np.ndarray     # (n_leaves, n_fluor) int
    p1: np.ndarray       # median or low bound
    p2: np.ndarray       # log-sd or high bound
    negative_spread: float = 0.35  # log-sd of autofluorescence


def _leaf_table(tube: str, phenotype: PhenotypeConfig | None = None) -> _LeafTable:
    ph = phenotype or PhenotypeConfig()
    leaves = tube_leaves(tube)
    markers = [m for m, _ in TUBES[tube]]
    fluors = tube_fluorochromes(tube)
    n, m = len(leaves), len(markers)
    scatter = np.zeros((n, 4))
    autofl = np.zeros((n, m))
    mode = np.zeros((n, m), dtype=np.int8)
    p1 = np.zeros((n, m))
    p2 = np.zeros((n, m))
    for i, leaf in enumerate(leaves):
        ctype = leaf.kind if leaf.kind in CELL_TYPES else "lymphocyte"
        fm, fs, sm, ss, af = CELL_TYPES[ctype]
        scatter[i] = ph.cell_scatter.get(ctype, (fm, fs, sm, ss))
        autofl[i] = [af * ph.autofluorescence_scale * AUTOFLUORESCENCE[f] for f in fluors]
        for j, marker in enumerate(markers):
            if leaf.kind == "bead":
                mode[i, j], p1[i, j], p2[i, j] = _BEAD, *BEAD_LEVEL
                continue
            state = leaf.phenotype.get(marker, "neg")
            if state == "neg" or marker in ph.absent_markers:
                continue
            level = ph.level(marker, state)
            if level[0] == "cont":
                mode[i, j], p1[i, j], p2[i, j] = _CONT, np.log(level[1]), np.log(level[2])
            else:
                mode[i, j], p1[i, j], p2[i, j] = _LOGNORMAL, level[0], level[1]
    return _LeafTable(np.array([lf.code for lf in leaves], dtype=np.uint8), tuple(lf.kind for lf in leaves),
                      scatter, autofl, mode, p1, p2, ph.negative_spread)


def _primitive(rows: np.ndarray, t: _LeafTable, stain: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """Scatter (n, 3: FSC-A, FSC-H, SSC-A) and fluorescence (n, m) of single cells/particles.

    Events are generated leaf by leaf on contiguous blocks (rows sorted by leaf; already-sorted input is
    the fast path), so memory stays at a few ``(n, m)`` arrays and there are no per-event gathers.
    """
    n, m = len(rows), t.mode.shape[1]
    presorted = bool(np.all(rows[1:] >= rows[:-1]))
    order = None if presorted else np.argsort(rows, kind="stable")
    srt = rows if presorted else rows[order]
    z = rng.standard_normal((n, 3))
    za = rng.standard_normal((n, m), dtype=np.float32)
    zf = rng.standard_normal((n, m), dtype=np.float32)
    scatter = np.empty((n, 3))
    fl = np.empty((n, m))
    bounds = np.concatenate([[0], np.cumsum(np.bincount(srt, minlength=len(t.codes)))])
    for k in range(len(t.codes)):
        a, b = int(bounds[k]), int(bounds[k + 1])
        if a == b:
            continue
        fm, fs, sm, ss = t.scatter[k]
        fsc = fm * np.exp(fs * z[a:b, 0])
        scatter[a:b, 0] = fsc
        scatter[a:b, 1] = fsc * (0.85 + (0.06 if fs > 0.3 else 0.025) * z[a:b, 2])  # debris: looser diagonal
        scatter[a:b, 2] = sm * np.exp(ss * z[a:b, 1])
        blk = fl[a:b]
        np.multiply(t.autofl[k], np.exp(t.negative_spread * za[a:b]), out=blk)
        for j in range(m):
            mode = t.mode[k, j]
            if mode == _LOGNORMAL:
                blk[:, j] += t.p1[k, j] * stain[j] * np.exp(t.p2[k, j] * zf[a:b, j])
            elif mode == _BEAD:
                blk[:, j] += t.p1[k, j] * np.exp(t.p2[k, j] * zf[a:b, j])
            elif mode == _CONT:
                lo, hi = t.p1[k, j], t.p2[k, j]
                blk[:, j] += stain[j] * np.exp(lo + (hi - lo) * rng.random(b - a))
    if order is None:
        return scatter, fl
    sc_out, fl_out = np.empty_like(scatter), np.empty_like(fl)
    sc_out[order], fl_out[order] = scatter, fl
    return sc_out, fl_out


def _constituents(kind: str, k: int, t: _LeafTable, probs: np.ndarray, rng: np.random.Generator
                  ) -> list[np.ndarray]:
    """Rows of the single cells making up ``k`` composite events of one kind."""
    kinds = np.array(t.kinds)
    lymph = np.flatnonzero(kinds == "lymphocyte")
    cells = np.flatnonzero(np.isin(kinds, ("lymphocyte", "monocyte", "granulocyte")))

    def draw(pool: np.ndarray, size: int) -> np.ndarray:
        p = probs[pool] / probs[pool].sum()
        return pool[rng.choice(len(pool), size=size, p=p)]

    if kind == "doublet_debris":
        return [draw(lymph, k), np.full(k, int(np.flatnonzero(kinds == "debris")[0]))]
    if kind == "doublet_cells":
        return [draw(cells, k), draw(cells, k)]
    return [draw(cells, k) for _ in range(4)]  # aggregate


def _apply_spillover(x: np.ndarray, spill: np.ndarray) -> np.ndarray:
    """``x @ spill`` as column AXPYs on column-major copies (skips zero spillover; no BLAS threads)."""
    xf = np.asfortranarray(x)
    out = np.empty(x.shape, order="F")
    for j in range(spill.shape[1]):
        col = out[:, j]
        np.multiply(xf[:, j], spill[j, j], out=col)
        for i in np.flatnonzero(spill[:, j]):
            if i != j:
                col += spill[i, j] * xf[:, i]
    return out


def simulate_events(tube: str, n_events: int, leaf_probs: Mapping[int, float], *,
                    instrument: InstrumentConfig, acquisition: AcquisitionConfig,
                    rng: np.random.Generator, allow_clog: bool = True,
                    phenotype: PhenotypeConfig | None = None,
                    anomaly: str | None = None) -> SimulatedEvents:
    """Draw one file's events (see module docstring). ``leaf_probs`` maps leaf code -> probability;
    ``phenotype`` holds scenario options for marker levels (default: the bundled trial's).

    With ``acquisition.anomalies`` set, times and signal changes come from
    :func:`cytokit.simulate.acquisition.draw_acquisition` (clogs, interruptions, bursts, drifts; ``anomaly``
    forces one family); the ``clog`` flag bit then marks every event acquired while the acquisition was
    abnormal. Without it, the single-clog model below is used."""
    t = _leaf_table(tube, phenotype)
    m = len(TUBES[tube])
    acq = acquisition
    top = float(acq.range - 1)
    probs = np.array([leaf_probs.get(int(c), 0.0) for c in t.codes], dtype=float)
    probs = probs / probs.sum()

    # per-file variation: staining (positive modes), detector gains, scatter gains
    stain = np.exp(acq.staining_cv * rng.standard_normal(m))
    gains = instrument.fluorescence_scale * np.exp(acq.gain_cv * rng.standard_normal(m))
    sgain = np.array([instrument.fsc_scale, instrument.fsc_scale, instrument.ssc_scale]) * np.exp(
        acq.scatter_cv * rng.standard_normal(2))[[0, 0, 1]]

    counts = rng.multinomial(n_events, probs)
    rows = np.repeat(np.arange(len(probs)), counts)  # sorted by leaf; shuffled once signals exist
    scatter = np.empty((n_events, 3))
    fluor = np.empty((n_events, m))
    leaf_kind = np.array([_COMPOSITE.index(k) + 1 if k in _COMPOSITE else 0 for k in t.kinds], dtype=np.int8)
    kinds = leaf_kind[rows]  # 0 = single particle, else 1 + index in _COMPOSITE
    prim = kinds == 0
    scatter[prim], fluor[prim] = _primitive(rows[prim], t, stain, rng)
    for ki, kind in enumerate(_COMPOSITE, start=1):
        idx = np.flatnonzero(kinds == ki)
        if not len(idx):
            continue
        parts = [_primitive(r, t, stain, rng) for r in _constituents(kind, len(idx), t, probs, rng)]
        sc = reduce(np.add, [p[0] for p in parts])
        fl = reduce(np.add, [p[1] for p in parts])
        if kind == "aggregate":  # FSC-A saturates whatever the gains (set again after them)
            sc[:, 0] = top * rng.uniform(1.0, 1.5, len(idx))
            sc[:, 2] = top * rng.uniform(0.8, 1.5, len(idx))
            sc[:, 1] = top * rng.uniform(0.5, 0.9, len(idx))
        else:
            sc[:, 1] = np.maximum(parts[0][0][:, 1], parts[1][0][:, 1]) * rng.uniform(1.0, 1.15, len(idx))
        scatter[idx], fluor[idx] = sc, fl
    perm = rng.permutation(n_events)
    rows, scatter, fluor = rows[perm], scatter[perm], fluor[perm]
    kinds = kinds[perm]

    # time: a Poisson stream, slower during a clog; events are in time order
    clog = None
    d = 0.0
    f = acq.clog_rate_factor
    family = None
    if acq.anomalies is not None or anomaly is not None:
        from .acquisition import AnomalyConfig, draw_acquisition

        draw = draw_acquisition(n_events, acq.events_per_second, acq.anomalies or AnomalyConfig(), rng,
                                allow=allow_clog, family=anomaly)
        times, in_clog, duration, clog, family = draw.times, draw.truth, draw.duration_s, draw.window_s, draw.family
        fluor *= draw.fluorescence_factor[:, None]
        scatter *= draw.scatter_factor[:, None]
    else:
        if allow_clog and rng.random() < acq.clog_probability:
            d = float(rng.uniform(*acq.clog_duration_fraction))
        duration = n_events / (acq.events_per_second * ((1 - d) + f * d))
        if d > 0:
            start = float(rng.uniform(0.1, 0.9 - d)) * duration
            clog = (start, start + d * duration)
            n_clog = int(rng.binomial(n_events, f * d / ((1 - d) + f * d)))
            normal = rng.uniform(0, duration * (1 - d), n_events - n_clog)
            normal = np.where(normal >= start, normal + d * duration, normal)
            times = np.sort(np.concatenate([normal, rng.uniform(clog[0], clog[1], n_clog)]))
            in_clog = (times >= clog[0]) & (times < clog[1])
            fluor[in_clog] *= acq.clog_signal_factor
            scatter[in_clog] *= acq.clog_scatter_factor
        else:
            times = np.sort(rng.uniform(0, duration, n_events))
            in_clog = np.zeros(n_events, dtype=bool)

    # acquisition: gains, spillover, detector noise, saturation (in place where possible)
    unspilled = fluor
    unspilled *= gains
    spill = spillover_matrix(tube, gains, scale=instrument.spillover_scale)
    observed = _apply_spillover(unspilled, spill)
    if acq.electronic_noise > 0 or acq.photon_noise > 0:
        sd = np.maximum(observed, 0.0)
        sd *= acq.photon_noise
        sd += acq.electronic_noise ** 2
        np.sqrt(sd, out=sd)
        sd *= rng.standard_normal(observed.shape, dtype=np.float32)
        observed += sd
        del sd
    scatter = scatter * sgain
    if acq.electronic_noise > 0:
        scatter += 2 * acq.electronic_noise * rng.standard_normal(scatter.shape)
    scatter[kinds == _COMPOSITE.index("aggregate") + 1, 0] = top
    np.clip(scatter, 0.0, top, out=scatter)
    np.minimum(observed, top, out=observed)

    out = np.empty((n_events, 3 + m + 1), dtype=np.float32)
    out[:, :3] = scatter
    out[:, 3:3 + m] = observed
    out[:, -1] = times / acq.time_step_s
    flags = np.where(in_clog, FLAG_BITS["clog"], 0).astype(np.uint8)
    flags[(out[:, :-1] >= top).any(axis=1)] |= FLAG_BITS["saturated"]
    return SimulatedEvents(
        events=out, unspilled=unspilled.astype(np.float32), labels=t.codes[rows], flags=flags,
        spillover=spill, gains=gains, clog=clog, duration_s=float(duration), anomaly=family,
    )


