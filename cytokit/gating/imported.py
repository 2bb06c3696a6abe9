"""Apply a Gating-ML 2.0 file or a FlowJo workspace as a *fixed* strategy (no fitting).

The imported gates carry their own channels, compensation and transforms, so they are evaluated on the
raw Sample by :func:`cytokit.gatingml.evaluate_document`; the result is a :class:`GatingResult` like any
other (population table, masks, gates, plots), with method ``fixed``. This is how a lab's FlowJo template
(the same gates for every file) is run through the pipeline and compared with automated gating.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..gates import BooleanGate
from ..sample import Sample
from .fit_state import FitState
from .methods import FitResult
from .preprocess import QCOutcome
from .model import PopulationSpec, StrategyDefinition, TransformsSection, TransformChoice
from .result import GatingResult
from .strategy import Strategy

if TYPE_CHECKING:  # pragma: no cover
    from ..flowjo.model import FlowJoSample


def _read_document(path: Path, sample_id: str | None) -> Any:
    """The gate hierarchy of a Gating-ML file, or of one sample of a FlowJo workspace (``sample_id``:
    id, name, FCS file name or $FIL; default: the first sample that has gates)."""
    if path.suffix.lower() == ".wsp":
        from ..flowjo import read_workspace

        ws = read_workspace(path)
        chosen: FlowJoSample | None
        if sample_id is not None:
            chosen = ws.sample(sample_id)
        else:
            chosen = next((s for s in ws.samples if s.document is not None), None)
        if chosen is None or chosen.document is None:
            raise ConfigError("the workspace has no sample with gates", path=path)
        return chosen.document
    from ..gatingml import read_gatingml

    return read_gatingml(path)


def _unique_names(document: Any) -> dict[str, str]:
    """Node id -> population name (the node's name, made unique with its path when names repeat)."""
    counts: dict[str, int] = {}
    for n in document.nodes:
        counts[n.name] = counts.get(n.name, 0) + 1
    return {n.id: (n.name if counts[n.name] == 1 else "/".join(document.path(n.id))) for n in document.nodes}


class ImportedStrategy(Strategy):
    """A fixed strategy built from a Gating-ML / FlowJo gate hierarchy."""

    def __init__(self, document: Any, path: str | Path, lymphocytes: str | None = None) -> None:
        from .export import with_xml_refs

        document = with_xml_refs(document)  # exported as is (Gating-ML, pipeline gates.xml): XML ids needed
        self.document = document
        names = _unique_names(document)
        pops = []
        try:
            for n in document.nodes:
                if isinstance(n.gate, BooleanGate):
                    ops = [("!" if comp else "") + names[g] for g, comp in n.gate.operands]
                    method, params, dims = "boolean", {"op": n.gate.op, "operands": ops}, ()
                else:
                    method, params = "fixed", {"gate": n.gate.to_dict()}
                    dims = tuple(d.name for d in n.dims)
                pops.append(PopulationSpec(name=names[n.id], parent=names[n.parent] if n.parent else None,
                                           dims=dims, method=method, params=params))
            names_list = [p.name for p in pops]
            denominator = lymphocytes or next((x for x in ("Singlets", "Lymphocytes") if x in names_list),
                                              names_list[0])
            definition = StrategyDefinition(
                name=Path(path).stem, description=f"fixed gates imported from {Path(path).name}",
                compensation="none", transforms=TransformsSection(scatter=TransformChoice(name="linear"),
                                                                  fluorescence=TransformChoice(name="linear")),
                lymphocytes=denominator, populations=pops)
        except ValidationError as exc:  # e.g. a population without a name
            msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"cannot use the gates as a strategy: {msgs}", path=path) from None
        super().__init__(definition, path)
        self._names = names

    def apply_prepared(self, prepared: Sample, plan: Any = (), *, qc: QCOutcome | None = None) -> GatingResult:
        """Evaluate the imported gates on the (QC-kept, raw linear) events: the gates carry their own
        compensation and transforms and name the file's own $PnN channels (a panel given to
        :meth:`apply` only relabels markers for display)."""
        from ..gatingml import evaluate_document

        masks = evaluate_document(self.document, prepared)
        state = FitState()
        for n in self.document.nodes:
            name = self._names[n.id]
            state.masks[name] = masks[n.id]
            state.fits[name] = FitResult(n.gate, (), {"fixed": True, "source": str(self.path)})
        return GatingResult(prepared, self.definition.model_copy(deep=True), tuple(plan), state,
                            document=self.document, qc=qc)

    def refit(self, result: GatingResult, name: str, **params: Any) -> GatingResult:
        raise ConfigError("an imported (fixed) strategy has nothing to refit; save it as YAML and edit the "
                          "gates instead", path=self.path)


def strategy_from_file(path: str | Path, *, sample_id: str | None = None,
                       lymphocytes: str | None = None) -> ImportedStrategy:
    """A fixed strategy from a Gating-ML 2.0 (``.xml``) or FlowJo (``.wsp``) file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("gating file not found", path=path)
    return ImportedStrategy(_read_document(path, sample_id), path, lymphocytes=lymphocytes)
