"""benchmarks/gating_accuracy.py counts each distinct simulated file once: a family that changes only the
nkb tube's markers simulates the reference family's tmem files byte for byte (same seed), so its tmem
estimates would repeat the reference's in the per-population statistics and the flag recall."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from gating_accuracy import run_family  # noqa: E402

SEED = 101  # a tuning seed (already looked at)
COLUMNS = ["file", "tube", "population", "auto_pct", "truth_pct", "flag_words"]


def test_a_file_another_family_simulated_identically_is_gated_once(tmp_path: Path) -> None:
    kw = {"patients": 1, "events": 2000}
    ref = run_family("reference", SEED, root=tmp_path / "all", **kw)
    nk_only = run_family("cd56_dim_stain", SEED, root=tmp_path / "all", **kw)
    assert set(ref.tube) == set(nk_only.tube) == {"tmem", "nkb"} and ref.attrs["skipped"] == 0
    # without de-duplication the nkb-only family's tmem rows are the reference's, its nkb rows are not
    same = ref[ref.tube == "tmem"][COLUMNS].reset_index(drop=True)
    pd.testing.assert_frame_equal(nk_only[nk_only.tube == "tmem"][COLUMNS].reset_index(drop=True), same)
    for tube, identical in (("tmem", True), ("nkb", False)):
        for f in ref[ref.tube == tube].file.unique():
            a, b = (tmp_path / "all" / f"{name}_{SEED}" / f for name in ("reference", "cd56_dim_stain"))
            assert (a.read_bytes() == b.read_bytes()) is identical, f

    seen: set[str] = set()
    first = run_family("reference", SEED, root=tmp_path / "distinct", seen=seen, **kw)
    n_files = first.file.nunique()
    assert first.attrs["skipped"] == 0 and len(seen) == n_files == 8  # 2 patients x 2 visits x 2 tubes
    second = run_family("cd56_dim_stain", SEED, root=tmp_path / "distinct", seen=seen, **kw)
    assert set(second.tube) == {"nkb"} and second.attrs["skipped"] == second.file.nunique() == n_files // 2
    pd.testing.assert_frame_equal(second[COLUMNS].reset_index(drop=True),
                                  nk_only[nk_only.tube == "nkb"][COLUMNS].reset_index(drop=True))
