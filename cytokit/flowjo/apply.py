"""Apply a FlowJo workspace's gates to FCS Samples and compare with the counts FlowJo stored."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import GatingError
from ..gatingml.evaluate import evaluate_document, population_counts
from ..results import schema as S
from ..sample import Sample
from .model import FlowJoWorkspace


def workspace_counts(workspace: FlowJoWorkspace, sample: Sample, key: str | None = None) -> pd.DataFrame:
    """Counts of every population of one workspace sample, evaluated by cytokit on the raw FCS ``sample``.

    ``key`` names the workspace sample (id, name, file name or $FIL); by default the FCS file name.
    Columns: ``id``, ``population``, ``path``, ``parent``, ``count``, ``parent_count``, ``pct_parent``
    (percent, 0-100), ``flowjo_count`` (what FlowJo stored, NaN if absent) and ``deviation_pct_parent``
    (``(count - flowjo_count) / parent_count``, in percent of the parent).
    """
    ws_sample = workspace.sample(key if key is not None else sample.name)
    if ws_sample.document is None:
        raise GatingError(f"workspace sample {ws_sample.name!r} has no gates", path=workspace.source)
    masks = evaluate_document(ws_sample.document, sample)
    table = population_counts(ws_sample.document, masks, sample.n_events)
    table["flowjo_count"] = [ws_sample.flowjo_counts.get(i, np.nan) for i in table["id"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["deviation_pct_parent"] = 100.0 * (table[S.COUNT] - table["flowjo_count"]) / table[S.PARENT_COUNT]
    return table
