"""Load a gating strategy: a built-in name (``"tmem"``), a strategy YAML, or a Gating-ML 2.0 (``.xml``) /
FlowJo (``.wsp``) file applied as a fixed strategy (:mod:`.imported`).

Kept apart from :mod:`.strategy` so that :mod:`.imported` (a :class:`~.strategy.Strategy` subclass) and
the YAML strategies are both imported at the top, without a cycle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..definitions import resolve_definition
from ..yamlio import load_model
from .imported import strategy_from_file
from .model import StrategyDefinition
from .strategy import Strategy

#: file suffixes read as imported (fixed) strategies
IMPORT_SUFFIXES = (".xml", ".wsp")


def load_strategy(name_or_path: str | Path, **import_options: Any) -> Strategy:
    """A strategy from a built-in name, a YAML path, or a Gating-ML (``.xml``) / FlowJo (``.wsp``) file."""
    p = Path(name_or_path)
    if p.suffix.lower() in IMPORT_SUFFIXES:
        return strategy_from_file(p, **import_options)
    path = resolve_definition(name_or_path, "gating")
    definition = load_model(path, StrategyDefinition)
    panel = definition.panel
    if panel and (panel.endswith((".yaml", ".yml")) or "/" in panel or "\\" in panel) \
            and not Path(panel).expanduser().is_absolute():  # a path relative to the strategy file's folder
        definition = definition.model_copy(update={"panel": str((Path(path).parent / panel).resolve())})
    return Strategy(definition, path)
