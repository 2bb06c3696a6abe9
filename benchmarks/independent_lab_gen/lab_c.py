"""Lab C: a third independent lab — its reagents, emission spectra and instruments (see README.md, "Lab C").

Chosen to vary what neither ``cytokit.simulate``, lab A (:mod:`.lab`) nor lab B (:mod:`.lab_b`) varies:

* a **spectral** cytometer (instrument E, Aurora-like): 30 detectors on three lasers; every dye is a full
  emission signature, each event is **unmixed** by ordinary least squares against reference signatures
  (measured with a small error) with an autofluorescence end-member extracted into its own ``AF-A``
  channel; the file holds unmixed values only (``BV421-A``…, wide negative spread, no ``$SPILLOVER``),
  ``$PnR`` 4194304, and a violet side scatter ``SSC-B-A`` / ``SSC-B-H`` beside ``SSC-A``;
* a **conventional** cytometer (instrument F, FACSCanto-II-like): eight detectors named the Diva way
  (``Pacific Blue-A`` carries BV421, ``AmCyan-A`` BV510, ``APC-Cy7-A`` APC-H7), ``$PnR`` 262144, a
  ``$SPILLOVER`` derived from the same signatures at the file's gains; one visit's files are acquired after
  a **re-calibration** (every detector's gain shifted for all files of that visit).

Units: a marker level is mean photoelectrons (pe) at the dye's peak detector; a detector collects
``level x signature`` pe of each dye (the signature's peak is 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: fluorochromes of lab C (both tubes, both instruments), in the order signatures and levels use
FLUOROCHROMES_C = ("BV421", "BV510", "FITC", "PE", "PerCP-Cy5.5", "PE-Cy7", "APC", "APC-H7")

#: the spectral instrument's detectors: (laser nm, centre of the detector's band, nm)
SPECTRAL_DETECTORS: tuple[tuple[int, float], ...] = (
    *((405, w) for w in np.linspace(428.0, 812.0, 12)),
    *((488, w) for w in np.linspace(508.0, 812.0, 10)),
    *((640, w) for w in np.linspace(661.0, 812.0, 8)),
)

#: per dye: excitation per laser and emission peak / width (nm); tandems leak a little donor emission
_DYES: dict[str, tuple[dict[int, float], float, float, tuple[float, float] | None]] = {
    # name: ({laser: excitation}, peak nm, width nm, (donor peak nm, share) or None)
    "BV421": ({405: 1.0, 488: 0.0, 640: 0.0}, 424.0, 22.0, None),
    "BV510": ({405: 1.0, 488: 0.02, 640: 0.0}, 512.0, 28.0, None),
    "FITC": ({405: 0.06, 488: 1.0, 640: 0.0}, 522.0, 20.0, None),
    "PE": ({405: 0.04, 488: 1.0, 640: 0.0}, 578.0, 20.0, None),
    "PerCP-Cy5.5": ({405: 0.08, 488: 1.0, 640: 0.04}, 695.0, 30.0, None),
    "PE-Cy7": ({405: 0.04, 488: 1.0, 640: 0.02}, 780.0, 32.0, (578.0, 0.06)),
    "APC": ({405: 0.0, 488: 0.01, 640: 1.0}, 662.0, 22.0, None),
    "APC-H7": ({405: 0.0, 488: 0.0, 640: 1.0}, 782.0, 32.0, (662.0, 0.05)),
}
#: autofluorescence signatures: lymphocytes (the end-member the lab extracts) and myeloid cells (red-shifted,
#: broader: what one autofluorescence end-member does not fit)
_AF = {"lymphoid": ({405: 1.0, 488: 0.45, 640: 0.03}, 470.0, 55.0),
       "myeloid": ({405: 1.0, 488: 0.6, 640: 0.06}, 505.0, 75.0)}


def _signature(excitation: dict[int, float], peak: float, width: float,
               donor: tuple[float, float] | None = None) -> np.ndarray:
    out = np.array([excitation[laser] * np.exp(-0.5 * ((w - peak) / width) ** 2) for laser, w in SPECTRAL_DETECTORS])
    if donor is not None:
        out += np.array([excitation[laser] * donor[1] * np.exp(-0.5 * ((w - donor[0]) / 20.0) ** 2)
                         for laser, w in SPECTRAL_DETECTORS])
    return out / out.max()


#: (dyes, detectors) emission signatures on the spectral instrument, peak 1
SIGNATURES = np.array([_signature(*_DYES[d][:3], _DYES[d][3]) for d in FLUOROCHROMES_C])
AF_SIGNATURE = {k: _signature(*v) for k, v in _AF.items()}
#: counting beads: bright across every detector (a broad, uneven spectrum), pe at the brightest detector
BEAD_SIGNATURE = np.clip(0.55 + 0.45 * np.sin(np.linspace(0.0, 5.0, len(SPECTRAL_DETECTORS))), 0.15, None)
BEAD_PE = 60_000.0

#: median autofluorescence of a resting lymphocyte at its signature's peak (pe)
AF_PE = 350.0

#: marker -> fluorochrome per tube (lab C's own assignment)
TUBES_C: dict[str, dict[str, str]] = {
    # T-cell differentiation tube (PBMC): memory by CD45RA x CCR7, CD28 (CD28-null expansions), CD25 x CD127
    "tc": {"CD8": "BV421", "CD3": "BV510", "CD45RA": "FITC", "CD25": "PE", "CD28": "PerCP-Cy5.5",
           "CCR7": "PE-Cy7", "CD127": "APC", "CD4": "APC-H7"},
    # TBNK tube (lyse/no-wash whole blood with counting beads): lymphocytes are gated on CD45 x SSC
    "tbnk": {"CD16": "BV421", "CD14": "BV510", "CD3": "FITC", "CD56": "PE", "CD45": "PerCP-Cy5.5",
             "CD4": "PE-Cy7", "CD19": "APC", "CD8": "APC-H7"},
}


@dataclass(frozen=True)
class InstrumentC:
    """One of lab C's cytometers."""

    name: str
    spectral: bool
    detectors: dict[str, str]  # fluorochrome -> $PnN (area) in file order
    detector_index: tuple[int, ...]  # conventional: the spectral detector each filter corresponds to (FLUOROCHROMES_C order)
    time_name: str
    range: int
    units_per_pe: float
    scatter_scale: float  # linear units of a lymphocyte's FSC-H
    noise: float  # electronic noise SD (pe)
    gain_sd: float  # log-sd of a file's gains around the nominal (day to day)
    timestep_s: float


