"""Scales for display and gating: one registry :data:`TRANSFORMS` of Gating-ML 2.0 transforms (``flin``,
``flog``, ``fasinh``, ``logicle``, ``hyperlog``) plus ``linear`` and ``arcsinh`` (cofactor).

* :func:`get_transform` ``(name, **params) -> Transform`` with ``forward(x)`` / ``inverse(y)``;
* :func:`transform` ``(sample, spec) -> Sample`` records what it applied in ``Sample.transforms``;
  :func:`untransform` undoes it;
* :func:`estimate_logicle` fits logicle ``W`` per channel from the data (flowCore's estimateLogicle rule).

Inputs to ``forward`` are linear-scale values; Gating-ML scales put the top of scale ``T`` at 1.
"""
from .apply import plan_transforms, transform, untransform
from .base import Transform
from .biex import Hyperlog, Logicle
from .estimate import LogicleEstimate, estimate_logicle, estimate_logicle_details
from .registry import TRANSFORMS, as_transform, get_transform, parse_transform
from .simple import ArcSinh, FASinh, FLin, FLog, Linear

__all__ = [
    "TRANSFORMS", "Transform", "get_transform", "parse_transform", "as_transform", "transform",
    "untransform", "plan_transforms", "estimate_logicle", "estimate_logicle_details", "LogicleEstimate",
    "Logicle", "Hyperlog", "FLin", "FLog", "FASinh", "Linear", "ArcSinh",
]
