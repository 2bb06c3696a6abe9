"""Cells and particles of one tube: what each event is (truth), its stained antigen levels and its size.

Antigen levels are photoelectrons in the fluorochrome's own detector at nominal gain (see :mod:`.lab`);
scatter is relative to a resting lymphocyte's FSC-H (1.0). Negative cells carry no specific stain: their
signal is autofluorescence, added at acquisition (:mod:`.acquire`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .donors import Visit
from .lab import FLUOROCHROMES, TUBES

#: populations reported per tube (name, parent): what the lab's strategies gate and the truth counts
HIERARCHY: dict[str, tuple[tuple[str, str], ...]] = {
    "tcell": (("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("T cells", "Singlets"), ("CD4 T", "T cells"),
              ("CD8 T", "T cells"), ("Naive CD4", "CD4 T"), ("Memory CD4", "CD4 T"), ("CM CD4", "CD4 T"),
              ("EM CD4", "CD4 T"), ("TEMRA CD4", "CD4 T"), ("CD28+ CD4", "CD4 T"), ("CD25+ CD4", "CD4 T"),
              ("CD28+ CD8", "CD8 T")),
    "nkb": (("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("Live", "Singlets"), ("T cells", "Live"),
            ("NK cells", "Live"), ("CD56bright NK", "NK cells"), ("CD56dim NK", "NK cells"), ("B cells", "Live")),
}
#: the population percentages "of lymphocytes" refer to, per tube (the strategies' ``lymphocytes:`` key)
LYMPHOCYTES = {"tcell": "Singlets", "nkb": "Live"}

# kinds of event
LYMPH, MONO, GRAN, DEBRIS, DOUBLET = 0, 1, 2, 3, 4
KINDS = ("lymphocyte", "monocyte", "granulocyte", "debris", "doublet")
# lymphocyte lineages
T4, T8, TDN, B, NK, OTHER = range(6)


@dataclass
class Cells:
    """``n`` events before acquisition (doublets already merged)."""

    levels: np.ndarray  # (n, 7) pe, FLUOROCHROMES order
    fsc_h: np.ndarray
    ssc_h: np.ndarray
    fsc_a: np.ndarray
    ssc_a: np.ndarray
    af: np.ndarray  # per-event autofluorescence factor (x the lab's resting-lymphocyte level)
    members: dict[str, np.ndarray]  # population -> bool per event
    kind: np.ndarray  # KINDS index per event (doublets: DOUBLET)
    dead: np.ndarray  # bool per event (a dead cell; doublets: either cell)


def _lognormal(rng: np.random.Generator, n: int, median: float, sd: float) -> np.ndarray:
    return median * np.exp(sd * rng.standard_normal(n))


def _counts(v: Visit, n: int, rng: np.random.Generator) -> dict[str, int]:
    """Events per kind: the singles of each kind plus the number of doublets (each made of two cells)."""
    shares = {"debris": v.debris, "doublets": v.doublets, "mono": v.monocytes, "gran": v.granulocytes}
    shares["lymph"] = max(1.0 - sum(shares.values()), 0.3)
    total = sum(shares.values())
    return dict(zip(shares, rng.multinomial(n, [s / total for s in shares.values()])))


def _lymphocytes(v: Visit, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Lineage and subset labels of ``n`` lymphocytes."""
    # T + B + NK make up all lymphocytes but a few % (innate lymphoid and unstained cells): the lymphosum
    scale = (1.0 - v.other) / (v.t + v.b + v.nk)
    t, b, nk = v.t * scale, v.b * scale, v.nk * scale
    p = np.array([t * v.cd4, t * (1 - v.cd4 - v.dn), t * v.dn, b, nk, v.other])
    lineage = rng.choice(6, size=n, p=p / p.sum())
    mem = rng.choice(4, size=n, p=np.asarray(v.cd4_subsets) / sum(v.cd4_subsets))
    mem8 = rng.choice(4, size=n, p=[0.35, 0.15, 0.3, 0.2])
    mem = np.where(lineage == T8, mem8, mem)
    cd28 = np.where(lineage == T4, rng.random(n) < v.cd28_cd4, rng.random(n) < v.cd28_cd8)
    cd25 = (lineage == T4) & (rng.random(n) < v.cd25_cd4)
    nk_sub = rng.choice(3, size=n, p=np.asarray(v.nk_subsets) / sum(v.nk_subsets))
    dead = rng.random(n) < v.dead
    return {"lineage": lineage, "mem": mem, "cd28": cd28 & np.isin(lineage, (T4, T8)), "cd25": cd25,
            "nk_sub": nk_sub, "dead": dead}


