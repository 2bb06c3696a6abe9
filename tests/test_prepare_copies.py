"""The per-sample chain transforms events in place only where it made them (QC's kept events, compensated
events), never the caller's Sample; the engine's choice of where to evaluate a gate (every event, or the
parent's rows) does not change a mask."""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.fit_state import columns
from cytokit.gating.preprocess import apply_transforms, plan_transforms, prepare


@pytest.fixture(scope="module")
def raw(repo_root):
    path = repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    return read_fcs(path)


@pytest.mark.parametrize("qc,comp", [(True, None), (False, None), (True, False), (False, False)])
def test_callers_events_are_never_transformed(raw, qc, comp):
    definition = load_strategy("tmem").definition
    before = raw.events.copy()
    prepared = prepare(raw, definition, qc=qc, compensate_events=comp)
    assert np.array_equal(raw.events, before)  # the caller's Sample is untouched
    assert not np.may_share_memory(prepared.sample.events, raw.events)
    # the same values as transforming a copy
    resolved = prepare(raw, definition, qc=qc, compensate_events=comp, plan=[])
    expected = apply_transforms(resolved.sample, plan_transforms(resolved.sample, definition))
    assert np.array_equal(prepared.sample.events, expected.events, equal_nan=True)
    assert not np.array_equal(prepared.sample.events, resolved.sample.events)  # transforms did something


def test_masks_do_not_depend_on_where_gates_are_evaluated(raw):
    result = load_strategy("tmem").apply(raw)
    ev = result.sample.events
    for spec in result.definition.populations:
        gate = result.gates[spec.name]
        if spec.method == "boolean" or not hasattr(gate, "contains") or gate.kind == "boolean":
            continue
        parent = result.masks[spec.parent] if spec.parent else np.ones(ev.shape[0], dtype=bool)
        everywhere = gate.contains(ev[:, columns(result.sample, gate.dims)]) & parent
        assert np.array_equal(result.masks[spec.name], everywhere), spec.name


def test_subset_by_boolean_mask_is_row_selection(raw):
    mask = np.random.default_rng(1).random(raw.n_events) > 0.3
    sub = raw.subset(mask, note="half")
    assert sub.events.flags.c_contiguous and sub.events.dtype == np.float32
    assert np.array_equal(sub.events, raw.events[mask]) and sub.provenance[-1] == "half"
    assert np.array_equal(raw.subset(np.flatnonzero(mask)).events, sub.events)  # indices: same rows
    assert raw.subset(np.zeros(raw.n_events, dtype=bool)).events.shape == (0, raw.n_channels)
    assert np.array_equal(raw.subset(slice(0, 30)).events, raw.events[:30])  # any numpy index still works


def test_transforms_in_row_blocks_equal_whole_columns(raw):
    """apply_transforms works through blocks of rows; each value is mapped on its own, so the result is
    every channel transformed as one column (float64, rounded once to float32), also where values lie
    beyond the logicle table (solved), are infinite or NaN, and in a last, partial block."""
    from cytokit.gating import preprocess
    from cytokit.transforms import get_transform

    definition = load_strategy("tmem").definition
    resolved = prepare(raw, definition, qc=False, plan=[])
    plan = plan_transforms(resolved.sample, definition)
    n = 2 * preprocess.TRANSFORM_BLOCK_ROWS + 123
    events = np.resize(resolved.sample.events, (n, resolved.sample.n_channels)).copy()
    idx = resolved.sample.channel_index(plan[0].pnn)
    events[5, idx], events[n - 2, idx], events[7, idx] = np.inf, -1e12, np.nan  # beyond the table / odd
    events[preprocess.TRANSFORM_BLOCK_ROWS + 1, idx] = 3e9
    sample = resolved.sample.replace(events=events)
    before = events.copy()
    got = apply_transforms(sample, plan).events
    expected = events.copy()
    for ct in plan:
        j = sample.channel_index(ct.pnn)
        tf = ct.transform if ct.transform is not None else get_transform(ct.name, **ct.params)
        expected[:, j] = np.asarray(tf.forward(events[:, j].astype(np.float64)), dtype=np.float32)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.isposinf(got[5, idx]) and np.isnan(got[7, idx]) and got[n - 2, idx] < 0
    assert np.array_equal(sample.events, before, equal_nan=True)  # not in place unless asked


def test_compensation_in_place_equals_a_compensated_copy(raw):
    from cytokit.compensation import compensate

    resolved = prepare(raw, load_strategy("tmem").definition, qc=False, compensate_events=False, plan=[]).sample
    copy = compensate(resolved)
    mine = resolved.replace(events=resolved.events.copy())
    own = mine.events
    inplace = compensate(mine, in_place=True)
    assert inplace.events is own  # compensated where they were
    assert np.array_equal(inplace.events, copy.events)
    assert inplace.compensated and inplace.provenance == copy.provenance and inplace.warnings == copy.warnings
    assert not np.array_equal(copy.events, resolved.events)  # the default leaves its input alone
