"""Lab B's strategies: the shipped ``tmem`` and ``nkb`` strategies with the edits a user of lab B makes in YAML,
derived from the shipped files at every run (as :mod:`.user_yaml` does for lab A).

The edits (gate rules, bounds and references otherwise as shipped):

* ``name``, ``panel`` (``yaml/lab_b_panel.yaml``), ``tube`` (``mem`` / ``nk``); counting beads dropped;
* ``mem``: memory by CD45RO instead of CD45RA and CCR7 instead of CD62L — the four quadrant gates keep
  their thresholds with the CD45 sign flipped (naive = CD45RO- CCR7+, CM = CD45RO+ CCR7+, EM = CD45RO+
  CCR7-, TEMRA = CD45RO- CCR7-), Memory CD4 = CD45RO+; CD28+ CD4 / CD8 dropped (no CD28); Treg as shipped;
  ``HLA-DR+ CD8``: the lab's stated cut (``dr_gate="stated_cut"``, the default): lab B calls a CD8 T cell
  HLA-DR+ above a fixed HLA-DR level (README.md, "Lab B": a specific stain of at least 300 pe), so its YAML
  states a fixed threshold, ``mode: fixed`` at :data:`DR_STATED_CUT` on the logicle scale (T = the
  detector's range, where both instruments put the same stain at about the same position); the value stands
  for the lab's calibration of its cut to its instruments and was chosen on seeds 11-13 (docs/gating.md, "An
  activation smear with a stated cut"). ``dr_gate="activation"``: the shipped CD25+ CD4 gate (the
  activation-marker rule: valley, else tail) re-pointed at HLA-DR under CD8 T, read against the T cells
  (mostly HLA-DR-; B cells and monocytes are HLA-DR+), as before;
* ``nk``: lab A's ``Live`` gate under ``Singlets`` with T, NK and B under it and ``lymphocytes: Live``;
  NK cells = CD3- CD20- CD56+ (the shipped phenotype gate without CD16 and its ``any_of``: lab B does not
  count CD56- CD16+ cells as NK); B cells = CD3- CD20+ (CD20 instead of CD19);
* both tubes, every variant: ``lymphocyte_doublets: singles_and_pairs`` on the Lymphocytes scatter gate
  (:data:`DOUBLETS_B`): the lab's Lymphocytes are single lymphocytes plus lymphocyte-lymphocyte doublets, and no
  doublet of a lymphocyte with another particle (README.md, "Truth": red cells are not lymphocytes), so its
  Singlets % is singles / (singles + lymphocyte doublets) (docs/gating.md, "A lab whose Lymphocytes are singles
  and pairs").

``lymphocyte_gate="cd3_reference"`` (a variant, not the default): the ``nk`` tube gets a ``CD3+ singlets`` gate
(the shipped T-cell gate under ``Singlets``, live and dead) as the Lymphocytes gate's ``backgate_reference``.
With the ``Live`` gate between ``Singlets`` and ``T cells`` the shipped reference is not reached through
singlet gates alone, so the scatter gate is never redrawn (``gating.backgating.scatter_redraws``); this
reference is.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from cytokit.definitions import resolve_definition

from .user_yaml import LIVE_GATE, LYMPHOCYTE_GATES

PANEL_B = Path(__file__).resolve().parent / "yaml" / "lab_b_panel.yaml"
SHIPPED_B = {"mem": "tmem", "nk": "nkb"}
DROPPED_B = ("CD28+ CD4", "CD28+ CD8", "Beads")
#: HLA-DR+ CD8 as lab B states it: a fixed cut on the logicle HLA-DR scale (see the module docstring)
DR_STATED_CUT = 0.45
#: how ``HLA-DR+ CD8`` is written: the lab's stated cut, or the shipped activation-marker rule
DR_GATES = ("stated_cut", "activation")
#: quadrant gates on CD45RA x CD62L -> CD45RO x CCR7 (first sign flipped)
MEMORY_QUADRANTS = ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")
FLIP = {"+": "-", "-": "+"}
#: the lymphocyte-gate variant that gives the nk tube's scatter gate a back-gating reference under Singlets
CD3_REFERENCE = "cd3_reference"
CD3_SINGLETS = "CD3+ singlets"
#: lab B's doublet convention, stated on its Lymphocytes gate (see the module docstring)
DOUBLETS_B = "singles_and_pairs"


def _mem(pops: list[dict[str, Any]], dr_gate: str = "stated_cut") -> list[dict[str, Any]]:
    for p in pops:
        if p["name"] in MEMORY_QUADRANTS:
            assert p["dims"] == ["CD45RA", "CD62L"], p
            p["dims"] = ["CD45RO", "CCR7"]
            p["params"] = dict(p["params"], signs=[FLIP[p["params"]["signs"][0]], p["params"]["signs"][1]])
            p["phenotype"] = "CD3+ CD4+ CD45RO{} CCR7{}".format(*p["params"]["signs"])
        elif p["name"] == "Memory CD4":
            assert p["dims"] == ["CD45RA"], p
            p["dims"] = ["CD45RO"]
            p["params"] = dict(p["params"], sign=FLIP[p["params"]["sign"]])
            p["phenotype"] = "CD3+ CD4+ CD45RO+"
    cd25 = next(p for p in pops if p["name"] == "CD25+ CD4")
    dr = copy.deepcopy(cd25)
    dr.update(name="HLA-DR+ CD8", parent="CD8 T", dims=["HLA-DR"], negative_reference="T cells",
              phenotype="CD3+ CD8+ HLA-DR+")
    if dr_gate == "stated_cut":
        dr.pop("negative_reference")
        dr["params"] = {"sign": "+", "threshold": {"mode": "fixed", "value": DR_STATED_CUT}}
    elif dr_gate != "activation":
        raise ValueError(f"dr_gate {dr_gate!r}: one of {DR_GATES}")
    return [*pops, dr]


def _nk(pops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for p in pops:
        if p.get("parent") == "Singlets":
            p["parent"] = "Live"
        if p["name"] == "NK cells":
            assert p["dims"] == ["CD3", "CD19", "CD56", "CD16"], p
            params = dict(p["params"])
            params.pop("any_of", None)
            params.update(signs=params["signs"][:3], thresholds=params["thresholds"][:3])
            p.update(dims=["CD3", "CD20", "CD56"], params=params, phenotype="CD3- CD20- CD56+")
        elif p["name"] == "B cells":
            assert p["dims"] == ["CD3", "CD19"], p
            p.update(dims=["CD3", "CD20"], phenotype="CD3- CD20+")
    at = next(i for i, p in enumerate(pops) if p["name"] == "Singlets") + 1
    pops.insert(at, dict(LIVE_GATE))
    return pops


def lab_b_strategy(tube: str, lymphocyte_gate: str = "shipped", dr_gate: str = "stated_cut") -> dict[str, Any]:
    """Lab B's strategy for ``tube`` ("mem" or "nk") as a YAML mapping (``dr_gate``: how ``HLA-DR+ CD8`` is
    written, one of :data:`DR_GATES`)."""
    shipped = SHIPPED_B[tube]
    d = yaml.safe_load(resolve_definition(shipped, "gating").read_text(encoding="utf-8"))
    d.update(name=f"lab_b_{tube}", panel=str(PANEL_B), tube=tube)
    pops = [copy.deepcopy(p) for p in d["populations"] if p["name"] not in DROPPED_B]
    pops = _mem(pops, dr_gate) if tube == "mem" else _nk(pops)
    if tube == "nk":
        d["lymphocytes"] = "Live"
    if lymphocyte_gate == CD3_REFERENCE:
        if tube == "nk":
            ref = copy.deepcopy(next(p for p in pops if p["name"] == "T cells"))
            ref.update(name=CD3_SINGLETS, parent="Singlets", phenotype="CD3+ single lymphocytes, live or dead")
            pops.insert(next(i for i, p in enumerate(pops) if p["name"] == "Live"), ref)
            lym = next(p for p in pops if p["name"] == "Lymphocytes")
            lym["params"] = dict(lym["params"], backgate_reference=CD3_SINGLETS)
        gate = None
    else:
        gate = LYMPHOCYTE_GATES[lymphocyte_gate]
    lym = next(p for p in pops if p["name"] == "Lymphocytes")
    if gate is not None:
        lym.update(gate)
    lym["params"] = {**lym.get("params", {}), "lymphocyte_doublets": DOUBLETS_B}
    d["populations"] = pops
    d["description"] = f"lab B's copy of the shipped '{shipped}' strategy: " + str(d.get("description", ""))
    return d


def write_lab_b_strategies(folder: str | Path, lymphocyte_gate: str = "shipped",
                           dr_gate: str = "stated_cut") -> Path:
    """Write ``lab_mem.yaml`` and ``lab_nk.yaml`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for tube in SHIPPED_B:
        head = (f"# Lab B's {tube} strategy: the shipped '{SHIPPED_B[tube]}' strategy with the edits listed in\n"
                f"# benchmarks/independent_lab_gen/user_yaml_b.py (Lymphocytes gate: {lymphocyte_gate}; "
                f"HLA-DR+ CD8: {dr_gate}).\n")
        text = yaml.safe_dump(lab_b_strategy(tube, lymphocyte_gate, dr_gate), sort_keys=False, allow_unicode=True,
                              width=110, default_flow_style=None)
        (folder / f"lab_{tube}.yaml").write_text(head + text, encoding="utf-8")
    return folder
