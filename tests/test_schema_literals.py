"""Results-table column names are spelled once, in :mod:`cytokit.results.schema`; library modules use its
constants (``S.PCT_PARENT``), not string literals. A string that happens to equal a column name but means
something else (a YAML key, a gate method, an XML attribute, a key of another file) stays literal: the
module is listed in :data:`ALLOWED` with the literals it may spell and why."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import cytokit
from cytokit.results import schema

ROOT = Path(cytokit.__file__).parent
COLUMN_NAMES = frozenset(schema.COLUMNS) | {schema.LYMPHOCYTES_PER_UL}

#: module (relative to the package's parent) -> (literals it may spell, why they are not results columns)
ALLOWED: dict[str, tuple[frozenset[str], str]] = {
    "cytokit/cli/compensate_cmd.py": (frozenset({"file"}), "header names accepted in a user's controls table"),
    "cytokit/cli/inspect_cmd.py": (frozenset({"file", "flags", "error"}), "keys of `cytokit inspect --json`"),
    "cytokit/fcs/summary.py": (frozenset({"file", "sha256", "n_events"}), "keys of an FCS file's summary"),
    "cytokit/cluster/model.py": (frozenset({"n_events"}), "key of the clustering fit's info"),
    "cytokit/cluster/phenotype.py": (frozenset({"population", "phenotype", "parent"}),
                                     "keys of the phenotype definitions YAML"),
    "cytokit/cluster/thresholds.py": (frozenset({"method"}), "key of a threshold estimate's info"),
    "cytokit/compensation/estimate.py": (frozenset({"file", "method"}), "columns of the spillover estimate report"),
    "cytokit/flowjo/diva.py": (frozenset({"tube", "parent"}), "FACSDiva XML element names"),
    "cytokit/flowjo/nodes.py": (frozenset({"count"}), "FlowJo XML attribute"),
    "cytokit/flowjo/writer.py": (frozenset({"count", "status"}), "FlowJo XML attributes"),
    "cytokit/gating/cohort.py": (frozenset({"phenotype"}), "gate method name"),
    "cytokit/gating/methods/__init__.py": (frozenset({"phenotype"}), "gate method name"),
    "cytokit/gating/methods/confidence.py": (frozenset({"method"}), "key of a threshold fit's info"),
    "cytokit/gating/methods/density.py": (frozenset({"n_events", "method"}), "keys of a gate fit's info"),
    "cytokit/gating/methods/lone_mode.py": (frozenset({"method"}), "keys of a gate fit's info (the lone mode's placement)"),
    "cytokit/gating/methods/scatter.py": (frozenset({"n_events"}), "key of a gate fit's info"),
    "cytokit/gating/methods/threshold.py": (frozenset({"est_error_pp"}), "key of a gate fit's info"),
    "cytokit/gating/model.py": (frozenset({"method", "file"}), "strategy YAML field and compensation mode"),
    "cytokit/gating/parent_edge.py": (frozenset({"phenotype", "method"}),
                                      "gate method name and key of a threshold fit's info (its placement)"),
    "cytokit/gating/strategy.py": (frozenset({"method"}), "strategy parameter name (set_params)"),
    "cytokit/trial/run.py": (frozenset({"notes"}), "key of the trial summary template's context (the analysis notes)"),
    "cytokit/interop/anndata.py": (frozenset({"method", "flags", "sha256"}), "keys of AnnData .uns"),
    "cytokit/interop/flowkit.py": (frozenset({"count"}), "column of FlowKit's own gating report"),
    "cytokit/learn/api.py": (frozenset({"population"}), "key of a tuning decision record (learn.search)"),
    "cytokit/learn/derive.py": (frozenset({"parent", "phenotype", "lymphocytes"}),
                                "keys and gate method names of the strategy YAML it writes"),
    "cytokit/learn/search.py": (frozenset({"phenotype", "population", "method"}),
                                "gate method names; keys of the record of tuned parameters"),
    "cytokit/learn/slots.py": (frozenset({"phenotype"}), "gate method name"),
    "cytokit/learn/fallback.py": (frozenset({"method"}), "key of a threshold fit's info (the rule that placed it)"),
    "cytokit/notebook/controls.py": (frozenset({"population"}), "kind of a shared editor control (a population below the gate)"),
    "cytokit/pipeline/config.py": (frozenset({"method"}), "pipeline YAML key (counts.method)"),
    "cytokit/pipeline/outputs.py": (frozenset({"population"}), "array name inside events.npz"),
    "cytokit/pipeline/preflight.py": (frozenset({"population", "tube"}), "clustering options of the pipeline YAML"),
    "cytokit/pipeline/runner.py": (frozenset({"file", "lymphocytes", "status"}),
                                   "run_info.json keys and a compensation mode"),
    "cytokit/report/build.py": (frozenset({"patient"}), "default file name of a patient report"),
    "cytokit/results/denominators.py": (frozenset({"lymphocytes"}), "run_info.json key of a tube"),
    "cytokit/results/reader.py": (frozenset({"week"}), "dtype kind of a schema Column"),
    "cytokit/simulate/phenotypes.py": (frozenset({"tube"}), "column of the simulator's phenotype catalogue"),
    "cytokit/simulate/trial.py": (frozenset({"n_events", "flags"}), "acquisition log column; truth/flags folder"),
    "cytokit/simulate/truth.py": (frozenset({"flags"}), "truth/flags folder"),
}


def column_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in ``source`` equal to a results column name, except
    docstrings, parts of f-strings, ``Literal[...]`` annotations, attribute names given to
    ``getattr``-like calls and ``__all__``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    docstrings = {node.body[0].value for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}

    def exempt(node: ast.AST) -> bool:
        child, parent = node, parents.get(node)
        while parent is not None:
            if isinstance(parent, ast.JoinedStr) or isinstance(parent, ast.arg):
                return True
            if isinstance(parent, ast.Subscript) and isinstance(parent.value, ast.Name) and parent.value.id == "Literal":
                return True
            if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in {
                    "getattr", "hasattr", "setattr", "delattr"}:
                return True
            if isinstance(parent, ast.AnnAssign) and child is parent.annotation:
                return True
            if isinstance(parent, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                      for t in parent.targets):
                return True
            child, parent = parent, parents.get(parent)
        return False

    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value in COLUMN_NAMES and node not in docstrings and not exempt(node))


def test_library_modules_name_results_columns_by_the_schema_constants() -> None:
    found: dict[str, list[tuple[int, str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "results" / "schema.py":
            continue
        hits = column_literals(path.read_text(encoding="utf-8"))
        if hits:
            found[path.relative_to(ROOT.parent).as_posix()] = hits
    assert len(found) >= 1  # the allowed ones at least: the scan sees literals
    unexpected = {module: [f"line {line}: {text!r}" for line, text in hits
                           if text not in ALLOWED.get(module, (frozenset(), ""))[0]]
                  for module, hits in found.items()}
    unexpected = {m: h for m, h in unexpected.items() if h}
    assert not unexpected, ("results-table column names spelled as literals (use cytokit.results.schema, or list "
                            f"the module in ALLOWED with the reason): {unexpected}")
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"listed in ALLOWED but spelling no column name any more (remove them): {stale}"


def test_the_literal_scan_sees_column_names_but_not_docstrings_or_fstrings() -> None:
    source = '''"""pct_parent in a docstring"""
from typing import Literal
Measure = Literal["pct_parent", "abs_count_per_uL"]
def f(df, x: Literal["count"] = "count"):
    """count"""
    name = f"{df['population']}"
    return df["pct_parent"], getattr(df, "count"), "pct_parents"
'''
    assert column_literals(source) == [(4, "count"), (7, "pct_parent")]


def test_the_schema_can_be_imported_without_the_reader() -> None:
    """Column constants are usable anywhere (CLI start-up included): importing them loads no pandas."""
    probe = ("import sys\nfrom cytokit.results import schema\nassert schema.PCT_PARENT == 'pct_parent'\n"
             "print('pandas' in sys.modules, 'cytokit.results.reader' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]