def _levels_tcell(lab: dict[str, np.ndarray], kind: np.ndarray, v: Visit, rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
    n = kind.size
    lin, mem = lab["lineage"], lab["mem"]
    ly = kind == LYMPH
    t = ly & np.isin(lin, (T4, T8, TDN))
    z = np.zeros(n)
    out = {m: z.copy() for m in TUBES["tcell"]}
    out["CD3"] = np.where(t, _lognormal(rng, n, 5000, 0.25), 0.0)
    out["CD4"] = np.where(ly & (lin == T4), _lognormal(rng, n, 6000, 0.25),
                          np.where(kind == MONO, _lognormal(rng, n, 700, 0.4), 0.0))
    nk_cd8 = ly & (lin == NK) & (rng.random(n) < 0.4)
    out["CD8"] = np.where(ly & (lin == T8), _lognormal(rng, n, 20000, 0.3),
                          np.where(nk_cd8, _lognormal(rng, n, 1500, 0.5), 0.0))
    ra = (t & np.isin(mem, (0, 3))) | (ly & np.isin(lin, (B, NK)))
    out["CD45RA"] = np.where(ra, _lognormal(rng, n, 4000, 0.3), np.where(kind == MONO, _lognormal(rng, n, 600, 0.5), 0))
    l_pos = (t & np.isin(mem, (0, 1))) | (ly & (lin == B) & (rng.random(n) < 0.7))
    out["CD62L"] = np.where(l_pos, _lognormal(rng, n, 1500, 0.55), 0.0)
    cd28_level = (_lognormal(rng, n, 2500, 0.35) if v.cd28_shape == "bimodal" else _lognormal(rng, n, 500, 0.35))
    out["CD28"] = np.where(ly & lab["cd28"], cd28_level, 0.0)
    if v.cd25_shape == "bimodal":
        cd25_level = _lognormal(rng, n, 1500, 0.4)
    else:  # activation as a continuum from just above the negatives to bright (log-uniform)
        cd25_level = np.exp(rng.uniform(np.log(150.0), np.log(5000.0), n))
    out["CD25"] = np.where(ly & lab["cd25"], cd25_level, 0.0)
    return out


def _levels_nkb(lab: dict[str, np.ndarray], kind: np.ndarray, v: Visit, rng: np.random.Generator
                ) -> dict[str, np.ndarray]:
    n = kind.size
    lin, nk_sub = lab["lineage"], lab["nk_sub"]
    ly = kind == LYMPH
    t = ly & np.isin(lin, (T4, T8, TDN))
    nk = ly & (lin == NK)
    out: dict[str, np.ndarray] = {}
    out["CD3"] = np.where(t, _lognormal(rng, n, 6000, 0.25), 0.0)
    cd56 = np.select([nk & (nk_sub == 1), nk & (nk_sub == 2), t & (rng.random(n) < 0.05)],
                     [_lognormal(rng, n, 1200, 0.35), _lognormal(rng, n, 12000, 0.3), _lognormal(rng, n, 1500, 0.5)],
                     0.0)
    out["CD56"] = cd56 * v.cd56_stain
    out["CD16"] = np.select(
        [nk & (nk_sub == 0), nk & (nk_sub == 1), nk & (nk_sub == 2) & (rng.random(n) < 0.5),
         (kind == MONO) & (rng.random(n) < 0.15), kind == GRAN],
        [_lognormal(rng, n, 5000, 0.4), _lognormal(rng, n, 7000, 0.4), _lognormal(rng, n, 400, 0.5),
         _lognormal(rng, n, 2000, 0.5), _lognormal(rng, n, 25000, 0.3)], 0.0)
    out["CD19"] = np.where(ly & (lin == B), _lognormal(rng, n, 5000, 0.3), 0.0)
    out["CD45"] = np.select([ly, kind == MONO, kind == GRAN, kind == DEBRIS],
                            [_lognormal(rng, n, 9000, 0.2), _lognormal(rng, n, 5000, 0.25),
                             _lognormal(rng, n, 2500, 0.3), _lognormal(rng, n, 300, 1.0)], 0.0)
    out["CD14"] = np.where((kind == MONO) & (rng.random(n) < 0.85), _lognormal(rng, n, 10000, 0.35), 0.0)
    # amine-reactive dye: live cells take up a little at their surface, dead cells a lot
    out["Viability"] = np.where(lab["dead"], _lognormal(rng, n, 15000, 0.5), _lognormal(rng, n, 150, 0.4))
    return out


def make_cells(tube: str, v: Visit, n: int, rng: np.random.Generator) -> Cells:
    """``n`` events of ``tube`` for the blood of visit ``v`` (singles, then doublets merged from two cells)."""
    c = _counts(v, n, rng)
    n_single = n - c["doublets"] + 2 * c["doublets"]  # every doublet uses two cells
    kind = rng.permutation(np.repeat([LYMPH, MONO, GRAN, DEBRIS],
                                     [c["lymph"] + 2 * c["doublets"], c["mono"], c["gran"], c["debris"]]))
    assert kind.size == n_single
    lab = _lymphocytes(v, n_single, rng)
    lab["dead"] &= kind != DEBRIS
    levels_of = _levels_tcell if tube == "tcell" else _levels_nkb
    marker_levels = levels_of(lab, kind, v, rng)
    levels = np.zeros((n_single, len(FLUOROCHROMES)))
    for marker, fluor in TUBES[tube].items():
        levels[:, FLUOROCHROMES.index(fluor)] = marker_levels[marker]
    dead = lab["dead"]
    levels[dead] *= 0.6
    if tube == "nkb":  # the viability dye is not dimmed by dying
        k = FLUOROCHROMES.index(TUBES["nkb"]["Viability"])
        levels[dead, k] = marker_levels["Viability"][dead]
    # scatter (relative to a lymphocyte's FSC-H) and autofluorescence by kind; dead cells shrink and granulate
    fsc_med = np.choose(kind, [1.0, 1.5, 1.6, 0.25])
    ssc_med = np.choose(kind, [0.18, 0.55, 1.8, 0.08]) * np.where((kind == LYMPH) & (lab["lineage"] == NK), 1.3, 1.0)
    fsc_sd = np.choose(kind, [0.08, 0.1, 0.1, 0.5])
    ssc_sd = np.choose(kind, [0.2, 0.25, 0.25, 0.6])
    fsc_h = fsc_med * np.exp(fsc_sd * rng.standard_normal(n_single)) * np.where(dead, 0.8, 1.0)
    ssc_h = ssc_med * np.exp(ssc_sd * rng.standard_normal(n_single)) * np.where(dead, 1.15, 1.0)
    fsc_a = fsc_h * _lognormal(rng, n_single, 1.08, 0.04)
    ssc_a = ssc_h * _lognormal(rng, n_single, 1.05, 0.05)
    af = np.choose(kind, [1.0, 3.0, 5.0, 0.6]) * np.where(dead, 2.5, 1.0)
    af = af * _lognormal(rng, n_single, 1.0, 0.45)  # skewed, cell to cell

    members = _members(tube, kind, lab)
    # doublets: the last 2 x d cells pair up; a doublet's signals add, its height grows less than its area
    d = c["doublets"]
    keep = n_single - 2 * d
    a, b = np.arange(keep, keep + d), np.arange(keep + d, n_single)
    stretch = rng.uniform(1.0, 1.3, d)
    merged_levels = levels[a] + levels[b]
    merged = {"fsc_h": np.maximum(fsc_h[a], fsc_h[b]) * stretch, "ssc_h": np.maximum(ssc_h[a], ssc_h[b]) * stretch,
              "fsc_a": fsc_a[a] + fsc_a[b], "ssc_a": ssc_a[a] + ssc_a[b], "af": af[a] + af[b]}
    both_lymph = (kind[a] == LYMPH) & (kind[b] == LYMPH)
    out_members = {}
    for pop, m in members.items():
        # lymphocyte-lymphocyte doublets sit in the scatter lymphocyte gate; they belong to nothing below it
        extra = both_lymph if pop == "Lymphocytes" else np.zeros(d, dtype=bool)
        out_members[pop] = np.concatenate([m[:keep], extra])
    return Cells(levels=np.vstack([levels[:keep], merged_levels]),
                 fsc_h=np.concatenate([fsc_h[:keep], merged["fsc_h"]]),
                 ssc_h=np.concatenate([ssc_h[:keep], merged["ssc_h"]]),
                 fsc_a=np.concatenate([fsc_a[:keep], merged["fsc_a"]]),
                 ssc_a=np.concatenate([ssc_a[:keep], merged["ssc_a"]]),
                 af=np.concatenate([af[:keep], merged["af"]]), members=out_members,
                 kind=np.concatenate([kind[:keep], np.full(d, DOUBLET)]),
                 dead=np.concatenate([dead[:keep], dead[a] | dead[b]]))


def _members(tube: str, kind: np.ndarray, lab: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Truth membership of single events in every population of the tube's hierarchy."""
    lin, mem = lab["lineage"], lab["mem"]
    ly = kind == LYMPH
    m: dict[str, np.ndarray] = {"Lymphocytes": ly, "Singlets": ly}
    if tube == "tcell":
        cd4 = ly & (lin == T4)
        m.update({"T cells": ly & np.isin(lin, (T4, T8, TDN)), "CD4 T": cd4, "CD8 T": ly & (lin == T8),
                  "Naive CD4": cd4 & (mem == 0), "Memory CD4": cd4 & np.isin(mem, (1, 2)),
                  "CM CD4": cd4 & (mem == 1), "EM CD4": cd4 & (mem == 2), "TEMRA CD4": cd4 & (mem == 3),
                  "CD28+ CD4": cd4 & lab["cd28"], "CD25+ CD4": cd4 & lab["cd25"],
                  "CD28+ CD8": ly & (lin == T8) & lab["cd28"]})
    else:
        live = ly & ~lab["dead"]
        nk = live & (lin == NK)
        m.update({"Live": live, "T cells": live & np.isin(lin, (T4, T8, TDN)), "NK cells": nk,
                  "CD56bright NK": nk & (lab["nk_sub"] == 2), "CD56dim NK": nk & (lab["nk_sub"] == 1),
                  "B cells": live & (lin == B)})
    return {pop: m[pop] for pop, _ in HIERARCHY[tube]}
