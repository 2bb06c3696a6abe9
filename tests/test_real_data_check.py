"""Real human files gated with user-written panels and strategies (benchmarks/real_data_check.py): every
checked number is right or carries a review flag. Needs ../shared/data (CYTOKIT_SHARED_DATA)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check(shared_data):
    spec = importlib.util.spec_from_file_location("real_data_check", REPO / "benchmarks" / "real_data_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_data_check"] = module
    spec.loader.exec_module(module)
    return module


def test_tcell_memory_file_every_number_is_right_or_flagged(check, shared_data):
    checks, result = check.check_tcell_memory(shared_data)
    by = {c.check: c for c in checks}
    assert [c.check for c in checks if c.verdict == "SILENT"] == []
    # naive + CM + EM + TEMRA = CD4 exactly; CD28+ of CD4 in the adult range; compensated once, not twice
    assert by["naive + CM + EM + TEMRA - CD4 (events)"].verdict == "ok"
    assert by["CD28+ % of CD4"].verdict == "ok"
    assert by["compensated from $SPILLOVER once (steps recorded)"].verdict == "ok"
    assert "overcompensated" not in result.data_flags
    # the live/dump gate is applied (fewer events than its parent) and its % of lymphocytes is the denominator
    pops = result.populations.set_index("population")
    assert pops.loc["Live", "count"] < pops.loc["Singlets", "count"] and pops.loc["Live", "pct_lymphocytes"] == 100.0


def test_the_verdict_rule_can_fail(check):
    assert check.verdict(True, []) == "ok"
    assert check.verdict(False, ["no_valley;fell_back:tail"]) == "SILENT"  # notes are not review flags
    assert check.verdict(False, ["CD4:ambiguous_mode"]) == "flagged"


def test_cytokit_gate_and_run_agree_with_strategy_apply(check, shared_data):
    """Same counts from every entry point; the run's samples.lymphocytes is the strategy's denominator
    (Live for 100715, not Singlets)."""
    for key, (rel, fn, yaml) in check.FILES.items():
        _, result = fn(shared_data)
        assert check.cli_counts_agree(shared_data / rel, check.YAML / yaml, result.populations), key
        assert check.pipeline_agrees(shared_data / rel, check.YAML / yaml, result.populations), key


def test_populations_cut_through_their_own_cluster_are_seen(check, shared_data):
    """NK cells of 9399 NKR sit at an intermediate CD3/CD19 level: the CD3/19 divider (a clean valley of
    the parent, est_error_pp < 0.1 pp) cuts them: the note edge_sensitive (est_error_rel, % of their own
    count, above NOTE_REL); the NKp46-first NK gate (a valley of the NKp46+ cells) has neither. The few
    pDC of A2004 lie just below a CD123 tail threshold: moving it by 0.03 more than doubles them, the
    review flag cut_through."""
    from cytokit.gating.methods.edge import NOTE_REL, REVIEW_REL

    _, nkr = check.check_nkr(shared_data)
    shares = check.edge_shares(nkr)
    assert shares["NK cells"][0] > check.EDGE_SHARE and shares["NK cells"][1] > NOTE_REL
    assert "edge_sensitive" in nkr.fits["NK cells"].flags
    assert not {"edge_sensitive", "cut_through"} & set(nkr.fits["NK cells (NKp46 first)"].flags)
    _, a2004 = check.check_a2004(shared_data)
    assert check.edge_shares(a2004)["pDC"][1] > REVIEW_REL and "cut_through" in a2004.fits["pDC"].flags


def test_area_and_height_files_resolve_and_cd8_matches_the_diva_expert(check, shared_data):
    """124500.fcs (DiVa) and the A2004 file record -A and -H per colour; CD8+ of live cells is within 2 pp
    of the DiVa count (9.40 %)."""
    checks, _ = check.check_diva(shared_data)
    cd8 = next(c for c in checks if c.check.startswith("CD8+ "))
    assert cd8.verdict == "ok" and abs(cd8.value - 9.40) <= 2.0
    a2004, result = check.check_a2004(shared_data)
    assert {"CD14", "CD14-H"} <= set(result.sample.channels["marker"])
    live = next(c for c in a2004 if c.check.startswith("Live "))
    assert live.verdict == "ok"


def test_diva_gates_written_as_the_expert_draws_them_agree(check, shared_data):
    """124500.fcs with the DiVa conventions expressed in the strategy (singlets on FSC-W then SSC-W, debris
    left to P3; CD3+ as the CD3+ peak): no silent row; the FSC-W gate holds the expert's P1 events
    (per-event F1 >= 0.99) and P3, P4, P5 agree within 2 pp."""
    checks, _ = check.check_diva(shared_data)
    assert [c.check for c in checks if c.verdict == "SILENT"] == []
    assert [c.verdict for c in checks if not c.check.startswith("Singlets ")] == ["ok"] * 4
    rows, _ = check.expert_f1(shared_data, "diva")
    assert {r.population: r for r in rows}["FSC singlets"].f1 >= 0.99


def test_apc_as_the_hla_dr_bright_peak_agrees_with_the_expert(check, shared_data):
    """A2004: APC as the HLA-DR-bright peak (lower tail of the last MHCII peak) is within 2 pp of the
    expert's APC; the valley above the negatives (the dim plateau included) is not."""
    checks, result = check.check_a2004(shared_data)
    apc = next(c for c in checks if c.check.startswith("APC "))
    assert apc.verdict == "ok"
    assert result.fits["APC"].info["MHCII"]["method"] == "tail"
    valley = load_strategy_with(check, "dc_monocyte_strategy.yaml").set_params(
        "APC", thresholds=[{"bounds": [0.25, 0.75]}, {"bounds": [0.25, 0.75]}]).refit(result, "APC")
    assert float(valley.populations.set_index("population").loc["APC", "pct_parent"]) - 8.24 > 2.0


