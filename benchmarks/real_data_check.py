"""Real human (and one mouse) files gated as a user from another lab would: is every number right or flagged?

For each real file of ``../shared/data`` (``CYTOKIT_SHARED_DATA``) whose panel the shipped gate kinds can
express, a panel and strategy written from the docs only (``benchmarks/real_data/*.yaml``, not shipped)
are applied by ``Strategy.apply`` (the pipeline's per-sample chain, QC on), by ``cytokit gate --table``
and by ``cytokit run`` (same counts required; the run's ``samples.lymphocytes`` is the strategy's
denominator), and every checked number gets a verdict:

* ``ok`` — plausible, or within ``TOLERANCE_PP`` (2 pp) of the expert's % of parent;
* ``flagged`` — not, but the row carries a review flag (:func:`cytokit.gating.methods.needs_review`),
  so a reader is told to look;
* ``SILENT`` — not, and nothing says so: the defect the project must not have.

Files and checks:

* ``flowkit/100715.fcs`` (FACSAria T-memory panel, no expert gates): plausibility — CD4 + CD8 of CD3
  (DN + DP ≤ 10 %), naive + CM + EM + TEMRA = CD4 (counts), CD28+ of CD4 in the adult range (70–100 %),
  live/dump gate applied (fewer events than its parent), compensation from $SPILLOVER once (the
  compensation check passes, no ``overcompensated``).
* ``flowjo9_diva/a2004…fcs`` vs FlowJo 9.2 counts of sample 2 and ``flowjo9_diva/diva/124500.fcs`` vs
  the DiVa counts: |Δ % of parent| per population the adaptive gates can express.
* ``gatingml2/…/9399_1_3_NKR.fcs``: NK (CD3/19− NKp46+) and T+B (CD3/19+) shares of live lymphocytes
  in a plausible range (NK 2–35 %, T+B 50–97 %).
* ``flowsom_68983`` (mouse, expert label per event): per-event F1 of the shipped ``mouse_lymphocytes``
  strategy (target ≥ 0.95 for every expert population).
* each file above re-exported already compensated with $SPILLOVER kept (compensated twice): every row
  moved > 2 pp from the published file's is flagged, and where the compensation check fails, every row
  gated on (or below a gate on) a channel compensation moves carries the review flag ``overcompensated``
  and no other row does (:func:`check_already_compensated`).

    nice .venv/bin/python benchmarks/real_data_check.py [--json OUT] [--no-cli]

Prints per file the checks and numbers; exit code 1 when any check is ``SILENT`` or an F1 is below 0.95,
0 otherwise (also when the data folder is absent: the script then says why it skipped).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from cytokit.compensation import compensate
from cytokit.compensation.check import FLAG_OVER, NOTE_UNCHECKED
from cytokit.errors import CytokitError
from cytokit.fcs import read_fcs
from cytokit.gating import load_strategy
from cytokit.gating.model import defining_populations
from cytokit.gating.methods import needs_review
from cytokit.gating.methods.edge import EDGE_WIDTH, NOTE_REL

REPO = Path(__file__).resolve().parents[1]
YAML = REPO / "benchmarks" / "real_data"
TOLERANCE_PP = 2.0
F1_TARGET = 0.95
EDGE_SHARE = 0.2   # printed when more of a population than this is within EDGE_WIDTH of one of its dividers
MOUSE_EXPERT = {"T cells": ["CD4 T cells", "CD8 T cells", "gd T cells"], "CD4 T": ["CD4 T cells"],
                "CD8 T": ["CD8 T cells"], "gd T": ["gd T cells"], "B cells": ["B cells"], "NK cells": ["NK cells"],
                "NKT cells": ["NK T cells"]}


def data_dir() -> Path:
    """The shared real-data folder (``CYTOKIT_SHARED_DATA``, default ``../shared/data`` of the repo)."""
    return Path(os.environ.get("CYTOKIT_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


@dataclass
class Check:
    """One checked number: what, the tool's value, the reference (expert value or plausible range),
    the verdict (ok | flagged | SILENT) and the flags of the rows involved."""

    file: str
    check: str
    value: float
    reference: str
    verdict: str
    flags: str = ""


def verdict(good: bool, flags: list[str]) -> str:
    """``ok`` when the number is right, else ``flagged`` when any involved row needs review, else SILENT."""
    if good:
        return "ok"
    return "flagged" if any(needs_review(f) for f in flags) else "SILENT"


def gate(fcs: Path, strategy: str | Path) -> Any:
    """``Strategy.apply`` with the pipeline's default QC (what ``cytokit gate`` and ``cytokit run`` do)."""
    return load_strategy(strategy).apply(read_fcs(fcs))


