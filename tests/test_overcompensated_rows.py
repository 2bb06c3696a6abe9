"""A failed compensation check (``overcompensated``: data already compensated that still carry $SPILLOVER,
compensated again) flags the population rows it can move, not only the sample: every row whose gate reads a
channel compensation moved carries the review flag ``<marker>:overcompensated``, every row below such a gate
(parents, boolean operands) ``overcompensated``, and scatter-only rows nothing. The same rows from
``Strategy.apply``, ``cytokit gate`` and ``cytokit run`` (local and Dask executors)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cytokit.compensation import compensate, compensation_flags
from cytokit.compensation.check import FLAG_OVER, moved_channels, receiving_channels
from cytokit.compensation.matrix import SpilloverMatrix
from cytokit.fcs import read_fcs, write_fcs
from cytokit.gating import load_strategy
from cytokit.gating.model import defining_populations
from cytokit.pipeline import adhoc_pipeline, run
from cytokit.results import schema as S

REPO = Path(__file__).resolve().parents[1]
SCATTER = ("FSC-A", "FSC-H", "SSC-A")
#: populations added to mouse_lymphocytes: a scatter gate below a fluorescence gate, and a boolean of two
EXTRA = [
    {"name": "Large T", "parent": "T cells", "dims": ["FSC-A"], "method": "threshold",
     "params": {"sign": "+", "threshold": {"mode": "tail", "tail_side": "lower", "reference_peak": "highest",
                                           "tail_sd": 3.5}}},
    {"name": "T or B", "method": "boolean", "params": {"op": "or", "operands": ["T cells", "B cells"]}},
]


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory) -> Path:
    """flowsom_68983 as published (``asis``) and already compensated with $SPILLOVER kept (``already``)."""
    s = read_fcs(shared_data / "flowsom_68983/68983.fcs")
    folder = tmp_path_factory.mktemp("overcomp") / "fcs"
    folder.mkdir()
    pnn = list(s.channels["pnn"].astype(str))
    pns = list(s.channels["pns"].fillna("").astype(str))
    meta = {"SPILL": s.metadata["spill"], "$TIMESTEP": s.metadata.get("timestep", "0.01")}
    meta.update({f"$P{i + 1}R": str(int(r)) for i, r in enumerate(s.channels["range"])})
    write_fcs(folder / "asis.fcs", s.events, pnn, pns, meta)
    write_fcs(folder / "already.fcs", compensate(s).events, pnn, pns, meta)
    return folder


@pytest.fixture(scope="module")
def strategy_file(tmp_path_factory) -> Path:
    data = yaml.safe_load((REPO / "gating" / "mouse_lymphocytes.yaml").read_text())
    data["populations"] += EXTRA
    path = tmp_path_factory.mktemp("strategy") / "mouse_extra.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _expected(definition, name: str) -> tuple[set[str], bool]:
    """The marker-prefixed words a row must carry, and whether it must carry the plain word."""
    spec = definition.population(name)
    own = {f"{d}:{FLAG_OVER}" for d in spec.dims if d not in SCATTER}
    above = any(d not in SCATTER for p in defining_populations(definition, name)
                for d in definition.population(p).dims)
    return own, above and not own


def _check_rows(table: pd.DataFrame, definition) -> None:
    for row in table.itertuples(index=False):
        review = set(str(row.review_flags).split(";")) - {""}
        words = {w for w in review if w.split(":")[-1] == FLAG_OVER}
        own, plain = _expected(definition, row.population)
        assert words == own | ({FLAG_OVER} if plain else set()), row.population
        if words:
            assert bool(row.review), row.population
        assert FLAG_OVER not in str(row.notes), row.population


def test_receiving_channels_are_those_compensation_changes():
    m = SpilloverMatrix(("A", "B", "C"), [[1.0, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert receiving_channels(m) == ["B"]


def test_failed_check_flags_fluorescence_rows_and_not_scatter_rows(files, strategy_file):
    strategy = load_strategy(strategy_file)
    definition = strategy.definition
    already = strategy.apply(read_fcs(files / "already.fcs"))
    assert compensation_flags(already.sample) == [FLAG_OVER]
    assert "FSC-A" not in moved_channels(already.sample) and "FITC-A" in moved_channels(already.sample)
    table = already.populations
    _check_rows(table, definition)
    by = table.set_index(S.POPULATION)
    # scatter rows above every fluorescence gate: no word, as published
    for name in ("Cells", "Lymphocytes", "Singlets"):
        assert FLAG_OVER not in by.loc[name, S.FLAGS], name
    # a fluorescence gate, a scatter gate below one (its count rests on the T cells gate), a boolean of two
    assert "CD3:overcompensated" in by.loc["T cells", S.REVIEW_FLAGS].split(";")
    assert by.loc["Large T", S.REVIEW_FLAGS].split(";").count(FLAG_OVER) == 1 and by.loc["Large T", S.REVIEW]
    assert FLAG_OVER in by.loc["T or B", S.REVIEW_FLAGS].split(";") and by.loc["T or B", S.REVIEW]
    assert sum(bool(_expected(definition, n)[0]) for n in by.index) >= 8
    # the same file as published: no row carries the word
    asis = strategy.apply(read_fcs(files / "asis.fcs"))
    assert compensation_flags(asis.sample) == [] and moved_channels(asis.sample) == []
    assert not asis.populations[S.FLAGS].str.contains(FLAG_OVER).any()
    assert not any(FLAG_OVER in w for words in asis.channel_notes.values() for w in words)
    # rows as dicts carry the same
    assert [r[S.REVIEW_FLAGS] for r in already.population_rows] == list(table[S.REVIEW_FLAGS])


def test_gate_command_shows_the_row_flags(files, tmp_path):
    from typer.testing import CliRunner

    from cytokit.cli.main import build_app

    out = CliRunner().invoke(build_app(), ["gate", str(files / "already.fcs"), "--strategy", "mouse_lymphocytes",
                                           "--table", str(tmp_path / "t.csv")])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("│ T cells"))
    cell = "".join(line.split("│")[9].strip() for line in lines[start:start + 8])  # the review column, folded
    assert "REVIEW" in cell and "CD3:overcompensated" in cell
    table = pd.read_csv(tmp_path / "t.csv").fillna("")
    direct = load_strategy("mouse_lymphocytes").apply(read_fcs(files / "already.fcs")).populations
    assert list(table[S.REVIEW_FLAGS]) == list(direct[S.REVIEW_FLAGS])
    _check_rows(table, load_strategy("mouse_lymphocytes").definition)


def test_run_tables_carry_the_row_flags_with_either_executor(files, tmp_path):
    """``cytokit run`` (local executor) writes the rows Strategy.apply gives, review columns included; the
    Dask executor writes the same table."""
    config = adhoc_pipeline(files, "mouse_lymphocytes", "mouse_lymphocytes", tube="lymphocytes",
                            outputs={"gatingml": False, "thumbnails": False, "flowjo_workspace": False})
    summary = run(config, tmp_path / "local", jobs=1)
    assert summary.failed == 0, summary.failures
    pops = pd.read_csv(tmp_path / "local" / "populations.csv").fillna("")
    definition = load_strategy("mouse_lymphocytes").definition
    already = pops[pops[S.SAMPLE_ID] == "already"]
    _check_rows(already, definition)
    assert already[S.REVIEW_FLAGS].str.contains("CD3:overcompensated").any()
    assert not pops[pops[S.SAMPLE_ID] == "asis"][S.FLAGS].str.contains(FLAG_OVER).any()
    direct = load_strategy("mouse_lymphocytes").apply(read_fcs(files / "already.fcs")).populations
    assert list(already[S.REVIEW_FLAGS]) == list(direct[S.REVIEW_FLAGS].fillna(""))
    distributed = pytest.importorskip("distributed", reason="the dask executor needs cytokit[distributed]")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        dask = run(config, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert dask.failed == 0, dask.failures
    other = pd.read_csv(tmp_path / "dask" / "populations.csv").fillna("")
    cols = [S.SAMPLE_ID, S.POPULATION, S.COUNT, S.FLAGS, S.REVIEW, S.REVIEW_FLAGS, S.NOTES]
    pd.testing.assert_frame_equal(pops[cols].reset_index(drop=True), other[cols].reset_index(drop=True))
