"""Package boundaries: lower modules never import higher ones, not even inside a function (an import
inside a function that only hides a cycle is a cycle all the same), and the module import graph of
``cytokit`` has no cycle."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import cytokit

ROOT = Path(cytokit.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every cytokit module a file imports, at module level or inside functions (absolute names)."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("cytokit")}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_edges(path: Path, modules: set[str], root: Path = ROOT) -> dict[str, int]:
    """Module -> first line where ``path`` imports it: at module level, inside functions, classes and
    ``try`` blocks alike; ``if TYPE_CHECKING:`` blocks (annotations only, never run) are left out.
    ``from pkg import name`` is an import of ``pkg.name`` when that is a module, else of ``pkg``. Only
    modules in ``modules`` count; a package ``__init__`` is a node of its own (importing ``pkg.mod`` is
    not counted as importing ``pkg``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in modules and target != name:
            edges.setdefault(target, line)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_node(other)
            else:
                visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                add(sub if sub in modules else target, node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        else:
            visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return edges


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Every module of the package under ``root`` -> the modules it imports (with the line)."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    return {name: import_edges(path, set(paths), root) for name, path in paths.items()}


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def describe_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    members = set(component)
    return "\n".join(f"  {a} imports {b} (line {line})" for a in component
                     for b, line in sorted(graph[a].items()) if b in members)


def test_the_module_import_graph_has_no_cycle() -> None:
    """No two cytokit modules import each other, directly or through others, counting imports inside
    functions (``TYPE_CHECKING`` imports are annotations only and left out). A cycle means a shared piece
    wants a lower module of its own (or a registry the higher modules fill)."""
    graph = import_graph()
    assert len(graph) > 100 and any(graph.values())
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe_cycle(graph, c) for c in cycles)


#: package-level import edges that close a cycle between packages although the module graph has none,
#: each with its reason. Any other edge closing a package cycle fails; an entry that no longer closes one
#: must be removed.
PACKAGE_CYCLE_EDGES: dict[tuple[str, str], str] = {
    ("cytokit.sample", "cytokit.interop"):
        "Sample.to_flowkit/from_flowkit (public) call interop.flowkit_sample, which sits below the Sample",
    ("cytokit.gating", "cytokit.interop"):
        "GatingResult.to_flowkit/to_anndata (public) delegate to interop, which reads results via gating.export",
    ("cytokit.cluster", "cytokit.pipeline"):
        "the cluster stage re-runs the per-sample chain of stored samples via pipeline.events, while "
        "pipeline.stages/preflight run and check the cluster stage",
}


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """Top-level package (or module) of cytokit -> the packages it imports (with one importing module)."""
    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, dict[str, str]] = {top(m): {} for m in graph if m != "cytokit"}
    for module, targets in graph.items():
        for target in targets:
            a, b = top(module), top(target)
            if a != b and "cytokit" not in (a, b):
                out[a].setdefault(b, f"{module} imports {target}")
    return out


def test_packages_import_each_other_only_through_the_listed_edges() -> None:
    packages = package_graph(import_graph())
    plain = {a: {b: 0 for b in targets} for a, targets in packages.items()}
    cycles = import_cycles(plain)
    closing = {(a, b) for c in cycles for a in c for b in packages[a] if b in c}
    stale = sorted(set(PACKAGE_CYCLE_EDGES) - closing)
    assert not stale, f"these listed edges no longer close a package cycle; remove them: {stale}"
    without = {a: {b: 0 for b in targets if (a, b) not in PACKAGE_CYCLE_EDGES} for a, targets in packages.items()}
    left = import_cycles(without)
    assert not left, "package cycles:\n" + "\n".join(
        f"  {a} -> {b}: {packages[a][b]}" for c in left for a in c for b in sorted(packages[a]) if b in c)


