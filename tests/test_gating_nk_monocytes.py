"""The shipped nkb strategy's NK gate keeps CD16dim monocytes out: CD16 counts for NK only at the level of the
brightest CD16 mode (the CD16bright NK cells), not at the dim mode that monocytes let in by the scatter gate
form below it (gating/nkb.yaml; docs/gating.md, "NK cells and the monocytes inside the lymphocyte gate").
Arrays are generated here; one simulated file with monocytes inside the lymphocytes' scatter is gated end
to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods import fit_gate
from cytokit.simulate import load_config, simulate_file, truth_masks

DIMS = ("CD3", "CD19", "CD56", "CD16")


def _shipped_nk() -> dict:
    pop = load_strategy("nkb").definition.population("NK cells")
    return pop.params if isinstance(pop.params, dict) else pop.params.model_dump()


def singlets(seed: int, *, monocytes: int, n_nk: int = 900, cd56neg_share: float = 0.1,
             cd16_nk: float = 0.78, cd16_mono: float = 0.55) -> tuple[np.ndarray, np.ndarray]:
    """Single 'lymphocytes' on the logicle scale (CD3, CD19, CD56, CD16): T, B and other cells, NK cells
    (CD56dim CD16bright, CD56bright CD16-, CD56- CD16bright) and ``monocytes`` CD16dim CD56- events.
    Labels: 0 T, 1 B, 2 other, 3 NK, 4 monocyte."""
    r = np.random.default_rng(seed)
    counts = {0: 7000, 1: 1500, 2: 300, 3: n_nk, 4: monocytes}
    lab = np.repeat(list(counts), list(counts.values()))
    n = lab.size
    neg = lambda: r.normal(0.18, 0.05, n)  # noqa: E731
    cd3 = np.where(lab == 0, r.normal(0.7, 0.04, n), neg())
    cd19 = np.where(lab == 1, r.normal(0.65, 0.04, n), neg())
    kind = r.choice(3, size=n, p=[1 - cd56neg_share - 0.08, 0.08, cd56neg_share])  # NK: dim, bright, CD56-
    cd56 = np.where((lab == 3) & (kind == 0), r.normal(0.55, 0.04, n),
                    np.where((lab == 3) & (kind == 1), r.normal(0.78, 0.03, n), neg()))
    cd16 = np.where((lab == 3) & (kind != 1), r.normal(cd16_nk, 0.035, n),
                    np.where(lab == 4, r.normal(cd16_mono, 0.05, n), neg()))
    return np.column_stack([cd3, cd19, cd56, cd16]), lab


def _nk(X: np.ndarray) -> np.ndarray:
    t = fit_gate("phenotype", X, _shipped_nk(), dims=DIMS).info["thresholds"]
    return (X[:, 0] < t["CD3"]) & (X[:, 1] < t["CD19"]) & ((X[:, 2] >= t["CD56"]) | (X[:, 3] >= t["CD16"]))


def test_cd16dim_monocytes_stay_out_of_nk():
    # 600 CD16dim monocytes (as many as NK cells' CD56- + CD56dim): a mode between the CD16 negatives and the
    # NK cells' CD16; the first valley above the negatives would take them in (NK cells 1.6x too many)
    for seed in range(4):
        X, lab = singlets(seed, monocytes=600)
        nk = _nk(X)
        assert nk[lab == 3].mean() > 0.97, (seed, nk[lab == 3].mean())
        assert nk[lab == 4].mean() < 0.02, (seed, nk[lab == 4].mean())


def test_cd56neg_cd16bright_nk_kept_without_monocytes():
    # no CD16dim mode: the CD16 threshold lies in the valley between the negatives and the NK cells' CD16,
    # so the CD56- CD16bright NK cells still count
    X, lab = singlets(7, monocytes=0, cd56neg_share=0.15)
    nk = _nk(X)
    cd56neg_nk = (lab == 3) & (X[:, 2] < 0.35)
    assert nk[cd56neg_nk].mean() > 0.95
    assert nk[lab == 3].mean() > 0.97 and nk[lab < 3].mean() < 0.005


def test_simulated_monocytes_in_the_scatter_gate_leave_nk_and_cd56dim_right(tmp_path: Path):
    # as benchmarks/gating_accuracy.py's scatter_monocytes_near family: monocytes overlapping the lymphocytes'
    # scatter (no density valley between them), CD16dim and CD3- CD19-, so inside Singlets. With CD16 counted
    # from the first valley they were ~45 % of the NK gate (CD56dim NK 30-44 pp low)
    cfg = load_config(None, event_mix={"debris": 0.25, "monocytes": 0.25, "granulocytes": 0.20},
                      phenotype={"cell_scatter": {"lymphocyte": (50000.0, 0.11, 15000.0, 0.22),
                                                  "monocyte": (70000.0, 0.13, 28000.0, 0.25)}})
    path = tmp_path / "mono_nkb.fcs"
    simulate_file(path, n_events=40000, tube="nkb", instrument="bd", seed=21, config=cfg, truth_out=tmp_path)
    res = load_strategy("nkb").apply(read_fcs(path), qc=False)
    truth = truth_masks(tmp_path, path)
    nk, tnk = res.masks["NK cells"], truth["NK cells"]
    assert (nk & ~tnk).sum() < 0.05 * tnk.sum(), ((nk & ~tnk).sum(), tnk.sum())
    pops = res.populations.set_index("population")
    for name in ("CD56dim NK", "CD56bright NK"):
        true_pct = 100 * float(truth[name][tnk].mean())
        assert abs(float(pops.loc[name, "pct_parent"]) - true_pct) < 2.0, (name, pops.loc[name, "pct_parent"], true_pct)