def cli_counts_agree(fcs: Path, strategy: str | Path, pops: pd.DataFrame) -> bool:
    """``cytokit gate FILE --strategy S --table T`` writes the same counts as ``Strategy.apply``."""
    from cytokit.cli.main import main

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        table = Path(tmp) / "pops.csv"
        code = main(["-q", "gate", str(fcs), "--strategy", str(strategy), "--table", str(table)])
        if code not in (0, None):
            return False
        cli = pd.read_csv(table)
    return cli[["population", "count"]].equals(pops[["population", "count"]].reset_index(drop=True))


def pipeline_agrees(fcs: Path, strategy: Path, pops: pd.DataFrame) -> bool:
    """``cytokit run`` (ad hoc: one copied file, the strategy's panel and tube) stores the same counts as
    ``Strategy.apply``, and ``samples.lymphocytes`` is the count of the strategy's lymphocyte population."""
    from cytokit.cli.main import main

    definition = load_strategy(strategy).definition
    panel = (strategy.parent / str(definition.panel)).resolve()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        inp = Path(tmp) / "in"
        inp.mkdir()
        shutil.copy(fcs, inp / fcs.name)
        code = main(["-q", "run", "--input", str(inp), "--panel", str(panel), "--strategy", str(strategy),
                     "--tube", str(definition.tube), "--out", str(Path(tmp) / "out")])
        if code not in (0, None):
            return False
        table = pd.read_csv(Path(tmp) / "out" / "populations.csv")
        samples = pd.read_csv(Path(tmp) / "out" / "samples.csv")
    same = table[["population", "count"]].equals(pops[["population", "count"]].reset_index(drop=True))
    den = pops.set_index("population").loc[definition.lymphocytes, "count"]
    return bool(same and int(samples["lymphocytes"].iloc[0]) == int(den))


def edge_shares(result: Any) -> dict[str, tuple[float | None, float | None]]:
    """Per threshold-type population: the tool's own ``(edge_share, est_error_rel)`` from its fit info
    (:mod:`cytokit.gating.methods.edge`): the share (fraction) of its events within 0.03 of one of its
    dividers and the change of its count (% of itself) when a divider moves by ±0.03 or to a plausible
    alternative -- a gate cutting through the population's own cluster rather than a valley, which
    ``est_error_pp`` (pp of the parent) does not see; above the limits the row carries the note
    ``edge_sensitive`` or the review flag ``cut_through``."""
    out = {}
    for name, fit in result.fits.items():
        rel = fit.info.get("est_error_rel")
        if rel is not None:
            out[name] = (fit.info.get("edge_share"), float(rel))
    return out


def _flags(by: pd.DataFrame, *names: str) -> list[str]:
    return [str(by.loc[n, "flags"] or "") for n in names if n in by.index]


def _row_flags(by: pd.DataFrame, *names: str) -> str:
    return " | ".join(f"{n}: {f}" for n, f in zip(names, _flags(by, *names)) if f)


