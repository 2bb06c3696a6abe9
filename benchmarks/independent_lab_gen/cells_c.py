"""Lab C's donors and events: an elderly cohort (patients x visits) and what each event of a tube is.

Elderly donors, not HIV and not IL-2 (lab A, lab B, ``cytokit.simulate``): CD8-dominant T cells (CD4 20-45 %
of T), very few naive CD4 T cells (3-15 %), a **CD28-null expansion** (CD28- 50-80 % of CD8 T, 5-30 % of CD4
T, among the effector-memory and TEMRA cells), CD25 only as a **bright Treg mode** (no activated continuum),
CD56bright NK 2-6 % of NK, few B cells. Monocytes carry a **dim CD4**.

Tube ``tc`` is PBMC (monocytes, a few granulocytes, debris, dead cells, doublets); tube ``tbnk`` is
lyse/no-wash whole blood with **counting beads**: granulocytes 50-70 % of leukocytes, 20-45 % of the events
red-cell ghosts and platelets (CD45-), beads at their concentration in the tube.

Marker levels are **log-logistic** (fatter tails than log-normal, not gamma); scatter as well. Fractions are
0..1 of the parent; levels are photoelectrons (see :mod:`.lab_c`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .lab_c import FLUOROCHROMES_C, TUBES_C

VISITS_C = (("V0", 0), ("V4", 4), ("V12", 12))
ARMS_C = ("placebo", "vaccine")
#: the visit acquired on instrument F after its re-calibration (every detector's gain moved, all its files)
RECALIBRATED_VISIT = "V4"

#: populations reported per tube (name, parent): the truth and the lab's strategies, in this order
HIERARCHY_C: dict[str, tuple[tuple[str, str], ...]] = {
    "tc": (("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("T cells", "Singlets"), ("CD4 T", "T cells"),
           ("CD8 T", "T cells"), ("Naive CD4", "CD4 T"), ("Memory CD4", "CD4 T"), ("CM CD4", "CD4 T"),
           ("EM CD4", "CD4 T"), ("TEMRA CD4", "CD4 T"), ("CD28+ CD4", "CD4 T"), ("CD25+ CD4", "CD4 T"),
           ("Treg", "CD4 T"), ("CD28+ CD8", "CD8 T")),
    "tbnk": (("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("T cells", "Singlets"), ("NK cells", "Singlets"),
             ("CD56bright NK", "NK cells"), ("CD56dim NK", "NK cells"), ("B cells", "Singlets"), ("Beads", "")),
}
LYMPHOCYTES_C = {"tc": "Singlets", "tbnk": "Singlets"}

LYMPH, MONO, GRAN, DEBRIS, GHOST, BEAD, DOUBLET = range(7)
KINDS_C = ("lymphocyte", "monocyte", "granulocyte", "debris", "ghost/platelet", "bead", "doublet")
T4, T8, TDN, B, NK, OTHER = range(6)
NAIVE, CM, EM, TEMRA = range(4)
NK_NEG, NK_DIM, NK_BRIGHT = range(3)  # CD56- CD16+, CD56dim, CD56bright (all NK)


@dataclass
class VisitC:
    """One donor at one visit (fractions 0..1) and the scenario words it stands for."""

    patient: str
    arm: str
    visit: str
    week: int
    instrument: str
    t: float
    b: float
    nk: float
    cd4: float  # of T cells
    dn: float
    cd4_subsets: tuple[float, float, float, float]  # naive, CM, EM, TEMRA
    cd28null_cd4: float  # of CD4 T (drawn from EM + TEMRA)
    cd28null_cd8: float  # of CD8 T
    treg: float  # of CD4 T: CD25bright CD127low
    nk_subsets: tuple[float, float, float]
    lymphocytes_per_uL: float  # the donor's true concentration
    leukocytes_per_uL: float
    granulocytes: float  # of leukocytes (whole blood)
    monocytes_pbmc: float  # of PBMC leukocytes
    dead: float
    recalibrated: bool = False
    scenarios: list[str] = field(default_factory=list)


def draw_visits_c(n_patients: int, rng: np.random.Generator) -> list[VisitC]:
    """Every donor x visit: arms alternate, instruments E / F alternate in pairs; instrument F's V4 files are
    acquired after its re-calibration."""
    out = []
    for p in range(n_patients):
        arm = ARMS_C[p % 2]
        instrument = "EF"[(p // 2) % 2] if n_patients > 2 else "EF"[p % 2]
        cd4 = rng.uniform(0.2, 0.42)
        naive = rng.uniform(0.03, 0.15)
        cm = rng.uniform(0.2, 0.35)
        temra = rng.uniform(0.05, 0.2)
        em = 1.0 - naive - cm - temra
        base = {"t": rng.uniform(0.55, 0.75), "b": rng.uniform(0.02, 0.08), "nk": rng.uniform(0.1, 0.3),
                "dn": rng.uniform(0.02, 0.06), "n28_4": rng.uniform(0.05, 0.3), "n28_8": rng.uniform(0.5, 0.8),
                "treg": rng.uniform(0.04, 0.1), "neg": rng.uniform(0.03, 0.12), "bright": rng.uniform(0.02, 0.06),
                "lymph": rng.uniform(1000.0, 2200.0), "leuk": rng.uniform(4500.0, 8000.0)}
        for visit, week in VISITS_C:
            def j(lo: float, hi: float) -> float:
                return float(rng.uniform(lo, hi))
            scen = [f"instrument_{instrument}", "elderly", "cd28_null"]
            treg = base["treg"] * j(0.85, 1.15)
            if arm == "vaccine" and week > 0:  # the vaccine arm: more Treg after baseline (bright mode only)
                treg = j(0.08, 0.16)
                scen.append("treg_up")
            recal = instrument == "F" and visit == RECALIBRATED_VISIT
            if recal:
                scen.append("recalibrated")
            neg, bright = base["neg"], base["bright"] * j(0.85, 1.15)
            n28_4 = min(base["n28_4"] * j(0.9, 1.1), 0.9 * (em + temra))
            out.append(VisitC(
                patient=f"C{p + 1:02d}", arm=arm, visit=visit, week=week, instrument=instrument,
                t=base["t"] * j(0.95, 1.05), b=base["b"] * j(0.9, 1.1), nk=base["nk"] * j(0.9, 1.1),
                cd4=cd4 * j(0.93, 1.07), dn=base["dn"], cd4_subsets=(naive, cm, em, temra), cd28null_cd4=n28_4,
                cd28null_cd8=min(base["n28_8"] * j(0.95, 1.05), 0.85), treg=treg,
                nk_subsets=(neg, 1.0 - neg - bright, bright),
                lymphocytes_per_uL=base["lymph"] * j(0.9, 1.1), leukocytes_per_uL=base["leuk"] * j(0.9, 1.1),
                granulocytes=j(0.5, 0.7), monocytes_pbmc=j(0.1, 0.25), dead=j(0.02, 0.08), recalibrated=recal,
                scenarios=scen))
    return out


@dataclass
class CellsC:
    """``n`` events before acquisition (doublets merged); scatter relative to a lymphocyte's FSC-H."""

    levels: np.ndarray  # (n, 8) pe, FLUOROCHROMES_C order
    fsc_h: np.ndarray
    ssc_h: np.ndarray
    fsc_a: np.ndarray
    ssc_a: np.ndarray
    af: np.ndarray  # autofluorescence, multiples of a resting lymphocyte's
    myeloid_af: np.ndarray  # bool: the myeloid autofluorescence signature
    bead: np.ndarray  # bool
    members: dict[str, np.ndarray]
    kind: np.ndarray
    dead: np.ndarray


