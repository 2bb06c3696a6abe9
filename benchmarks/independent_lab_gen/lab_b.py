"""Lab B: a second independent lab — its reagents, optics and instruments (see README.md, "Lab B").

Chosen to differ from both ``cytokit.simulate`` and lab A (:mod:`.lab`): eight colours with violet and UV
dyes (BUV395, BV421, BV510, BV605) beside FITC, PE, PE-Cy7 and APC; memory defined by CD45RO and CCR7 (not
CD45RA/CD62L); Treg (CD25 x CD127) and HLA-DR on the T-cell tube; NK as CD3- CD56+ with CD16, B cells by
CD20; a PE-Cy7 tandem that degrades in some files (its emission moves into the PE detector, which
carries CD25); two instruments, a CytoFLEX-like one (filter names ``KO525-A``, ``PC7-A``… mixed with
``FITC-A``, 22-bit ``$PnR`` 4194304, no negative values, detector gains recorded in ``$PnG``, matrix in
``SPILL``) and a Symphony-like one (``BV510-A``… area and height, ``$PnR`` 262144, ``$PnS`` "CD3-BV510").

Units: marker levels are mean photoelectrons (pe) in the dye's own detector at nominal gain (as in lab A,
but the photon statistics, noise and scales below are lab B's own).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: fluorochromes of lab B, in the order the spillover reference uses
FLUOROCHROMES_B = ("BUV395", "BV421", "BV510", "BV605", "FITC", "PE", "PE-Cy7", "APC")

#: spillover at nominal gains of fresh reagents: row = dye, column = detector (FLUOROCHROMES_B order)
SPILL_REFERENCE_B = np.array([
    # BUV395 BV421  BV510  BV605  FITC   PE     PE-Cy7 APC
    [1.000, 0.020, 0.010, 0.005, 0.000, 0.000, 0.000, 0.000],  # BUV395
    [0.010, 1.000, 0.250, 0.030, 0.020, 0.000, 0.000, 0.000],  # BV421
    [0.000, 0.040, 1.000, 0.120, 0.150, 0.020, 0.000, 0.000],  # BV510
    [0.000, 0.000, 0.020, 1.000, 0.010, 0.120, 0.030, 0.010],  # BV605
    [0.000, 0.000, 0.030, 0.010, 1.000, 0.250, 0.020, 0.000],  # FITC
    [0.000, 0.000, 0.000, 0.080, 0.015, 1.000, 0.040, 0.002],  # PE
    [0.000, 0.000, 0.000, 0.020, 0.000, 0.030, 1.000, 0.010],  # PE-Cy7
    [0.000, 0.000, 0.000, 0.010, 0.000, 0.000, 0.060, 1.000],  # APC
])

#: a degraded PE-Cy7 tandem (files with scenario ``tandem_degraded``): its own-detector signal and the share
#: of the intact signal it emits into the PE detector instead (the $SPILLOVER of those files still comes from
#: fresh single-stain controls, so the extra PE signal is not compensated)
TANDEM_KEEP, TANDEM_TO_PE = 0.7, 0.15

#: median autofluorescence (pe) of a resting lymphocyte per detector (UV and violet detectors the highest)
AUTOFLUORESCENCE_PE_B = np.array([160.0, 100.0, 140.0, 45.0, 110.0, 55.0, 25.0, 10.0])

#: marker -> fluorochrome per tube
TUBES_B: dict[str, dict[str, str]] = {
    # CD25 on PE receives FITC (CD45RO), BV605 (CD4) and, when the tandem degrades, PE-Cy7 (CCR7) signal
    "mem": {"CD8": "BUV395", "HLA-DR": "BV421", "CD3": "BV510", "CD4": "BV605", "CD45RO": "FITC", "CD25": "PE",
            "CCR7": "PE-Cy7", "CD127": "APC"},
    # seven markers: the BUV395 detector is recorded but unstained ($PnS empty)
    "nk": {"CD45": "BV421", "CD3": "BV510", "CD20": "BV605", "CD16": "FITC", "CD56": "PE", "CD14": "PE-Cy7",
           "Viability": "APC"},
}


@dataclass(frozen=True)
class InstrumentB:
    """One of lab B's cytometers."""

    name: str
    detectors: dict[str, str]  # fluorochrome -> detector $PnN (area), in the order the file lists them
    time_name: str
    range: int  # $PnR of scatter and fluorescence
    units_per_pe: float
    nominal_gain: tuple[float, ...]  # FLUOROCHROMES_B order
    gain_sd: float  # log-sd of a file's gains around the nominal
    scatter_scale: float  # linear units of a lymphocyte's FSC-H
    noise: float  # electronic noise SD (linear units)
    floor_at_zero: bool  # baseline restoration writes no negative values
    heights: bool  # writes a -H channel after each fluorescence -A channel
    pns_style: str  # "marker" ("CD3") or "marker-dye" ("CD3-BV510")
    gain_in_png: bool  # nominal x file gain written as $PnG (channel values not divided by it)
    matrix_keyword: str
    timestep_s: float


INSTRUMENTS_B: dict[str, InstrumentB] = {
    "C": InstrumentB("FlowLab C13 (CytoFLEX-like)",
                     {"BV421": "PB450-A", "BV510": "KO525-A", "BV605": "Violet610-A", "FITC": "FITC-A",
                      "PE": "PE-A", "PE-Cy7": "PC7-A", "APC": "APC-A", "BUV395": "UV405-A"},
                     "TIME", 4_194_304, 25.0, (1.4, 1.0, 1.0, 1.2, 1.0, 1.1, 1.3, 1.6), 0.04, 550_000.0, 30.0,
                     True, False, "marker", True, "SPILL", 0.01),
    "D": InstrumentB("FlowLab D8 (Symphony-like)",
                     {"BUV395": "BUV395-A", "BV421": "BV421-A", "BV510": "BV510-A", "BV605": "BV605-A",
                      "FITC": "FITC-A", "PE": "PE-A", "PE-Cy7": "PE-Cy7-A", "APC": "APC-A"},
                     "Time", 262_144, 1.6, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0), 0.15, 70_000.0, 15.0,
                     False, True, "marker-dye", False, "$SPILLOVER", 0.01),
}
