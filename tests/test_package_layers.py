"""Package boundaries: lower modules never import higher ones, not even inside a function (an import
inside a function that only hides a cycle is a cycle all the same)."""
from __future__ import annotations

import ast
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
