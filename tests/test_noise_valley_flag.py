"""Note ``noise_valley`` (docs/gating.md, "A valley between noise bumps on a one-mode parent"): a chosen valley fewer
than ``MIN_MODE_SDS`` noise SDs deep between two bumps, neither of them the parent's main mode. Its merged reading
(the valley rule with the noise bumps merged) is a plausible position of the threshold: what it moves the row (pp
of the parent) enters ``est_error_pp``, so the row is flagged for review (``uncertain``) only where it matters."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytokit.gating.methods import needs_review
from cytokit.gating.methods.confidence import UNCERTAIN_PP, ThresholdUncertainty
from cytokit.gating.methods.density import (MIN_MODE_SDS, NOISE_VALLEY_FLAG, ThresholdParams, fit_threshold,
                                            valley_noise)
from cytokit.gating.methods.kde import kde_1d
from cytokit.gating.methods.threshold import (PhenotypeParams, ThresholdGateParams, fit_phenotype,
                                              fit_threshold_gate)

PARAMS = ThresholdParams(bounds=(0.3, 0.7))
STRATEGY = Path(__file__).resolve().parents[1] / "gating" / "mouse_lymphocytes.yaml"
#: a gate written from docs/gating.md as a new user would: CD4 inside B cells (a lineage negative for it)
CD4_B_GATE = """
  - name: CD4+ B
    parent: B cells
    dims: [CD4]
    method: threshold
    params: {sign: "+", threshold: {bounds: [0.3, 0.7]}}
    phenotype: CD19+ CD4+
"""


def _smear(seed: int = 5) -> np.ndarray:
    """One negative mode (logicle units) with a sparse smear of 7.6 % of the events above it (CD4 in B cells)."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0.165, 0.039, 2200), 0.3 + rng.exponential(0.2, 180)]


def test_valley_between_noise_bumps_of_a_sparse_smear_is_noted_with_its_merged_reading() -> None:
    x = _smear()
    fit = fit_threshold(x, PARAMS)
    assert fit.info["method"] == "valley"
    nv = fit.info["valley_noise"]
    assert nv["sds"] < MIN_MODE_SDS and not nv["beside_main"] and nv["isolated"]
    assert NOISE_VALLEY_FLAG in fit.flags and not needs_review(fit.flags)  # a note: the move decides
    # the merged reading takes the smear in: it lies below the valley and holds more than 1 % more of the events
    assert nv["merged"] < fit.value and np.mean(x >= nv["merged"]) - np.mean(x >= fit.value) > 0.01
    unc = ThresholdUncertainty.from_fit(fit.value, fit.info)
    assert unc.noise_valley and nv["merged"] in unc.alternatives


def test_noise_valley_whose_merged_reading_moves_the_row_is_reviewed() -> None:
    """The one-mode parent with a sparse smear: the merged reading moves the row by several pp -> review."""
    x = _smear()
    res = fit_threshold_gate(x[:, None], ThresholdGateParams(threshold=PARAMS), dims=("CD4",), gate_id="CD4+ B")
    assert NOISE_VALLEY_FLAG in [w.split(":")[-1] for w in res.flags]
    assert res.info["est_error_pp"] > UNCERTAIN_PP and "uncertain" in res.flags and needs_review(res.flags)
    assert res.info["est_error_parts"]["valley_empty"] == 0  # not capped as an empty valley
    merged = res.info["CD4"]["valley_noise"]["merged"]
    moved = 100.0 * abs(np.mean(x >= merged) - np.mean(x >= res.info["threshold"]))
    assert res.info["est_error_pp"] >= moved - 1e-3  # the row's move is carried in full (rounded to 0.001)


