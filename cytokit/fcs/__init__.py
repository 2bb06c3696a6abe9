"""FCS ingestion: ``read_fcs`` (FCS 2.0–3.2 → :class:`~cytokit.sample.Sample`) and ``write_fcs`` (FCS 3.1).

Modules: :mod:`.header` (HEADER), :mod:`.text` (TEXT tokenising/decoding), :mod:`.decode` (DATA),
:mod:`.channels` (channel table, $PnE/$PnG), :mod:`.reader`, :mod:`.writer`, :mod:`.keywords`,
:mod:`.summary` (``describe``, what ``cytokit inspect`` prints).
"""
from .channels import guess_kind
from .keywords import SPILLOVER_KEYWORDS, spillover_keyword
from .reader import read_fcs, read_keywords
from .summary import describe
from .writer import fcs_bytes, write_fcs

__all__ = [
    "read_fcs", "read_keywords", "write_fcs", "fcs_bytes", "describe", "guess_kind", "spillover_keyword",
    "SPILLOVER_KEYWORDS",
]
