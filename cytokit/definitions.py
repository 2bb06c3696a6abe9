"""Where built-in definitions (panels, gating strategies, pipelines) live.

They are YAML files in the repository's top-level ``panels/``, ``gating/`` and ``pipelines/`` folders,
shipped inside the wheel as ``cytokit/builtin/<kind>/``. A definition is named either by a path to a YAML
file or by the stem of a built-in (``"tcell_memory"``).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ConfigError

KINDS = ("panels", "gating", "pipelines")


def builtin_dir(kind: str) -> Path:
    """The folder holding the built-in definitions of one kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown definition kind {kind!r}; expected one of {KINDS}")
    return Path(str(resources.files("cytokit") / "builtin" / kind))


def list_builtins(kind: str) -> list[str]:
    """Stems of the built-in YAML definitions of one kind, sorted."""
    folder = builtin_dir(kind)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_definition(name_or_path: str | Path, kind: str) -> Path:
    """A path to an existing YAML file, or the built-in of that name; else :class:`ConfigError`."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"{kind[:-1] if kind != 'gating' else 'strategy'} file not found", path=candidate)
        return candidate
    builtin = builtin_dir(kind) / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    raise ConfigError(
        f"no {kind} definition named {str(name_or_path)!r}; built-ins are: {', '.join(list_builtins(kind)) or 'none'}"
    )
