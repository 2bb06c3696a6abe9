"""A lymphocyte gate on CD45 x SSC-A (lyse/no-wash blood) that takes in monocytes or counting beads: its share
of other events is measured without the gate's mixture (``scatter_overlap.mirror_excess_share``, the beads'
own gate) and every row diluted by it, and the denominator's count, is flagged (docs/gating.md, "A CD45 x SSC
lymphocyte gate")."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.gating.methods.scatter_overlap import (DENOMINATOR_OTHER_KEY, OVERLAP_FLAG, fit_backgate,
                                                    mirror_excess_share)

from lab_c_tbnk import gate_lab_c_tbnk  # tests/lab_c_tbnk.py


def _log_ssc(rng: np.random.Generator, n: int, centre: float, scale: float) -> np.ndarray:
    return centre + rng.logistic(0.0, scale, n)


def test_mirror_reads_no_excess_on_a_symmetric_cloud() -> None:
    rng = np.random.default_rng(3)
    assert mirror_excess_share(_log_ssc(rng, 20000, 9.0, 0.12)) < 0.01


@pytest.mark.parametrize("share", [0.1, 0.25, 0.4])
def test_mirror_finds_a_larger_more_granular_cloud_on_the_high_side(share: float) -> None:
    rng = np.random.default_rng(4)
    n = 20000
    k = int(n * share)
    v = np.concatenate([_log_ssc(rng, n - k, 9.0, 0.12), _log_ssc(rng, k, 10.05, 0.1)])  # monocytes ~3x SSC
    assert abs(mirror_excess_share(v) - share) < 0.04


def test_mirror_needs_enough_events() -> None:
    assert mirror_excess_share(np.linspace(8.0, 10.0, 150)) == 0.0


def test_backgate_region_on_a_transformed_cd45_axis() -> None:
    """A CD45 x SSC gate's first dim is logicle (0-1): read on a log scale every value is log(1) = 0 and no
    region can be placed; read as it is, the reference's region is placed and finds monocyte-like events."""
    rng = np.random.default_rng(5)
    ref = np.column_stack([rng.normal(0.76, 0.02, 5000), np.exp(_log_ssc(rng, 5000, 9.0, 0.12))])
    assert fit_backgate(ref) is None
    region = fit_backgate(ref, (False, True))
    assert region is not None
    lymph = np.column_stack([rng.normal(0.76, 0.02, 4000), np.exp(_log_ssc(rng, 4000, 9.0, 0.12))])
    mono = np.column_stack([rng.normal(0.70, 0.02, 1000), np.exp(_log_ssc(rng, 1000, 10.05, 0.1))])
    assert region.share(lymph) < 0.02
    assert region.share(np.vstack([lymph, mono])) > 0.12


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, pd.DataFrame, float, float]]:
    """Lab C tbnk files (a seed none of the gating rules was chosen on) gated with the lab's CD45 x SSC gate
    without its redraw (the mixture's own ellipse, which takes monocytes and beads in: the safety net is tested
    on such gates; the redrawn gate holds the lymphocytes, tests/test_gating_cd45_ssc_core.py):
    (file, populations table with truth, true % of other events among Singlets, the recorded estimate)."""
    out = []
    for g in gate_lab_c_tbnk(tmp_path_factory.mktemp("cd45gate"), redraw=False):
        sing = g.result.masks["Singlets"]
        other = 100.0 * float((sing & ~g.masks["Singlets"]).sum()) / max(int(sing.sum()), 1)
        out.append((g.file, g.table, other, float(g.result.fits["Lymphocytes"].info[DENOMINATOR_OTHER_KEY])))
    return out


def test_other_events_in_the_denominator_are_measured(gated) -> None:
    # the recorded share follows the true share of other events among Singlets (monocytes, beads)
    for f, _, other, est in gated:
        assert abs(est - other) < 8.0, (f, other, est)
    assert any(other > 10 for _, _, other, _ in gated), "the seed gives no contaminated gate: no test"


def test_no_silent_row_below_a_contaminated_cd45_gate(gated) -> None:
    for f, table, other, _ in gated:
        if other > 10:  # every single-platform count of the denominator is that far off
            assert OVERLAP_FLAG in table.loc["Singlets", "review_flags"], (f, other)
        for pop in ("T cells", "NK cells", "B cells"):
            err = abs(table.loc[pop, "pct_parent"] - table.loc[pop, "truth"])
            if err > 2:
                assert table.loc[pop, "review"], (f, pop, err, table.loc[pop, "flags"])


def test_right_gates_are_not_flagged_for_other_events(gated) -> None:
    clean = [(f, table) for f, table, other, _ in gated if other < 3]
    assert clean, "the seed gives no right gate: no test"
    for f, table in clean:
        assert OVERLAP_FLAG not in table.loc["Singlets", "flags"], f
