"""Marker thresholds on the transformed scale, used to name clusters by phenotype.

Contract
--------
:class:`Thresholds` holds a positive (``pos``) and a high (``hi``) threshold per marker, on the scale the
events were clustered on (logicle 0..1 for fluorescence). Sources, in order of precedence:

1. thresholds given by the user (:func:`load_thresholds` reads them from YAML);
2. the **gating thresholds**: cuts of the concrete gates the pipeline stored per sample, pooled by median
   (:func:`thresholds_from_gates`); a cut is the high threshold when the population's phenotype uses
   ``hi``/``lo``/``dim`` for that marker;
3. **marker modes**: the density valley of the pooled training events
   (:func:`cytokit.gating.methods.density.fit_threshold`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from ..errors import ConfigError
from ..results import schema as S
from ..yamlio import format_validation_error, read_yaml
from .phenotype import PhenotypeTable, PopulationPhenotype


@dataclass(frozen=True)
class Thresholds:
    """Per-marker positive (``pos``) and high (``hi``) thresholds on the transformed scale."""

    pos: Mapping[str, float]
    hi: Mapping[str, float]
    source: Mapping[str, str]

    def to_frame(self) -> pd.DataFrame:
        markers = list(self.pos)
        return pd.DataFrame({"marker": markers, "positive_threshold": [self.pos[m] for m in markers],
                             "high_threshold": [self.hi.get(m, np.nan) for m in markers],
                             "source": [self.source.get(m, "") for m in markers]})


def _level_of(entry: PopulationPhenotype | None, marker: str) -> str:
    if entry is not None:
        for g in entry.groups:
            for t in g:
                if t.marker == marker:
                    return t.level
    return "+"


def _gate_cuts(gate: Mapping[str, Any], level_for: Any) -> list[tuple[str, str, float]]:
    """(marker, 'pos'|'hi', value) cuts of one stored gate dict (quadrant dividers, range bounds)."""
    kind, dims = gate.get("type"), list(gate.get("dims", ()))
    cuts: list[tuple[str, str, float]] = []
    if kind == "quadrant":
        for d, v in zip(dims, gate.get("dividers", ())):
            if v is not None:
                cuts.append((d, "hi" if level_for(d) in ("hi", "lo") else "pos", float(v)))
    elif kind == "rectangle":
        for d, lo, hi in zip(dims, gate.get("lower", ()), gate.get("upper", ())):
            level = level_for(d)
            if level == "dim":
                cuts += [(d, "pos", float(lo))] if lo is not None else []
                cuts += [(d, "hi", float(hi))] if hi is not None else []
            elif level in ("+", "hi") and lo is not None:
                cuts.append((d, "pos" if level == "+" else "hi", float(lo)))
            elif level in ("-", "lo") and hi is not None:
                cuts.append((d, "pos" if level == "-" else "hi", float(hi)))
    return cuts


def thresholds_from_gates(records: Iterable[Mapping[str, Any]], table: PhenotypeTable) -> dict[str, dict[str, float]]:
    """Median gating thresholds per marker from stored concrete gates.

    ``records`` are the pipeline's stored gate records (``population``, ``gate`` dict as written by
    ``Gate.to_dict``, optional ``components``), pooled over samples. A cut on a marker counts as the
    positive threshold when the population's phenotype uses ``+``/``-`` for that marker, as the high
    threshold for ``hi``/``lo`` (and the upper bound of a ``dim`` range). Returns
    ``{marker: {"pos": median, "hi": median, "n": cuts}}`` (transformed scale).
    """
    pooled: dict[str, dict[str, list[float]]] = {}
    for rec in records:
        entry = table.get(str(rec.get(S.POPULATION)))

        def level_for(marker: str, entry: PopulationPhenotype | None = entry) -> str:
            return _level_of(entry, marker)

        gates = [rec.get("gate") or {}] + list(rec.get("components") or [])
        for gate in gates:
            for marker, kind, value in _gate_cuts(gate, level_for):
                if np.isfinite(value):
                    pooled.setdefault(marker, {"pos": [], "hi": []})[kind].append(value)
    out = {}
    for marker, cuts in pooled.items():
        out[marker] = {k: float(np.median(v)) for k, v in cuts.items() if v}
        out[marker]["n"] = float(len(cuts["pos"]) + len(cuts["hi"]))
    return out


def estimate_thresholds(X: np.ndarray, markers: Sequence[str], *, given: Mapping[str, Any] | None = None,
                        gating: Mapping[str, Mapping[str, float]] | None = None, seed: int = 0) -> Thresholds:
    """Thresholds per marker: ``given`` (marker -> value or ``{pos, hi}``), else the gating thresholds
    (:func:`thresholds_from_gates`), else marker modes of the pooled events ``X`` (transformed scale).

    From marker modes, the positive threshold is the density valley between the marker's modes (tail of
    the negative peak when unimodal); the high threshold is the valley among the positive events, falling
    back to their median.
    """
    from ..gating.methods.density import ThresholdParams, fit_threshold

    given = dict(given or {})
    gating = dict(gating or {})
    pos, hi, src = {}, {}, {}
    for j, m in enumerate(markers):
        spec = given.get(m)
        x = np.asarray(X[:, j], dtype=np.float64)
        if isinstance(spec, Mapping):
            p_val, h_val = spec.get("pos", spec.get("positive")), spec.get("hi", spec.get("high"))
        else:
            p_val, h_val = spec, None
        src[m] = "given" if p_val is not None else ""
        g = gating.get(m, {})
        if p_val is None and g.get("pos") is not None:
            p_val, src[m] = g["pos"], "gating"
        if h_val is None and g.get("hi") is not None:
            h_val = g["hi"]
            src[m] = (src[m] + "; high from gating").lstrip("; ") if src[m] != "gating" else "gating"
        if p_val is None:
            t = fit_threshold(x, ThresholdParams(mode="valley", fallback="tail", seed=seed))
            p_val = t.value
            src[m] = ("marker modes (" + t.info.get("method", "valley") + ")" + ("; high from gating"
                      if h_val is not None else "")).strip()
        p_val = float(p_val)
        if h_val is None:
            above = x[x >= p_val]
            if above.size >= 20:
                t = fit_threshold(above, ThresholdParams(mode="valley", fallback="quantile", quantile=0.5,
                                                         seed=seed))
                h_val = t.value
            else:
                h_val = p_val + (float(np.max(x)) - p_val) / 2 if x.size else p_val
        pos[m], hi[m] = p_val, max(float(h_val), p_val)
    return Thresholds(pos, hi, src)


class _ThresholdSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pos: float | None = None
    hi: float | None = None


class _ThresholdFile(RootModel[dict[str, Union[float, _ThresholdSpec]]]):
    pass


def load_thresholds(path: str | Path) -> dict[str, Any]:
    """Thresholds YAML: ``marker: value`` or ``marker: {pos: value, hi: value}`` (transformed scale).

    A top-level ``thresholds:`` key holding that mapping is accepted too. Errors name file, line, field.
    """
    data, lines = read_yaml(path)
    if isinstance(data, Mapping) and "thresholds" in data:
        data = data["thresholds"]
        lines = {k[1:]: v for k, v in lines.items() if k[:1] == ("thresholds",)}
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("thresholds file must map marker names to values", path=path)
    try:
        model = _ThresholdFile.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, lines)) from None
    return {str(k): (v.model_dump() if isinstance(v, _ThresholdSpec) else float(v)) for k, v in model.root.items()}
