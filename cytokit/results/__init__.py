"""The results folder written by ``cytokit run``: its schema (:mod:`.schema`) and its one reader (:mod:`.reader`).

Every stage that reads a results folder (trial statistics, reports, clustering, the pipeline's own
event loader) goes through :func:`read_table` / :class:`ResultsFolder`, and names columns with the
constants of :mod:`cytokit.results.schema`, so the folder's layout, column names, dtypes and units are
stated once. The schema version is recorded in ``run_info.json`` (``results_schema``).
"""
from .reader import ResultsFolder, coerce, read_run_info, read_table, table_path
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "ResultsFolder", "coerce", "read_run_info", "read_table", "table_path"]