# -- flowkit/100715.fcs ------------------------------------------------------------------------------------
def check_tcell_memory(data: Path) -> tuple[list[Check], Any]:
    """Plausibility of the T-memory panel of 100715.fcs (see the module docstring)."""
    fcs = data / "flowkit" / "100715.fcs"
    result = gate(fcs, YAML / "tcell_memory_strategy.yaml")
    by = result.populations.set_index("population")
    name, out = fcs.name, []
    count = by["count"].astype(float)
    t = count["T cells"]
    dn_dp = 100.0 * (count["DN T"] + count["DP T"]) / t if t else float("nan")
    quad = ("CD4 T", "CD8 T", "DN T", "DP T")
    out.append(Check(name, "DN + DP T, % of CD3 (CD4 + CD8 ~ CD3)", dn_dp, "<= 10 %",
                     verdict(dn_dp <= 10.0, _flags(by, *quad)), _row_flags(by, *quad)))
    subsets = ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")
    total = float(sum(count[s] for s in subsets))
    out.append(Check(name, "naive + CM + EM + TEMRA - CD4 (events)", total - count["CD4 T"], "0",
                     verdict(total == count["CD4 T"], _flags(by, *subsets)), _row_flags(by, *subsets)))
    cd28 = float(by.loc["CD28+ CD4", "pct_parent"])
    out.append(Check(name, "CD28+ % of CD4", cd28, "70-100 % (adult)",
                     verdict(70.0 <= cd28 <= 100.0, _flags(by, "CD28+ CD4", "CD4 T")),
                     _row_flags(by, "CD28+ CD4", "CD4 T")))
    live = float(by.loc["Live", "pct_parent"])
    out.append(Check(name, "Live (VIVID/CD14 dump-) % of singlets", live, "dump gate applied, 50-99 %",
                     verdict(50.0 <= live < 100.0, _flags(by, "Live")), _row_flags(by, "Live")))
    t_pct = float(by.loc["T cells", "pct_lymphocytes"])
    out.append(Check(name, "T cells % of live lymphocytes", t_pct, "40-90 %",
                     verdict(40.0 <= t_pct <= 90.0, _flags(by, "T cells", "Live")), _row_flags(by, "T cells", "Live")))
    over = [f for f in result.data_flags if f == FLAG_OVER]  # compensation_unchecked is a note, not a failure
    comp = [p for p in result.sample.provenance if "compens" in str(p).lower()]
    out.append(Check(name, "compensated from $SPILLOVER once (steps recorded)", float(len(comp)),
                     "1 step, no overcompensated flag", "ok" if len(comp) == 1 and not over else "SILENT",
                     ";".join(over)))
    return out, result


# -- flowjo9_diva ------------------------------------------------------------------------------------------
def _expert_rows(result: Any, file: str, expert: dict[str, tuple[float, str]]) -> list[Check]:
    """|Δ % of parent| of each cytokit population against the expert's % (value, expert gate path)."""
    by = result.populations.set_index("population")
    out = []
    for pop, (pct, path) in expert.items():
        ours = float(by.loc[pop, "pct_parent"])
        delta = ours - pct
        out.append(Check(file, f"{pop} % of parent vs expert {path} {pct:.2f} %", ours, f"{pct:.2f} ± {TOLERANCE_PP}",
                         verdict(abs(delta) <= TOLERANCE_PP, _flags(by, pop)), _row_flags(by, pop)))
    return out


