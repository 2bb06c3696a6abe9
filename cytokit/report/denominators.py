"""Which population is a tube's lymphocyte denominator, and which gates sit above it.

``pct_lymphocytes`` (percent, 0–100) is a population's count over the strategy's lymphocyte population
(``lymphocytes:`` in the strategy, e.g. ``Singlets``). The denominator's ancestors (``Lymphocytes``
before the singlet gate) are not fractions of it (their events include doublets): the tables store NaN
for them (results written with schema 1 stored > 100 %). Every place that shows the measure (patient
reports, ``cytokit gate``) asks :func:`denominators` which rows these are and shows :func:`above_text`
instead of a number.

Only the results schema is imported here (pandas by :func:`denominators` when called), so the command line
can use :func:`tube_denominator` without loading the report stack or pandas.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Mapping

from ..results import schema as S

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: tolerance (percentage points) for "exactly 100 % of lymphocytes"
_EXACT = 1e-6


def above_text(denominator: str) -> str:
    """What a gate above the lymphocyte denominator shows in the % of lymphocytes column."""
    return f"above {denominator}"


def denominators(rows: "pd.DataFrame", lymphocytes: Mapping[str, str] | None = None
                 ) -> dict[str, tuple[str, set[str]]]:
    """Per tube (``""`` when ``rows`` has no ``tube`` column): (denominator population, populations above it).

    ``lymphocytes`` maps a tube to its strategy's lymphocyte population, as recorded by the run
    (``run_info.json`` ``tubes.<tube>.lymphocytes``) or given by a fitted strategy; it is used when that
    population has a row. Otherwise (results written before it was recorded) the denominator is inferred:
    the deepest population at exactly 100 % of lymphocytes. The populations above it are its ancestors by
    the ``parent`` column. A tube with neither gets ``("", set())``. One tube's rule is
    :func:`tube_denominator`.
    """
    import pandas as pd

    out: dict[str, tuple[str, set[str]]] = {}
    tubes = rows[S.TUBE].astype(str) if S.TUBE in rows else pd.Series("", rows.index)
    for tube, t in rows.groupby(tubes):
        parents = t.get(S.PARENT, pd.Series("", t.index)).fillna("").astype(str)
        pct = pd.to_numeric(t.get(S.PCT_LYMPHOCYTES, pd.Series(float("nan"), t.index)), errors="coerce")
        out[str(tube)] = tube_denominator(zip(t[S.POPULATION].astype(str), parents, pct.astype(float)),
                                          (lymphocytes or {}).get(str(tube)))
    return out


def tube_denominator(rows: Iterable[tuple[str, str, float]], lymphocytes: str | None = None
                     ) -> tuple[str, set[str]]:
    """One tube's (denominator population, populations above it) from its ``(population, parent,
    pct_lymphocytes)`` rows (parent ``""`` for a root, percent NaN where undefined); ``lymphocytes`` is
    the strategy's lymphocyte population (see :func:`denominators`)."""
    rows = list(rows)
    parent = {str(pop): str(par) for pop, par, _ in rows}
    den = str(lymphocytes or "")
    if den not in parent:
        den = _inferred(rows, parent)
    if not den:
        return "", set()
    above, name = set(), den
    while parent.get(name) and parent[name] not in above:
        name = parent[name]
        above.add(name)
    return den, above


def _inferred(rows: list[tuple[str, str, float]], parent: Mapping[str, str]) -> str:
    """The deepest population of one tube's rows at exactly 100 % of lymphocytes ("" when none)."""
    def depth(name: str) -> int:
        d, seen = 0, set()
        while parent.get(name) and name not in seen:
            seen.add(name)
            name, d = parent[name], d + 1
        return d

    exact = [str(pop) for pop, _, pct in rows if not math.isnan(float(pct)) and abs(float(pct) - 100.0) <= _EXACT]
    return max(exact, key=depth) if exact else ""
