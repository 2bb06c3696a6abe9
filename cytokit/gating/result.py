"""The outcome of applying a strategy to one sample: table, masks, fitted gates, plots, Gating-ML."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GatingError
from ..gates import Gate
from ..results import schema as S
from ..sample import Sample
from .engine import population_rows, population_table
from .fit_state import FitState
from .methods import FitResult
from .model import StrategyDefinition
from .preprocess import ChannelTransform, QCOutcome

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd
    import flowkit
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class GatingResult:
    """Per-sample gating result.

    ``sample`` is the prepared (compensated, transformed) Sample the gates were fitted on; ``definition``
    is a snapshot of the strategy that produced it; ``transforms`` the per-channel transforms applied.
    ``document`` is the imported gate hierarchy for fixed strategies from Gating-ML/FlowJo (exported as is).
    ``qc`` is the :class:`~cytokit.gating.preprocess.QCOutcome` of the chain (None when the Sample was
    prepared elsewhere): ``sample`` and the masks hold the events QC kept; ``qc.keep`` maps them to the
    events read.
    """

    sample: Sample
    definition: StrategyDefinition
    transforms: tuple[ChannelTransform, ...]
    state: FitState
    document: Any = None
    qc: QCOutcome | None = None

    @property
    def populations(self) -> "pd.DataFrame":
        """``population, parent, count, parent_count, pct_parent (%), pct_lymphocytes (%), method, flags,
        review, review_flags, notes, dims, phenotype, est_error_pp (pp), count_sd_pp (pp)`` — one row per
        fitted population, in strategy order. ``review`` (bool) is True when the estimate may be wrong (a
        review flag: :func:`cytokit.gating.methods.review_columns`); ``flags`` holds every word, notes on
        how a gate was placed included, so a non-empty ``flags`` alone does not mean that. A row gated on a
        marker whose estimated logicle W was clipped into range carries the note ``<marker>:logicle_w_clipped``;
        one gated on a channel a failed compensation check moved, the review flag ``<marker>:overcompensated``,
        and the rows below it ``overcompensated`` (:attr:`channel_notes`)."""
        return population_table(self.definition, self.state, self.sample.n_events, self.channel_notes)

    @property
    def population_rows(self) -> list[dict[str, Any]]:
        """The rows of :attr:`populations` as dicts (same keys and values), without pandas."""
        return population_rows(self.definition, self.state, self.sample.n_events, self.channel_notes)

    @property
    def channel_notes(self) -> dict[str, tuple[str, ...]]:
        """Marker (as the strategy's gates name it) -> the words every population gated on it carries as
        ``<marker>:<word>``: ``logicle_w_clipped`` (a note) where the chain's estimated logicle W was clipped
        into range (recorded in the prepared Sample's warnings; :mod:`cytokit.transforms.estimate`), and
        ``overcompensated`` (a review flag) where the file's compensation check failed and compensation
        moved the marker's channel (:func:`cytokit.compensation.check.moved_channel_words`): its values, and so
        the gates on it, rest on spillover removed twice or too strongly; ``compensation_suspect`` (a review
        flag) the same way where the check found the negatives of bright events leaning below zero (a matrix
        too strong). Rows below such a gate carry the word plain
        (:func:`cytokit.gating.engine.population_rows`). Scatter channels are never compensated and never
        carry it."""
        from ..compensation.check import moved_channel_words
        from ..errors import PanelError
        from ..transforms.estimate import CLIPPED_FLAG, clipped_markers

        notes: dict[str, list[str]] = {m: [CLIPPED_FLAG] for m in clipped_markers(self.sample.warnings)}
        for word, channels in moved_channel_words(self.sample).items():
            moved = set(channels)
            pnn = self.sample.channel_table.texts("pnn")
            for dim in dict.fromkeys(d for spec in self.definition.populations for d in spec.dims):
                try:
                    index = self.sample.channel_index(dim)
                except PanelError:  # not a channel of this sample (an optional population's marker)
                    continue
                if pnn[index] in moved:
                    notes.setdefault(dim, []).append(word)
        return {m: tuple(words) for m, words in notes.items()}

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """Population name -> boolean array over all the sample's events."""
        return dict(self.state.masks)

    @property
    def gates(self) -> dict[str, Gate]:
        """Population name -> fitted concrete gate (in the prepared sample's coordinates)."""
        return {k: f.gate for k, f in self.state.fits.items()}

    @property
    def fits(self) -> dict[str, FitResult]:
        """Population name -> full fit result (gate, flags, info, component gates)."""
        return dict(self.state.fits)

    @property
    def skipped(self) -> dict[str, str]:
        """Optional populations that were not fitted, with the reason."""
        return dict(self.state.skipped)

    def fit(self, name: str) -> FitResult:
        try:
            return self.state.fits[name]
        except KeyError:
            raise GatingError(f"no fitted population {name!r}; populations: "
                              f"{', '.join(self.state.fits)}", path=self.sample.path) from None

    def counts(self) -> dict[str, int]:
        return {k: int(m.sum()) for k, m in self.state.masks.items()}

    def plot(self, name: str, *, ax: "Axes | None" = None, max_points: int = 200_000) -> "Figure":
        """The fitted gate of ``name`` drawn over its parent's event density (matplotlib Figure)."""
        from .plotting import plot_population

        return plot_population(self, name, ax=ax, max_points=max_points)

    def plot_all(self, path: str | Path | None = None, *, cols: int = 4) -> "Figure":
        """A grid of every population's gate; written atomically as PNG when ``path`` is given."""
        from .plotting import plot_grid

        return plot_grid(self, path=path, cols=cols)

    def to_gatingml(self, path: str | Path | None = None) -> str:
        """Gating-ML 2.0 text of the fitted gates (with their compensation and transforms), below the QC
        gates (root ``QC pass``) when QC ran, so evaluated on the raw FCS file they count what
        :attr:`populations` counts; written atomically to ``path`` when given."""
        from .export import to_gatingml

        return to_gatingml(self, path)

    def to_flowkit(self) -> "flowkit.GatingStrategy":
        """The fitted gates as a ``flowkit.GatingStrategy`` with their compensation and transforms; FlowKit
        applied to the raw sample reproduces :meth:`counts` (:mod:`cytokit.interop.flowkit`)."""
        from ..interop.flowkit import to_flowkit_strategy

        return to_flowkit_strategy(self)

    def to_anndata(self, *, raw: Sample | None = None) -> "anndata.AnnData":
        """Events x markers (strategy scale) with population membership in ``obs`` and the fitted gates and
        parameters in ``uns["cytokit"]`` (:mod:`cytokit.interop.anndata`)."""
        from ..interop.anndata import to_anndata

        return to_anndata(self, raw=raw)

    @property
    def data_flags(self) -> list[str]:
        """Flags about the data (:func:`cytokit.qc.data_flags`: markers from detector names only, a failed
        compensation check), as the pipeline adds them to ``qc_flags``."""
        from ..qc import data_flags

        return data_flags(self.sample)

    def summary(self) -> dict[str, Any]:
        return {"sample": self.sample.name, S.N_EVENTS: self.sample.n_events,
                "n_events_read": self.qc.n_events if self.qc is not None else self.sample.n_events,
                S.QC_FLAGS: [*(self.qc.flags if self.qc is not None else ()), *self.data_flags],
                "flagged": {k: list(f.flags) for k, f in self.state.fits.items() if f.flags}}
