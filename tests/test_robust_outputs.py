"""Byte-reproducible outputs: figures and reports do not depend on random state or the date."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _change_values(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "visit": "W24", "arm": np.repeat(["IL-2", "control"], n // 2), "population": "CD4 T",
        "abs_count_per_uL_change": rng.normal(100, 50, n),
    })


def test_trial_change_plot_is_byte_reproducible():
    from cytokit.trial.figures import change_at_visit

    values = _change_values()
    np.random.seed(1)
    first = change_at_visit(values, ["CD4 T"], "abs_count_per_uL", ["IL-2", "control"], "W24")
    np.random.seed(2)  # another global random state, as in another process
    second = change_at_visit(values, ["CD4 T"], "abs_count_per_uL", ["IL-2", "control"], "W24")
    assert first and first == second
    state = np.random.get_state()[1].copy()
    change_at_visit(values, ["CD4 T"], "abs_count_per_uL", ["IL-2", "control"], "W24")
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the caller's generator is left alone


def test_clustering_abundance_plot_is_byte_reproducible(tmp_path):
    from cytokit.cluster.plots import plot_abundance

    rng = np.random.default_rng(5)
    rows = [{"metacluster": m, "name": f"mc{m}", "visit": v, "week": w, "arm": arm, "sample_id": f"{p}_{v}",
             "pct": float(rng.uniform(1, 30))}
            for m in (1, 2) for v, w in (("W0", 0), ("W12", 12)) for p, arm in
            (("P1", "IL-2"), ("P2", "IL-2"), ("P3", "control"), ("P4", "control"))]
    df = pd.DataFrame(rows)
    np.random.seed(1)
    a = plot_abundance(df, tmp_path / "a.png").read_bytes()
    np.random.seed(2)
    b = plot_abundance(df, tmp_path / "b.png").read_bytes()
    assert a == b and b"Software" not in a[:200]


def test_trial_trajectories_draw_no_empty_panel_and_warn_nothing():
    """A headline population with no value of the measure in the compared arms (here Treg without absolute
    counts, the control arm of one patient) gets no panel: seaborn is never handed an empty frame, so it does
    not warn 'Ignoring `palette` because no `hue` variable has been assigned' (which `cytokit compare` printed)."""
    import struct
    import warnings

    from cytokit.trial.figures import trajectories

    rows = [{"patient": p, "arm": arm, "population": pop, "visit": v, "week": w,
             "abs_count_per_uL": np.nan if pop == "Treg" else 500.0 + 10 * k + w}
            for k, (p, arm) in enumerate((("P1", "IL-2"), ("P2", "IL-2"), ("P3", "control")))
            for pop in ("CD4 T", "Treg") for v, w in (("W0", 0), ("W24", 24))]
    values = pd.DataFrame(rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = trajectories(values, ["CD4 T", "Treg"], "abs_count_per_uL", ["IL-2", "control"])
    assert png is not None and [str(w.message) for w in caught if "palette" in str(w.message)] == []
    width = struct.unpack(">I", png[16:20])[0]  # PNG IHDR width (px): one 3.6-inch panel at 100 dpi
    assert width == 360
    none = values.assign(abs_count_per_uL=np.nan)
    assert trajectories(none, ["CD4 T", "Treg"], "abs_count_per_uL", ["IL-2", "control"]) is None


def test_trial_figures_warn_when_the_arms_match_no_data(caplog):
    """Arm names in the data that do not match the compared arms ('IL2' / 'Control' against 'IL-2' / 'control'):
    trajectories() and change_at_visit() draw nothing, and a warning names the arms compared and the arms found;
    an arm with no value of the measure (all control values missing) is named too, though the figure is drawn."""
    import logging

    from cytokit.trial.figures import change_at_visit, trajectories

    rows = [{"patient": p, "arm": arm, "population": "CD4 T", "visit": v, "week": w,
             "abs_count_per_uL": 500.0 + 10 * k + w, "abs_count_per_uL_change": float(w)}
            for k, (p, arm) in enumerate((("P1", "IL2"), ("P2", "IL2"), ("P3", "Control")))
            for v, w in (("W0", 0), ("W24", 24))]
    values = pd.DataFrame(rows)
    arms = ["IL-2", "control"]
    with caplog.at_level(logging.WARNING, logger="cytokit.trial.figures"):
        assert trajectories(values, ["CD4 T"], "abs_count_per_uL", arms) is None
        assert change_at_visit(values, ["CD4 T"], "abs_count_per_uL", arms, "W24") is None
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("['IL-2', 'control']" in m and "['Control', 'IL2']" in m
                                    and "not drawn" in m for m in warned), warned
    caplog.clear()
    half = values.assign(arm=values["arm"].map({"IL2": "IL-2", "Control": "control"}))
    half.loc[half["arm"] == "control", "abs_count_per_uL"] = np.nan
    with caplog.at_level(logging.WARNING, logger="cytokit.trial.figures"):
        assert trajectories(half, ["CD4 T"], "abs_count_per_uL", arms) is not None
    assert [m for m in (r.getMessage() for r in caplog.records) if "['control']" in m and "not drawn" not in m]
