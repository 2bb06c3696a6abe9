"""Execute notebooks/gate_tuning.ipynb with the project's Python (nbclient)."""
from __future__ import annotations

import sys

import nbformat
from nbclient import NotebookClient


def test_gate_tuning_notebook_runs(repo_root, tmp_path):
    nb = nbformat.read(repo_root / "notebooks" / "gate_tuning.ipynb", as_version=4)
    # the native "python3" kernel of ipykernel runs the interpreter that runs the tests (the venv's)
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] in (sys.executable, "python", "python3") or "venv" in spec.argv[0], spec.argv
    client = NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(repo_root / "notebooks")}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "CD25+ CD4:" in outputs and "% of CD4 T" in outputs
    assert "Gating-ML" in outputs
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
