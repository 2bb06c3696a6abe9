"""Safe YAML loading into validated pydantic models, with errors that name file, line and field.

Contract: definitions are loaded only with ``yaml.SafeLoader`` (or its C build ``CSafeLoader``; never ``yaml.load`` with a full loader);
:func:`load_model` raises :class:`~cytokit.errors.ConfigError` listing every problem as
``file:line: field.path: message``. A definition larger than :data:`MAX_DOCUMENT_BYTES`, or whose
aliases (``*name``) would expand to more than :data:`MAX_EXPANDED_NODES` nodes (a "billion laughs"
document), is refused before it is built.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

M = TypeVar("M", bound=BaseModel)

#: definitions are hand-written files of a few KB; anything this large is not one
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
#: PyYAML's safe loader, its libyaml (C) build when installed: same constructors, ~10x faster parsing
_SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: nodes of the document with every alias expanded (the largest built-in has a few thousand)
MAX_EXPANDED_NODES = 200_000


def _expanded_size(root: yaml.Node, path: Path) -> int:
    """Number of nodes of ``root`` with aliases expanded, computed without expanding them."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is None:
            known = 1 + sum(size(child) for child in _children(node))
            if known > MAX_EXPANDED_NODES:
                raise ConfigError(f"{path}: YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; "
                                  "a definition file this large is refused (check '*' aliases)")
            sizes[id(node)] = known
        return known

    return size(root)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path (tuple of keys/indices) to its 1-based line in the document."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _line_map(item, path + (i,), out)
    return out


def read_yaml(path: str | Path) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file safely; returns (data, line map). Syntax errors become ConfigError."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise ConfigError(f"definition is larger than {MAX_DOCUMENT_BYTES // 1024 // 1024} MB; "
                              "not a definition file", path=path)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read definition: {exc}", path=path) from exc
    loader = _SAFE_LOADER(text)
    try:  # one parse: compose the node graph, check its expanded size, then build the data from it
        node = loader.get_single_node()
        if node is not None:
            _expanded_size(node, path)
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    finally:
        loader.dispose()
    return data, (_line_map(node) if node is not None else {})


def format_validation_error(exc: ValidationError, path: str | Path, lines: dict[tuple, int]) -> str:
    """One line per problem: ``file:line: field.path: message``."""
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        line = None
        for k in range(len(loc), -1, -1):  # nearest enclosing key that has a line
            if loc[:k] in lines:
                line = lines[loc[:k]]
                break
        field = ".".join(str(p) for p in loc) or "(top level)"
        problems.append(f"{path}:{line if line else '?'}: {field}: {err.get('msg')}")
    return "invalid definition:\n  " + "\n  ".join(problems)


def load_model(path: str | Path, model: type[M], *, context: dict | None = None) -> M:
    """Load a YAML file into ``model``; any problem raises ConfigError naming file, line and field."""
    data, lines = read_yaml(path)
    if data is None:
        raise ConfigError("definition file is empty", path=path)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, lines)) from exc


def dump_yaml(data: Any) -> str:
    """Serialise plain data to YAML text (block style, keys in insertion order)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