def check_a2004(data: Path) -> tuple[list[Check], Any]:
    """A2004 DC/monocyte file (FlowJo 9.2 sample 2) against the expert's counts."""
    base = data / "flowjo9_diva"
    fcs = base / "a2004_O1T2pb05i_A2_A02.fcs"
    counts = pd.read_csv(base / "A2004Analysis_flowjo_counts.csv")
    counts = counts[counts["sample"].str.endswith("sampleID=2")].set_index("gate_path")
    pct = counts["pct_of_parent"].astype(float)
    expert = {"Live": (pct["/Live"], "/Live"), "APC": (pct["/Live/APC"], "/Live/APC"),
              "Monocytes": (pct["/Live/Monocytes"], "/Live/Monocytes"),
              "B Cell": (pct["/Live/APC/B Cell"], "/Live/APC/B Cell"), "mDC": (pct["/Live/APC/mDC"], "/Live/APC/mDC"),
              "pDC": (pct["/Live/APC/pDC"], "/Live/APC/pDC"),
              "IL-6+ Monocytes": (pct["/Live/Monocytes/IL-6+"], "/Live/Monocytes/IL-6+"),
              "TNFa+ Monocytes": (pct["/Live/Monocytes/TNFa+"], "/Live/Monocytes/TNFa+")}
    result = gate(fcs, YAML / "dc_monocyte_strategy.yaml")
    return _expert_rows(result, fcs.name, expert), result


def check_diva(data: Path) -> tuple[list[Check], Any]:
    """124500.fcs against the DiVa counts, gate by gate (P1 FSC-W, P2 SSC-W singlets, P3 live, P4 CD8+,
    P5 CD3+), each as % of its parent."""
    base = data / "flowjo9_diva" / "diva"
    fcs = base / "124500.fcs"
    c = pd.read_csv(base / "PE_2_tube_001_124500_diva_counts.csv").set_index("gate_fullname")["diva_num_events"]
    n = lambda p: float(c["All Events" + p])  # noqa: E731 - a short lookup
    result = gate(fcs, YAML / "diva_strategy.yaml")
    by = result.populations.set_index("population")
    checks = _expert_rows(result, fcs.name, {
        "FSC singlets": (100 * n("/P1") / n(""), "P1 (FSC-W)"),
        "Singlets": (100 * n("/P1/P2") / n("/P1"), "P2 (SSC-W)"),
        "CD8+": (100 * n("/P1/P2/P3/P4") / n("/P1/P2/P3"), "P4"),
        "CD3+ CD8+": (100 * n("/P1/P2/P3/P4/P5") / n("/P1/P2/P3/P4"), "P5")})
    # P3 (FSC-A x viability) = our Cells then Live, as % of singlets
    live = 100.0 * by.loc["Live", "count"] / by.loc["Singlets", "count"]
    p3 = 100 * n("/P1/P2/P3") / n("/P1/P2")
    checks.insert(2, Check(fcs.name, f"Cells∩Live % of singlets vs expert P3 {p3:.2f} %", live,
                           f"{p3:.2f} ± {TOLERANCE_PP}",
                           verdict(abs(live - p3) <= TOLERANCE_PP, _flags(by, "Cells", "Live")),
                           _row_flags(by, "Cells", "Live")))
    return checks, result


# -- gatingml2 9399_1_3_NKR --------------------------------------------------------------------------------
def check_nkr(data: Path) -> tuple[list[Check], Any]:
    """NK / T+B split of 9399_1_3_NKR.fcs (plausibility; the file has no expert gates)."""
    fcs = data / "gatingml2" / "FCSFiles" / "9399_1_3_NKR.fcs"
    result = gate(fcs, YAML / "nkr_strategy.yaml")
    by = result.populations.set_index("population")
    nk = float(by.loc["NK cells", "pct_lymphocytes"])
    nk2 = float(by.loc["NK cells (NKp46 first)", "pct_lymphocytes"])
    tb = float(by.loc["T and B cells", "pct_lymphocytes"])
    return [
        Check(fcs.name, "NK (CD3/19- NKp46+ quadrant) % of live lymphocytes", nk, "2-35 %",
              verdict(2.0 <= nk <= 35.0, _flags(by, "NK cells", "Live", "Lymphocytes")),
              _row_flags(by, "NK cells", "Live", "Lymphocytes")),
        Check(fcs.name, "NK (NKp46+, then CD3/19- valley) % of live lymphocytes", nk2, "2-35 %",
              verdict(2.0 <= nk2 <= 35.0, _flags(by, "NK cells (NKp46 first)", "NKp46+", "Live", "Lymphocytes")),
              _row_flags(by, "NK cells (NKp46 first)", "NKp46+", "Live", "Lymphocytes")),
        Check(fcs.name, "T + B (CD3/19+) % of live lymphocytes", tb, "50-97 %",
              verdict(50.0 <= tb <= 97.0, _flags(by, "T and B cells", "Live", "Lymphocytes")),
              _row_flags(by, "T and B cells", "Live", "Lymphocytes")),
    ], result