def test_noise_valley_of_an_or_gate_cut_that_hardly_moves_the_row_is_a_note() -> None:
    """NK cells = CD56+ and/or CD16+: a CD16 noise valley among CD56+ events; wherever the CD16 cut lies, the
    OR-gate holds the same events, so the row carries the note and no review flag."""
    cd16 = _smear()  # 2,200 CD16- events, then the smear: 180 NK cells
    rng = np.random.default_rng(6)
    cd56 = np.r_[rng.normal(0.165, 0.039, 2200), rng.normal(0.7, 0.04, 180)]  # the same 180 are CD56+
    params = PhenotypeParams(signs=("+", "+"), any_of=("CD56", "CD16"),
                             thresholds=(ThresholdParams(bounds=(0.3, 0.6)), PARAMS))
    res = fit_phenotype(np.c_[cd56, cd16], params, dims=("CD56", "CD16"), gate_id="NK cells")
    assert "CD16:" + NOISE_VALLEY_FLAG in res.flags
    assert res.info["CD16"]["valley_noise"]["merged"] < res.info["thresholds"]["CD16"]  # the cut would move...
    assert res.info["est_error_pp"] < 0.1 and not needs_review(res.flags)  # ...but not the row


def test_valley_between_two_populations_is_not_flagged() -> None:
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0.17, 0.04, 1800), rng.normal(0.6, 0.05, 500)]
    fit = fit_threshold(x, PARAMS)
    assert fit.info["method"] == "valley" and fit.info["valley_noise"]["sds"] > 10.0
    assert fit.info["valley_noise"]["beside_main"]
    assert NOISE_VALLEY_FLAG not in fit.flags


def test_sparse_bimodal_marker_beside_the_main_mode_is_not_flagged() -> None:
    """A small real positive population: its valley borders the main mode, however few its events."""
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.17, 0.04, 2000), rng.normal(0.6, 0.04, 40)]
    fit = fit_threshold(x, PARAMS)
    assert fit.info["method"] == "valley" and fit.info["valley_noise"]["beside_main"]
    assert NOISE_VALLEY_FLAG not in fit.flags


def test_valley_noise_names_the_main_mode_side() -> None:
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(0.2, 0.03, 300), rng.normal(0.5, 0.03, 3000), rng.normal(0.8, 0.03, 300)]
    d = kde_1d(x)
    peaks = np.array([int(np.argmin(np.abs(d.grid - m))) for m in (0.2, 0.5, 0.8)])
    lower = valley_noise(d, peaks, int(np.argmin(np.abs(d.grid - 0.35))), x.size)
    upper = valley_noise(d, peaks, int(np.argmin(np.abs(d.grid - 0.65))), x.size)
    assert lower.upper_is_main and not lower.lower_is_main and lower.sds > MIN_MODE_SDS
    assert upper.lower_is_main and not upper.upper_is_main
    with pytest.raises(ValueError):
        valley_noise(d, peaks[:1], int(peaks[0]), x.size)


def test_cd4_inside_b_cells_of_flowsom_68983_is_flagged(shared_data: Path, tmp_path: Path) -> None:
    """The real case: CD4+ B read 1.81 % with no flag (the same events read 4.1-8.2 % under other rules)."""
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy

    fcs = shared_data / "flowsom_68983" / "68983.fcs"
    if not fcs.exists():
        pytest.skip(f"real data file {fcs} is absent")
    strategy = tmp_path / "mouse_cd4b.yaml"
    strategy.write_text(STRATEGY.read_text().replace("name: mouse_lymphocytes", "name: mouse_cd4b", 1)
                        .rstrip("\n") + "\n" + CD4_B_GATE)
    res = load_strategy(str(strategy)).apply(read_fcs(fcs), qc=False)
    row = res.populations.set_index("population").loc["CD4+ B"]
    assert NOISE_VALLEY_FLAG in [w.split(":")[-1] for w in str(row["flags"]).split(";")]
    assert NOISE_VALLEY_FLAG in str(row["notes"])
    # the merged reading (4.13 % of B cells, the valley the merge leaves) moves the row by > 2 pp: review
    assert bool(row["review"]) and "uncertain" in str(row["review_flags"]) and float(row["est_error_pp"]) > 2.0
    assert res.fit("CD4+ B").info["CD4"]["valley_noise"]["sds"] < MIN_MODE_SDS
    # the expert's lineage rows are left as they were
    assert not any(NOISE_VALLEY_FLAG in str(f) for p, f in zip(res.populations["population"],
                                                                res.populations["flags"]) if p != "CD4+ B")
