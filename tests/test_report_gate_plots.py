"""Gate plots read like FlowJo's: axes name marker + fluorochrome, transformed axes carry decades in linear
units, quadrant populations share one plot with four percentages, each plot states its population %, and
figures are >= 100 dpi and byte-identical when drawn twice."""
from __future__ import annotations

import io

import numpy as np
import pytest

from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.axes import AxisScale, axis_scale, decade_label, thousands_label
from cytokit.gating.plotting import DPI, figure_png, quadrant_sets
from cytokit.transforms import get_transform


@pytest.fixture(scope="module")
def tmem(repo_root):
    return load_strategy("tmem").apply(read_fcs(repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"))


def test_decade_and_thousand_labels():
    assert [decade_label(v) for v in (0, 1000, -100, 1e5)] == ["0", "10³", "-10²", "10⁵"]
    assert [thousands_label(v) for v in (0, 250, 50_000, 150_000, 1.5e6)] == ["0", "250", "50K", "150K", "1.5M"]


def test_logicle_axis_ticks_are_decades_in_linear_units():
    tf = get_transform("logicle", T=262144, W=0.5, M=4.5, A=0)
    scale = AxisScale("CD4 FITC", tf)
    lo, hi = float(tf.forward(-300)), 1.0
    pos, labels, minors = scale.ticks(lo, hi)
    assert "0" in labels and "10⁵" in labels and "10⁴" in labels
    # each labelled position is the transform of the linear value its label names
    for p, lab in zip(pos, labels):
        if lab == "10⁴":
            assert p == pytest.approx(float(tf.forward(1e4)))
        if lab == "0":
            assert p == pytest.approx(float(tf.forward(0.0)))
    assert all(lo <= p <= hi for p in pos + minors)
    gaps = np.diff(sorted(pos))
    assert gaps.min() >= 0.07 * (hi - lo) - 1e-12  # labels never crowd the near-linear region
    # minor ticks (2..9 x decade) sit between the decades, none on top of a major
    assert minors and all(min(abs(m - p) for p in pos) > 0 for m in minors)


def test_linear_axis_ticks_in_thousands():
    pos, labels, _ = AxisScale("FSC-A").ticks(0, 262144)
    assert labels[:3] == ["0", "50K", "100K"]
    assert pos[1] == 50_000


def test_axis_label_names_marker_and_fluorochrome(tmem):
    s = tmem.sample
    cd4 = axis_scale(s, "CD4")
    fluor = str(s.channels["fluorochrome"].iloc[s.channel_index("CD4")])
    assert cd4.label.startswith("CD4 ") and fluor in cd4.label
    assert cd4.transform is not None and cd4.transform.name == "logicle"
    fsc = axis_scale(s, "FSC-A")
    assert fsc.label == "FSC-A" and fsc.is_linear


def test_population_plot_has_flowjo_axes_and_percentage(tmem):
    fig = tmem.plot("CD4 T")  # a quadrant gate on CD4 x CD8
    ax = fig.axes[0]
    assert "CD4" in ax.get_xlabel() and "CD8" in ax.get_ylabel()
    xt = [t.get_text() for t in ax.get_xticklabels()]
    assert "10⁴" in xt and all(not t or t == "0" or t.lstrip("-").startswith("10") for t in xt)
    pct = tmem.populations.set_index("population").loc["CD4 T", "pct_parent"]
    texts = [t.get_text() for t in ax.texts]
    assert any(f"{pct:.1f}%" in t for t in texts), texts
    assert f"{pct:.1f}% of T cells" in ax.get_title()


def test_quadrant_populations_share_one_plot_with_four_percentages(tmem):
    sets = quadrant_sets(tmem)
    naive = next(q for q in sets if "Naive CD4" in q.members)
    assert set(naive.members) == {"Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4"}
    fig = tmem.plot_all()
    titles = [ax.get_title() for ax in fig.axes]
    texts = [" ".join(t.get_text() for t in ax.texts) for ax in fig.axes]
    # one panel holds the four memory quadrants; no second copy of the same split
    assert sum("CD45RA × CD62L" in t for t in titles) == 1
    assert sum("Naive CD4" in t for t in titles + texts) == 1 and sum("TEMRA CD4" in t for t in titles + texts) == 1
    panel = next(ax for ax in fig.axes if "CD45RA × CD62L" in ax.get_title())
    by = tmem.populations.set_index("population")
    texts = " ".join(t.get_text() for t in panel.texts)
    for name in naive.members:
        assert f"{by.loc[name, 'pct_parent']:.1f}%" in texts, (name, texts)
    shown = [float(t.get_text().split("\n")[-1].rstrip("%")) for t in panel.texts]
    assert len(shown) == 4 and sum(shown) == pytest.approx(100.0, abs=0.3)


def test_grid_png_resolution_and_byte_reproducible(tmem, tmp_path):
    from matplotlib.image import imread

    assert DPI >= 100
    a = figure_png(tmem.plot_all())
    b = figure_png(tmem.plot_all())
    assert a == b
    img = imread(io.BytesIO(a))
    fig = tmem.plot_all()
    w_in = fig.get_size_inches()[0]
    assert img.shape[1] == pytest.approx(w_in * DPI, abs=2)
    path = tmem.plot_all(tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes() == a and path is not None