# -- flowsom_68983 -----------------------------------------------------------------------------------------
def mouse_f1(data: Path) -> dict[str, float]:
    """Per-event F1 of the shipped ``mouse_lymphocytes`` strategy against the expert's label per event."""
    base = data / "flowsom_68983"
    labels = pd.read_csv(base / "gatingResult.csv", header=None).iloc[:, 0].to_numpy()
    result = load_strategy("mouse_lymphocytes").apply(read_fcs(base / "68983.fcs"), qc=False)
    out = {}
    for name, labs in MOUSE_EXPERT.items():
        mask, truth = result.masks[name], np.isin(labels, labs)
        out[name] = float(2 * (mask & truth).sum() / max(mask.sum() + truth.sum(), 1))
    return out


# -- per-event agreement with the experts' own gates (FlowJo / DiVa workspaces) --------------------------
@dataclass
class ExpertRow:
    """One cytokit population against the expert gate of the same population, event by event: F1 of the
    two event sets, ``d_pp`` = our % - the expert's % of the same reference population (pp; see
    :func:`expert_f1`), and the flags of our row."""

    file: str
    population: str
    expert: str
    f1: float
    d_pp: float
    flags: str


# file key -> (FCS, workspace, strategy: user YAML or shipped name, {our population: expert gate id}).
# Every expert gate that has a cytokit population is listed; the others are named by expert_f1().
EXPERT_GATES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "a2004": ("flowjo9_diva/a2004_O1T2pb05i_A2_A02.fcs", "flowjo9_diva/A2004Analysis.xml", "dc_monocyte_strategy.yaml",
              {"Live": "Live", "APC": "Live/APC", "Monocytes": "Live/Monocytes", "B Cell": "Live/APC/B Cell",
               "mDC": "Live/APC/mDC", "pDC": "Live/APC/pDC", "IL-6+ Monocytes": "Live/Monocytes/IL-6+",
               "TNFa+ Monocytes": "Live/Monocytes/TNFa+"}),
    "diva": ("flowjo9_diva/diva/124500.fcs", "flowjo9_diva/diva/PE_2.xml", "diva_strategy.yaml",
             {"FSC singlets": "P1", "Singlets": "P1/P2", "Live": "P1/P2/P3", "CD8+": "P1/P2/P3/P4",
              "CD3+ CD8+": "P1/P2/P3/P4/P5"}),
    "flowsom_68983": ("flowsom_68983/68983.fcs", "flowsom_68983/gating.wsp", "mouse_lymphocytes",
                      {"Singlets": "Lymphocytes/Singlets/Singlets2",
                       "NK1.1+": "Lymphocytes/Singlets/Singlets2/NK1_1+",
                       "NK cells": "Lymphocytes/Singlets/Singlets2/NK1_1+/NK cells",
                       "NKT cells": "Lymphocytes/Singlets/Singlets2/NK1_1+/NK T cells",
                       "B cells": "Lymphocytes/Singlets/Singlets2/NK1_1-/B cells",
                       "T cells": "Lymphocytes/Singlets/Singlets2/NK1_1-/T cells",
                       "CD4 T": "Lymphocytes/Singlets/Singlets2/NK1_1-/T cells/ab T cells/CD4 T cells",
                       "CD8 T": "Lymphocytes/Singlets/Singlets2/NK1_1-/T cells/ab T cells/CD8 T cells",
                       "gd T": "Lymphocytes/Singlets/Singlets2/NK1_1-/T cells/gd T cells"}),
}


