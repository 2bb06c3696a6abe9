"""A gating result as an AnnData object (events x markers) for scanpy-style analysis.

Contract of :func:`to_anndata`
------------------------------
* ``X``: the events the gates were fitted on (``float32``, ``n_events x n_channels``; the events QC kept
  when QC ran) on the strategy's scale: compensated, fluorescence transformed (e.g. logicle, 0..1 at the
  top of scale), scatter and time linear as the strategy left them. ``layers["linear"]`` (optional) holds
  the same events' raw linear values when the Sample as read is given.
* ``var`` (one row per channel, index = marker name, made unique with the $PnN when markers repeat):
  ``pnn``, ``pns``, ``marker``, ``fluorochrome``, ``kind`` (scatter/fluorescence/time/other) and
  ``transform`` (the per-file transform, e.g. ``logicle(T=2.621e+05, W=0.42, M=4.5, A=0)``, or ``""``).
* ``obs`` (one row per event, index = the event's number in the file, as text): one boolean column per
  fitted population (the population name; membership includes the parent's, as in ``GatingResult.masks``).
* ``uns["cytokit"]``: ``sample``, ``sha256``, ``strategy``, ``scale``, ``populations`` (the population
  table: counts, % of parent and % of lymphocytes in percent 0-100, method, ``flags`` and their split
  ``review`` / ``review_flags`` / ``notes``), and ``fits``: per population the gate ``method``, its
  validated ``params``, the fitted ``gate`` (cytokit's gate dict, coordinates on ``X``'s scale), the
  population row's ``flags`` with the same ``review`` (bool: the estimate may be wrong), ``review_flags``
  and ``notes`` (``;``-joined, :func:`cytokit.results.review.review_columns`, the one splitter every table
  uses), ``fit_flags`` (the words the gate's fit itself raised; the row adds those of back-gating, counts
  and neighbouring gates) and the fit's ``info``; ``transforms``: per $PnN the transform name and
  parameters; ``qc``: whether QC ran, events read and kept, QC ``flags``, ``qc_flags`` (the QC flags
  followed by the flags about the data, :func:`cytokit.qc.data_flags`: the ``qc_flags`` of the tables and
  of ``cytokit gate``) and events removed per check.
  Every value is writable by ``AnnData.write_h5ad``.

anndata is imported inside :func:`to_anndata` (optional extra ``cytokit[anndata]``).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import CytokitError
from ..results import schema as S
from ..results.review import review_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata

    from ..gating.result import GatingResult
    from ..sample import Sample

SCALE = "compensated; fluorescence transformed per file (see var['transform']); scatter and time linear"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _h5ad_value(value: Any) -> Any:
    """``value`` in a form h5ad can store: dicts stay dicts, numeric or text lists become arrays/lists,
    anything ragged or mixed becomes JSON text."""
    return _stored(json.loads(json.dumps(value, default=_json_default)))


def _stored(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        if not value:
            return np.array([], dtype=np.float64)
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, dict) for v in value):  # e.g. one threshold rule per dimension
            return {str(i): _stored(v) for i, v in enumerate(value)}
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged
            return json.dumps(value)
        return arr if arr.dtype.kind in "biuf" else json.dumps(value)
    return value


def _var(sample: "Sample") -> pd.DataFrame:
    ch = sample.channels
    markers = [str(m) for m in ch["marker"]]
    pnn = [str(p) for p in ch["pnn"]]
    names = [m if markers.count(m) == 1 else f"{m} ({p})" for m, p in zip(markers, pnn)]
    var = pd.DataFrame({
        "pnn": pnn, "pns": ch["pns"].fillna("").astype(str).to_list(), "marker": markers,
        "fluorochrome": ch["fluorochrome"].fillna("").astype(str).to_list(),
        "kind": ch["kind"].astype(str).to_list(),
        "transform": [str(sample.transforms.get(p, "")) for p in pnn],
    }, index=pd.Index(names, dtype=str))
    return var


def to_anndata(result: "GatingResult", *, raw: "Sample | None" = None) -> "anndata.AnnData":
    """``result`` as an AnnData object (see module contract). ``raw``: the Sample as read (same events in
    the same order) to add its linear values as ``layers["linear"]``."""
    try:
        import anndata
    except ImportError:
        raise CytokitError("AnnData export needs the optional extra: pip install 'cytokit[anndata]'") from None
    sample = result.sample
    X = np.ascontiguousarray(sample.events, dtype=np.float32)
    # events kept by QC (all when QC did not run), numbered as in the file
    kept = np.flatnonzero(result.qc.keep) if result.qc is not None else np.arange(sample.n_events)
    if kept.size != sample.n_events:  # pragma: no cover - the chain keeps them aligned
        raise CytokitError(f"QC kept {kept.size} events but the result holds {sample.n_events}", path=sample.path)
    obs = pd.DataFrame({name: np.asarray(m, dtype=bool) for name, m in result.masks.items()},
                       index=pd.Index([str(i) for i in kept], dtype=str))
    table = result.populations.copy()
    for col in table.columns:
        if table[col].dtype == object:
            table[col] = table[col].map(lambda v: "" if v is None else (";".join(map(str, v))
                                                                       if isinstance(v, (list, tuple)) else str(v)))
    fits = {}
    rows = {str(r[S.POPULATION]): r for r in result.population_rows}
    for name, fit in result.fits.items():
        info = dict(fit.info)
        flags = str(rows[name][S.FLAGS]) if name in rows else ";".join(fit.flags)
        fits[name] = _h5ad_value({"method": info.pop("gate_method", ""), "params": info.pop("params", {}),
                                  "gate": fit.gate.to_dict(), S.FLAGS: flags, **review_columns(flags),
                                  "fit_flags": ";".join(fit.flags), "info": info})
    qc_flags = list(result.qc.flags) if result.qc is not None else []
    uns = {
        "sample": sample.name, "sha256": sample.sha256 or "", "strategy": result.definition.name,
        "scale": SCALE, "populations": table, "fits": fits,
        "transforms": {t.pnn: _h5ad_value({"name": t.name, "params": dict(t.params), "marker": t.marker})
                       for t in result.transforms},
        "skipped": {k: str(v) for k, v in result.skipped.items()},
        "qc": _h5ad_value({"ran": result.qc is not None and result.qc.result is not None,
                           "n_events_read": result.qc.n_events if result.qc is not None else sample.n_events,
                           "n_kept": int(kept.size), "flags": ";".join(qc_flags),
                           S.QC_FLAGS: ";".join([*qc_flags, *result.data_flags]),
                           "removed": result.qc.info if result.qc is not None else {}}),
    }
    adata = anndata.AnnData(X=X, obs=obs, var=_var(sample), uns={"cytokit": uns})
    if raw is not None:
        n_read = result.qc.n_events if result.qc is not None else sample.n_events
        if raw.n_events != n_read or raw.n_channels != sample.n_channels:
            raise CytokitError(f"raw sample has {raw.n_events} x {raw.n_channels} events, the result was fitted "
                               f"on {n_read} x {sample.n_channels} events read", path=raw.path)
        adata.layers["linear"] = np.ascontiguousarray(raw.events[kept], dtype=np.float32)
    return adata
