"""Gating strategy definitions: the pydantic models behind ``gating/*.yaml``.

A strategy names the panel it expects (markers, not channels, so one strategy serves every instrument),
how to prepare events (compensation with the file's matrix; transforms per channel kind or marker), the
lymphocyte-denominator population, and an ordered population hierarchy. Each population has a parent
(``null`` = all events), dimensions named by marker (or scatter name: ``FSC-A``, ``SSC-A``...), a gate
method from :data:`cytokit.gating.methods.GATE_METHODS` and that method's parameters, which are
validated when the file is loaded (errors give file, line and field).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .lymphocyte_doublets import counts_doublets
from .methods import GATE_METHODS
from .scatter_reference import backgate_reference
from .threshold_floor import FLOORED_METHODS


def reference_operands(expression: str) -> list[tuple[str, bool]]:
    """The populations of a ``negative_reference`` expression and whether each is negated: ``"Singlets &
    !T cells"`` -> ``[("Singlets", False), ("T cells", True)]`` (their intersection is the reference)."""
    out = []
    for op in expression.split(" & "):
        op = op.strip()
        out.append((op[1:].strip(), True) if op.startswith("!") else (op, False))
    return out


class TransformChoice(BaseModel):
    """One channel transform.

    ``name`` is ``linear`` (values kept as read) or a transform of :mod:`cytokit.transforms` (``logicle``,
    ``fasinh``, ``flog``, ``flin``, ``hyperlog``). Parameters follow Gating-ML 2.0; ``T: range`` means the
    channel's $PnR, and for logicle ``W: estimate`` estimates the linearisation width from the sample's
    negative values (Parks et al. 2006).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "linear"
    T: float | Literal["range"] = "range"
    W: float | Literal["estimate"] | None = None
    M: float | None = None
    A: float | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        known = ("linear", "logicle", "fasinh", "flog", "flin", "hyperlog")
        if v not in known:
            raise ValueError(f"unknown transform {v!r}; known: {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _estimate_only_logicle(self) -> "TransformChoice":
        if self.W == "estimate" and self.name not in ("logicle", "hyperlog"):
            raise ValueError("W: estimate is only defined for logicle/hyperlog")
        return self


class TransformsSection(BaseModel):
    """Transforms by channel kind, with per-marker overrides (``markers: {CD3: {name: logicle, W: 0.5}}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scatter: TransformChoice = TransformChoice(name="linear")
    fluorescence: TransformChoice = TransformChoice(name="logicle", W="estimate", M=4.5, A=0.0)
    markers: dict[str, TransformChoice] = Field(default_factory=dict)


class PopulationSpec(BaseModel):
    """One population of the hierarchy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    parent: str | None = None
    dims: tuple[str, ...] = ()
    method: str
    params: dict[str, Any] = Field(default_factory=dict)
    phenotype: str | None = Field(None, description="e.g. 'CD3+ CD4+ CD45RA+ CD62L+' (for reports)")
    optional: bool = Field(False, description="skip (no row) when a dimension is absent from the sample")
    negative_reference: str | None = Field(
        None, description="a population defined above this one whose events are mostly negative for this "
                          "gate's markers (an internal negative control, e.g. Singlets for CD25 on CD4 T): its "
                          "main mode on the same channel, in the same file, decides whether a lone mode is "
                          "negative or positive (threshold-type methods only). Several populations joined by "
                          "' & ', each optionally negated with '!', name their intersection: 'Singlets & "
                          "!T cells' = the CD3- single lymphocytes")
    threshold_floor: dict[str, str] = Field(
        default_factory=dict,
        description="marker -> a population defined above this one with a threshold on that marker: this gate's "
                    "threshold on the marker is never placed below that population's in the same file (e.g. Treg: "
                    "{CD25: CD25+ CD4}, a CD25hi cell is CD25+); where the floor moves many events both gates are "
                    "flagged for review (threshold, quadrant and phenotype methods)")
    description: str | None = None

    @field_validator("method")
    @classmethod
    def _method_known(cls, v: str) -> str:
        if v not in GATE_METHODS:
            raise ValueError(f"unknown gate method {v!r}; known: {', '.join(sorted(GATE_METHODS))}")
        return v

    @model_validator(mode="after")
    def _params_valid(self) -> "PopulationSpec":
        m = GATE_METHODS[self.method]
        if m.n_dims is not None and len(self.dims) not in m.n_dims:
            raise ValueError(f"population {self.name!r}: method {self.method!r} takes "
                             f"{' or '.join(map(str, m.n_dims))} dimension(s), got {list(self.dims)}")
        if self.threshold_floor and self.method not in FLOORED_METHODS:
            raise ValueError(f"population {self.name!r}: method {self.method!r} takes no threshold_floor "
                             f"({', '.join(sorted(FLOORED_METHODS))} methods only)")
        unknown = sorted(set(self.threshold_floor) - set(self.dims))
        if unknown:
            raise ValueError(f"population {self.name!r}: threshold_floor names {unknown}, not among its dims "
                             f"{list(self.dims)}")
        if self.negative_reference is not None and not m.takes_reference:
            raise ValueError(f"population {self.name!r}: method {self.method!r} takes no negative_reference "
                             f"(threshold-type methods only)")
        try:
            m.validate_params(self.params)
        except ValidationError as exc:
            msgs = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"population {self.name!r} ({self.method}): {msgs}") from None
        return self


class StrategyDefinition(BaseModel):
    """A whole gating strategy (see module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    panel: str | None = Field(None, description="built-in panel name or path used when none is given")
    tube: str | None = None
    compensation: Literal["file", "file_if_present", "none"] = "file"
    transforms: TransformsSection = TransformsSection()
    lymphocytes: str = Field("Singlets", description="denominator population of pct_lymphocytes")
    populations: list[PopulationSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _hierarchy(self) -> "StrategyDefinition":
        seen: set[str] = set()
        for p in self.populations:
            if p.name in seen:
                raise ValueError(f"population {p.name!r} is defined twice")
            if p.parent is not None and p.parent not in seen:
                raise ValueError(f"population {p.name!r}: parent {p.parent!r} must be defined above it")
            if p.negative_reference is not None:
                for operand, _ in reference_operands(p.negative_reference):
                    if operand not in seen:
                        raise ValueError(f"population {p.name!r}: negative_reference {operand!r} must be a "
                                         f"population defined above it")
            for dim, floor in p.threshold_floor.items():
                if floor not in seen:
                    raise ValueError(f"population {p.name!r}: threshold_floor {floor!r} must be a population "
                                     f"defined above it")
                other = self.population(floor)
                if dim not in other.dims or other.method not in FLOORED_METHODS:
                    raise ValueError(f"population {p.name!r}: threshold_floor {floor!r} places no threshold on {dim}")
            if p.method == "boolean":
                for op in p.params.get("operands", ()):
                    ref = op[1:].strip() if op.startswith("!") else op
                    if ref not in seen:
                        raise ValueError(f"population {p.name!r}: operand {ref!r} must be defined above it")
            seen.add(p.name)
        for p in self.populations:  # a scatter gate's back-gating reference lies below it
            ref = backgate_reference(p)
            if ref is not None and ref not in seen:
                raise ValueError(f"population {p.name!r}: backgate_reference {ref!r} is not one of the populations")
        if self.lymphocytes not in seen:
            raise ValueError(f"lymphocytes: {self.lymphocytes!r} is not one of the populations")
        for p in self.populations:  # a lab counting lymphocyte doublets in its scatter row removes them below it
            if counts_doublets(p):
                if not any(c.parent == p.name and c.method == "singlets" for c in self.populations):
                    raise ValueError(f"population {p.name!r}: lymphocyte_doublets: {p.params['lymphocyte_doublets']} "
                                     f"needs a population with method 'singlets' whose parent is {p.name!r} (it "
                                     "removes the doublets)")
                if self.lymphocytes == p.name:
                    raise ValueError(f"population {p.name!r}: lymphocyte_doublets: {p.params['lymphocyte_doublets']} "
                                     f"on the lymphocyte denominator ({self.lymphocytes!r}); its doublets are no "
                                     "lymphocytes")
        return self

    def population(self, name: str) -> PopulationSpec:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)


def dependents(definition: StrategyDefinition, name: str) -> list[str]:
    """``name`` and every population below it (children, grandchildren, boolean users), in order."""
    out = [name]
    for spec in definition.populations:
        refs = {spec.parent} if spec.parent else set()
        if spec.negative_reference:
            refs |= {name for name, _ in reference_operands(spec.negative_reference)}
        refs |= set(spec.threshold_floor.values())
        if spec.method == "boolean":
            refs |= {o.lstrip("!").strip() for o in spec.params.get("operands", ())}
        if spec.name not in out and refs & set(out):
            out.append(spec.name)
    return out


def defining_populations(definition: StrategyDefinition, name: str) -> list[str]:
    """The populations whose gates decide which events ``name`` holds besides its own gate: its parents up to
    the root and, for a boolean population, its operands and the populations defining them (nearest first,
    each once). Their gates move ``name``'s count and % of the lymphocyte denominator; its own gate moves
    its % of parent."""
    out: list[str] = []
    todo = [name]
    while todo:
        spec = definition.population(todo.pop(0))
        refs = [spec.parent] if spec.parent else []
        if spec.method == "boolean":
            refs += [o.lstrip("!").strip() for o in spec.params.get("operands", ())]
        for ref in refs:
            if ref != name and ref not in out:
                out.append(ref)
                todo.append(ref)
    return out


def ancestors(definition: StrategyDefinition, name: str) -> list[str]:
    """Parents of ``name`` up to the root (nearest first)."""
    out: list[str] = []
    parent = definition.population(name).parent
    while parent is not None:
        out.append(parent)
        parent = definition.population(parent).parent
    return out