def expert_masks(data: Path, key: str) -> tuple[Any, dict[str, np.ndarray], list[str]]:
    """The raw Sample of ``EXPERT_GATES[key]``, the expert's masks over its events (the workspace's gates,
    compensation and transforms evaluated by :mod:`cytokit.flowjo`; they reproduce the counts FlowJo / DiVa
    stored within 0.5 % of the parent or one event) and the ids of the expert gates without a cytokit population."""
    from cytokit.flowjo import read_workspace
    from cytokit.gatingml.evaluate import evaluate_document

    rel, ws, _, mapping = EXPERT_GATES[key]
    raw = read_fcs(data / rel)
    document = read_workspace(data / ws).sample(raw.name).document
    masks = evaluate_document(document, raw)
    return raw, masks, [n for n in masks if n not in mapping.values()]


def expert_f1(data: Path, key: str) -> tuple[list[ExpertRow], list[str]]:
    """Per-event F1 and ``d_pp`` of every cytokit population that has an expert gate in ``key``'s
    workspace. ``d_pp`` compares % of the same reference: the expert gate's nearest ancestor that has a
    cytokit population (all events when none has), so gates the two hierarchies place differently (the
    expert's P3 is our Cells then Live) compare as the same share. Gated without QC
    (``apply(..., qc=False)``): the expert gated every event of the file."""
    raw, masks, unmatched = expert_masks(data, key)
    rel, ws, strategy, mapping = EXPERT_GATES[key]
    result = load_strategy(strategy if strategy.endswith("_lymphocytes") else YAML / strategy).apply(raw, qc=False)
    by = result.populations.set_index("population")
    ours_of = {node: pop for pop, node in mapping.items()}
    every = np.ones(raw.n_events, dtype=bool)
    rows = []
    for pop, node in mapping.items():
        ours, theirs = result.masks[pop], masks[node]
        ref = node.rpartition("/")[0]
        while ref and ref not in ours_of:
            ref = ref.rpartition("/")[0]
        ours_ref, theirs_ref = (result.masks[ours_of[ref]], masks[ref]) if ref else (every, every)
        f1 = 2.0 * float((ours & theirs).sum()) / max(int(ours.sum() + theirs.sum()), 1)
        d_pp = 100.0 * (ours.sum() / max(int(ours_ref.sum()), 1) - theirs.sum() / max(int(theirs_ref.sum()), 1))
        rows.append(ExpertRow(Path(rel).name, pop, node, f1, float(d_pp), str(by.loc[pop, "flags"] or "")))
    return rows, unmatched


FILES: dict[str, tuple[str, Callable[[Path], tuple[list[Check], Any]], str]] = {
    "100715": ("flowkit/100715.fcs", check_tcell_memory, "tcell_memory_strategy.yaml"),
    "a2004": ("flowjo9_diva/a2004_O1T2pb05i_A2_A02.fcs", check_a2004, "dc_monocyte_strategy.yaml"),
    "diva": ("flowjo9_diva/diva/124500.fcs", check_diva, "diva_strategy.yaml"),
    "nkr": ("gatingml2/FCSFiles/9399_1_3_NKR.fcs", check_nkr, "nkr_strategy.yaml"),
}


# -- each file re-exported already compensated ------------------------------------------------------------
def check_words(flags: list[str]) -> str:
    """What the compensation check said on a gated file, from its data flags: ``overcompensated``,
    ``compensation_unchecked`` (no informative detector pair) or ``passed``."""
    return ";".join(f for f in flags if f in (FLAG_OVER, NOTE_UNCHECKED)) or "passed"


