"""Phenotype tables: population phenotypes parsed from text and read from YAML.

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
* Terms are judged against per-marker thresholds on the **transformed scale**
  (:class:`cytokit.cluster.thresholds.Thresholds`: given, from gating, or from marker modes) by
  :mod:`cytokit.cluster.naming`, which sits above this module and the thresholds.
* Clusters of a gated population can only be that population's descendants:
  :meth:`PhenotypeTable.within` keeps those (when the population is in the table) and the terms the
  population's own gate already guarantees (``CD3+`` for ``T cells``) are not re-tested.
* Clusters are named after populations by :func:`cytokit.cluster.naming.match_matrix`,
  :func:`~cytokit.cluster.naming.name_clusters` and :func:`~cytokit.cluster.naming.unique_names`
  (``"unassigned"`` = :data:`UNASSIGNED` when nothing matches).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import pandas as pd

from ..errors import ConfigError
from ..results import schema as S
from ..yamlio import read_yaml

log = logging.getLogger(__name__)

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
    parent: str | None = None

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


#: Built-in (population, parent, phenotype) rows for the population names of docs/architecture.md.
DEFAULT_PHENOTYPES: tuple[tuple[str, str | None, str], ...] = (
    ("T cells", "Singlets", "CD3+"),
    ("CD4 T", "T cells", "CD3+ CD4+ CD8-"),
    ("CD8 T", "T cells", "CD3+ CD8+ CD4-"),
    ("Naive CD4", "CD4 T", "CD3+ CD4+ CD8- CD45RA+ CD62L+"),
    ("Memory CD4", "CD4 T", "CD3+ CD4+ CD8- CD45RA-"),
    ("CM CD4", "CD4 T", "CD3+ CD4+ CD8- CD45RA- CD62L+"),
    ("EM CD4", "CD4 T", "CD3+ CD4+ CD8- CD45RA- CD62L-"),
    ("TEMRA CD4", "CD4 T", "CD3+ CD4+ CD8- CD45RA+ CD62L-"),
    ("CD28+ CD4", "CD4 T", "CD3+ CD4+ CD8- CD28+"),
    ("CD25+ CD4", "CD4 T", "CD3+ CD4+ CD8- CD25+"),
    ("Treg", "CD4 T", "CD3+ CD4+ CD8- CD25hi CD127lo"),
    ("CD28+ CD8", "CD8 T", "CD3+ CD8+ CD4- CD28+"),
    ("NK cells", "Singlets", "CD3- CD19- CD56+ or CD16+"),
    ("CD56bright NK", "NK cells", "CD3- CD19- CD56hi"),
    ("CD56dim NK", "NK cells", "CD3- CD19- CD56dim"),
    ("B cells", "Singlets", "CD3- CD19+"),
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
    def from_rows(cls, rows: Iterable[tuple[str, str | None, str]], *, source: str | None = None) -> "PhenotypeTable":
        """From ``(population, parent or None, phenotype text)`` rows."""
        return cls(PopulationPhenotype(str(n), str(t), parse_phenotype(t, source=source), p)
                   for n, p, t in rows)

    @classmethod
    def default(cls) -> "PhenotypeTable":
        return cls.from_rows(DEFAULT_PHENOTYPES)

    def get(self, name: str) -> PopulationPhenotype | None:
        return next((e for e in self._entries if e.name == name), None)

    def within(self, population: str | None) -> tuple["PhenotypeTable", tuple[tuple[Term, ...], ...]]:
        """Descendants of ``population`` and the phenotype groups its own gate guarantees.

        When ``population`` is not in the table the whole table is returned with no implied groups.
        """
        root = self.get(population) if population else None
        if root is None:
            return self, ()
        keep, frontier = set(), {root.name}
        while frontier:
            children = {e.name for e in self._entries if e.parent in frontier and e.name not in keep}
            keep |= children
            frontier = children
        return PhenotypeTable(e for e in self._entries if e.name in keep), root.groups

    def __iter__(self) -> Iterator[PopulationPhenotype]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({S.POPULATION: self.names, S.PARENT: [e.parent for e in self._entries],
                             S.PHENOTYPE: [e.text for e in self._entries]})


def _collect_phenotypes(data: Any, out: list[tuple[str, str, str | None, bool]], parent: str | None = None) -> None:
    """Walk YAML data for phenotypes: ``(name, text, parent, strict)`` rows.

    ``phenotypes:`` mappings are strict (every text must parse); population entries with ``name`` (or
    ``population``) and ``phenotype`` fields are not (a strategy may describe scatter gates in words).
    """
    if isinstance(data, Mapping):
        name = data.get("name", data.get("population"))
        if isinstance(name, str) and isinstance(data.get("phenotype"), str):
            out.append((name, data["phenotype"], data.get("parent", parent), False))
        for key, value in data.items():
            if key == "phenotypes" and isinstance(value, Mapping):
                out.extend((str(k), str(v), None, True) for k, v in value.items())
                continue
            _collect_phenotypes(value, out, name if isinstance(name, str) else parent)
    elif isinstance(data, list):
        for item in data:
            _collect_phenotypes(item, out, parent)


def load_phenotypes(path: str | Path) -> PhenotypeTable:
    """Phenotype table from a panel or strategy YAML.

    Accepted forms: a top-level ``phenotypes:`` mapping (population -> phenotype text), and/or
    population entries (in any list or mapping) that carry ``name`` (or ``population``) and
    ``phenotype`` fields, optionally ``parent``. Population entries whose phenotype is not marker terms
    (e.g. "FSC-A/SSC-A lymphocytes") are left out. A phenotype relative to its parent (``Naive CD4:
    CD45RA+ CD62L+`` under ``CD4 T: CD3+ CD4+``) is expanded with the parent's terms.
    """
    data, _ = read_yaml(path)
    found: list[tuple[str, str, str | None, bool]] = []
    _collect_phenotypes(data, found)
    own: dict[str, tuple[tuple[Term, ...], ...]] = {}
    texts: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    for name, text, parent, strict in found:
        if name in own:
            continue
        try:
            own[name] = parse_phenotype(text, source=str(path))
        except ConfigError:
            if strict:
                raise
            log.debug("%s: population %r: phenotype %r is not marker terms; not used", path, name, text)
            continue
        texts[name] = text
        parents[name] = parent
    if not own:
        raise ConfigError("no phenotypes found (expected a 'phenotypes:' mapping or populations with a "
                          "'phenotype' field made of marker terms such as CD4+ CD8-)", path=path)

    def full(name: str, seen: frozenset) -> list[tuple[Term, ...]]:
        groups = list(own[name])
        parent = parents.get(name)
        if parent is None or parent not in own or parent in seen:
            return groups
        mine = {t.marker for g in groups for t in g}
        inherited = [g for g in full(parent, seen | {name}) if not ({t.marker for t in g} & mine)]
        return inherited + groups

    rows = [(name, parents[name], " ".join(" or ".join(str(t) for t in g) for g in full(name, frozenset())))
            for name in own]
    return PhenotypeTable.from_rows(rows, source=str(path))
