"""Gate-evaluation speed of cytokit's own Gating-ML / FlowJo path against FlowKit, in one process.

Run: ``python benchmarks/interop_gating.py [--repeats R] [--data ../shared/data]``. Two workloads:

1. ``gates2.xml`` (40 gates: polygons, ellipses, logicle/hyperlog/fasinh, FCS compensation) applied to
   ``data2.fcs`` (10,000 events) and ``gates5.xml`` (logicle polygons + booleans) to ``9399_1_3_NKR.fcs``
   (124,600 events): parse the document, read the FCS file, evaluate every gate.
2. FlowJo workspace ``flowsom_68983/gating.wsp`` applied to ``68983.fcs`` (19,225 events, 15 gates, biex).

Each is run ``R`` times with cytokit and with FlowKit 1.3.2; the script prints median wall times and the
ratio FlowKit / cytokit (> 1 means cytokit is faster). No timing is asserted anywhere.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

from cytokit.fcs import read_fcs
from cytokit.flowjo import read_workspace, workspace_counts
from cytokit.gatingml import evaluate_document, read_gatingml


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    import flowkit as fk

    warnings.simplefilter("ignore")
    gml = args.data / "gatingml2"
    workloads = [("gates2.xml", "data2.fcs"), ("gates5.xml", "9399_1_3_NKR.fcs")]
    # warm-up (imports, JIT) outside the timed runs
    evaluate_document(read_gatingml(gml / "Gating-MLFiles" / "gates5.xml"), read_fcs(gml / "FCSFiles" / "9399_1_3_NKR.fcs"))
    for xml, fcs in workloads:
        xml_path, fcs_path = gml / "Gating-MLFiles" / xml, gml / "FCSFiles" / fcs

        def ours() -> None:
            evaluate_document(read_gatingml(xml_path), read_fcs(fcs_path))

        def theirs() -> None:
            fk.parse_gating_xml(str(xml_path)).gate_sample(fk.Sample(str(fcs_path)))

        t_ours, t_fk = _median(ours, args.repeats), _median(theirs, args.repeats)
        print(f"Gating-ML {xml} on {fcs}: cytokit {t_ours * 1000:.1f} ms, FlowKit {t_fk * 1000:.1f} ms, "
              f"ratio FlowKit/cytokit {t_fk / t_ours:.2f}")

    wsp, fcs = args.data / "flowsom_68983" / "gating.wsp", args.data / "flowsom_68983" / "68983.fcs"

    def ours_wsp() -> None:
        workspace_counts(read_workspace(wsp), read_fcs(fcs))

    def theirs_wsp() -> None:
        w = fk.Workspace(str(wsp), fcs_samples=str(fcs))
        w.analyze_samples()

    t_ours, t_fk = _median(ours_wsp, args.repeats), _median(theirs_wsp, args.repeats)
    print(f"FlowJo gating.wsp on 68983.fcs: cytokit {t_ours * 1000:.1f} ms, FlowKit {t_fk * 1000:.1f} ms, "
          f"ratio FlowKit/cytokit {t_fk / t_ours:.2f}")


if __name__ == "__main__":
    main()
