"""Small synthetic phenotype mixtures for examples, tests and benchmarks of the clustering kernels.

Events are on a logicle-like transformed scale: a negative marker sits near 0.2 and a positive one near
0.7 (Gaussian spread ``sd``). The full simulated trial with instrument effects is :mod:`cytokit.simulate`;
this module only feeds the array kernels.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from ..results import schema as S

TCELL_MARKERS: tuple[str, ...] = ("CD4", "CD8", "CD45RA", "CD62L", "CD28")
#: leaf -> 0/1 per marker of :data:`TCELL_MARKERS`
TCELL_LEAVES: dict[str, tuple[int, ...]] = {
    "Naive CD4": (1, 0, 1, 1, 1), "CM CD4": (1, 0, 0, 1, 1), "EM CD4": (1, 0, 0, 0, 1),
    "TEMRA CD4": (1, 0, 1, 0, 0), "Naive CD8": (0, 1, 1, 1, 1), "EM CD8": (0, 1, 0, 0, 0),
}
#: architecture population names -> the leaves they contain
TCELL_POPULATIONS: dict[str, tuple[str, ...]] = {
    "CD4 T": ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4"), "CD8 T": ("Naive CD8", "EM CD8"),
    "Naive CD4": ("Naive CD4",), "Memory CD4": ("CM CD4", "EM CD4"), "CM CD4": ("CM CD4",),
    "EM CD4": ("EM CD4",), "TEMRA CD4": ("TEMRA CD4",), "CD28+ CD4": ("Naive CD4", "CM CD4", "EM CD4"),
    "CD28+ CD8": ("Naive CD8",),
}


def toy_samples(n_samples: int = 6, n_events: int = 4000, *, seed: int = 0, sd: float = 0.05,
                leaves: Mapping[str, Sequence[int]] = TCELL_LEAVES,
                populations: Mapping[str, Sequence[str]] = TCELL_POPULATIONS,
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pd.DataFrame]:
    """``(samples, labels, truth)``: float32 events per sample id, leaf name per event, and a table
    ``sample_id, population, truth_pct`` (% of all events of the sample). Sample sizes vary 0.5-1.5x."""
    rng = np.random.default_rng(seed)
    names = list(leaves)
    centres = np.array([leaves[n] for n in names], dtype=float) * 0.5 + 0.2
    samples, labels, truth = {}, {}, []
    for s in range(n_samples):
        probs = rng.dirichlet(np.full(len(names), 4.0))
        n = int(n_events * (0.5 + rng.random()))
        leaf = rng.choice(len(names), size=n, p=probs)
        X = centres[leaf] + rng.normal(0, sd, (n, centres.shape[1]))
        sid = f"S{s:02d}"
        samples[sid] = X.astype(np.float32)
        labels[sid] = np.array(names)[leaf]
        for pop, members in populations.items():
            truth.append((sid, pop, 100.0 * float(np.isin(labels[sid], list(members)).mean())))
    return samples, labels, pd.DataFrame(truth, columns=[S.SAMPLE_ID, S.POPULATION, "truth_pct"])


def toy_events(n_events: int, n_markers: int, *, n_populations: int = 12, seed: int = 0,
               sd: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """``(X, labels)``: ``n_events`` float32 events of ``n_populations`` random +/- phenotypes over
    ``n_markers`` markers (for speed benchmarks)."""
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, 2, (n_populations, n_markers)) * 0.5 + 0.2
    probs = rng.dirichlet(np.full(n_populations, 2.0))
    lab = rng.choice(n_populations, size=n_events, p=probs)
    X = pattern[lab] + rng.normal(0, sd, (n_events, n_markers))
    return X.astype(np.float32), lab.astype(np.int32)
