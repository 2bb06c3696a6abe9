"""The one rule for a tube's lymphocyte denominator and the gates above it.

``pct_lymphocytes`` (percent, 0–100) is a population's count over the strategy's lymphocyte population
(``lymphocytes:`` in the strategy, e.g. ``Singlets``). The denominator's ancestors (``Lymphocytes``
before the singlet gate) are not fractions of it (their events include doublets): the tables store NaN
for them (results written with schema 1 stored > 100 %). The pipeline (the samples table's
``lymphocytes``, absolute counts), the patient reports, the notebook widget and ``cytokit gate`` all ask
:func:`tube_denominator` (:func:`denominators` for a table of several tubes) which rows these are.

The rule, in order:

1. a name the caller knows, first one with a row: the strategy's declared ``lymphocytes`` population
   (pipeline, ``cytokit gate``), then the one the run stored (``run_info.json``
   ``tubes.<tube>.lymphocytes``, written since results schema 2);
2. otherwise (results written before it was recorded) the *shallowest* population (fewest ``parent``
   steps) at exactly 100 % of lymphocytes. Every row at exactly 100 % has the denominator's count, so
   taking the shallowest never hides a valid percentage as "above": a deeper gate at 100 % (every single
   lymphocyte a T cell) is below the denominator, not the denominator;
3. otherwise :data:`DEFAULT` (the strategy model's default ``lymphocytes``) when it has a row: a tube
   whose denominator had no events has no row at 100 %;
4. otherwise none (``""``, nothing above).

Only the results schema is imported here (pandas by :func:`denominators` when called), so the command line
can use :func:`tube_denominator` without loading pandas.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple

from . import schema as S

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: tolerance (percentage points) for "exactly 100 % of lymphocytes"
EXACT_PP = 1e-6
#: the strategy model's default lymphocyte population (``StrategyDefinition.lymphocytes``), the last resort
DEFAULT = "Singlets"


class Denominator(NamedTuple):
    """One tube's lymphocyte denominator (``""`` when none) and the populations above it (its ancestors)."""

    name: str
    above: frozenset[str]


def recorded_lymphocytes(run_info: Mapping[str, Any]) -> dict[str, str]:
    """Tube -> the lymphocyte population a run recorded (``run_info.json`` ``tubes.<tube>.lymphocytes``;
    tubes without one are left out)."""
    tubes = run_info.get("tubes") or {}
    return {str(t): str(d["lymphocytes"]) for t, d in tubes.items() if isinstance(d, dict) and d.get("lymphocytes")}


def above_text(denominator: str) -> str:
    """What a gate above the lymphocyte denominator shows in the % of lymphocytes column."""
    return f"above {denominator}"


def tube_denominator(rows: Iterable[tuple[str, str, float]], *named: str | None) -> Denominator:
    """One tube's denominator from its ``(population, parent, pct_lymphocytes)`` rows (parent ``""`` for a
    root, percent NaN where undefined). ``named``: populations the caller knows, in priority order (the
    strategy's declared ``lymphocytes``, the run's stored one; ``None`` or ``""`` for unknown); the first
    with a row wins, else the inference of the module contract."""
    rows = [(str(pop), str(par or ""), _float(pct)) for pop, par, pct in rows]
    parent = {pop: par for pop, par, _ in rows}
    den = next((str(n) for n in named if n and str(n) in parent), "") or _inferred(rows, parent)
    if not den and DEFAULT in parent:
        den = DEFAULT
    if not den:
        return Denominator("", frozenset())
    above: set[str] = set()
    name = den
    while parent.get(name) and parent[name] not in above and parent[name] != den:
        name = parent[name]
        above.add(name)
    return Denominator(den, frozenset(above))


def denominators(rows: "pd.DataFrame", lymphocytes: Mapping[str, str] | None = None,
                 *, declared: Mapping[str, str] | None = None) -> dict[str, Denominator]:
    """Per tube (``""`` when ``rows`` has no ``tube`` column) of a populations table (one sample or one
    visit): its :class:`Denominator`. ``lymphocytes``: tube -> the lymphocyte population the run stored;
    ``declared``: tube -> a fitted strategy's ``lymphocytes`` (takes precedence)."""
    import pandas as pd

    out: dict[str, Denominator] = {}
    tubes = rows[S.TUBE].astype(str) if S.TUBE in rows else pd.Series("", rows.index)
    for tube, t in rows.groupby(tubes):
        out[str(tube)] = table_denominator(t, (declared or {}).get(str(tube)), (lymphocytes or {}).get(str(tube)))
    return out


def table_denominator(rows: "pd.DataFrame", *named: str | None) -> Denominator:
    """:func:`tube_denominator` of one tube's populations table (columns ``population`` and, when present,
    ``parent`` and ``pct_lymphocytes``); ``named`` as there."""
    import pandas as pd

    if S.POPULATION not in rows.columns:
        return tube_denominator((), *named)
    parents = rows.get(S.PARENT, pd.Series("", rows.index)).fillna("").astype(str)
    pct = pd.to_numeric(rows.get(S.PCT_LYMPHOCYTES, pd.Series(math.nan, rows.index)), errors="coerce")
    return tube_denominator(zip(rows[S.POPULATION].astype(str), parents, pct.astype(float)), *named)


def blank_above_denominator(pops: "pd.DataFrame", lymphocytes: Mapping[str, str] | None = None
                            ) -> tuple["pd.DataFrame", int]:
    """A populations table written before results schema 2 read as schema 2: ``pct_lymphocytes`` and
    ``abs_count_per_uL`` NaN for the gates above each sample's lymphocyte denominator (schema 1 stored the
    ratio, e.g. 102 % for ``Lymphocytes``, and a dual-platform count above the clinical lymphocyte count).
    Per sample (``sample_id``, else the whole table) and tube, the denominator is :func:`denominators`'
    (``lymphocytes``: tube -> the population the run recorded). Returns a copy and the number of rows
    blanked."""
    import numpy as np
    import pandas as pd

    if S.PCT_LYMPHOCYTES not in pops.columns or S.POPULATION not in pops.columns or pops.empty:
        return pops, 0
    work = pops.reset_index(drop=True)  # positions: the caller's index may repeat labels
    keys = work[S.SAMPLE_ID].astype(str) if S.SAMPLE_ID in work.columns else pd.Series("", work.index)
    above = np.zeros(len(work), dtype=bool)
    for _, rows in work.groupby(keys, sort=False):
        for tube, den in denominators(rows, lymphocytes).items():
            in_tube = rows[S.TUBE].astype(str) == tube if S.TUBE in rows else pd.Series(True, rows.index)
            above[rows.index[in_tube & rows[S.POPULATION].astype(str).isin(den.above)]] = True
    out = pops.copy()
    for col in (S.PCT_LYMPHOCYTES, S.ABS_COUNT):
        if col in out.columns:
            out.loc[above, col] = math.nan
    return out, int(above.sum())


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _inferred(rows: list[tuple[str, str, float]], parent: Mapping[str, str]) -> str:
    """The shallowest population of one tube's rows at exactly 100 % of lymphocytes ("" when none)."""
    def depth(name: str) -> int:
        d, seen = 0, {name}
        while parent.get(name) and parent[name] not in seen:
            name = parent[name]
            seen.add(name)
            d += 1
        return d

    exact = [pop for pop, _, pct in rows if not math.isnan(pct) and abs(pct - 100.0) <= EXACT_PP]
    return min(exact, key=depth) if exact else ""