def _ll(rng: np.random.Generator, n: int, median: float, s: float) -> np.ndarray:
    """Log-logistic levels: ``median`` x exp(``s`` x logistic noise), the noise clipped at +-6 (heavy tails)."""
    return median * np.exp(s * np.clip(rng.logistic(0.0, 1.0, n), -6.0, 6.0))


def _composition(tube: str, v: VisitC, n: int, rng: np.random.Generator, beads_per_uL: float) -> dict[str, int]:
    if tube == "tc":  # PBMC
        shares = {"lymph": (1 - v.monocytes_pbmc) * 0.97, "mono": v.monocytes_pbmc, "gran": 0.03 * (1 - v.monocytes_pbmc),
                  "debris": rng.uniform(0.03, 0.1), "ghost": 0.0, "bead": 0.0, "doublets": rng.uniform(0.02, 0.05)}
    else:  # lyse/no-wash whole blood: concentrations decide the shares of cells and beads
        leuk = v.leukocytes_per_uL
        lymph_share = min(v.lymphocytes_per_uL / leuk, 0.6)
        mono = rng.uniform(0.05, 0.1)
        cells = {"lymph": lymph_share, "mono": mono, "gran": max(1.0 - lymph_share - mono, 0.05)}
        scale = leuk / sum(cells.values())
        conc = {k: c * scale for k, c in cells.items()}
        conc["bead"] = beads_per_uL
        total = sum(conc.values())
        junk, doublets = rng.uniform(0.2, 0.45), rng.uniform(0.01, 0.03)
        shares = {k: (1 - junk - doublets) * c / total for k, c in conc.items()}
        shares.update(debris=junk * 0.4, ghost=junk * 0.6, doublets=doublets)
    keys = ("lymph", "mono", "gran", "debris", "ghost", "bead", "doublets")
    p = np.array([shares[k] for k in keys])
    return dict(zip(keys, rng.multinomial(n, p / p.sum())))


