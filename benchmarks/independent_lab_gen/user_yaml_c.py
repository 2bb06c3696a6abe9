"""Lab C's strategies: the shipped ``tmem`` and ``nkb`` strategies with the edits a user of lab C makes in YAML,
derived from the shipped files at every run (as :mod:`.user_yaml` and :mod:`.user_yaml_b` do).

The edits (gate rules, bounds and references otherwise as shipped):

* ``name``, ``panel`` (``yaml/lab_c_panel.yaml``), ``tube`` (``tc`` / ``tbnk``);
* ``compensation: file_if_present``: the spectral instrument's files are unmixed and carry no ``$SPILLOVER``
  (the shipped ``file`` refuses them), the conventional instrument's files carry one;
* ``lymphocyte_doublets: excluded`` on the Lymphocytes scatter gate (both tubes, every variant): the lab states
  its doublet convention as a user would -- its lymphocyte gate leaves lymphocyte-lymphocyte doublets out, as
  cytokit's does (its truth is the single lymphocytes; README.md "Lab C"), so its Lymphocytes rows carry no
  ``lymphocyte_doublets`` convention note (docs/gating.md "A lab that states it excludes the doublets");
* ``tc``: the memory quadrants re-pointed from CD45RA x CD62L to CD45RA x CCR7 (signs and thresholds kept);
  CD28+ CD4 / CD8, CD25+ CD4 and Treg as shipped;
* ``tbnk``: the lab's lymphocyte gate on **CD45 x SSC-A** (CD45 bright, side scatter low; lyse/no-wash blood
  with red-cell ghosts and beads), the shipped ``gmm_ellipse`` with its other parameters (whole cloud,
  back-gating onto the T cells, redraw) and a target where a user of lab C sees the lymphocytes on that plot;
  NK, CD56bright/dim, B cells and the optional counting-bead gate ``Beads`` (CD3 x CD19 bright) as shipped.

Variants (``lymphocyte_gate``): ``"shipped"`` keeps the shipped FSC-H x SSC-A gate in both tubes;
``"cd45_ssc_no_beads"`` is the lab's CD45 x SSC-A gate drawn on the events outside the counting-bead gate (what
a TruCount template does: ``Beads`` moved to the top, a ``Not beads`` boolean population ``!Beads``, the
Lymphocytes gate under it; its Lymphocytes row is then % of the non-bead events, not of all events).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from cytokit.definitions import resolve_definition

PANEL_C = Path(__file__).resolve().parent / "yaml" / "lab_c_panel.yaml"
SHIPPED_C = {"tc": "tmem", "tbnk": "nkb"}
MEMORY_QUADRANTS_C = ("Naive CD4", "CM CD4", "EM CD4", "TEMRA CD4")
#: the lab's own lymphocyte gate in the TBNK tube (the default) and the shipped scatter gate (a variant)
CD45_SSC = "cd45_ssc"
CD45_SSC_NO_BEADS = "cd45_ssc_no_beads"
LYMPHOCYTE_GATES_C = (CD45_SSC, CD45_SSC_NO_BEADS, "shipped")
NOT_BEADS: dict[str, Any] = {"name": "Not beads", "dims": [], "method": "boolean",
                             "params": {"op": "not", "operands": ["Beads"]}, "phenotype": "events outside the bead gate"}
#: lab C's stated lymphocyte-doublet convention on its Lymphocytes scatter gate (its gate leaves them out)
DOUBLETS_C = "excluded"
#: where lab C's lymphocytes sit on CD45 x SSC-A (robust-normalised, 0..1 between the 1st and 99th percentile)
CD45_SSC_GATE: dict[str, Any] = {"dims": ["CD45", "SSC-A"], "target": [0.8, 0.05],
                                 "phenotype": "CD45bright SSC-low lymphocytes (lyse/no-wash blood)"}


def lab_c_strategy(tube: str, lymphocyte_gate: str = CD45_SSC) -> dict[str, Any]:
    """Lab C's strategy for ``tube`` ("tc" or "tbnk") as a YAML mapping."""
    shipped = SHIPPED_C[tube]
    d = yaml.safe_load(resolve_definition(shipped, "gating").read_text(encoding="utf-8"))
    d.update(name=f"lab_c_{tube}", panel=str(PANEL_C), tube=tube, compensation="file_if_present")
    pops = [copy.deepcopy(p) for p in d["populations"]]
    for p in pops:
        if p["name"] in MEMORY_QUADRANTS_C:
            assert p["dims"] == ["CD45RA", "CD62L"], p
            p["dims"] = ["CD45RA", "CCR7"]
            p["phenotype"] = str(p["phenotype"]).replace("CD62L", "CCR7")
    lym = next(p for p in pops if p["name"] == "Lymphocytes")
    lym["params"] = {**lym.get("params", {}), "lymphocyte_doublets": DOUBLETS_C}
    if tube == "tbnk" and lymphocyte_gate in (CD45_SSC, CD45_SSC_NO_BEADS):
        lym["dims"] = list(CD45_SSC_GATE["dims"])
        lym["params"] = dict(lym["params"], target=list(CD45_SSC_GATE["target"]))
        lym["phenotype"] = CD45_SSC_GATE["phenotype"]
        if lymphocyte_gate == CD45_SSC_NO_BEADS:
            beads = next(p for p in pops if p["name"] == "Beads")
            pops = [beads, copy.deepcopy(NOT_BEADS), *(p for p in pops if p is not beads)]
            lym["parent"] = NOT_BEADS["name"]
    d["populations"] = pops
    d["description"] = f"lab C's copy of the shipped '{shipped}' strategy: " + str(d.get("description", ""))
    return d


def write_lab_c_strategies(folder: str | Path, lymphocyte_gate: str = CD45_SSC) -> Path:
    """Write ``lab_tc.yaml`` and ``lab_tbnk.yaml`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for tube in SHIPPED_C:
        head = (f"# Lab C's {tube} strategy: the shipped '{SHIPPED_C[tube]}' strategy with the edits listed in\n"
                f"# benchmarks/independent_lab_gen/user_yaml_c.py (Lymphocytes gate: {lymphocyte_gate}).\n")
        text = yaml.safe_dump(lab_c_strategy(tube, lymphocyte_gate), sort_keys=False, allow_unicode=True,
                              width=110, default_flow_style=None)
        (folder / f"lab_{tube}.yaml").write_text(head + text, encoding="utf-8")
    return folder
