"""Phenotype tables and naming of clusters by phenotype.

Contract
--------
* A phenotype is text such as ``"CD3+ CD4+ CD45RA+ CD62L+"``, ``"CD25hi CD127lo"`` or
  ``"CD3- CD56+ and/or CD16+"``: whitespace-separated terms ``<marker><level>``, AND-ed, except terms
  joined by ``or`` / ``and/or`` which form one OR group. Levels: ``+`` (>= positive threshold), ``-``
  (< positive threshold), ``hi``/``bright``/``high`` (>= high threshold), ``dim`` (between the positive
  and the high threshold), ``lo``/``low`` (< high threshold). Unicode minus signs are accepted.
* A :class:`PhenotypeTable` is an ordered list of :class:`PopulationPhenotype` (population name, parsed
  phenotype). Population names are those of ``docs/architecture.md``; :data:`DEFAULT_PHENOTYPES` holds the
  built-in table for them. Tables are read from a panel or strategy YAML (see :func:`load_phenotypes`).
* :class:`Thresholds` holds a positive and a high threshold per marker, on the **transformed scale**
  (the scale the events were clustered on). :func:`estimate_thresholds` finds them from the marker
  modes of pooled events (density valley, via :func:`cytokit.gating.methods.density.fit_threshold`).
* :func:`match_matrix` evaluates every phenotype on cluster medians. Terms on markers that were not
  clustered are ignored (e.g. ``CD3+`` when clustering T cells without CD3); a population with no term
  on a clustered marker is not matchable. A cluster is named after the matching population with the
  most usable terms (ties: table order); clusters that match nothing are ``"unassigned"``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from ..errors import ClusterError, ConfigError
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from ..yamlio import format_validation_error, read_yaml

UNASSIGNED = "unassigned"

_LEVELS = {
    "+": "+", "pos": "+", "-": "-", "neg": "-",
    "hi": "hi", "high": "hi", "bright": "hi", "++": "hi",
    "dim": "dim", "lo": "lo", "low": "lo",
}
_TERM = re.compile(r"^(?P<marker>.+?)(?P<level>\+\+|\+|-|hi|high|bright|dim|lo|low|pos|neg)$", re.IGNORECASE)
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2012": "-"})


@dataclass(frozen=True)
class Term:
    """One marker condition, e.g. ``Term("CD4", "+")``."""

    marker: str
    level: str

    def __str__(self) -> str:
        return f"{self.marker}{self.level}"


@dataclass(frozen=True)
class PopulationPhenotype:
    """A population name and its phenotype: AND over ``groups``, OR within each group."""

    name: str
    text: str
    groups: tuple[tuple[Term, ...], ...]

    @property
    def markers(self) -> set[str]:
        return {t.marker for g in self.groups for t in g}


def parse_phenotype(text: str, *, source: str | None = None) -> tuple[tuple[Term, ...], ...]:
    """Parse phenotype text into AND-ed groups of OR-ed terms; bad text raises :class:`ConfigError`."""
    tokens = str(text).translate(_MINUS).replace(",", " ").split()
    groups: list[list[Term]] = []
    join_next = False
    for tok in tokens:
        low = tok.lower()
        if low in ("or", "and/or"):
            if not groups:
                raise ConfigError(f"phenotype {text!r}: '{tok}' must follow a marker term", path=source)
            join_next = True
            continue
        if low == "and":
            continue
        m = _TERM.match(tok)
        if not m or not m.group("marker"):
            raise ConfigError(
                f"phenotype {text!r}: cannot read term {tok!r}; write marker + level, e.g. CD4+, CD8-, "
                "CD25hi, CD56dim, CD127lo", path=source)
        term = Term(m.group("marker"), _LEVELS[m.group("level").lower()])
        if join_next:
            groups[-1].append(term)
            join_next = False
        else:
            groups.append([term])
    if join_next:
        raise ConfigError(f"phenotype {text!r} ends with 'or'", path=source)
    if not groups:
        raise ConfigError(f"phenotype {text!r} has no marker terms", path=source)
    return tuple(tuple(g) for g in groups)


#: Built-in phenotypes of the population names in docs/architecture.md (full phenotypes from the root).
DEFAULT_PHENOTYPES: tuple[tuple[str, str], ...] = (
    ("T cells", "CD3+"),
    ("CD4 T", "CD3+ CD4+ CD8-"),
    ("CD8 T", "CD3+ CD8+ CD4-"),
    ("Naive CD4", "CD3+ CD4+ CD8- CD45RA+ CD62L+"),
    ("Memory CD4", "CD3+ CD4+ CD8- CD45RA-"),
    ("CM CD4", "CD3+ CD4+ CD8- CD45RA- CD62L+"),
    ("EM CD4", "CD3+ CD4+ CD8- CD45RA- CD62L-"),
    ("TEMRA CD4", "CD3+ CD4+ CD8- CD45RA+ CD62L-"),
    ("CD28+ CD4", "CD3+ CD4+ CD8- CD28+"),
    ("CD25+ CD4", "CD3+ CD4+ CD8- CD25+"),
    ("Treg", "CD3+ CD4+ CD8- CD25hi CD127lo"),
    ("CD28+ CD8", "CD3+ CD8+ CD4- CD28+"),
    ("NK cells", "CD3- CD19- CD56+ or CD16+"),
    ("CD56bright NK", "CD3- CD19- CD56hi"),
    ("CD56dim NK", "CD3- CD19- CD56dim"),
    ("B cells", "CD3- CD19+"),
)


class PhenotypeTable:
    """An ordered, immutable table of population phenotypes."""

    def __init__(self, entries: Iterable[PopulationPhenotype]) -> None:
        self._entries = tuple(entries)
        names = [e.name for e in self._entries]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"phenotype table lists populations twice: {dup}")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], *, source: str | None = None) -> "PhenotypeTable":
        return cls(PopulationPhenotype(str(n), str(t), parse_phenotype(t, source=source)) for n, t in pairs)

    @classmethod
    def default(cls) -> "PhenotypeTable":
        return cls.from_pairs(DEFAULT_PHENOTYPES)

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"population": self.names, "phenotype": [e.text for e in self._entries]})


def _collect_phenotypes(data: Any, out: list[tuple[str, str, str | None]], parent: str | None = None) -> None:
    """Walk YAML data for population entries carrying a ``phenotype`` (name/population key + parent)."""
    if isinstance(data, Mapping):
        name = data.get("name", data.get("population"))
        if isinstance(name, str) and isinstance(data.get("phenotype"), str):
            out.append((name, data["phenotype"], data.get("parent", parent)))
        for key, value in data.items():
            if key == "phenotypes" and isinstance(value, Mapping):
                out.extend((str(k), str(v), None) for k, v in value.items())
                continue
            child_parent = name if isinstance(name, str) else parent
            if isinstance(value, Mapping) and isinstance(value.get("phenotype"), str) and "name" not in value \
                    and "population" not in value:
                out.append((str(key), value["phenotype"], value.get("parent", child_parent)))
            _collect_phenotypes(value, out, child_parent)
    elif isinstance(data, list):
        for item in data:
            _collect_phenotypes(item, out, parent)


def load_phenotypes(path: str | Path) -> PhenotypeTable:
    """Phenotype table from a panel or strategy YAML.

    Accepted forms: a top-level ``phenotypes:`` mapping (population -> phenotype text), and/or
    population entries (in any list or mapping) that carry ``name`` (or ``population``) and
    ``phenotype`` fields, optionally ``parent``. A phenotype relative to its parent (``Naive CD4:
    CD45RA+ CD62L+`` under ``CD4 T: CD3+ CD4+``) is expanded with the parent's terms.
    """
    data, _ = read_yaml(path)
    found: list[tuple[str, str, str | None]] = []
    _collect_phenotypes(data, found)
    if not found:
        raise ConfigError("no phenotypes found (expected a 'phenotypes:' mapping or populations with a "
                          "'phenotype' field)", path=path)
    own: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    for name, text, parent in found:
        own.setdefault(name, text)
        parents.setdefault(name, parent)

    def full(name: str, seen: frozenset) -> list[tuple[Term, ...]]:
        groups = list(parse_phenotype(own[name], source=str(path)))
        parent = parents.get(name)
        if parent is None or parent not in own or parent in seen:
            return groups
        mine = {t.marker for g in groups for t in g}
        inherited = [g for g in full(parent, seen | {name}) if not ({t.marker for t in g} & mine)]
        return inherited + groups

    pairs = []
    for name in own:
        groups = full(name, frozenset())
        pairs.append((name, " ".join(" or ".join(str(t) for t in g) for g in groups)))
    return PhenotypeTable.from_pairs(pairs, source=str(path))


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


def estimate_thresholds(X: np.ndarray, markers: Sequence[str], *,
                        given: Mapping[str, Any] | None = None, seed: int = 0) -> Thresholds:
    """Thresholds per marker from ``given`` (marker -> value or ``{pos, hi}``) else from marker modes.

    ``X`` are pooled events (transformed scale). The positive threshold is the density valley between
    the marker's modes (tail of the negative peak when unimodal); the high threshold is the valley among
    the positive events, falling back to their median.
    """
    from ..gating.methods.density import ThresholdParams, fit_threshold

    given = dict(given or {})
    pos, hi, src = {}, {}, {}
    for j, m in enumerate(markers):
        spec = given.get(m)
        x = np.asarray(X[:, j], dtype=np.float64)
        if isinstance(spec, Mapping):
            p_val, h_val = spec.get("pos", spec.get("positive")), spec.get("hi", spec.get("high"))
        else:
            p_val, h_val = spec, None
        if p_val is None:
            t = fit_threshold(x, ThresholdParams(mode="valley", fallback="tail", seed=seed))
            p_val = t.value
            src[m] = "marker modes (" + t.info.get("method", "valley") + ")"
        else:
            src[m] = "given"
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


def _term_holds(values: np.ndarray, term: Term, j: int, thr: Thresholds) -> np.ndarray:
    t_pos, t_hi = thr.pos[term.marker], thr.hi[term.marker]
    v = values[:, j]
    if term.level == "+":
        return v >= t_pos
    if term.level == "-":
        return v < t_pos
    if term.level == "hi":
        return v >= t_hi
    if term.level == "dim":
        return (v >= t_pos) & (v < t_hi)
    if term.level == "lo":
        return v < t_hi
    raise ClusterError(f"unknown phenotype level {term.level!r}")


def match_matrix(medians: pd.DataFrame, table: PhenotypeTable, thresholds: Thresholds) -> pd.DataFrame:
    """Boolean frame (clusters x populations): does each cluster's median satisfy each phenotype.

    Only populations with at least one term on a clustered marker appear as columns.
    """
    markers = list(medians.columns)
    values = medians.to_numpy(dtype=np.float64)
    cols = {}
    for entry in table:
        usable = [tuple(t for t in g if t.marker in markers) for g in entry.groups]
        # an OR group with an unclustered alternative cannot be decided: skip the group
        usable = [g for g, full in zip(usable, entry.groups) if g and len(g) == len(full)]
        if not usable:
            continue
        ok = np.ones(len(values), dtype=bool)
        for g in usable:
            any_ok = np.zeros(len(values), dtype=bool)
            for t in g:
                any_ok |= _term_holds(values, t, markers.index(t.marker), thresholds)
            ok &= any_ok
        cols[entry.name] = ok
    return pd.DataFrame(cols, index=medians.index)


def usable_terms(table: PhenotypeTable, markers: Sequence[str]) -> dict[str, int]:
    """Number of decidable terms of each matchable population (used to rank specificity)."""
    out = {}
    for entry in table:
        n = sum(len(g) for g in entry.groups if all(t.marker in markers for t in g))
        if n:
            out[entry.name] = n
    return out


def name_clusters(matches: pd.DataFrame, table: PhenotypeTable, markers: Sequence[str]) -> pd.Series:
    """The most specific matching population of each cluster, else :data:`UNASSIGNED`."""
    spec = usable_terms(table, markers)
    order = {n: i for i, n in enumerate(table.names)}
    names = []
    for _, row in matches.iterrows():
        hits = [c for c in matches.columns if row[c]]
        if not hits:
            names.append(UNASSIGNED)
        else:
            names.append(sorted(hits, key=lambda n: (-spec.get(n, 0), order[n]))[0])
    return pd.Series(names, index=matches.index, name="name")


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