def _labels(v: VisitC, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    other = 0.02
    scale = (1.0 - other) / (v.t + v.b + v.nk)
    t, b, nk = v.t * scale, v.b * scale, v.nk * scale
    p = np.array([t * v.cd4, t * (1 - v.cd4 - v.dn), t * v.dn, b, nk, other])
    lineage = rng.choice(6, size=n, p=p / p.sum())
    mem = rng.choice(4, size=n, p=np.asarray(v.cd4_subsets) / sum(v.cd4_subsets))
    cd8_mem = rng.choice(4, size=n, p=[0.08, 0.12, 0.4, 0.4])  # elderly CD8: mostly EM / TEMRA
    mem = np.where(lineage == T8, cd8_mem, mem)
    u = rng.random(n)
    effector = np.isin(mem, (EM, TEMRA))
    # CD28-null cells: among EM + TEMRA, at the share that gives the stated fraction of the whole subset
    cd4_eff = v.cd4_subsets[2] + v.cd4_subsets[3]
    null4 = (lineage == T4) & effector & (u < v.cd28null_cd4 / cd4_eff)
    null8 = (lineage == T8) & effector & (u < v.cd28null_cd8 / 0.8)
    # CD8 naive / CM cells stay CD28+; a CD28-null CD8 share above the effector share cannot occur (cap 0.85 < 0.8/0.8)
    treg = (lineage == T4) & (rng.random(n) < v.treg) & ~null4
    return {"lineage": lineage, "mem": mem, "cd28null": null4 | null8, "treg": treg,
            "nk_sub": rng.choice(3, size=n, p=np.asarray(v.nk_subsets) / sum(v.nk_subsets)),
            "dead": rng.random(n) < v.dead}


def _levels(tube: str, lab: dict[str, np.ndarray], kind: np.ndarray, rng: np.random.Generator
            ) -> dict[str, np.ndarray]:
    n = kind.size
    lin, mem, sub = lab["lineage"], lab["mem"], lab["nk_sub"]
    ly, mono, gran = kind == LYMPH, kind == MONO, kind == GRAN
    t = ly & np.isin(lin, (T4, T8, TDN))
    nk = ly & (lin == NK)
    out: dict[str, np.ndarray] = {m: np.zeros(n) for m in TUBES_C[tube]}
    out["CD3"] = np.where(t, _ll(rng, n, 3500, 0.18), 0.0)
    # CD4: T cells bright, monocytes dim (they sit partly in the lymphocyte gate)
    out["CD4"] = np.select([ly & (lin == T4), mono], [_ll(rng, n, 6000, 0.15), _ll(rng, n, 700, 0.3)], 0.0)
    out["CD8"] = np.select([ly & (lin == T8), nk & (rng.random(n) < 0.3)],
                           [_ll(rng, n, 15000, 0.2), _ll(rng, n, 1500, 0.35)], 0.0)
    if tube == "tc":
        naive_like = np.isin(mem, (NAIVE, TEMRA))
        out["CD45RA"] = np.select([t & naive_like, t, ly & ~t], [_ll(rng, n, 5000, 0.2), _ll(rng, n, 150, 0.4),
                                                                  _ll(rng, n, 4000, 0.25)], 0.0)
        out["CCR7"] = np.where((t & np.isin(mem, (NAIVE, CM))) | (ly & (lin == B)), _ll(rng, n, 1800, 0.3), 0.0)
        out["CD28"] = np.where(t & ~lab["cd28null"], _ll(rng, n, 1600, 0.22), 0.0)
        out["CD25"] = np.where(t & lab["treg"], _ll(rng, n, 3500, 0.2), 0.0)  # a bright Treg mode only
        out["CD127"] = np.select([t & lab["treg"], t], [_ll(rng, n, 150, 0.4), _ll(rng, n, 2200, 0.25)], 0.0)
    else:
        out["CD45"] = np.select([ly, mono, gran, kind == DEBRIS],
                                [_ll(rng, n, 9000, 0.12), _ll(rng, n, 5500, 0.14), _ll(rng, n, 2800, 0.14),
                                 _ll(rng, n, 150, 0.8)], 0.0)
        out["CD19"] = np.where(ly & (lin == B), _ll(rng, n, 5000, 0.2), 0.0)
        out["CD56"] = np.select([nk & (sub == NK_DIM), nk & (sub == NK_BRIGHT), t & (rng.random(n) < 0.06)],
                                [_ll(rng, n, 1500, 0.22), _ll(rng, n, 15000, 0.2), _ll(rng, n, 1500, 0.35)], 0.0)
        out["CD16"] = np.select([nk & (sub != NK_BRIGHT), nk, mono & (rng.random(n) < 0.12), gran],
                                [_ll(rng, n, 7000, 0.25), _ll(rng, n, 300, 0.5), _ll(rng, n, 3000, 0.3),
                                 _ll(rng, n, 20000, 0.18)], 0.0)
        out["CD14"] = np.select([mono, gran], [_ll(rng, n, 9000, 0.25), _ll(rng, n, 300, 0.3)], 0.0)
    return out


def make_cells_c(tube: str, v: VisitC, n: int, rng: np.random.Generator, beads_per_uL: float = 0.0) -> CellsC:
    """``n`` events of ``tube`` for visit ``v`` (singles, then doublets merged from two cells); the ``tbnk``
    tube's beads at ``beads_per_uL`` against the donor's leukocyte concentration."""
    c = _composition(tube, v, n, rng, beads_per_uL)
    d = c["doublets"]
    kind = rng.permutation(np.repeat([LYMPH, MONO, GRAN, DEBRIS, GHOST, BEAD],
                                     [c["lymph"] + 2 * d, c["mono"], c["gran"], c["debris"], c["ghost"], c["bead"]]))
    n_single = kind.size
    lab = _labels(v, n_single, rng)
    lab["dead"] &= np.isin(kind, (LYMPH, MONO, GRAN))
    marker = _levels(tube, lab, kind, rng)
    levels = np.zeros((n_single, len(FLUOROCHROMES_C)))
    for m, fluor in TUBES_C[tube].items():
        levels[:, FLUOROCHROMES_C.index(fluor)] = marker[m]
    dead = lab["dead"]
    levels[dead] *= 0.5
    # scatter: log-logistic around each kind's centre (relative to a lymphocyte's FSC-H)
    fsc_c = np.choose(kind, [1.0, 1.5, 1.4, 0.3, 0.22, 0.55])
    ssc_c = np.choose(kind, [0.14, 0.42, 1.5, 0.12, 0.05, 0.35])
    fsc_s = np.choose(kind, [0.05, 0.07, 0.07, 0.5, 0.35, 0.03])
    ssc_s = np.choose(kind, [0.11, 0.12, 0.1, 0.6, 0.4, 0.05])
    nk_ssc = np.where((kind == LYMPH) & (lab["lineage"] == NK), 1.3, 1.0)
    fsc_h = _ll(rng, n_single, 1.0, 1.0) ** fsc_s * fsc_c * np.where(dead, 0.7, 1.0)
    ssc_h = _ll(rng, n_single, 1.0, 1.0) ** ssc_s * ssc_c * nk_ssc * np.where(dead, 1.25, 1.0)
    fsc_a = fsc_h * 1.08 * np.exp(0.02 * rng.standard_normal(n_single))
    ssc_a = ssc_h * 1.04 * np.exp(0.03 * rng.standard_normal(n_single))
    af = np.choose(kind, [1.0, 3.0, 4.5, 0.6, 0.2, 0.0]) * np.where(dead, 2.2, 1.0) * _ll(rng, n_single, 1.0, 0.15)
    myeloid = np.isin(kind, (MONO, GRAN))
    members = _members(tube, kind, lab)
    keep = n_single - 2 * d
    a, b = np.arange(keep, keep + d), np.arange(keep + d, n_single)
    stretch = rng.uniform(1.0, 1.3, d)
    out_members = {pop: np.concatenate([m[:keep], np.zeros(d, bool)]) for pop, m in members.items()}
    return CellsC(levels=np.vstack([levels[:keep], levels[a] + levels[b]]),
                  fsc_h=np.concatenate([fsc_h[:keep], np.maximum(fsc_h[a], fsc_h[b]) * stretch]),
                  ssc_h=np.concatenate([ssc_h[:keep], np.maximum(ssc_h[a], ssc_h[b]) * stretch]),
                  fsc_a=np.concatenate([fsc_a[:keep], fsc_a[a] + fsc_a[b]]),
                  ssc_a=np.concatenate([ssc_a[:keep], ssc_a[a] + ssc_a[b]]),
                  af=np.concatenate([af[:keep], af[a] + af[b]]),
                  myeloid_af=np.concatenate([myeloid[:keep], myeloid[a] | myeloid[b]]),
                  bead=np.concatenate([kind[:keep] == BEAD, np.zeros(d, bool)]), members=out_members,
                  kind=np.concatenate([kind[:keep], np.full(d, DOUBLET)]),
                  dead=np.concatenate([dead[:keep], dead[a] | dead[b]]))


def _members(tube: str, kind: np.ndarray, lab: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Truth membership of single events (definitions in README.md, "Lab C")."""
    lin, mem = lab["lineage"], lab["mem"]
    ly = kind == LYMPH
    m: dict[str, np.ndarray] = {"Lymphocytes": ly, "Singlets": ly, "T cells": ly & np.isin(lin, (T4, T8, TDN))}
    if tube == "tc":
        cd4, cd8 = ly & (lin == T4), ly & (lin == T8)
        m.update({"CD4 T": cd4, "CD8 T": cd8, "Naive CD4": cd4 & (mem == NAIVE),
                  "Memory CD4": cd4 & np.isin(mem, (CM, EM)), "CM CD4": cd4 & (mem == CM), "EM CD4": cd4 & (mem == EM),
                  "TEMRA CD4": cd4 & (mem == TEMRA), "CD28+ CD4": cd4 & ~lab["cd28null"],
                  "CD25+ CD4": cd4 & lab["treg"], "Treg": cd4 & lab["treg"], "CD28+ CD8": cd8 & ~lab["cd28null"]})
    else:
        nk = ly & (lin == NK)
        m.update({"NK cells": nk, "CD56bright NK": nk & (lab["nk_sub"] == NK_BRIGHT),
                  "CD56dim NK": nk & (lab["nk_sub"] == NK_DIM), "B cells": ly & (lin == B), "Beads": kind == BEAD})
    return {pop: m[pop] for pop, _ in HIERARCHY_C[tube]}