def _nearest(laser: int, wavelength: float) -> int:
    return min((i for i, (l, _) in enumerate(SPECTRAL_DETECTORS) if l == laser),
               key=lambda i: abs(SPECTRAL_DETECTORS[i][1] - wavelength))


INSTRUMENTS_C: dict[str, InstrumentC] = {
    "E": InstrumentC("SpectraLab E5 (Aurora-like, unmixed)", True,
                     {f: f"{f}-A" for f in FLUOROCHROMES_C}, (), "Time", 4_194_304, 30.0, 900_000.0, 6.0, 0.03,
                     0.0001),
    "F": InstrumentC("FACSLab F2 (Canto-II-like)", False,
                     {"FITC": "FITC-A", "PE": "PE-A", "PerCP-Cy5.5": "PerCP-Cy5-5-A", "PE-Cy7": "PE-Cy7-A",
                      "APC": "APC-A", "APC-H7": "APC-Cy7-A", "BV421": "Pacific Blue-A", "BV510": "AmCyan-A"},
                     tuple(_nearest(la, w) for la, w in ((405, 450), (405, 512), (488, 530), (488, 585),
                                                         (488, 695), (488, 780), (640, 660), (640, 780))),
                     "Time", 262_144, 2.5, 55_000.0, 4.0, 0.05, 0.01),
}

#: the conventional instrument's spillover at nominal gains (row dye, column detector; FLUOROCHROMES_C order)
SPILL_F = SIGNATURES[:, list(INSTRUMENTS_C["F"].detector_index)]
SPILL_F = SPILL_F / np.diag(SPILL_F)[:, None]
