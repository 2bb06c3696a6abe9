"""Error hierarchy of cytokit.

Every error raised for bad input is a :class:`CytokitError` whose message names the offending file (or
definition) and what to do about it. Code that calls into a dependency (flowio, flowkit, lxml, ...) with
user data converts that dependency's exceptions into one of these, so a user never sees a bare traceback
from inside a library.
"""
from __future__ import annotations

from pathlib import Path


class CytokitError(Exception):
    """Base class of all cytokit errors."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        if self.path and self.path not in message:
            message = f"{self.path}: {message}"
        super().__init__(message)


class FCSError(CytokitError):
    """An FCS file cannot be read (corrupt, truncated, unsupported or inconsistent)."""


class PanelError(CytokitError):
    """A sample's channels do not resolve to the markers a panel expects (missing or ambiguous)."""


class ConfigError(CytokitError):
    """A definition (panel, strategy, pipeline YAML, manifest, clinical table) is invalid."""


class CompensationError(CytokitError):
    """A spillover matrix is missing, malformed or does not match the sample's channels."""


class TransformError(CytokitError):
    """A transform is unknown or its parameters are invalid."""


class GatingError(CytokitError):
    """A gate cannot be fitted, parsed or evaluated."""


class QCError(CytokitError):
    """A sample fails quality control so badly that it cannot be analysed (e.g. too few events)."""


class PipelineError(CytokitError):
    """A batch run cannot start or continue (validation failed, output exists, disk full...)."""


class StatsError(CytokitError):
    """A trial statistic cannot be computed from the data given."""


class ReportError(CytokitError):
    """A report cannot be rendered."""


class ClusterError(CytokitError):
    """Events cannot be clustered or clusters annotated (bad markers, too few events, bad phenotype)."""


class Terminated(BaseException):
    """The process received SIGTERM (raised by the CLI's handler; a ``BaseException`` like
    ``KeyboardInterrupt`` so that no ``except Exception`` swallows it)."""
