"""Lab B's blood and particles: who was sampled (patients x visits) and what each event of a tube is.

Lysed whole blood, not PBMC: granulocytes are a large share of the leukocytes, and 30-60 % of the events are
debris and unlysed red cells / ghosts (small, low side scatter, no stain). A third of the patients are
HIV-like with few CD4 T cells (5-25 % of T cells), many HLA-DR+ CD8 T cells and an expanded CD56- CD16+ NK
subset. Scatter follows gamma distributions and positive stains gamma (not log-normal) distributions;
HLA-DR on T cells is a smear (log-uniform from just above the negatives to bright), with no second mode.

Fractions are true proportions of the parent (0..1); levels are photoelectrons (see :mod:`.lab_b`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .lab_b import FLUOROCHROMES_B, TUBES_B

VISITS_B = (("V0", 0), ("V8", 8), ("V24", 24))
ARMS_B = ("ART", "ART+IL-2")

#: populations reported per tube (name, parent): the truth and the lab's strategies, in the same order
HIERARCHY_B: dict[str, tuple[tuple[str, str], ...]] = {
    "mem": (("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("T cells", "Singlets"), ("CD4 T", "T cells"),
            ("CD8 T", "T cells"), ("Naive CD4", "CD4 T"), ("Memory CD4", "CD4 T"), ("CM CD4", "CD4 T"),
            ("EM CD4", "CD4 T"), ("TEMRA CD4", "CD4 T"), ("CD25+ CD4", "CD4 T"), ("Treg", "CD4 T"),
            ("HLA-DR+ CD8", "CD8 T")),
    "nk": (("Lymphocytes", ""), ("Singlets", "Lymphocytes"), ("Live", "Singlets"), ("T cells", "Live"),
           ("NK cells", "Live"), ("CD56bright NK", "NK cells"), ("CD56dim NK", "NK cells"), ("B cells", "Live")),
}
LYMPHOCYTES_B = {"mem": "Singlets", "nk": "Live"}

#: HLA-DR+ (truth): a specific HLA-DR stain of at least this many photoelectrons, about 3 x the median
#: autofluorescence of a lymphocyte in that detector; a smear has no valley, so this is the stated cut
DR_POSITIVE_PE = 300.0

LYMPH, MONO, GRAN, DEBRIS, RBC, DOUBLET = range(6)
KINDS_B = ("lymphocyte", "monocyte", "granulocyte", "debris", "red cell", "doublet")
T4, T8, TDN, B, NK, OTHER = range(6)
NAIVE, CM, EM, TEMRA = range(4)
NK_NEG, NK_DIM, NK_BRIGHT = range(3)  # CD56- CD16+, CD56dim, CD56bright


@dataclass
class VisitB:
    """One patient's blood at one visit (fractions 0..1) and the scenario words it stands for."""

    patient: str
    arm: str
    visit: str
    week: int
    instrument: str
    t: float
    b: float
    nk: float
    other: float
    cd4: float  # of T cells
    dn: float
    cd4_subsets: tuple[float, float, float, float]  # naive, CM, EM, TEMRA
    treg: float  # CD25bright CD127low, of CD4 T
    act25: float  # activated CD25+ CD127+ (not Treg), of CD4 T
    dr_cd8: float  # HLA-DR smear, of CD8 T (about half of these reach DR_POSITIVE_PE)
    nk_subsets: tuple[float, float, float]
    junk: float  # debris + red cells, of all events
    rbc: float  # red cells, of junk
    doublets: float
    dead: float
    granulocytes: float  # of leukocytes
    monocytes: float  # of leukocytes
    lymphocytes_per_uL: float
    tandem_degraded: bool = False
    already_compensated: bool = False
    scenarios: list[str] = field(default_factory=list)


