"""Real human files gated with user-written panels and strategies (benchmarks/real_data_check.py): every
checked number is right or carries a review flag. Needs ../shared/data (CYTOKIT_SHARED_DATA)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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


@pytest.mark.xfail(strict=True, reason="known: with the docs' gate kinds, A2004 (APC, B cell, mDC) and 124500 "
                   "(singlets, live, CD3+) differ from the expert by > 2 pp without a review flag "
                   "(benchmarks/real_data_check.py; A2004 pDC and IL-6+ carry cut_through, NKR NK and T + B "
                   "scatter_overlap)")
def test_expert_gated_files_have_no_silent_differences(check, shared_data):
    silent = [c for fn in (check.check_a2004, check.check_diva, check.check_nkr)
              for c in fn(shared_data)[0] if c.verdict == "SILENT"]
    assert silent == []


def test_mouse_f1_stays_at_least_095(check, shared_data):
    f1 = check.mouse_f1(shared_data)
    assert min(f1.values()) >= 0.95, f1
