"""Helpers over normalised keywords (lower-case, no ``$``) of a data set."""
from __future__ import annotations

from typing import Mapping

#: Keywords instruments use for the acquisition spillover matrix, in order of preference.
SPILLOVER_KEYWORDS: tuple[str, ...] = ("spillover", "spill", "comp", "dfcitoj")


def spillover_keyword(metadata: Mapping[str, str]) -> str | None:
    """The keyword (as ``$SPILLOVER``/``SPILL``...) that holds a non-empty spillover matrix, or None."""
    for key in SPILLOVER_KEYWORDS:
        value = metadata.get(key)
        if value is not None and value.strip() and value.strip() not in ("0",):
            return ("$" + key.upper()) if key in ("spillover", "comp") else key.upper()
    return None
