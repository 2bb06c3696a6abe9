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
    """The checks here would pass vacuously if the probe could not see imports: fitting a density-contour
    gate does load scipy.ndimage."""
    code = ("import numpy as np\nfrom cytokit.gating.methods import fit_gate\n"
            "X = np.random.default_rng(0).normal(size=(2000, 2))\n"
            "fit_gate('density_polygon', X, {'target': [0.5, 0.5]}, dims=('a', 'b'))")
    assert "scipy.ndimage" in _loaded_after(code)


#: what gating one file must not import: scikit-learn, scipy.stats/optimize/ndimage for the scatter ellipse,
#: logicle constants and threshold densities (numpy EM, closed-form chi-squared quantile, bisection, numpy
#: smoothing instead), nor plotting, reporting or cluster libraries when no plot is asked for, nor pandas
#: (and pyarrow through it): the channel table is a ChannelTable, the printed table is built from rows;
#: nor the click package (typer vendors its own click; main() looks click's exceptions up only once raised),
#: the single-stain spillover estimation or the pipeline package
GATE_PATH_EXCLUDED = ("sklearn", "scipy.stats", "scipy.optimize", "scipy.ndimage", "matplotlib", "statsmodels",
                      "seaborn", "flowkit", "anndata", "dask.distributed", "weasyprint", "pandas", "pyarrow",
                      "click", "cytokit.compensation.estimate", "cytokit.pipeline")


@pytest.mark.parametrize("name", ["P001_W0_tmem", "P001_W0_nkb"])
def test_cli_gate_imports_no_heavy_library(repo_root, name):
    """`cytokit gate FILE --strategy S` as a whole (read, QC, compensate, logicle, fit every gate, print)."""
    path = repo_root / "sample_data" / "fcs" / f"{name}.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    code = ("import sys\nfrom cytokit.cli.main import main\n"
            f"assert main(['gate', {str(path)!r}, '--strategy', {name.rsplit('_', 1)[1]!r}]) == 0\n")
    probe = code + f"\nimport json\nprint(json.dumps([m for m in {GATE_PATH_EXCLUDED!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert "Lymphocytes" in out.stdout  # the table was printed: the run got through every gate
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_cli_help_imports_no_array_or_table_library():
    """`cytokit --help` only lists commands: numpy, pandas (and pyarrow through it), pydantic and YAML are
    imported by the commands that use them, not to print the help."""
    code = ("import sys\nfrom cytokit.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('\\nLOADED', [m for m in ('numpy', 'pandas', 'pyarrow', 'pydantic', 'yaml') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "Usage" in out.stdout and "gate" in out.stdout  # the help was printed
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"


def test_imports_outside_gc_freeze_then_release():
    """Start-up objects are frozen out of the collector's way (cli/startup.py) and main() hands them back,
    so a program calling main() in-process keeps ordinary collection."""
    import gc

    from cytokit.cli.main import main
    from cytokit.cli.startup import imports_outside_gc, release

    assert gc.get_freeze_count() == 0
    with imports_outside_gc():
        assert not gc.isenabled()
        import cytokit.gating  # noqa: F401
    try:
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        release()
    assert gc.get_freeze_count() == 0
    assert main(["--help"]) == 0
    assert gc.get_freeze_count() == 0 and gc.isenabled()


@pytest.mark.parametrize("user_value", [None, "2"])
def test_cli_gate_loads_blas_with_one_thread_unless_the_user_chose(repo_root, user_value):
    """`cytokit gate` imports numpy with OPENBLAS_NUM_THREADS=1 (no idle thread pool started; it fits with
    one BLAS thread anyway), leaves no trace of that in the environment, and keeps a value the user set."""
    import os

    path = repo_root / "sample_data" / "fcs" / "P001_W0_tmem.fcs"
    if not path.is_file():
        pytest.skip("sample_data is not present (regenerate with `make sample-data`)")
    code = ("import json, os, sys\nfrom cytokit.cli.main import main\n"
            f"assert 'numpy' not in sys.modules\nassert main(['gate', {str(path)!r}, '--strategy', 'tmem']) == 0\n"
            "from threadpoolctl import threadpool_info\n"
            "print(json.dumps([[i['internal_api'], i['num_threads']] for i in threadpool_info()] + "
            "[os.environ.get('OPENBLAS_NUM_THREADS')]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if user_value is not None:
        env["OPENBLAS_NUM_THREADS"] = user_value
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                         env=env)
    *pools, variable = json.loads(out.stdout.strip().splitlines()[-1])
    openblas = [n for api, n in pools if api == "openblas"]
    assert openblas, pools  # numpy's BLAS is OpenBLAS in the wheels this project installs
    assert variable == user_value  # removed again, or the user's own
    assert all(n == int(user_value or 1) for n in openblas)


@pytest.mark.parametrize("argv", [["no-such-command"], ["gate", "--no-such-option", "x.fcs"], ["gate"]])
def test_usage_errors_exit_2_without_the_click_package(argv, capsys):
    from cytokit.cli.main import USAGE_EXIT, main

    assert main(argv) == USAGE_EXIT
    assert "Error" in capsys.readouterr().err
