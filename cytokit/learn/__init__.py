"""Strategies learned from a lab's expert gates, and agreement of any gating with expert gates.

>>> result = learn_strategy("expert.wsp", ["fcs/"], strategy="tmem", mapping="mapping.yaml")  # doctest: +SKIP
>>> result.summary("loso")                 # per population: F1 and |Δ%| left out   # doctest: +SKIP
>>> result.save("learned/")                # tuned YAML + agreement.csv/html       # doctest: +SKIP
>>> suggest_samples(["fcs/"], 2, strategy="tmem").samples   # which samples to gate  # doctest: +SKIP
"""
from .agreement import f1_score, summarise, worst_first
from .api import LearnResult, compare_gates, learn_strategy
from .expert import expert_masks, load_expert, load_mapping
from .suggest import Suggestion, suggest_samples

__all__ = ["LearnResult", "compare_gates", "expert_masks", "f1_score", "learn_strategy", "load_expert",
           "load_mapping", "suggest_samples", "Suggestion", "summarise", "worst_first"]
