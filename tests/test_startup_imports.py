"""Start-up hygiene: the CLI and loading a strategy do not import the slow scientific libraries.

scikit-learn, scipy.stats/optimize/ndimage, matplotlib and statsmodels are imported inside the functions
that use them, so `cytokit --help` and the first `load_strategy` stay fast (speed itself is measured by
benchmarks/startup.py, not asserted here). Checked in a fresh interpreter: this test process has long
imported them.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sklearn", "scipy.stats", "scipy.optimize", "scipy.ndimage", "scipy.signal", "matplotlib",
         "statsmodels", "seaborn", "flowkit", "anndata", "dask.distributed", "weasyprint")


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_build_imports_no_heavy_library():
    assert _loaded_after("from cytokit.cli.main import build_app\nbuild_app()") == []


@pytest.mark.parametrize("strategy", ["tmem", "nkb"])
def test_load_strategy_imports_no_heavy_library(strategy):
    assert _loaded_after(f"from cytokit.gating import load_strategy\nload_strategy({strategy!r})") == []


def test_heavy_imports_happen_where_used():
    """The check above would pass vacuously if the probe could not see imports: fitting a Gaussian-mixture
    gate does load scikit-learn."""
    code = ("import numpy as np\nfrom cytokit.gating.methods import fit_gate\n"
            "X = np.random.default_rng(0).normal(size=(2000, 2))\n"
            "fit_gate('gmm_ellipse', X, {'n_components': 2, 'target': [0.5, 0.5]}, dims=('a', 'b'))")
    assert "sklearn" in _loaded_after(code)
