"""benchmarks/cd25_placement.py re-fits CD25+ CD4 exactly as the engine fits it (so a variant's numbers are
the gate the strategy would report) and refuses the reserved held-out seeds."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from cd25_placement import RESERVED, main, parse_variant, placement, sim_files  # noqa: E402
from gating_accuracy import HELD_OUT_SEED  # noqa: E402

from cytokit.gating import load_strategy  # noqa: E402
from cytokit.gating.methods.density import ThresholdParams  # noqa: E402


def test_refit_with_the_shipped_parameters_reproduces_the_reported_gate(tmp_path: Path) -> None:
    recs = sim_files("high_gain_dim_cd25_shoulder", 101, tmp_path, patients=1, events=6000)  # a tuning seed
    shipped = ThresholdParams(**load_strategy("tmem").definition.population("CD25+ CD4").params["threshold"])
    df = placement(recs, shipped)
    assert len(df) == 4
    for got, r in zip(df.pct, recs):
        assert got == pytest.approx(r["reported_pct"], abs=1e-9)
    other = placement(recs, shipped.model_copy(update=parse_variant("tail_sd=3.0,tail_knee=null")))
    assert (other.pct <= df.pct + 1e-9).all()


def test_variant_values_are_yaml_and_reserved_seeds_are_refused() -> None:
    assert parse_variant("dim_mode_tail=null, tail_knee=0.25") == {"dim_mode_tail": None, "tail_knee": 0.25}
    lab_seed = max(RESERVED - {HELD_OUT_SEED})  # the independent lab's next held-out seed
    assert HELD_OUT_SEED in RESERVED
    for group in (f"x=sim:{HELD_OUT_SEED}", f"x=lab:{lab_seed}"):
        with pytest.raises(SystemExit) as exc:
            main(["--group", group])
        assert exc.value.code == 2
