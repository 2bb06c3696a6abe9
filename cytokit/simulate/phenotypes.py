"""Leaves (the finest simulated event classes), their phenotypes and the population hierarchy.

Contract
--------
Every simulated event carries one **leaf** code (uint8). A leaf is a cell class with one phenotype
(e.g. ``"CM CD4 CD28+ CD25-"``) or an artefact (debris, doublets, aggregates, counting beads). Each leaf
belongs to a fixed set of populations named as in ``docs/architecture.md``; :data:`HIERARCHY` gives each
tube's populations with their parents. Codes are unique across tubes, so a code alone says which
populations an event belongs to.

Membership rules (the truth definitions):

* ``Singlets`` = single lymphocytes; every population below it is a subset of single lymphocytes.
* ``Lymphocytes`` = single lymphocytes plus lymphocyte–debris (platelet) doublets, whose scatter is that
  of one lymphocyte but whose FSC-A is inflated relative to FSC-H. Cell–cell doublets (two leukocytes),
  debris, monocytes, granulocytes, aggregates and beads belong to no lymphocyte population.
* ``Beads`` (nkb tube, when counting beads are used) sit outside ``Lymphocytes`` (parent: all events).

Marker levels are on the **linear scale at reference detector gain** (before per-file staining and gain
variation, spillover and detector noise). A state is ``neg`` (autofluorescence only), a lognormal mode
``(median, log-sd)``, or ``cont`` (log-uniform dim-to-bright continuum between two bounds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping
from types import MappingProxyType

import pandas as pd

from .channels import TUBES

#: cell type -> FSC-A median, FSC-A log-sd, SSC-A median, SSC-A log-sd, autofluorescence (linear units)
CELL_TYPES: Mapping[str, tuple[float, float, float, float, float]] = MappingProxyType({
    "lymphocyte": (55000.0, 0.09, 14000.0, 0.18, 150.0),
    "monocyte": (92000.0, 0.10, 42000.0, 0.20, 500.0),
    "granulocyte": (105000.0, 0.10, 115000.0, 0.17, 700.0),
    "debris": (14000.0, 0.50, 7000.0, 0.60, 60.0),
    "bead": (22000.0, 0.05, 35000.0, 0.08, 0.0),
})

#: relative autofluorescence seen in each fluorochrome's detector
AUTOFLUORESCENCE: Mapping[str, float] = MappingProxyType({
    "FITC": 1.0, "PE": 0.7, "PerCP-Cy5.5": 0.5, "PE-Cy7": 0.3, "APC-H7": 0.15, "APC": 0.2,
    "BV421": 0.8, "BV605": 0.5,
})

#: marker -> state -> (median, log-sd) or ("cont", low, high); linear units at reference gain
MARKER_LEVELS: Mapping[str, Mapping[str, tuple]] = MappingProxyType({
    "CD45RA": {"pos": (12000.0, 0.35), "dim": (2500.0, 0.5)},
    "CD62L": {"pos": (3500.0, 0.55), "dim": (1200.0, 0.5)},
    "CD3": {"pos": (9000.0, 0.30)},
    "CD4": {"bright": (22000.0, 0.25), "dim": (2500.0, 0.40)},
    "CD8": {"bright": (30000.0, 0.30), "dim": (3000.0, 0.50)},
    "CD28": {"pos": (4000.0, 0.45)},
    "CD25": {"cont": ("cont", 400.0, 8000.0), "hi": (10000.0, 0.30)},
    "CD127": {"pos": (2800.0, 0.45), "lo": (350.0, 0.50)},
    "CD16": {"dim": (2500.0, 0.60), "bright": (30000.0, 0.35), "vbright": (70000.0, 0.30)},
    "CD45": {"dim": (6000.0, 0.30), "pos": (22000.0, 0.25), "bright": (40000.0, 0.20)},
    "CD19": {"pos": (12000.0, 0.35)},
    "CD56": {"dim": (2500.0, 0.45), "bright": (22000.0, 0.30)},
})
BEAD_LEVEL = (60000.0, 0.05)  # counting beads: bright in every fluorescence channel

#: tube -> ordered (population, parent); parent "" = all events
HIERARCHY: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "tmem": (
        ("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("T cells", "Singlets"), ("CD4 T", "T cells"),
        ("CD8 T", "T cells"), ("Naive CD4", "CD4 T"), ("Memory CD4", "CD4 T"), ("CM CD4", "CD4 T"),
        ("EM CD4", "CD4 T"), ("TEMRA CD4", "CD4 T"), ("CD28+ CD4", "CD4 T"), ("CD25+ CD4", "CD4 T"),
        ("Treg", "CD4 T"), ("CD28+ CD8", "CD8 T"),
    ),
    "nkb": (
        ("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("T cells", "Singlets"), ("NK cells", "Singlets"),
        ("CD56bright NK", "NK cells"), ("CD56dim NK", "NK cells"), ("B cells", "Singlets"), ("Beads", ""),
    ),
})

LYMPH = ("Lymphocytes", "Singlets")


@dataclass(frozen=True)
class Leaf:
    """One simulated event class."""

    code: int
    tube: str
    name: str
    kind: str  # a CELL_TYPES key, or "doublet_debris" | "doublet_cells" | "aggregate"
    populations: tuple[str, ...]
    phenotype: Mapping[str, str] = field(default_factory=dict)  # marker -> state (missing = neg)


_SUBSETS = {  # CD45RA, CD62L states and the CD4 population(s) of each memory subset
    "Naive": ("pos", "pos", ("Naive CD4",)),
    "CM": ("neg", "pos", ("Memory CD4", "CM CD4")),
    "EM": ("neg", "neg", ("Memory CD4", "EM CD4")),
    "TEMRA": ("pos", "neg", ("TEMRA CD4",)),
}
SUBSETS: tuple[str, ...] = tuple(_SUBSETS)
CD25_STATES: tuple[str, ...] = ("CD25-", "CD25+", "Treg")


def cd4_leaf_name(subset: str, cd28: bool, cd25: str) -> str:
    return f"{subset} CD4 CD28{'+' if cd28 else '-'} {cd25}"


def cd8_leaf_name(subset: str, cd28: bool) -> str:
    return f"{subset} CD8 CD28{'+' if cd28 else '-'}"


def _common(tube: str) -> list[tuple[str, str, tuple[str, ...], dict]]:
    mono = {"CD4": "dim", "CD45RA": "dim", "CD62L": "dim"} if tube == "tmem" else {"CD45": "pos", "CD16": "dim"}
    gran = {"CD62L": "pos"} if tube == "tmem" else {"CD45": "dim", "CD16": "vbright"}
    return [
        ("Debris", "debris", (), {}),
        ("Monocyte", "monocyte", (), mono),
        ("Granulocyte", "granulocyte", (), gran),
        ("Lymphocyte-debris doublet", "doublet_debris", ("Lymphocytes",), {}),
        ("Cell-cell doublet", "doublet_cells", (), {}),
        ("Aggregate", "aggregate", (), {}),
    ]


def _tmem_leaves() -> list[tuple[str, str, tuple[str, ...], dict]]:
    out = _common("tmem")
    for subset, (ra, l62, pops) in _SUBSETS.items():
        for cd28 in (True, False):
            for cd25 in CD25_STATES:
                if cd25 == "Treg" and not cd28:
                    continue
                p = LYMPH + ("T cells", "CD4 T") + pops
                p += ("CD28+ CD4",) if cd28 else ()
                p += ("CD25+ CD4",) if cd25 != "CD25-" else ()
                p += ("Treg",) if cd25 == "Treg" else ()
                phen = {"CD3": "pos", "CD4": "bright", "CD45RA": ra, "CD62L": l62,
                        "CD28": "pos" if cd28 else "neg",
                        "CD25": {"CD25-": "neg", "CD25+": "cont", "Treg": "hi"}[cd25],
                        "CD127": "lo" if cd25 == "Treg" else "pos"}
                out.append((cd4_leaf_name(subset, cd28, cd25), "lymphocyte", p, phen))
    for subset, (ra, l62, _) in _SUBSETS.items():
        for cd28 in (True, False):
            p = LYMPH + ("T cells", "CD8 T") + (("CD28+ CD8",) if cd28 else ())
            phen = {"CD3": "pos", "CD8": "bright", "CD45RA": ra, "CD62L": l62, "CD28": "pos" if cd28 else "neg",
                    "CD127": "lo" if subset in ("EM", "TEMRA") else "pos"}
            out.append((cd8_leaf_name(subset, cd28), "lymphocyte", p, phen))
    out += [
        ("DN T", "lymphocyte", LYMPH + ("T cells",), {"CD3": "pos", "CD45RA": "pos", "CD62L": "dim", "CD127": "pos"}),
        ("B cell", "lymphocyte", LYMPH, {"CD45RA": "pos", "CD62L": "pos"}),
        ("NK cell", "lymphocyte", LYMPH, {"CD45RA": "pos", "CD8": "dim"}),
        ("Other lymphocyte", "lymphocyte", LYMPH, {"CD127": "lo"}),
    ]
    return out


def _nkb_leaves() -> list[tuple[str, str, tuple[str, ...], dict]]:
    out = _common("nkb")
    out += [
        ("Counting bead", "bead", ("Beads",), {}),
        ("T cell", "lymphocyte", LYMPH + ("T cells",), {"CD3": "pos", "CD45": "bright"}),
        ("NKT-like T cell", "lymphocyte", LYMPH + ("T cells",),
         {"CD3": "pos", "CD45": "bright", "CD56": "dim", "CD16": "dim"}),
        ("NK CD56bright", "lymphocyte", LYMPH + ("NK cells", "CD56bright NK"), {"CD45": "bright", "CD56": "bright"}),
        ("NK CD56dim", "lymphocyte", LYMPH + ("NK cells", "CD56dim NK"),
         {"CD45": "bright", "CD56": "dim", "CD16": "bright"}),
        ("NK CD56- CD16+", "lymphocyte", LYMPH + ("NK cells",), {"CD45": "bright", "CD16": "bright"}),
        ("B cell", "lymphocyte", LYMPH + ("B cells",), {"CD45": "bright", "CD19": "pos"}),
        ("Other lymphocyte", "lymphocyte", LYMPH, {"CD45": "bright"}),
    ]
    return out


@lru_cache(maxsize=None)
def all_leaves() -> tuple[Leaf, ...]:
    """Every leaf of every tube, with globally unique codes (stable order)."""
    leaves = []
    code = 1  # 0 is never used, so an all-zero label array is recognisably unset
    for tube, builder in (("tmem", _tmem_leaves), ("nkb", _nkb_leaves)):
        for name, kind, pops, phen in builder():
            leaves.append(Leaf(code, tube, name, kind, tuple(pops), dict(phen)))
            code += 1
    return tuple(leaves)


def tube_leaves(tube: str) -> tuple[Leaf, ...]:
    if tube not in TUBES:
        raise KeyError(tube)
    return tuple(leaf for leaf in all_leaves() if leaf.tube == tube)


def leaf_by_name(tube: str) -> dict[str, Leaf]:
    return {leaf.name: leaf for leaf in tube_leaves(tube)}


def leaves_table() -> pd.DataFrame:
    """``truth/leaves.csv``: code, tube, leaf, kind, populations (``;``-joined)."""
    return pd.DataFrame(
        [(lf.code, lf.tube, lf.name, lf.kind, ";".join(lf.populations)) for lf in all_leaves()],
        columns=["code", "tube", "leaf", "kind", "populations"],
    )
