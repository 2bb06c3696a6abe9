"""Shared test helpers.

Real data lives in ``../shared/data`` (override with ``CYTOKIT_SHARED_DATA``); tests that need it use
the ``shared_data`` fixture, which skips with a clear reason only when the folder is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("CYTOKIT_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real test data not found at {d} (set CYTOKIT_SHARED_DATA to the shared/data folder)")
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tmem_file(repo_root: Path) -> Path:
    """The bundled sample trial's P001 W0 tmem file (skips, saying so, when sample_data is absent)."""
    path = repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    return path


@pytest.fixture(scope="session")
def tmem_gated(tmp_path_factory):
    """A simulated T-cell memory tube (12,000 events, seed 5) gated by the shipped ``tmem`` strategy without QC
    (its Lymphocytes gate back-gated by the T cells): the ``GatingResult``. Tests that rewrite a fit's info to
    read the rows below it share it; they must not change it in place."""
    from cytokit.fcs import read_fcs
    from cytokit.gating import load_strategy
    from cytokit.simulate import load_config, simulate_file

    root = tmp_path_factory.mktemp("tmem_gated")
    path = root / "f.fcs"
    simulate_file(path, 12000, tube="tmem", seed=5, config=load_config(None), truth_out=root)
    return load_strategy("tmem").apply(read_fcs(path), qc=False)


@pytest.fixture(scope="session")
def lab_nkb(repo_root: Path, tmp_path_factory):
    """The independent lab A generator's NK/B tube, patient 1 (seed 2026, a tuning seed), and the lab's NK/B
    strategy as a user writes it: ``(trial folder, Strategy)``. Its NK cells have more side scatter than the
    T cells (benchmarks/independent_lab_gen)."""
    import sys

    from cytokit.gating import load_strategy

    sys.path.insert(0, str(repo_root / "benchmarks"))
    from independent_lab_gen import generate_trial  # noqa: E402
    from independent_lab_gen.user_yaml import write_lab_strategies  # noqa: E402

    root = tmp_path_factory.mktemp("lab")
    trial = generate_trial(root / "trial", patients=1, seed=2026, tubes=("nkb",))
    return trial, load_strategy(write_lab_strategies(root / "strategies") / "lab_nkb.yaml")
