"""Helpers over normalised keywords (lower-case, no ``$``) of a data set."""
from __future__ import annotations

import re
from typing import Mapping

#: Keywords instruments use for the acquisition spillover matrix, in order of preference
#: (``dfcitoj`` stands for the FCS 2.0 / Beckman Coulter family ``$DFC1TO2``, ``$DFC1TO3``...).
SPILLOVER_KEYWORDS: tuple[str, ...] = ("spillover", "spill", "comp", "dfcitoj")
_DFC = re.compile(r"^dfc(\d+)to(\d+)$")


def dfc_detectors(metadata: Mapping[str, str]) -> list[int]:
    """Detector numbers named by ``$DFCiTOj`` keywords (sorted; empty when there are none)."""
    return sorted({int(n) for k in metadata if (m := _DFC.match(k)) for n in m.groups()})


def spillover_keyword(metadata: Mapping[str, str]) -> str | None:
    """The keyword (as ``$SPILLOVER``/``SPILL``...) that holds a non-empty spillover matrix, or None."""
    for key in SPILLOVER_KEYWORDS:
        if key == "dfcitoj":
            if dfc_detectors(metadata):
                return "$DFCiTOj"
            continue
        value = metadata.get(key)
        if value is not None and value.strip() and value.strip() not in ("0",):
            return ("$" + key.upper()) if key in ("spillover", "comp") else key.upper()
    return None
