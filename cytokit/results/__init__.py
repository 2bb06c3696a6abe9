"""The results folder written by ``cytokit run``: its schema (:mod:`.schema`) and its one reader (:mod:`.reader`).

Every stage that reads a results folder (trial statistics, reports, clustering, the pipeline's own
event loader) goes through :func:`read_table` / :class:`ResultsFolder`, and names columns with the
constants of :mod:`cytokit.results.schema`, so the folder's layout, column names, dtypes and units are
stated once. The schema version is recorded in ``run_info.json`` (``results_schema``).

The reader (pandas) is imported on first use of one of its names, so ``from cytokit.results import
schema`` costs nothing: any module, the CLI's included, can name columns by the schema constants.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .schema import SCHEMA_VERSION

if TYPE_CHECKING:  # pragma: no cover
    from .reader import ResultsFolder, coerce, read_run_info, read_table, table_path

__all__ = ["SCHEMA_VERSION", "ResultsFolder", "coerce", "read_run_info", "read_table", "table_path"]
_READER_NAMES = frozenset(__all__) - {"SCHEMA_VERSION"}


def __getattr__(name: str) -> Any:
    if name in _READER_NAMES:
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'cytokit.results' has no attribute {name!r}")