def draw_visits_b(n_patients: int, rng: np.random.Generator) -> list[VisitB]:
    """Every patient x visit; patients alternate arms, instruments C/D, and every third is HIV-like low CD4."""
    n = n_patients
    low_cd4 = set(rng.choice(n, size=max(1, n // 3), replace=False).tolist())
    degraded = set(rng.choice(n, size=max(1, n // 4), replace=False).tolist())  # one CCR7-PE-Cy7 vial, visit V8
    on_d = [p for p in range(n) if (p + p // 2) % 2 == 1]
    recompensated = int(rng.choice(on_d)) if on_d else -1  # one patient's files re-exported compensated
    out = []
    for p in range(n):
        arm = ARMS_B[p % 2]
        instrument = "CD"[(p + p // 2) % 2]
        hiv = p in low_cd4
        base = {
            "t": rng.uniform(0.6, 0.8), "b": rng.uniform(0.05, 0.15), "nk": rng.uniform(0.06, 0.2),
            "other": rng.uniform(0.005, 0.03),
            "cd4": rng.uniform(0.05, 0.25) if hiv else rng.uniform(0.45, 0.7), "dn": rng.uniform(0.02, 0.05),
            "naive": rng.uniform(0.15, 0.35) if hiv else rng.uniform(0.3, 0.55), "cm": rng.uniform(0.2, 0.35),
            "temra": rng.uniform(0.02, 0.1), "treg": rng.uniform(0.03, 0.08), "act25": rng.uniform(0.02, 0.1),
            "dr": rng.uniform(0.3, 0.8) if hiv else rng.uniform(0.05, 0.2),
            "nkneg": rng.uniform(0.1, 0.3) if hiv else rng.uniform(0.02, 0.06), "bright": rng.uniform(0.04, 0.12),
            "lymph_uL": rng.uniform(700, 1600) if hiv else rng.uniform(1200, 2800),
        }
        for v, (visit, week) in enumerate(VISITS_B):
            def j(lo: float, hi: float) -> float:
                return float(rng.uniform(lo, hi))
            treg, act25, bright = base["treg"] * j(0.85, 1.15), base["act25"] * j(0.8, 1.2), base["bright"] * j(0.85, 1.15)
            if arm == "ART+IL-2" and week > 0:  # IL-2 expands Treg, activated CD25+ cells and CD56bright NK
                treg, act25, bright = j(0.1, 0.25), j(0.1, 0.3), j(0.15, 0.4)
            scen = [f"instrument_{instrument}", "dr_smear"]
            if hiv:
                scen.append("hiv_low_cd4")
            if arm == "ART+IL-2" and week > 0:
                scen.append("il2")
            tandem = p in degraded and visit == "V8"
            if tandem:
                scen.append("tandem_degraded")
            if p == recompensated:
                scen.append("already_compensated")
            temra, cm = base["temra"], base["cm"]
            naive = min(base["naive"] * j(0.9, 1.1), 0.95 - temra - cm)
            neg = base["nkneg"]
            out.append(VisitB(
                patient=f"B{p + 1:02d}", arm=arm, visit=visit, week=week, instrument=instrument,
                t=base["t"] * j(0.95, 1.05), b=base["b"] * j(0.9, 1.1), nk=base["nk"] * j(0.9, 1.1),
                other=base["other"], cd4=base["cd4"] * j(0.9, 1.1), dn=base["dn"],
                cd4_subsets=(naive, cm, 1.0 - naive - cm - temra, temra), treg=treg, act25=act25,
                dr_cd8=min(base["dr"] * j(0.9, 1.1), 0.9), nk_subsets=(neg, 1.0 - neg - bright, bright),
                junk=j(0.3, 0.6), rbc=j(0.3, 0.7), doublets=j(0.02, 0.06), dead=j(0.03, 0.15),
                granulocytes=j(0.25, 0.55), monocytes=j(0.05, 0.1),
                lymphocytes_per_uL=base["lymph_uL"] * j(0.85, 1.2), tandem_degraded=tandem,
                already_compensated=p == recompensated, scenarios=scen))
    return out


@dataclass
class CellsB:
    """``n`` events before acquisition (doublets merged); scatter relative to a lymphocyte's FSC-H."""

    levels: np.ndarray  # (n, 8) pe, FLUOROCHROMES_B order
    fsc_h: np.ndarray
    ssc_h: np.ndarray
    fsc_a: np.ndarray
    ssc_a: np.ndarray
    af: np.ndarray
    members: dict[str, np.ndarray]
    kind: np.ndarray
    dead: np.ndarray


def _gam(rng: np.random.Generator, n: int, mean: float, cv: float) -> np.ndarray:
    """Gamma-distributed positive levels with ``mean`` and coefficient of variation ``cv``."""
    k = 1.0 / cv**2
    return rng.gamma(k, mean / k, n)


def _counts(v: VisitB, n: int, rng: np.random.Generator) -> dict[str, int]:
    junk = v.junk
    leuk = 1.0 - junk - v.doublets
    lymph = leuk * (1.0 - v.granulocytes - v.monocytes)
    shares = {"lymph": lymph, "mono": leuk * v.monocytes, "gran": leuk * v.granulocytes,
              "debris": junk * (1 - v.rbc), "rbc": junk * v.rbc, "doublets": v.doublets}
    total = sum(shares.values())
    return dict(zip(shares, rng.multinomial(n, [s / total for s in shares.values()])))


def _labels(v: VisitB, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    scale = (1.0 - v.other) / (v.t + v.b + v.nk)
    t, b, nk = v.t * scale, v.b * scale, v.nk * scale
    p = np.array([t * v.cd4, t * (1 - v.cd4 - v.dn), t * v.dn, b, nk, v.other])
    lineage = rng.choice(6, size=n, p=p / p.sum())
    mem = rng.choice(4, size=n, p=np.asarray(v.cd4_subsets) / sum(v.cd4_subsets))
    mem = np.where(lineage == T8, rng.choice(4, size=n, p=[0.3, 0.15, 0.3, 0.25]), mem)
    u = rng.random(n)
    treg = (lineage == T4) & (u < v.treg)
    act25 = (lineage == T4) & (u >= v.treg) & (u < v.treg + v.act25)
    dr = rng.random(n) < np.where(lineage == T8, v.dr_cd8, np.where(lineage == T4, v.dr_cd8 / 2, 0.1))
    return {"lineage": lineage, "mem": mem, "treg": treg, "act25": act25, "dr": dr,
            "nk_sub": rng.choice(3, size=n, p=np.asarray(v.nk_subsets) / sum(v.nk_subsets)),
            "dead": rng.random(n) < v.dead}


def _levels_mem(lab: dict[str, np.ndarray], kind: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = kind.size
    lin, mem = lab["lineage"], lab["mem"]
    ly = kind == LYMPH
    t = ly & np.isin(lin, (T4, T8, TDN))
    mono = kind == MONO
    z = np.zeros(n)
    out = {m: z.copy() for m in TUBES_B["mem"]}
    out["CD3"] = np.where(t, _gam(rng, n, 4000, 0.3), 0.0)
    out["CD4"] = np.where(ly & (lin == T4), _gam(rng, n, 5000, 0.3), np.where(mono, _gam(rng, n, 600, 0.5), 0.0))
    out["CD8"] = np.where(ly & (lin == T8), _gam(rng, n, 15000, 0.35),
                          np.where(ly & (lin == NK) & (rng.random(n) < 0.35), _gam(rng, n, 1200, 0.6), 0.0))
    memory = t & np.isin(mem, (CM, EM))
    out["CD45RO"] = np.select([memory, t & (mem == TEMRA), mono],
                              [_gam(rng, n, 2500, 0.5), _gam(rng, n, 150, 0.6), _gam(rng, n, 2000, 0.5)], 0.0)
    out["CCR7"] = np.where((t & np.isin(mem, (NAIVE, CM))) | (ly & (lin == B)), _gam(rng, n, 1200, 0.6), 0.0)
    out["CD25"] = np.select([t & lab["treg"], t & lab["act25"]], [_gam(rng, n, 3000, 0.45), _gam(rng, n, 700, 0.6)], 0.0)
    out["CD127"] = np.select([t & lab["treg"], t], [_gam(rng, n, 120, 0.8), _gam(rng, n, 1800, 0.5)], 0.0)
    smear = np.exp(rng.uniform(np.log(30.0), np.log(6000.0), n))  # activation as a continuum, no second mode
    out["HLA-DR"] = np.select([ly & lab["dr"] & np.isin(lin, (T4, T8, TDN, NK)), ly & (lin == B), mono],
                              [smear, _gam(rng, n, 8000, 0.4), _gam(rng, n, 5000, 0.5)], 0.0)
    return out


def _levels_nk(lab: dict[str, np.ndarray], kind: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = kind.size
    lin, sub = lab["lineage"], lab["nk_sub"]
    ly = kind == LYMPH
    t = ly & np.isin(lin, (T4, T8, TDN))
    nk = ly & (lin == NK)
    mono, gran = kind == MONO, kind == GRAN
    out: dict[str, np.ndarray] = {}
    out["CD45"] = np.select([ly, mono, gran, kind == DEBRIS],
                            [_gam(rng, n, 8000, 0.25), _gam(rng, n, 5000, 0.3), _gam(rng, n, 2500, 0.3),
                             _gam(rng, n, 200, 1.5)], 0.0)
    out["CD3"] = np.where(t, _gam(rng, n, 5000, 0.3), 0.0)
    out["CD20"] = np.where(ly & (lin == B), _gam(rng, n, 6000, 0.35), 0.0)
    out["CD16"] = np.select(
        [nk & (sub == NK_DIM), nk & (sub == NK_NEG), nk & (sub == NK_BRIGHT) & (rng.random(n) < 0.4),
         mono & (rng.random(n) < 0.15), gran],
        [_gam(rng, n, 6000, 0.45), _gam(rng, n, 5000, 0.45), _gam(rng, n, 400, 0.6), _gam(rng, n, 2500, 0.5),
         _gam(rng, n, 20000, 0.3)], 0.0)
    out["CD56"] = np.select([nk & (sub == NK_DIM), nk & (sub == NK_BRIGHT), t & (rng.random(n) < 0.04)],
                            [_gam(rng, n, 1400, 0.4), _gam(rng, n, 14000, 0.35), _gam(rng, n, 1500, 0.6)], 0.0)
    out["CD14"] = np.select([mono & (rng.random(n) < 0.9), gran], [_gam(rng, n, 9000, 0.4), _gam(rng, n, 300, 0.5)], 0.0)
    out["Viability"] = np.select([lab["dead"], kind == DEBRIS], [_gam(rng, n, 18000, 0.6),
                                 np.where(rng.random(n) < 0.5, _gam(rng, n, 5000, 0.8), 0.0)], _gam(rng, n, 120, 0.5))
    return out


def make_cells_b(tube: str, v: VisitB, n: int, rng: np.random.Generator) -> CellsB:
    """``n`` events of ``tube`` for visit ``v`` (singles, then doublets merged from two cells)."""
    c = _counts(v, n, rng)
    d = c["doublets"]
    kind = rng.permutation(np.repeat([LYMPH, MONO, GRAN, DEBRIS, RBC],
                                     [c["lymph"] + 2 * d, c["mono"], c["gran"], c["debris"], c["rbc"]]))
    n_single = kind.size
    lab = _labels(v, n_single, rng)
    lab["dead"] &= np.isin(kind, (LYMPH, MONO, GRAN))
    marker_levels = (_levels_mem if tube == "mem" else _levels_nk)(lab, kind, rng)
    levels = np.zeros((n_single, len(FLUOROCHROMES_B)))
    for marker, fluor in TUBES_B[tube].items():
        levels[:, FLUOROCHROMES_B.index(fluor)] = marker_levels[marker]
    dead = lab["dead"]
    levels[dead] *= 0.6
    if "Viability" in TUBES_B[tube]:
        k = FLUOROCHROMES_B.index(TUBES_B[tube]["Viability"])
        levels[dead, k] = marker_levels["Viability"][dead]
    fsc_mean = np.choose(kind, [1.0, 1.45, 1.35, 0.25, 0.45]) * np.where((kind == LYMPH) & (lab["lineage"] == B), 0.95, 1.0)
    ssc_mean = np.choose(kind, [0.15, 0.45, 1.6, 0.1, 0.05]) * np.where((kind == LYMPH) & (lab["lineage"] == NK), 1.35, 1.0)
    fsc_k = np.choose(kind, [150.0, 60.0, 60.0, 1.5, 30.0])
    ssc_k = np.choose(kind, [25.0, 15.0, 20.0, 1.2, 10.0])
    fsc_h = rng.gamma(fsc_k, fsc_mean / fsc_k) * np.where(dead, 0.75, 1.0)
    ssc_h = rng.gamma(ssc_k, ssc_mean / ssc_k) * np.where(dead, 1.2, 1.0)
    fsc_a = fsc_h * rng.gamma(400.0, 1.1 / 400.0, n_single)
    ssc_a = ssc_h * rng.gamma(300.0, 1.05 / 300.0, n_single)
    # autofluorescence with heavy tails (log-t, 3 degrees of freedom, cut at 6, i.e. at most ~8x): skewed negatives
    af = np.choose(kind, [1.0, 2.5, 4.0, 0.5, 0.3]) * np.where(dead, 2.0, 1.0) * np.exp(
        0.35 * np.clip(rng.standard_t(3, n_single), -6.0, 6.0))
    dr = levels[:, FLUOROCHROMES_B.index(TUBES_B["mem"]["HLA-DR"])] if tube == "mem" else np.zeros(n_single)
    members = _members(tube, kind, lab, dr)
    keep = n_single - 2 * d
    a, b = np.arange(keep, keep + d), np.arange(keep + d, n_single)
    stretch = rng.uniform(1.0, 1.4, d)
    both_lymph = (kind[a] == LYMPH) & (kind[b] == LYMPH)
    out_members = {pop: np.concatenate([m[:keep], both_lymph if pop == "Lymphocytes" else np.zeros(d, bool)])
                   for pop, m in members.items()}
    return CellsB(levels=np.vstack([levels[:keep], levels[a] + levels[b]]),
                  fsc_h=np.concatenate([fsc_h[:keep], np.maximum(fsc_h[a], fsc_h[b]) * stretch]),
                  ssc_h=np.concatenate([ssc_h[:keep], np.maximum(ssc_h[a], ssc_h[b]) * stretch]),
                  fsc_a=np.concatenate([fsc_a[:keep], fsc_a[a] + fsc_a[b]]),
                  ssc_a=np.concatenate([ssc_a[:keep], ssc_a[a] + ssc_a[b]]),
                  af=np.concatenate([af[:keep], af[a] + af[b]]), members=out_members,
                  kind=np.concatenate([kind[:keep], np.full(d, DOUBLET)]),
                  dead=np.concatenate([dead[:keep], dead[a] | dead[b]]))


def _members(tube: str, kind: np.ndarray, lab: dict[str, np.ndarray], dr: np.ndarray) -> dict[str, np.ndarray]:
    """Truth membership of single events (definitions in README.md, "Lab B"); ``dr``: HLA-DR stain (pe)."""
    lin, mem = lab["lineage"], lab["mem"]
    ly = kind == LYMPH
    m: dict[str, np.ndarray] = {"Lymphocytes": ly, "Singlets": ly}
    if tube == "mem":
        cd4, cd8 = ly & (lin == T4), ly & (lin == T8)
        m.update({"T cells": ly & np.isin(lin, (T4, T8, TDN)), "CD4 T": cd4, "CD8 T": cd8,
                  "Naive CD4": cd4 & (mem == NAIVE), "Memory CD4": cd4 & np.isin(mem, (CM, EM)),
                  "CM CD4": cd4 & (mem == CM), "EM CD4": cd4 & (mem == EM), "TEMRA CD4": cd4 & (mem == TEMRA),
                  "CD25+ CD4": cd4 & (lab["treg"] | lab["act25"]), "Treg": cd4 & lab["treg"],
                  "HLA-DR+ CD8": cd8 & (dr >= DR_POSITIVE_PE)})
    else:
        live = ly & ~lab["dead"]
        nk = live & (lin == NK) & (lab["nk_sub"] != NK_NEG)  # lab B: NK = CD3- CD56+ (CD56- CD16+ cells are not)
        m.update({"Live": live, "T cells": live & np.isin(lin, (T4, T8, TDN)), "NK cells": nk,
                  "CD56bright NK": nk & (lab["nk_sub"] == NK_BRIGHT), "CD56dim NK": nk & (lab["nk_sub"] == NK_DIM),
                  "B cells": live & (lin == B)})
    return {pop: m[pop] for pop, _ in HIERARCHY_B[tube]}