def check_already_compensated(data: Path) -> list[Check]:
    """Each file above (and flowsom_68983 with ``mouse_lymphocytes``) as an instrument re-exports it already
    compensated with its $SPILLOVER kept, so ``compensation: file`` compensates it again. Two checks per file:

    * every row whose % of parent moved more than ``TOLERANCE_PP`` from the published file's (gated the
      same way) carries a review flag (``flagged``), else ``SILENT``; ``ok`` when none moved;
    * when the compensation check failed on the copy: every row whose gate or a gate above it
      (:func:`defining_populations`) reads a channel that compensating again changes carries the review flag
      ``overcompensated`` (``<marker>:`` prefixed or plain) and no other row does (``ok``), else ``SILENT``."""
    out = []
    files = {**{key: (rel, str(YAML / yaml)) for key, (rel, _, yaml) in FILES.items()},
             "flowsom_68983": ("flowsom_68983/68983.fcs", "mouse_lymphocytes")}
    for rel, strategy_name in files.values():
        raw = read_fcs(data / rel)
        name = Path(rel).name
        try:
            already = raw.replace(events=compensate(raw, check=False).events.copy())
            twice = compensate(already, check=False).events
            strategy = load_strategy(strategy_name)
            published, result = strategy.apply(raw), strategy.apply(already)
        except CytokitError as exc:
            out.append(Check(name, "already compensated copy", float("nan"), "gated", "SILENT", str(exc)))
            continue
        pnn = raw.channel_table.texts("pnn")
        moved = {pnn[j] for j in range(raw.n_channels) if not np.array_equal(already.events[:, j], twice[:, j])}
        definition, sample = result.definition, result.sample
        sample_pnn = sample.channel_table.texts("pnn")

        def reads_moved(pop: str) -> bool:
            dims = [d for p in [pop, *defining_populations(definition, pop)] for d in definition.population(p).dims]
            return any(sample_pnn[sample.channel_index(d)] in moved for d in dims)

        by = result.populations.set_index("population")
        before = published.populations.set_index("population")["pct_parent"]
        delta = (by["pct_parent"] - before.reindex(by.index)).abs()
        off = [p for p in by.index if delta[p] > TOLERANCE_PP]
        out.append(Check(name, f"already compensated copy: rows > {TOLERANCE_PP:g} pp from the published file's",
                         float(len(off)), "0, or each flagged",
                         min((verdict(False, [str(by.loc[p, "flags"] or "")]) for p in off), default="ok",
                             key=("SILENT", "flagged", "ok").index),  # each moved row must be flagged
                         "; ".join([*(f"{p} {delta[p]:.1f} pp: {by.loc[p, 'review_flags'] or '-'}" for p in off),
                                    f"compensation check: {check_words(result.data_flags)}"])))
        if FLAG_OVER not in result.data_flags:
            continue
        flagged = {p for p in by.index
                   if any(w.split(":")[-1] == FLAG_OVER for w in str(by.loc[p, "review_flags"]).split(";"))}
        fl = [p for p in by.index if reads_moved(p)]
        missed, wrong = [p for p in fl if p not in flagged], sorted(flagged - set(fl))
        out.append(Check(name, "already compensated copy (check failed): rows on moved channels flagged "
                               "overcompensated", float(len(fl) - len(missed)),
                         f"{len(fl)} of {len(fl)}, none of the other {len(by) - len(fl)}",
                         "ok" if not missed and not wrong else "SILENT",
                         "; ".join([*(f"unflagged: {p}" for p in missed), *(f"flagged, not moved: {p}" for p in wrong)])))
    return out


