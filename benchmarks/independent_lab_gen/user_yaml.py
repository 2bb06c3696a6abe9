"""The lab's strategies: the shipped ``tmem`` and ``nkb`` strategies with the edits a user of this lab makes
in YAML, derived from the shipped files each time so that the held-out check always runs the strategies
as shipped (no stale copy).

The edits (nothing else changes; gate rules, bounds and references stay as shipped):

* ``name``, ``panel`` (the lab's ``yaml/lab_panel.yaml``) and ``tube`` (``tcell`` / ``nkb``);
* Treg dropped (the T-cell tube has no CD127) and the counting-bead gate dropped (no beads);
* NK/B tube: a ``Live`` gate on the viability dye under ``Singlets`` (dye-negative; the shipped threshold
  rule with bounds 0.2-0.8); the populations that hung from ``Singlets`` hang from ``Live``, and
  ``lymphocytes: Live`` (% of lymphocytes = % of live single lymphocytes);
* ``lymphocyte_doublets: counted`` on the Lymphocytes scatter gate: the lab gates lymphocytes on FSC-A before
  its singlet gate, so its Lymphocytes holds the lymphocyte-lymphocyte doublets and its Singlets removes them
  (on the shipped ``gmm_ellipse`` gate and on the ``density_polygon`` variant alike);
* optionally (``lymphocyte_gate="density_polygon"``) the Lymphocytes scatter gate fitted with the shipped
  ``density_polygon`` method (contour at 0.05 of the lymphocyte peak) instead of the shipped method.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cytokit.definitions import resolve_definition

PANEL = Path(__file__).resolve().parent / "yaml" / "lab_panel.yaml"
SHIPPED = {"tcell": "tmem", "nkb": "nkb"}
DROPPED = ("Treg", "Beads")
LIVE_GATE: dict[str, Any] = {
    "name": "Live", "parent": "Singlets", "dims": ["Viability"], "method": "threshold",
    "params": {"sign": "-", "threshold": {"bounds": [0.2, 0.8]}}, "phenotype": "viability dye negative"}
LYMPHOCYTE_GATES: dict[str, dict[str, Any] | None] = {
    "shipped": None,
    "density_polygon": {"method": "density_polygon",
                        "params": {"target": [0.4, 0.06], "level": 0.05, "backgate_reference": "T cells"}},
}


def lab_strategy(tube: str, lymphocyte_gate: str = "shipped") -> dict[str, Any]:
    """The lab's strategy for ``tube`` ("tcell" or "nkb") as a YAML mapping."""
    shipped = SHIPPED[tube]
    d = yaml.safe_load(resolve_definition(shipped, "gating").read_text(encoding="utf-8"))
    d.update(name=f"lab_{tube}", panel=str(PANEL), tube=tube)
    pops = [dict(p) for p in d["populations"] if p["name"] not in DROPPED]
    if tube == "nkb":
        for p in pops:
            if p.get("parent") == "Singlets":
                p["parent"] = "Live"
        at = next(i for i, p in enumerate(pops) if p["name"] == "Singlets") + 1
        pops.insert(at, dict(LIVE_GATE))
        d["lymphocytes"] = "Live"
    lym = next(p for p in pops if p["name"] == "Lymphocytes")
    gate = LYMPHOCYTE_GATES[lymphocyte_gate]
    if gate is not None:
        lym.update(gate)
    # the lab's Lymphocytes holds the lymphocyte doublets; Singlets removes them
    lym["params"] = {**lym.get("params", {}), "lymphocyte_doublets": "counted"}
    lym["phenotype"] = "FSC-H/SSC-A lymphocytes with the lymphocyte-lymphocyte doublets (estimated outside the gate)"
    d["populations"] = pops
    d["description"] = f"the lab's copy of the shipped '{shipped}' strategy: " + str(d.get("description", ""))
    return d


def write_lab_strategies(folder: str | Path, lymphocyte_gate: str = "shipped") -> Path:
    """Write ``lab_tcell.yaml`` and ``lab_nkb.yaml`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for tube in SHIPPED:
        head = (f"# The independent lab's {tube} strategy: the shipped '{SHIPPED[tube]}' strategy with the edits\n"
                f"# listed in benchmarks/independent_lab_gen/user_yaml.py (Lymphocytes gate: {lymphocyte_gate}).\n")
        text = yaml.safe_dump(lab_strategy(tube, lymphocyte_gate), sort_keys=False, allow_unicode=True, width=110,
                              default_flow_style=None)
        (folder / f"lab_{tube}.yaml").write_text(head + text, encoding="utf-8")
    return folder
