"""Who was sampled: per patient x visit blood composition and the scenario each file stands for.

Fractions are true proportions of the parent population (0..1). The scenarios are spread over the trial so
that every one of them meets both instruments: activation markers as a separate mode (``bimodal``) or a
dim-to-bright continuum (``continuous``, CD25) / a dim mode close to the negatives (``dim``, CD28); files
with nearly all CD4 T cells CD28+ or nearly no CD4 T cell CD25+; a dim CD56 reagent lot; clogs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VISITS = (("V1", 0), ("V2", 12), ("V3", 24))  # visit, week
ARMS = ("IL-2", "control")


@dataclass
class Visit:
    """One patient's blood at one visit (fractions 0..1) and the scenario words it stands for."""

    patient: str
    arm: str
    visit: str
    week: int
    instrument: str
    # single lymphocytes
    t: float
    b: float
    nk: float
    other: float  # CD3- CD19- CD56- CD16- lymphocytes (t, b, nk are rescaled to 1 - other)
    # T cells
    cd4: float
    dn: float
    # CD4 T: naive, CM, EM, TEMRA (sum 1)
    cd4_subsets: tuple[float, float, float, float]
    cd28_cd4: float
    cd28_cd8: float
    cd25_cd4: float
    # NK: CD56-CD16+, CD56dim, CD56bright (sum 1)
    nk_subsets: tuple[float, float, float]
    # all events
    debris: float
    doublets: float
    dead: float
    monocytes: float
    granulocytes: float
    lymphocytes_per_uL: float
    cd25_shape: str = "bimodal"  # or "continuous"
    cd28_shape: str = "bimodal"  # or "dim"
    cd56_stain: float = 1.0  # reagent brightness factor
    scenarios: list[str] = field(default_factory=list)


def draw_visits(n_patients: int, rng: np.random.Generator) -> list[Visit]:
    """Every patient x visit of the trial; patients alternate arms and instruments (A, B)."""
    n = n_patients
    cd25_shapes = rng.permutation(np.arange(n) % 2)  # half the patients each
    cd28_shapes = rng.permutation((np.arange(n) // 2) % 2)
    dim_cd56 = set(rng.choice(n, size=max(1, n // 4), replace=False).tolist())
    cells = [(p, v) for p in range(n) for v in range(len(VISITS))]
    picks = rng.permutation(len(cells))
    names = ["cd28_cd4_all_positive", "cd25_cd4_all_negative", "cd28_cd8_all_negative", "nk_bright_dominant"]
    if len(cells) > 8:
        names += ["cd28_cd4_all_positive", "cd25_cd4_all_negative"]
    extremes = {cells[k]: name for k, name in zip(picks, names)}
    out = []
    for p in range(n):
        arm = ARMS[p % 2]
        instrument = "AB"[(p + p // 2) % 2]  # both arms on both instruments, even with 2 patients
        base = {
            "t": rng.uniform(0.55, 0.78), "b": rng.uniform(0.06, 0.18), "nk": rng.uniform(0.05, 0.2),
            "cd4": rng.uniform(0.35, 0.68), "dn": rng.uniform(0.02, 0.06),
            "naive": rng.uniform(0.2, 0.55), "temra": rng.uniform(0.01, 0.06), "cm": rng.uniform(0.2, 0.4),
            "cd28_cd4": rng.uniform(0.78, 0.95), "cd28_cd8": rng.uniform(0.4, 0.8),
            "cd25": rng.uniform(0.04, 0.15), "bright": rng.uniform(0.04, 0.15), "cd56neg": rng.uniform(0.02, 0.08),
            "lymph_uL": rng.uniform(900, 2400), "other": rng.uniform(0.005, 0.04),
        }
        for v, (visit, week) in enumerate(VISITS):
            j = lambda lo, hi: rng.uniform(lo, hi)  # noqa: E731 - visit-to-visit wobble
            cd25 = base["cd25"] * j(0.85, 1.15)
            bright = base["bright"] * j(0.85, 1.15)
            if arm == "IL-2" and week > 0:  # IL-2 expands CD25+ CD4 T and CD56bright NK cells
                cd25 = j(0.25, 0.55)
                bright = j(0.15, 0.4)
            scen = [f"cd25_{'continuous' if cd25_shapes[p] else 'bimodal'}",
                    f"cd28_{'dim' if cd28_shapes[p] else 'bimodal'}", f"instrument_{instrument}"]
            cd28_cd4, cd28_cd8 = base["cd28_cd4"] * j(0.97, 1.03), base["cd28_cd8"] * j(0.9, 1.1)
            extreme = extremes.get((p, v))
            if extreme == "cd28_cd4_all_positive":
                cd28_cd4 = j(0.985, 0.995)
            elif extreme == "cd25_cd4_all_negative":
                cd25 = j(0.005, 0.015)
            elif extreme == "cd28_cd8_all_negative":
                cd28_cd8 = j(0.02, 0.06)
            elif extreme == "nk_bright_dominant":
                bright = j(0.55, 0.7)
            if extreme:
                scen.append(extreme)
            if p in dim_cd56:
                scen.append("cd56_dim_reagent")
            temra, cm = base["temra"], base["cm"]
            naive = min(base["naive"] * j(0.9, 1.1), 0.95 - temra - cm)
            neg = base["cd56neg"]
            out.append(Visit(
                patient=f"L{p + 1:02d}", arm=arm, visit=visit, week=week, instrument=instrument,
                t=base["t"] * j(0.95, 1.05), b=base["b"] * j(0.9, 1.1), nk=base["nk"] * j(0.9, 1.1),
                other=base["other"],
                cd4=base["cd4"] * j(0.95, 1.05), dn=base["dn"],
                cd4_subsets=(naive, cm, 1.0 - naive - cm - temra, temra),
                cd28_cd4=min(cd28_cd4, 0.995), cd28_cd8=min(cd28_cd8, 0.98), cd25_cd4=cd25,
                nk_subsets=(neg, 1.0 - neg - bright, bright),
                debris=j(0.03, 0.2), doublets=j(0.02, 0.07), dead=j(0.02, 0.12), monocytes=j(0.05, 0.2),
                granulocytes=j(0.0, 0.08), lymphocytes_per_uL=base["lymph_uL"] * j(0.85, 1.2),
                cd25_shape="continuous" if cd25_shapes[p] else "bimodal",
                cd28_shape="dim" if cd28_shapes[p] else "bimodal",
                cd56_stain=0.45 if p in dim_cd56 else 1.0, scenarios=scen))
    return out
