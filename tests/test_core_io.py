"""Core utilities: atomic writing, safe names, hashing, tables, YAML safety, definitions, Sample."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from cytokit.definitions import list_builtins, resolve_definition
from cytokit.errors import ConfigError, CytokitError, FCSError, PanelError, PipelineError
from cytokit.io_utils import atomic_write_text, atomic_writer, safe_name, sha256_file, write_table
from cytokit.sample import CHANNEL_COLUMNS, Sample
from cytokit.yamlio import load_model


@pytest.mark.parametrize("text", ["../../x", "/etc/passwd", "a/b\\c", "..", "x\x00y\x1b[31m", "<script>", "  "])
def test_safe_name_never_escapes_or_hides(text):
    name = safe_name(text)
    assert name and "/" not in name and "\\" not in name and not name.startswith(".")
    assert all(c.isalnum() or c in "._+-" for c in name)
    assert name not in (".", "..")


def test_atomic_writer_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(target, "w") as fh:
            fh.write("partial")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temp file left behind


def test_atomic_writer_refuses_overwrite_without_force(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "a")
    with pytest.raises(PipelineError, match="--force"):
        atomic_write_text(target, "b", force=False)
    assert target.read_text() == "a"


def test_unwritable_destination_gives_clear_error(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(PipelineError, match="cannot write output"):
        atomic_write_text(blocker / "x.txt", "a")
    assert blocker.read_text() == "a file where a folder should be"


def test_write_table_and_hash(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    paths = write_table(df, tmp_path / "t")
    assert sorted(p.suffix for p in paths) == [".csv", ".parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df)
    assert sha256_file(paths[1]) == hashlib.sha256(paths[1].read_bytes()).hexdigest()


class _M(BaseModel):
    name: str
    size: int


def test_yaml_errors_name_file_line_field(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("name: a\nsize: many\n")
    with pytest.raises(ConfigError, match=r"d.yaml:2: size:"):
        load_model(p, _M)
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_model(p, _M)


def test_yaml_never_constructs_python_objects(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\nsize: 1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_model(p, _M)


def test_definitions_resolve_builtins_and_paths(tmp_path):
    assert "reference_intervals" in list_builtins("pipelines")
    assert resolve_definition("reference_intervals", "pipelines").is_file()
    with pytest.raises(ConfigError, match="built-ins are"):
        resolve_definition("no_such_thing", "gating")
    with pytest.raises(ConfigError, match="not found"):
        resolve_definition(tmp_path / "missing.yaml", "panels")


def _sample() -> Sample:
    channels = pd.DataFrame([
        {"pnn": "FSC-A", "pns": "", "marker": "FSC-A", "kind": "scatter"},
        {"pnn": "PE-Cy7-A", "pns": "CD4 PE-Cy7", "marker": "CD4", "kind": "fluorescence"},
    ]).reindex(columns=list(CHANNEL_COLUMNS))
    return Sample(events=np.arange(8, dtype=np.float32).reshape(4, 2), channels=channels)


def test_sample_lookup_and_subset_are_pure():
    s = _sample()
    assert s.column("cd4").tolist() == [1, 3, 5, 7]
    assert s.column("PE-Cy7-A").tolist() == s.column("CD4 PE-Cy7").tolist()
    sub = s.subset(np.array([True, False, True, False]), note="qc")
    assert sub.n_events == 2 and s.n_events == 4 and sub.provenance == ("qc",)
    with pytest.raises(PanelError, match="no channel named 'CD8'"):
        s.column("CD8")
    with pytest.raises(ValueError):
        Sample(events=np.zeros((3, 3), np.float32), channels=s.channels)


def test_error_messages_name_the_file():
    err = FCSError("truncated DATA segment", path="/data/x.fcs")
    assert str(err).startswith("/data/x.fcs: ") and isinstance(err, CytokitError)
