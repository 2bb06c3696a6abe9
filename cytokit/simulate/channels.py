"""Tubes, instrument channel-naming styles and reference spillover of the simulated IL-2 trial panel.

Contract
--------
* :data:`TUBES` lists, per tube, the channels of a file in order: scatter (``FSC-A``, ``FSC-H``,
  ``SSC-A``), one fluorescence channel per ``(marker, fluorochrome)`` and ``Time``.
* :data:`STYLES` is the single registry of $PnN naming styles: BD-style names the detector after the
  fluorochrome (``PE-Cy7-A``), Attune NxT style after the laser/filter (``BL4-A``). $PnS carries the
  marker text, either ``"CD4"`` or ``"CD4 PE-Cy7"`` (the style decides).
* :data:`REFERENCE_SPILLOVER` gives spillover fractions at reference detector gains (row = fluorochrome
  source, column = detector, spillover convention). :func:`spillover_matrix` rescales it to a file's own
  detector gains so that compensating that file with it recovers the unspilled signal on the file's scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from types import MappingProxyType

import numpy as np

SCATTER: tuple[str, ...] = ("FSC-A", "FSC-H", "SSC-A")
TIME = "Time"

#: tube -> ordered (marker, fluorochrome) of its fluorescence channels
TUBES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "tmem": (
        ("CD45RA", "FITC"), ("CD62L", "PE"), ("CD3", "PerCP-Cy5.5"), ("CD4", "PE-Cy7"),
        ("CD8", "APC-H7"), ("CD28", "APC"), ("CD25", "BV421"), ("CD127", "BV605"),
    ),
    "nkb": (
        ("CD3", "FITC"), ("CD16", "PE"), ("CD45", "PerCP-Cy5.5"), ("CD19", "PE-Cy7"), ("CD56", "APC"),
    ),
})


@dataclass(frozen=True)
class ChannelStyle:
    """How an instrument names its channels."""

    name: str
    detectors: Mapping[str, str]  # fluorochrome -> $PnN
    pns_with_fluorochrome: bool   # $PnS "CD4 PE-Cy7" (True) or "CD4" (False)


STYLES: Mapping[str, ChannelStyle] = MappingProxyType({
    "bd": ChannelStyle(
        "bd",
        {"FITC": "FITC-A", "PE": "PE-A", "PerCP-Cy5.5": "PerCP-Cy5-5-A", "PE-Cy7": "PE-Cy7-A",
         "APC-H7": "APC-H7-A", "APC": "APC-A", "BV421": "BV421-A", "BV605": "BV605-A"},
        pns_with_fluorochrome=True,
    ),
    "attune": ChannelStyle(
        "attune",
        {"FITC": "BL1-A", "PE": "BL2-A", "PerCP-Cy5.5": "BL3-A", "PE-Cy7": "BL4-A", "APC": "RL1-A",
         "APC-H7": "RL3-A", "BV421": "VL1-A", "BV605": "VL3-A"},
        pns_with_fluorochrome=False,
    ),
})

#: spillover fraction of a fluorochrome (key) into other fluorochromes' detectors at reference gains
REFERENCE_SPILLOVER: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "FITC": {"PE": 0.18, "PerCP-Cy5.5": 0.03, "PE-Cy7": 0.005, "BV605": 0.004},
    "PE": {"FITC": 0.015, "PerCP-Cy5.5": 0.12, "PE-Cy7": 0.03, "BV605": 0.02},
    "PerCP-Cy5.5": {"PE": 0.005, "PE-Cy7": 0.20, "APC-H7": 0.04, "APC": 0.02},
    "PE-Cy7": {"PE": 0.01, "PerCP-Cy5.5": 0.01, "APC-H7": 0.06},
    "APC-H7": {"PE-Cy7": 0.05, "APC": 0.02},
    "APC": {"PerCP-Cy5.5": 0.01, "PE-Cy7": 0.005, "APC-H7": 0.12},
    "BV421": {"FITC": 0.02, "BV605": 0.03},
    "BV605": {"PE": 0.06, "PerCP-Cy5.5": 0.02, "PE-Cy7": 0.005, "BV421": 0.005},
})


def tube_markers(tube: str) -> tuple[str, ...]:
    return tuple(m for m, _ in TUBES[tube])


def tube_fluorochromes(tube: str) -> tuple[str, ...]:
    return tuple(f for _, f in TUBES[tube])


def channel_names(tube: str, style: str) -> tuple[list[str], list[str]]:
    """($PnN list, $PnS list) of a tube's file in an instrument style, in file order."""
    st = STYLES[style]
    pnn = list(SCATTER)
    pns = ["", "", ""]
    for marker, fluor in TUBES[tube]:
        pnn.append(st.detectors[fluor])
        pns.append(f"{marker} {fluor}" if st.pns_with_fluorochrome else marker)
    pnn.append(TIME)
    pns.append("")
    return pnn, pns


def spillover_matrix(tube: str, gains: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Spillover matrix (n_fluor × n_fluor, row = source, column = detector) for one file.

    ``gains`` are the file's relative detector gains (one per fluorescence channel, linear). A
    fluorochrome ``i`` contributing ``s0`` of its reference-gain signal to detector ``j`` contributes
    ``s0 * g_j / g_i`` of its signal *as recorded in its own detector*, so that compensation with this
    matrix gives back each fluorochrome's signal on the file's own scale. ``scale`` multiplies all
    off-diagonal spillover (instrument optics).
    """
    fluors = tube_fluorochromes(tube)
    n = len(fluors)
    gains = np.asarray(gains, dtype=float)
    s = np.eye(n)
    for i, src in enumerate(fluors):
        for j, det in enumerate(fluors):
            if i != j:
                s[i, j] = REFERENCE_SPILLOVER.get(src, {}).get(det, 0.0) * scale * gains[j] / gains[i]
    return s


def spillover_text(matrix: np.ndarray, pnn: list[str]) -> str:
    """$SPILLOVER keyword value: ``n,names...,values row-major`` (rows = sources)."""
    values = ",".join(f"{v:.6g}" for v in np.asarray(matrix).ravel())
    return f"{len(pnn)},{','.join(pnn)},{values}"