def run(data: Path, *, cli: bool = True) -> dict[str, Any]:
    """Every check on every file; ``{"checks": [...], "cli_agrees": {...}, "mouse_f1": {...}, "timing": {...}}``."""
    checks: list[Check] = []
    edges: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    agrees: dict[str, bool] = {}
    timing: dict[str, tuple[float, float]] = {}
    for key, (rel, fn, yaml) in FILES.items():
        wall, cpu = time.perf_counter(), time.process_time()
        rows, result = fn(data)
        timing[key] = (time.perf_counter() - wall, time.process_time() - cpu)
        checks += rows
        edges[key] = edge_shares(result)
        if cli:
            agrees[f"{key} gate"] = cli_counts_agree(data / rel, YAML / yaml, result.populations)
            agrees[f"{key} run"] = pipeline_agrees(data / rel, YAML / yaml, result.populations)
    checks += check_already_compensated(data)
    wall, cpu = time.perf_counter(), time.process_time()
    f1 = mouse_f1(data)
    timing["flowsom_68983"] = (time.perf_counter() - wall, time.process_time() - cpu)
    expert: list[ExpertRow] = []
    unmatched: dict[str, list[str]] = {}
    for key in EXPERT_GATES:
        rows, unmatched[key] = expert_f1(data, key)
        expert += rows
    return {"checks": [asdict(c) for c in checks], "cli_agrees": agrees, "mouse_f1": f1, "timing": timing,
            "edge_shares": edges, "expert_f1": [asdict(r) for r in expert], "expert_unmatched": unmatched}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument("--no-cli", action="store_true", help="skip the cytokit gate / cytokit run comparisons")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")
    data = data_dir()
    if not data.is_dir():
        print(f"skipped: real test data not found at {data} (set CYTOKIT_SHARED_DATA to the shared/data folder)")
        return 0
    out = run(data, cli=not args.no_cli)
    frame = pd.DataFrame(out["checks"])
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 70)
    for file, rows in frame.groupby("file", sort=False):
        print(f"\n== {file}")
        for r in rows.itertuples():
            print(f"  {r.verdict:8s} {r.check}: {r.value:.2f} (reference {r.reference})"
                  + (f"\n           flags: {r.flags}" if r.flags and r.verdict != "ok" else ""))
    print("\n== flowsom_68983 (mouse_lymphocytes) per-event F1 vs expert labels")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in out["mouse_f1"].items()))
    print("\n== per-event agreement with the experts' gates (workspaces; gated without QC as the expert did):"
          "\n   F1 of the event sets, |d| = |our % - the expert's %| of the nearest expert ancestor with a cytokit population")
    print(f"  {'file':28s} {'population':16s} {'F1':>6s} {'|d| pp':>7s}  our flags")
    for r in out["expert_f1"]:
        print(f"  {r['file']:28s} {r['population']:16s} {r['f1']:6.3f} {abs(r['d_pp']):7.2f}  {r['flags']}")
    for key, names in out["expert_unmatched"].items():
        if names:
            print(f"  {key}: expert gates without a cytokit population: {', '.join(names)}")
    if out["cli_agrees"]:
        print("\ncytokit gate --table / cytokit run counts = Strategy.apply: "
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in out["cli_agrees"].items()))
    cut = {f"{k}/{p}": v for k, e in out["edge_shares"].items() for p, v in e.items()
           if (v[0] or 0) > EDGE_SHARE or (v[1] or 0) > NOTE_REL}
    print(f"\npopulations with > {EDGE_SHARE:.0%} of their events within {EDGE_WIDTH} of a divider or a count "
          f"moving > {NOTE_REL:.0f} % of itself (edge share, est_error_rel): "
          + (", ".join(f"{k} {'-' if e is None else f'{e:.0%}'}/{r:.0f} %" for k, (e, r) in cut.items()) or "none"))
    print("\ntiming (wall s / CPU s): " + ", ".join(f"{k} {w:.1f}/{c:.1f}" for k, (w, c) in out["timing"].items()))
    counts = frame["verdict"].value_counts().to_dict()
    print(f"verdicts: {counts}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    bad = counts.get("SILENT", 0) or min(out["mouse_f1"].values()) < F1_TARGET or not all(out["cli_agrees"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