def load_strategy_with(check, name):
    from cytokit.gating import load_strategy

    return load_strategy(check.YAML / name)


def test_expert_table_covers_every_mapped_population_and_can_fail(check, shared_data):
    """The per-event table has one row per mapped population of every workspace file; the experts' masks
    reproduce the counts their software stored (within 0.5 % of the parent or one event); the mouse populations agree
    with the expert's FlowJo gates (F1 >= 0.95) and a population compared with the wrong expert gate does
    not (the comparison can fail)."""
    for key, (rel, ws, _, mapping) in check.EXPERT_GATES.items():
        rows, unmatched = check.expert_f1(shared_data, key)
        assert [r.population for r in rows] == list(mapping), key
        assert all(0.0 <= r.f1 <= 1.0 for r in rows) and not set(mapping.values()) & set(unmatched)
    from cytokit.flowjo import read_workspace, workspace_counts

    for ws, fcs in [("flowjo9_diva/A2004Analysis.xml", "flowjo9_diva/a2004_O1T2pb05i_A2_A02.fcs"),
                    ("flowjo9_diva/diva/PE_2.xml", "flowjo9_diva/diva/124500.fcs")]:
        table = workspace_counts(read_workspace(shared_data / ws), check.read_fcs(shared_data / fcs))
        stored = table.dropna(subset=["flowjo_count"])
        off = (stored["count"] - stored["flowjo_count"]).abs()
        assert (off <= np.maximum(1, 0.005 * stored["parent_count"])).all(), ws
    mouse, _ = check.expert_f1(shared_data, "flowsom_68983")
    by = {r.population: r for r in mouse}
    assert min(by[p].f1 for p in ("NK cells", "NKT cells", "B cells", "T cells", "CD4 T", "CD8 T", "gd T")) >= 0.95
    _, masks, _ = check.expert_masks(shared_data, "flowsom_68983")
    cd4 = masks[check.EXPERT_GATES["flowsom_68983"][3]["CD4 T"]]
    cd8 = masks[check.EXPERT_GATES["flowsom_68983"][3]["CD8 T"]]
    assert 2 * (cd4 & cd8).sum() / (cd4.sum() + cd8.sum()) < 0.1


def test_expert_gated_files_have_no_silent_differences(check, shared_data):
    """Every checked number of A2004, 124500 and 9399 NKR is right or flagged. The last silent row (A2004
    mDC, 24.7 vs the expert's 15.8 % of APC) is flagged by its parent's edge (cytokit.gating.parent_edge):
    moving the APC's HLA-DR and CD14 thresholds within their own plausible range moves mDC by > 1 pp."""
    checks, result = check.check_a2004(shared_data)
    mdc = next(c for c in checks if c.check.startswith("mDC "))
    assert mdc.verdict == "flagged" and "parent_edge" in mdc.flags
    silent = [c for fn in (check.check_a2004, check.check_diva, check.check_nkr)
              for c in fn(shared_data)[0] if c.verdict == "SILENT"]
    assert silent == []


def test_mouse_f1_stays_at_least_095(check, shared_data):
    f1 = check.mouse_f1(shared_data)
    assert min(f1.values()) >= 0.95, f1