def test_the_cycle_check_sees_imports_inside_functions_but_not_type_checking_blocks(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "low.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .high import High     # annotations only: no edge
            def helper():
                from .sub import hidden    # an import inside a function is an edge
                return hidden
            """,
        "high.py": "from . import low\nclass High: ...\n",
        "sub/__init__.py": "",
        "sub/hidden.py": """
            def back():
                try:
                    import pkg.low
                except ImportError:
                    pass
            """,
    }
    for name, text in sources.items():
        (pkg / name).write_text(textwrap.dedent(text), encoding="utf-8")
    graph = import_graph(pkg)
    assert graph["pkg.low"] == {"pkg.sub.hidden": 6}
    assert graph["pkg.high"] == {"pkg.low": 1}
    assert import_cycles(graph) == [["pkg.low", "pkg.sub.hidden"]]
    (pkg / "sub/hidden.py").write_text("def back():\n    return 1\n", encoding="utf-8")
    assert import_cycles(import_graph(pkg)) == []


def files(package: str) -> list[Path]:
    base = ROOT.joinpath(*package.split(".")[1:])
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


@pytest.mark.parametrize(("lower", "higher"), [
    ("cytokit.scales", "cytokit.gatingml"),     # scales sit below Gating-ML and FlowJo
    ("cytokit.scales", "cytokit.flowjo"),
    ("cytokit.gatingml", "cytokit.flowjo"),     # the neutral model and its evaluator know no FlowJo
    ("cytokit.results", "cytokit.pipeline"),    # the results-folder schema/reader is below every stage
    ("cytokit.results", "cytokit.trial"),
    ("cytokit.results", "cytokit.report"),
    ("cytokit.results", "cytokit.cluster"),
    ("cytokit.pipeline.events", "cytokit.cluster"),
    ("cytokit.gating.strategy", "cytokit.gating.imported"),
    ("cytokit.flowjo.flowjo10", "cytokit.flowjo.reader"),  # dialects know nothing of the dispatcher
    ("cytokit.flowjo.flowjo9", "cytokit.flowjo.reader"),
    ("cytokit.flowjo.diva", "cytokit.flowjo.reader"),
    ("cytokit.flowjo.nodes", "cytokit.flowjo.reader"),
    ("cytokit.sample", "cytokit.interop.flowkit"),      # Sample's FlowKit methods use the lower flowkit_sample
    ("cytokit.fcs", "cytokit.interop"),
    ("cytokit.pipeline.analyse", "cytokit.pipeline.outputs"),  # the per-sample chain is below run outputs
    ("cytokit.cluster.phenotype", "cytokit.cluster.thresholds"),  # tables < thresholds < naming (not even
    ("cytokit.cluster.phenotype", "cytokit.cluster.naming"),      # for annotations)
    ("cytokit.cluster.thresholds", "cytokit.cluster.naming"),
    ("cytokit.trial.figures", "cytokit.trial.run"),  # the run hands figures and HTML their data, one way
    ("cytokit.trial.html", "cytokit.trial.run"),
])
def test_lower_modules_do_not_import_higher_ones(lower, higher):
    for path in files(lower):
        bad = sorted(m for m in imported_modules(path) if m == higher or m.startswith(higher + "."))
        assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"


def test_every_scale_kind_of_the_model_has_one_registered_function():
    from cytokit.scales import SCALES, scale_transform

    assert {"flin", "flog", "fasinh", "logicle", "hyperlog", "flowjo_biex", "flowjo_log", "flowjo_table"} <= set(SCALES)

    class Spec:
        id, kind, params = "t", "flowjo_log", {"offset": 1.0, "decades": 4.0}

    assert float(scale_transform(Spec()).forward(10.0)) == pytest.approx(0.25)


def test_every_public_name_of_the_package_resolves() -> None:
    """``import cytokit as ck``: each name of ``ck.__all__`` is importable from the module it is mapped to."""
    import cytokit as ck

    for name in ck.__all__:
        assert getattr(ck, name) is not None, name
