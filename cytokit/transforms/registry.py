"""The single registry of scales and the ways to name one (``get_transform``, ``parse_transform``)."""
from __future__ import annotations

import ast
import re
from typing import Any, Mapping

from ..errors import TransformError
from .base import Transform
from .biex import Hyperlog, Logicle
from .simple import ArcSinh, FASinh, FLin, FLog, Linear

#: name → Transform class. Gating-ML 2.0 names (flin, flog, fasinh, logicle, hyperlog) plus the gating
#: conveniences ``linear`` and ``arcsinh``. Adding a scale = one class + one entry.
TRANSFORMS: Mapping[str, type[Transform]] = {
    "flin": FLin,
    "flog": FLog,
    "fasinh": FASinh,
    "logicle": Logicle,
    "hyperlog": Hyperlog,
    "linear": Linear,
    "arcsinh": ArcSinh,
}

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)


def get_transform(name: str, **params: Any) -> Transform:
    """A configured transform: ``get_transform("logicle", T=262144, W=0.5, M=4.5, A=0)``.

    Unknown names or parameters raise :class:`TransformError` listing what is accepted.
    """
    key = str(name).strip().lower()
    cls = TRANSFORMS.get(key)
    if cls is None:
        raise TransformError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
    accepted = [f for f in cls.__dataclass_fields__.values() if f.init]
    names = {f.name for f in accepted}
    unknown = sorted(set(params) - names)
    if unknown:
        raise TransformError(
            f"{key}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(f.name for f in accepted)}"
        )
    return cls(**params)


def parse_transform(text: str) -> Transform:
    """Parse ``"logicle"`` or ``"logicle(T=262144, W=0.5, M=4.5, A=0)"`` (what ``describe()`` writes)."""
    m = _CALL.match(str(text))
    if not m:
        raise TransformError(f"cannot parse transform {text!r}; expected e.g. 'logicle(T=262144, W=0.5)'")
    name, args = m.group(1), (m.group(2) or "").strip()
    params: dict[str, Any] = {}
    if args:
        try:
            call = ast.parse(f"f({args})", mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            for kw in call.keywords:
                if kw.arg is None:  # f(**mapping)
                    raise ValueError("unpacked keywords")
                params[kw.arg] = ast.literal_eval(kw.value)
        except (SyntaxError, ValueError, AssertionError, TypeError):
            raise TransformError(
                f"cannot parse parameters of transform {text!r}; write name(key=number, ...)"
            ) from None
    return get_transform(name, **params)


def as_transform(spec: Any) -> Transform:
    """A Transform from an instance, a name / ``describe()`` text, or a mapping ``{name: ..., **params}``."""
    if isinstance(spec, Transform):
        return spec
    if isinstance(spec, str):
        return parse_transform(spec)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        name = spec.pop("name", None) or spec.pop("transform", None)
        if name is None:
            raise TransformError(f"transform spec {spec!r} has no 'name'")
        params = dict(spec.pop("params", None) or {})
        params.update(spec)
        return get_transform(name, **params)
    raise TransformError(f"cannot make a transform from {spec!r}")
