"""The Sample: events of one FCS data set plus its channel table, metadata and provenance.

Contract
--------
* ``events`` is a C-contiguous ``float32`` array of shape ``(n_events, n_channels)`` on the **linear
  scale** as decoded from the file ($PnE/$PnG applied), unless ``provenance`` records that it was
  compensated and/or transformed (see :attr:`Sample.compensated` and :attr:`Sample.transforms`).
* ``channels`` is a :class:`pandas.DataFrame` with one row per channel, in file order, and the columns
  :data:`CHANNEL_COLUMNS` (``pnn``, ``pns``, ``marker``, ``fluorochrome``, ``range``, ``gain``,
  ``log_decades``, ``log_offset``, ``bits``, ``kind``). ``marker`` is the resolved marker name (set by
  :mod:`cytokit.panel`; before resolution it is the $PnS text or, when empty, $PnN). ``kind`` is one of
  ``"scatter"``, ``"fluorescence"``, ``"time"``, ``"other"``.
* ``metadata`` maps keyword names, lower-case and without the leading ``$`` (``"fil"``, ``"cyt"``,
  ``"spill"``, ``"p1n"``...), to their text values, exactly as in the file's TEXT segment.
* A Sample is immutable by convention: operations return new Samples (``replace``/``subset``); no
  "current view" state.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .channel_columns import CHANNEL_COLUMNS
from .errors import PanelError

if TYPE_CHECKING:  # pragma: no cover
    import flowkit



@dataclass(frozen=True, eq=False)
class Sample:
    """Events of one FCS data set (see module docstring for the contract)."""

    events: np.ndarray
    channels: pd.DataFrame
    metadata: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None
    fcs_version: str | None = None
    dataset_index: int = 0
    warnings: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()
    compensated: bool = False
    transforms: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.events.ndim != 2 or self.events.shape[1] != len(self.channels):
            raise ValueError(
                f"events shape {self.events.shape} does not match {len(self.channels)} channels"
            )

    # -- size -------------------------------------------------------------------------------------
    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.events.shape[1])

    @property
    def name(self) -> str:
        """A display name: the file name, else $FIL, else 'sample'."""
        if self.path is not None:
            return Path(self.path).name
        return str(self.metadata.get("fil", "sample"))

    # -- channel lookup ---------------------------------------------------------------------------
    def channel_index(self, name: str) -> int:
        """Index of the channel whose marker, $PnN or $PnS equals ``name`` (case-insensitive).

        Marker names take precedence over $PnN, then $PnS. Raises :class:`PanelError` when nothing or
        more than one channel matches.
        """
        key = name.strip().casefold()
        for column in ("marker", "pnn", "pns"):
            values = self.channels[column].astype(str).str.strip().str.casefold()
            hits = np.flatnonzero(values.to_numpy() == key)
            if len(hits) == 1:
                return int(hits[0])
            if len(hits) > 1:
                raise PanelError(
                    f"channel name {name!r} is ambiguous: matches {column} of channels "
                    f"{[self.channels['pnn'].iloc[i] for i in hits]}",
                    path=self.path,
                )
        raise PanelError(
            f"no channel named {name!r}; channels are "
            + ", ".join(f"{r.pnn} ({r.marker})" for r in self.channels.itertuples()),
            path=self.path,
        )

    def column(self, name: str) -> np.ndarray:
        """The events of one channel (by marker, $PnN or $PnS) as a 1-D float32 view."""
        return self.events[:, self.channel_index(name)]

    def columns(self, names: Iterable[str]) -> np.ndarray:
        """Events of several channels as an ``(n_events, len(names))`` float32 array (a copy)."""
        idx = [self.channel_index(n) for n in names]
        return np.ascontiguousarray(self.events[:, idx])

    # -- derivation -------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "Sample":
        """A new Sample with some fields replaced (events/channels are not copied unless given)."""
        return dataclasses.replace(self, **changes)

    def subset(self, mask: np.ndarray, note: str | None = None) -> "Sample":
        """A new Sample holding only the events where ``mask`` is true (bool array or indices)."""
        prov = self.provenance + ((note,) if note else ())
        return self.replace(events=np.ascontiguousarray(self.events[mask]), provenance=prov)

    def with_note(self, note: str) -> "Sample":
        return self.replace(provenance=self.provenance + (note,))

    def to_dataframe(self, label: str = "marker") -> pd.DataFrame:
        """Events as a DataFrame with columns named by ``label`` ('marker', 'pnn' or 'pns')."""
        return pd.DataFrame(self.events, columns=list(self.channels[label].astype(str)))

    # -- interop ----------------------------------------------------------------------------------
    def to_flowkit(self) -> "flowkit.Sample":
        """This (raw) Sample as a ``flowkit.Sample`` (see :func:`cytokit.interop.flowkit.to_flowkit`)."""
        from .interop.flowkit_sample import to_flowkit

        return to_flowkit(self)

    @classmethod
    def from_flowkit(cls, fk_sample: "flowkit.Sample") -> "Sample":
        """A Sample of a ``flowkit.Sample``'s raw events (see :func:`cytokit.interop.flowkit.from_flowkit`)."""
        from .interop.flowkit_sample import sample_fields

        return cls(**sample_fields(fk_sample))

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return (
            f"Sample({self.name!r}, {self.n_events} events x {self.n_channels} channels, "
            f"compensated={self.compensated}, transforms={len(self.transforms)})"
        )
