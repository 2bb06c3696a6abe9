"""Input provenance stamped on derived output tables.

Every table cytokit writes records the sha256 of the inputs it came from: per-sample rows carry the
FCS file's ``sha256`` (looked up by ``sample_id``), and every row carries ``inputs_sha256``, one digest
over all the input files (FCS hashes, plus the clinical table when one was used) so a cohort-level
table (a test, a summary) can be traced to exactly the data set it was computed from.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import pandas as pd
from .results import schema as S


def inputs_digest(hashes: Iterable[str]) -> str:
    """sha256 over the sorted, de-duplicated input hashes (order of samples does not matter)."""
    unique = sorted({str(h) for h in hashes if isinstance(h, str) and h})
    return hashlib.sha256("\n".join(unique).encode("ascii")).hexdigest()


def table_sha256(df: pd.DataFrame | None) -> str | None:
    """sha256 of a table's canonical CSV text (for inputs held in memory, e.g. a clinical table)."""
    if df is None or df.empty:
        return None
    return hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode("utf-8")).hexdigest()


def sample_hashes(populations: pd.DataFrame) -> dict[str, str]:
    """``sample_id`` → FCS sha256 from a results-store table (empty when it has no such columns)."""
    if populations is None or not {S.SAMPLE_ID, S.SHA256} <= set(populations.columns):
        return {}
    pairs = populations[[S.SAMPLE_ID, S.SHA256]].dropna().drop_duplicates(S.SAMPLE_ID)
    return dict(zip(pairs[S.SAMPLE_ID].astype(str), pairs[S.SHA256].astype(str)))


def stamp_inputs(df: pd.DataFrame, by_sample: Mapping[str, str], digest: str) -> pd.DataFrame:
    """A copy of ``df`` with ``sha256`` (per sample, when it has ``sample_id``) and ``inputs_sha256``.

    A row made from several samples (``sample_id`` ``;``-joined, e.g. the trial's ``mean`` tube rule)
    gets their hashes ``;``-joined in the same order.
    """
    out = df.copy()
    if S.SAMPLE_ID in out.columns and S.SHA256 not in out.columns and by_sample:
        def lookup(sid: str) -> str | None:
            found = [by_sample[s] for s in sid.split(";") if s in by_sample]
            return ";".join(found) if found else None

        out[S.SHA256] = out[S.SAMPLE_ID].astype(str).map(lookup)
    out["inputs_sha256"] = digest
    return out
