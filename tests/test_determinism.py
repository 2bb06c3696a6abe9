"""Same input, same answer: the gating of one file does not depend on how its work is shared or scheduled."""
from __future__ import annotations

import numpy as np

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.methods.base import every_nth, gather
from cytokit.gating.parent_edge import MAX_EVENTS, PARENT_EDGE_KEY, parent_edge_pp


def test_parent_edges_shared_per_parent_equal_each_child_measured_alone(shared_data, repo_root):
    """record_parent_edges evaluates a parent's moved thresholds once for all its children; each child's
    value equals the one measured alone on the grandparent's events in the parent's and the child's dims.
    A2004 (real): three threshold parents (Live, APC, Monocytes) with two or three children each."""
    strategy = load_strategy(repo_root / "benchmarks" / "real_data" / "dc_monocyte_strategy.yaml")
    result = strategy.apply(read_fcs(shared_data / "flowjo9_diva" / "a2004_O1T2pb05i_A2_A02.fcs"))
    definition, sample, state = strategy.definition, result.sample, result.state
    measured = {name: fit.info[PARENT_EDGE_KEY] for name, fit in state.fits.items() if PARENT_EDGE_KEY in fit.info}
    parents = [definition.population(name).parent for name in measured]
    assert len(set(parents)) >= 3 and len(parents) >= 2 * len(set(parents))
    assert len(set(measured.values())) >= 5  # distinct values: a child given another's would show
    for name, value in measured.items():
        spec = definition.population(name)
        pspec = definition.population(spec.parent)
        grand = state.masks[pspec.parent] if pspec.parent else np.ones(sample.n_events, dtype=bool)
        rows = every_nth(np.flatnonzero(grand), MAX_EVENTS)
        cols = np.array([sample.channel_index(d) for d in (*pspec.dims, *spec.dims)], dtype=np.intp)
        alone = parent_edge_pp(state.fits[spec.parent].gate, state.fits[spec.parent].info, state.fits[name].gate,
                               gather(sample.events, rows, cols), np.arange(len(pspec.dims), len(cols)))
        assert alone is not None and round(alone, 3) == value, name
