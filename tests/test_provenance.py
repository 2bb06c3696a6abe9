"""Every derived table records the sha256 of the inputs it came from."""
from __future__ import annotations

import hashlib

import pandas as pd

from cytokit.provenance import inputs_digest, sample_hashes, stamp_inputs, table_sha256
from cytokit.trial import TrialConfig, TrialInputs, analyse, write_results

from test_trial_data import make_trial


def test_digest_is_order_free_and_input_sensitive():
    a, b = "a" * 64, "b" * 64
    assert inputs_digest([a, b]) == inputs_digest([b, a, a]) == hashlib.sha256(f"{a}\n{b}".encode()).hexdigest()
    assert inputs_digest([a]) != inputs_digest([a, b])


def test_stamp_adds_per_sample_and_cohort_hashes():
    df = pd.DataFrame({"sample_id": ["s1", "s2", "s1"], "x": [1, 2, 3]})
    out = stamp_inputs(df, {"s1": "h1", "s2": "h2"}, "D")
    assert out["sha256"].tolist() == ["h1", "h2", "h1"] and set(out["inputs_sha256"]) == {"D"}
    assert "sha256" not in df.columns  # the caller's frame is untouched
    cohort = stamp_inputs(pd.DataFrame({"test": ["rank-sum"]}), {"s1": "h1"}, "D")
    assert cohort.columns.tolist() == ["test", "inputs_sha256"]


def test_every_trial_table_records_its_inputs(tmp_path):
    pops, clinical = make_trial(n_per_arm=4)
    pops["sha256"] = [hashlib.sha256(s.encode()).hexdigest() for s in pops["sample_id"]]
    result = analyse(TrialInputs(pops, clinical), TrialConfig(figures=False, html=False))
    write_results(result, tmp_path)
    expected = inputs_digest([*sample_hashes(pops).values(), table_sha256(clinical)])
    tables = sorted(tmp_path.glob("*.parquet"))
    assert len(tables) >= 6
    for path in tables:
        df = pd.read_parquet(path)
        assert set(df["inputs_sha256"]) == {expected}, path.name
    values = pd.read_parquet(tmp_path / "patient_visit_values.parquet")
    assert (values["sha256"] == values["sample_id"].map(sample_hashes(pops))).all()
    # a different clinical table gives a different digest
    clinical2 = clinical.assign(lymphocytes_per_uL=clinical["lymphocytes_per_uL"] + 1)
    other = analyse(TrialInputs(pops, clinical2), TrialConfig(figures=False, html=False))
    assert other.inputs_sha256 != result.inputs_sha256


def test_rows_from_several_samples_carry_every_hash():
    df = pd.DataFrame({"sample_id": ["s1;s2", "s2", "s9", ""]})
    out = stamp_inputs(df, {"s1": "h1", "s2": "h2"}, "D")
    assert out["sha256"].tolist()[:2] == ["h1;h2", "h2"]
    assert out["sha256"].isna().tolist()[2:] == [True, True]
