"""The other lab: its reagents (marker -> fluorochrome per tube), its optics (spillover at nominal detector
gains) and its two instruments (channel naming, $PnR range, units per photoelectron, nominal gains).

Everything here is the lab's own choice and is written independently of ``cytokit.simulate``: other
fluorochromes for every marker, a 7-colour T-cell tube without CD127, an NK/B tube with a CD14 dump and an
amine-reactive viability dye, detectors listed in another order, and ranges 2**20 vs 2**18.

Units: marker levels are mean photoelectrons (pe) collected in the fluorochrome's own detector at nominal
gain; a detector's output (linear FCS value) = gain x units_per_pe x Poisson(pe) + electronic noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: fluorochromes of the lab, in the order the spillover reference below uses
FLUOROCHROMES = ("FITC", "PE", "PerCP-Cy5.5", "PE-Cy7", "APC", "APC-H7", "BV421")

#: spillover at nominal gains: row = fluorochrome, column = detector (fraction of the row dye's primary signal)
SPILL_REFERENCE = np.array([
    # FITC   PE     PerCP  PE-Cy7 APC    APC-H7 BV421
    [1.000, 0.220, 0.035, 0.006, 0.000, 0.000, 0.002],  # FITC
    [0.012, 1.000, 0.180, 0.030, 0.002, 0.001, 0.000],  # PE
    [0.000, 0.008, 1.000, 0.280, 0.060, 0.140, 0.000],  # PerCP-Cy5.5
    [0.000, 0.025, 0.045, 1.000, 0.002, 0.070, 0.000],  # PE-Cy7
    [0.000, 0.000, 0.015, 0.008, 1.000, 0.110, 0.000],  # APC
    [0.000, 0.000, 0.004, 0.035, 0.045, 1.000, 0.000],  # APC-H7
    [0.030, 0.006, 0.001, 0.000, 0.000, 0.000, 1.000],  # BV421
])

#: median autofluorescence (pe) of a resting lymphocyte in each detector (skewed: log-normal per cell)
AUTOFLUORESCENCE_PE = np.array([120.0, 80.0, 45.0, 30.0, 12.0, 10.0, 90.0])

#: marker -> fluorochrome, per tube (the lab's own assignment)
TUBES: dict[str, dict[str, str]] = {
    # CD25 on PerCP-Cy5.5 sits under the spill of bright CD4-PE: CD4 T cells' CD25 negatives are spread
    "tcell": {"CD8": "FITC", "CD4": "PE", "CD25": "PerCP-Cy5.5", "CD45RA": "PE-Cy7", "CD62L": "APC",
              "CD3": "APC-H7", "CD28": "BV421"},
    "nkb": {"CD3": "FITC", "CD16": "PE", "CD45": "PerCP-Cy5.5", "CD56": "PE-Cy7", "CD19": "APC",
            "CD14": "APC-H7", "Viability": "BV421"},
}


@dataclass(frozen=True)
class Instrument:
    """One of the lab's cytometers: how it names channels and scales signals."""

    name: str
    detectors: dict[str, str]  # fluorochrome -> detector $PnN, in the order the file lists them
    time_name: str
    range: int  # $PnR of every scatter and fluorescence channel
    units_per_pe: float
    nominal_gain: tuple[float, ...]  # per fluorochrome (FLUOROCHROMES order)
    scatter_scale: float  # linear units of a lymphocyte's FSC-H
    pns_with_fluorochrome: bool  # $PnS "CD8 FITC" (True) or "CD8" (False)
    timestep_s: float


INSTRUMENTS: dict[str, Instrument] = {
    # a 20-bit instrument naming detectors by number (FL1..FL7), $PnS "marker fluorochrome"
    "A": Instrument("LabCyte A7 (FL numbering)",
                    {"FITC": "FL1-A", "PE": "FL2-A", "PerCP-Cy5.5": "FL3-A", "PE-Cy7": "FL4-A", "APC": "FL5-A",
                     "APC-H7": "FL6-A", "BV421": "FL7-A"},
                    "TIME", 1_048_576, 7.0, (1.3, 0.8, 1.6, 0.7, 1.4, 1.1, 0.6), 260_000.0, True, 0.001),
    # an 18-bit instrument naming detectors by fluorochrome, violet detector first, $PnS the marker only
    "B": Instrument("LabCyte B7 (fluorochrome names)",
                    {"BV421": "BV421-A", "FITC": "FITC-A", "PE": "PE-A", "PerCP-Cy5.5": "PerCP-Cy5-5-A",
                     "PE-Cy7": "PE-Cy7-A", "APC": "APC-A", "APC-H7": "APC-H7-A"},
                    "Time", 262_144, 2.0, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0), 60_000.0, False, 0.01),
}

#: electronic noise (linear units, SD) per instrument, added after the photoelectron statistics
ELECTRONIC_NOISE = {"A": 40.0, "B": 12.0}
