"""The channel table every :class:`~cytokit.sample.Sample` carries (one row per channel; the contract is in
:mod:`cytokit.sample`): its columns and :class:`ChannelTable`, the table without pandas.

A module of its own so that the FCS decoding that builds the table (:mod:`cytokit.fcs.channels`) sits below
the Sample in the import graph. :class:`ChannelTable` holds the columns as tuples; ``Sample.channels`` (the
:class:`pandas.DataFrame` of the contract) is built from it on first use, so reading and gating one file
(``cytokit gate``) never imports pandas. A table made from a DataFrame keeps that DataFrame and hands it
back unchanged.
"""
from __future__ import annotations

import math
from collections import namedtuple
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CHANNEL_COLUMNS", "ChannelTable", "text"]

CHANNEL_COLUMNS: tuple[str, ...] = (
    "pnn", "pns", "marker", "fluorochrome", "range", "gain", "log_decades", "log_offset", "bits", "kind",
)


def text(value: Any, missing: str | None = None) -> str:
    """``value`` as pandas' ``astype(str)`` shows it; with ``missing`` given, None/NaN become ``missing``
    (as ``fillna(missing).astype(str)``)."""
    if missing is not None and (value is None or (isinstance(value, float) and math.isnan(value))):
        return missing
    return str(value)


@lru_cache(maxsize=32)
def _row_type(columns: tuple[str, ...]) -> type:
    return namedtuple("ChannelRow", ("Index",) + columns, rename=True)


class ChannelTable:
    """An immutable channel table: ``columns`` (names, in order) and one tuple of values per column.

    ``column(name)`` gives a column's values, ``rows()`` one named tuple per channel (``Index`` then the
    columns, like ``DataFrame.itertuples``), ``to_frame()`` the DataFrame (built once, or the one the
    table was made from), ``replace_columns(...)`` a new table with some columns set.
    """

    def __init__(self, data: Mapping[str, Sequence[Any]], columns: Sequence[str] | None = None, *,
                 frame: "pd.DataFrame | None" = None, n_rows: int | None = None) -> None:
        self._columns: tuple[Any, ...] = tuple(columns) if columns is not None else tuple(data)
        self._data: dict[Any, tuple[Any, ...]] = {c: tuple(data[c]) for c in self._columns}
        lengths = {len(v) for v in self._data.values()}
        if len(lengths) > 1:
            raise ValueError(f"channel table columns differ in length: {sorted(lengths)}")
        self._n = lengths.pop() if lengths else int(n_rows or 0)
        self._frame = frame

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]],
                     columns: Sequence[str] = CHANNEL_COLUMNS) -> "ChannelTable":
        """A table of one mapping per channel (missing keys are None)."""
        rows = list(records)
        return cls({c: [r.get(c) for r in rows] for c in columns}, columns, n_rows=len(rows))

    @classmethod
    def from_frame(cls, frame: "pd.DataFrame") -> "ChannelTable":
        """The table of a DataFrame (which :meth:`to_frame` then returns as it is)."""
        return cls({c: frame[c].tolist() for c in frame.columns}, list(frame.columns), frame=frame,
                   n_rows=len(frame))

    # -- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def columns(self) -> tuple[Any, ...]:
        return self._columns

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def column(self, name: str) -> tuple[Any, ...]:
        """The values of one column, in channel order (KeyError naming it when there is no such column)."""
        try:
            return self._data[name]
        except KeyError:
            raise KeyError(name) from None

    def texts(self, name: str, missing: str | None = None) -> list[str]:
        """A column as text (see :func:`text`)."""
        return [text(v, missing) for v in self.column(name)]

    def rows(self) -> list[Any]:
        """One named tuple per channel: ``Index`` (0, 1, ...) then the columns."""
        row = _row_type(tuple(str(c) for c in self._columns))
        return [row(i, *vals) for i, vals in enumerate(zip(*(self._data[c] for c in self._columns)))] \
            if self._columns else [row(i) for i in range(self._n)]

    def to_frame(self) -> "pd.DataFrame":
        """The table as the DataFrame of the Sample contract (built on first use, then the same object)."""
        if self._frame is None:
            import pandas as pd

            self._frame = pd.DataFrame({c: list(self._data[c]) for c in self._columns}, columns=list(self._columns),
                                       index=pd.RangeIndex(self._n))
        return self._frame

    # -- derivation ---------------------------------------------------------------------------------
    def replace_columns(self, **values: Sequence[Any]) -> "ChannelTable":
        """A new table with these columns set (added at the end when new); this one is unchanged."""
        for name, v in values.items():
            if len(v) != self._n:
                raise ValueError(f"column {name!r} has {len(v)} values for {self._n} channels")
        if self._frame is not None:  # keep what the DataFrame carries (index, dtypes of other columns)
            frame = self._frame.copy()
            for name, v in values.items():
                frame[name] = list(v)
            return ChannelTable.from_frame(frame)
        data = dict(self._data)
        data.update({k: tuple(v) for k, v in values.items()})
        return ChannelTable(data, self._columns + tuple(k for k in values if k not in self._data), n_rows=self._n)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"ChannelTable({self._n} channels, columns={list(self._columns)})"
