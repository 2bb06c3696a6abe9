"""A stated cut through an activation continuum (docs/gating.md, "An activation smear with a stated cut").

Lab B calls a CD8 T cell HLA-DR+ above a fixed HLA-DR level; on a smear (a continuum above the negatives, no
valley) no density rule finds that level, so its strategy states it (``threshold: {mode: fixed, value: ...}``).
Such a cut moves the population with the file's scale wherever the smear's events lie at it: its
``est_error_pp`` is the population's change for the cut moved by -/+ ``fixed_tolerance`` (a detector-gain
difference between files), so a stated cut through a smear is ``uncertain`` and one in an empty valley is not.
"""
from __future__ import annotations

import numpy as np
import pytest

from cytokit.gating.methods.confidence import UNCERTAIN_PP
from cytokit.gating.methods.density import FIXED_TOLERANCE, ThresholdParams, fit_threshold
from cytokit.gating.methods.threshold import ThresholdGateParams, fit_threshold_gate


def _smear(n_neg: int = 8000, n_smear: int = 2000, seed: int = 0) -> np.ndarray:
    """Negatives (logicle ~0.3) and a smear from them to bright (uniform 0.3-0.7 on the logicle scale)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.3, 0.04, n_neg), rng.uniform(0.3, 0.7, n_smear)])


def _bimodal(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.3, 0.04, 8000), rng.normal(0.7, 0.04, 2000)])


def _gate(x: np.ndarray, **threshold: float | str) -> tuple[tuple[str, ...], dict]:
    p = ThresholdGateParams(sign="+", threshold={"mode": "fixed", "value": 0.5, **threshold})
    r = fit_threshold_gate(x[:, None], p, dims=("HLA-DR",), gate_id="HLA-DR+")
    return r.flags, r.info


def test_a_stated_cut_through_a_smear_is_uncertain_by_its_scale_tolerance() -> None:
    x = _smear()
    flags, info = _gate(x)
    # the cut moved by -/+ the tolerance: 0.02 of a smear spread over 0.4 holds ~5 % of its 20 % of events
    moved = 100 * max(abs(np.mean(x >= 0.5 - FIXED_TOLERANCE) - np.mean(x >= 0.5)),
                      abs(np.mean(x >= 0.5 + FIXED_TOLERANCE) - np.mean(x >= 0.5)))
    assert info["est_error_pp"] == pytest.approx(moved, abs=0.05)
    assert info["est_error_pp"] > UNCERTAIN_PP and "uncertain" in flags
    assert info["HLA-DR"]["method"] == "fixed" and info["threshold"] == 0.5


def test_a_stated_cut_in_an_empty_valley_is_not_flagged() -> None:
    flags, info = _gate(_bimodal())
    assert info["est_error_pp"] is not None and info["est_error_pp"] < 0.1 and "uncertain" not in flags


def test_the_tolerance_is_the_strategys_to_state() -> None:
    """``fixed_tolerance: 0`` (an exact scale, e.g. a bead-standardised instrument) measures nothing, as before;
    a wider tolerance a larger error."""
    x = _smear()
    flags, info = _gate(x, fixed_tolerance=0.0)
    assert info["est_error_pp"] is None and "uncertain" not in flags
    wide = _gate(x, fixed_tolerance=0.05)[1]["est_error_pp"]
    assert wide > _gate(x)[1]["est_error_pp"] > 0
    with pytest.raises(ValueError):
        ThresholdParams(mode="fixed", value=0.5, fixed_tolerance=-0.01)


def test_the_fit_itself_is_unchanged_and_records_the_alternatives() -> None:
    t = fit_threshold(_smear(), ThresholdParams(mode="fixed", value=0.45))
    assert t.value == 0.45 and t.flags == ()
    assert t.info["stability_thresholds"] == pytest.approx([0.45 - FIXED_TOLERANCE, 0.45 + FIXED_TOLERANCE])
    assert "stability_thresholds" not in fit_threshold(_smear(), ThresholdParams(mode="fixed", value=0.45),
                                                       check_stability=False).info
