"""Suggesting which samples an expert should gate (cytokit.learn.suggest, `cytokit learn --suggest`): the
suggested sample is the one on which candidate rules the learner searches gate differently. Synthetic
one-marker samples on the 0..1 gate scale, then a small simulated study through the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.cli.main import main
from cytokit.errors import ConfigError
from cytokit.gating.model import StrategyDefinition
from cytokit.learn.search import TrainingSample
from cytokit.learn.suggest import Question, choose, describe, suggest_from_samples
from cytokit.sample import CHANNEL_COLUMNS, Sample

#: the shipped CD25+ CD4 rule of the tmem strategy: first valley deeper than 0.5, within 0.2..0.5
SHIPPED = {"valley": "first", "max_valley_ratio": 0.5, "tail_sd": 1.75, "bounds": [0.2, 0.5]}
#: negative + bright: one deep valley, where every valley rule cuts alike
AGREE = [(0.2, 0.05, 3000), (0.65, 0.05, 1500)]
#: negative, dim and bright modes: a first and a last valley, the last above the shipped range
THREE = [(0.2, 0.05, 2500), (0.42, 0.04, 1250), (0.66, 0.05, 1000)]


def _definition() -> StrategyDefinition:
    return StrategyDefinition.model_validate({
        "name": "one", "lymphocytes": "pos", "compensation": "none",
        "populations": [{"name": "pos", "dims": ["A"], "method": "threshold",
                         "params": {"sign": "+", "threshold": SHIPPED}}]})


def _sample(name: str, modes: list[tuple[float, float, int]], seed: int) -> TrainingSample:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(m, sd, n) for m, sd, n in modes])
    ch = [dict(pnn="A", pns="", marker="A", fluorochrome="", range=1.0, gain=1.0, log_decades=0.0,
               log_offset=0.0, bits=32, kind="fluorescence")]
    return TrainingSample(name, Sample(x[:, None].astype(np.float32), pd.DataFrame(ch, columns=list(CHANNEL_COLUMNS))),
                          (), {})


def _study() -> list[TrainingSample]:
    return [_sample("a1", AGREE, 1), _sample("a2", AGREE, 2), _sample("three", THREE, 3), _sample("a3", AGREE, 4)]


def test_the_sample_where_candidate_rules_disagree_is_suggested():
    s = suggest_from_samples(_definition(), _study(), 1)
    assert s.samples == ["three"]
    row = s.table.set_index("sample").loc["three"]
    assert row["rank"] == 1 and row["disagreement"] == s.table.disagreement.max()
    # the reason names a rule change (not only a tail width) that gates it differently from the base
    why = s.reasons[s.reasons["sample"] == "three"]
    assert len(why) == 1 and why.iloc[0].f1 < 0.95
    assert "last valley" in why.iloc[0].differ_from_base


def test_an_already_gated_sample_is_not_suggested_again(tmp_path):
    s = suggest_from_samples(_definition(), _study(), 2, gated=["three"])
    assert "three" not in s.samples and len(s.samples) == 2
    paths = s.save(tmp_path)
    page = paths["html"].read_text()
    assert "Already gated: three" in page and s.samples[0] in page
    assert len(pd.read_csv(paths["table"])) == 4
    with pytest.raises(ConfigError, match="exists"):
        s.save(tmp_path)
    with pytest.raises(ConfigError, match="not among"):
        suggest_from_samples(_definition(), _study(), 1, gated=["nope"])


def test_choice_follows_the_expected_disagreement_left():
    """Three members (base, A, B) on three samples: A differs from the base on sample 0 only (F1 0.6), B on
    sample 2 only (F1 0.5); sample 1 shows nothing. One gated sample cannot tell both from the base: gating 2
    leaves A kept as the base on sample 0 (1 - 0.6), gating 0 leaves B on sample 2 (1 - 0.5, more), gating 1
    leaves both. So 2 first, then 0, after which nothing is left; sample 1 is never worth gating."""
    eye = np.ones((3, 3))

    def differ(i: int, f: float) -> np.ndarray:
        m = eye.copy()
        m[0, i] = m[i, 0] = f
        m[1, 2] = m[2, 1] = f
        return m

    q = Question(("pos",), "A", [{}, {"valley": "last"}, {"valley": "deepest"}], ["base", "A", "B"],
                 [differ(1, 0.6), eye, differ(2, 0.5)])
    picks, left = choose([q], 2, ["s0", "s1", "s2"])
    assert picks == [2, 0]
    assert left[0] > left[1] == 0.0
    assert q.expected_left([0, 2]) == 0.0 and q.expected_left([1]) > q.expected_left([2])


def test_members_are_described_by_what_they_change():
    assert describe(SHIPPED, SHIPPED) == "base"
    text = describe({k: v for k, v in {**SHIPPED, "valley": "last", "max_valley_ratio": 0.6}.items() if k != "bounds"},
                    SHIPPED)
    assert text == "last valley, depth 0.6, no range"
    assert describe({"mode": "tail", "tail_sd": 2.0}, SHIPPED) == "tail 2.0 SD"


def test_cli_learn_suggest(tmp_path, capsys):
    from cytokit.simulate import SimulationConfig, simulate_trial

    simulate_trial(tmp_path / "trial", SimulationConfig(patients_per_arm=1, visits=["W0", "W24"], tubes=["tmem"],
                                                         events=4000, seed=5))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("CD25+ CD4: CD25+ CD4\n")  # only the mapped populations' thresholds are asked about
    rc = main(["learn", "--suggest", "2", str(tmp_path / "trial" / "fcs"), "--strategy", "tmem", "--mapping",
               str(mapping), "--out", str(tmp_path / "o")])
    assert rc == 0
    table = pd.read_csv(tmp_path / "o" / "suggestion.csv")
    assert len(table) == 4 and sorted(table["rank"].dropna()) == [1, 2]
    assert set(pd.read_csv(tmp_path / "o" / "suggestion_reasons.csv").populations) <= {"CD25+ CD4"}
    out = capsys.readouterr().out
    assert all(name in out for name in table[table["rank"].notna()]["sample"])
    assert main(["learn", "--suggest", "0", str(tmp_path / "trial" / "fcs"), "--strategy", "tmem",
                 "--out", str(tmp_path / "p")]) == 2
    assert main(["learn", "--suggest", "1", str(tmp_path / "trial" / "fcs"), "--out", str(tmp_path / "p")]) == 2
    assert "--strategy" in capsys.readouterr().err
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"not an FCS file")
    assert main(["learn", "--suggest", "1", str(bad), "--strategy", "tmem", "--out", str(tmp_path / "p")]) == 2
    assert "no sample could be read" in capsys.readouterr().err
    assert not (tmp_path / "p" / "suggestion.csv").exists()


def test_known_expert_gates_narrow_the_possible_rules():
    """Four members: base, A, B, C. Sample 1 (gated) tells {base, A} from {B, C}; sample 0 tells A from the
    rest; sample 2 tells C from the rest, by more. Not knowing the expert's gate of sample 1, the lab could
    follow any member and sample 2 is the better next one; knowing that the expert gated sample 1 as base
    and A do (B and C do not reproduce it), only base and A are possible and sample 0 decides between them."""
    one = np.ones((4, 4))

    def apart(groups: list[set[int]], f: float) -> np.ndarray:
        m = one.copy()
        for i in range(4):
            for j in range(4):
                if not any(i in g and j in g for g in groups):
                    m[i, j] = f
        return m

    f1 = [apart([{0, 2, 3}, {1}], 0.6), apart([{0, 1}, {2, 3}], 0.5), apart([{0, 1, 2}, {3}], 0.3)]
    members = [{}, {"valley": "last"}, {"valley": "deepest"}, {"bounds": None}]
    labels = ["base", "A", "B", "C"]
    blind = Question(("pos",), "A", members, labels, f1)
    assert choose([blind], 1, ["s0", "s1", "s2"], gated=[1])[0] == [2]
    told = Question(("pos",), "A", members, labels, f1, {1: np.array([1.0, 1.0, 0.5, 0.5])})
    assert told.possible([1]).tolist() == [True, True, False, False]
    assert told.possible([0]).all()  # no expert gate known there: every member possible
    assert choose([told], 1, ["s0", "s1", "s2"], gated=[1])[0] == [0]
    # no member reproduces the expert exactly: those reproducing it best (within the near tie) stay possible
    assert Question(("pos",), "A", members, labels, f1, {1: np.array([0.9, 0.7, 0.6, 0.9])}).possible([1]).tolist() \
        == [True, False, False, True]
