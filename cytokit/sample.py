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
  ``"scatter"``, ``"fluorescence"``, ``"time"``, ``"other"``. The same table without pandas is
  ``channel_table`` (:class:`~cytokit.channel_columns.ChannelTable`); the DataFrame is built from it on
  first use.
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

from .channel_columns import CHANNEL_COLUMNS, ChannelTable
from .errors import PanelError

if TYPE_CHECKING:  # pragma: no cover
    import flowkit
    import pandas as pd

__all__ = ["CHANNEL_COLUMNS", "ChannelTable", "Sample"]


@dataclass(frozen=True, eq=False, init=False)
class Sample:
    """Events of one FCS data set (see module docstring for the contract).

    ``channels`` may be given as a :class:`pandas.DataFrame` or a :class:`~cytokit.channel_columns.ChannelTable`;
    the Sample keeps it as :attr:`channel_table` and :attr:`channels` is the DataFrame (built on first
    use, so code that only needs names and kinds never imports pandas).
    """

    events: np.ndarray
    channel_table: ChannelTable
    metadata: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None
    fcs_version: str | None = None
    dataset_index: int = 0
    warnings: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()
    compensated: bool = False
    transforms: Mapping[str, str] = field(default_factory=dict)

    def __init__(self, events: np.ndarray, channels: "pd.DataFrame | ChannelTable | None" = None,
                 metadata: Mapping[str, str] | None = None, path: Path | None = None, sha256: str | None = None,
                 fcs_version: str | None = None, dataset_index: int = 0, warnings: tuple[str, ...] = (),
                 provenance: tuple[str, ...] = (), compensated: bool = False,
                 transforms: Mapping[str, str] | None = None, *, channel_table: ChannelTable | None = None) -> None:
        if channels is None and channel_table is None:
            raise TypeError("Sample() needs channels (a DataFrame or a ChannelTable)")
        table = channels if channels is not None else channel_table
        if not isinstance(table, ChannelTable):
            table = ChannelTable.from_frame(table)
        values = dict(events=events, channel_table=table, metadata={} if metadata is None else metadata,
                      path=path, sha256=sha256, fcs_version=fcs_version, dataset_index=dataset_index,
                      warnings=warnings, provenance=provenance, compensated=compensated,
                      transforms={} if transforms is None else transforms)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.events.ndim != 2 or self.events.shape[1] != len(self.channel_table):
            raise ValueError(
                f"events shape {self.events.shape} does not match {len(self.channel_table)} channels"
            )

    @property
    def channels(self) -> "pd.DataFrame":
        """The channel table as a DataFrame (columns :data:`CHANNEL_COLUMNS`, one row per channel)."""
        return self.channel_table.to_frame()

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
        table = self.channel_table
        for column in ("marker", "pnn", "pns"):
            hits = [i for i, v in enumerate(table.texts(column)) if v.strip().casefold() == key]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                pnn = table.column("pnn")
                raise PanelError(
                    f"channel name {name!r} is ambiguous: matches {column} of channels "
                    f"{[pnn[i] for i in hits]}",
                    path=self.path,
                )
        raise PanelError(
            f"no channel named {name!r}; channels are "
            + ", ".join(f"{r.pnn} ({r.marker})" for r in table.rows()),
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
        """A new Sample with some fields replaced (events/channels are not copied unless given);
        ``channels=`` takes a DataFrame or a ChannelTable."""
        if "channels" in changes:
            changes["channel_table"] = changes.pop("channels")
        return dataclasses.replace(self, **changes)

    def subset(self, mask: np.ndarray, note: str | None = None) -> "Sample":
        """A new Sample holding only the events where ``mask`` is true (bool array or indices)."""
        prov = self.provenance + ((note,) if note else ())
        if isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (self.n_events,):
            # the same rows as events[mask], in half the time
            return self.replace(events=np.compress(mask, self.events, axis=0), provenance=prov)
        return self.replace(events=np.ascontiguousarray(self.events[mask]), provenance=prov)

    def with_note(self, note: str) -> "Sample":
        return self.replace(provenance=self.provenance + (note,))

    def to_dataframe(self, label: str = "marker") -> pd.DataFrame:
        """Events as a DataFrame with columns named by ``label`` ('marker', 'pnn' or 'pns')."""
        import pandas as pd

        return pd.DataFrame(self.events, columns=self.channel_table.texts(label))

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
