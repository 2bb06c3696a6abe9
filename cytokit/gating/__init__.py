"""Automated gating: strategies (YAML), a registry of gate methods, and the engine that applies them.

>>> strategy = load_strategy("tmem")                  # doctest: +SKIP
>>> result = strategy.apply(sample, panel="il2_trial") # doctest: +SKIP
>>> result.populations                                 # doctest: +SKIP
"""
from .methods import GATE_METHODS, FitResult, fit_gate
from .result import GatingResult
from .loading import load_strategy
from .strategy import Strategy

__all__ = ["GATE_METHODS", "FitResult", "GatingResult", "Strategy", "fit_gate", "load_strategy"]
