"""benchmarks/continuum_placement.py re-fits a continuum population's threshold exactly as the engine fits it
(so a variant's numbers are the gate the strategy would report) and refuses the reserved held-out seeds."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from continuum_placement import RESERVED, load, main, parse_variant, placement  # noqa: E402
from gating_accuracy import HELD_OUT_SEED  # noqa: E402
from independent_lab import RESERVED_A_SEED, RESERVED_B_SEED  # noqa: E402


def test_refit_reproduces_the_reported_gate_and_a_fixed_variant_holds_the_events_above_it(tmp_path: Path) -> None:
    recs = load("sim", "high_gain_dim_cd25_shoulder", 101, tmp_path, patients=1, events=6000)  # a tuning seed
    assert len(recs) == 4 and {r["population"] for r in recs} == {"CD25+ CD4"}
    df = placement(recs)
    for got, r in zip(df.pct, recs):
        assert got == pytest.approx(r["reported_pct"], abs=1e-9)
    fixed = placement(recs, parse_variant("mode=fixed, value=0.4"))
    for got, r in zip(fixed.pct, recs):
        assert got == pytest.approx(100 * float((r["xg"] >= 0.4).mean()))
    assert set(fixed.method) == {"fixed"}


def test_reserved_seeds_are_refused() -> None:
    assert {("sim", HELD_OUT_SEED), ("lab", RESERVED_A_SEED), ("labb", RESERVED_B_SEED)} <= RESERVED
    for spec in (f"x=sim:{HELD_OUT_SEED}", f"x=lab:{RESERVED_A_SEED}", f"x=labb:{RESERVED_B_SEED}", "x=other:11"):
        with pytest.raises(SystemExit) as exc:
            main(["--set", spec])
        assert exc.value.code == 2
