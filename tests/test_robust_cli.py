"""CLI robustness: usage errors, exit codes, file modes, log lines and hostile YAML."""
from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cytokit.cli.main import main as cli_main
from cytokit.errors import ConfigError


@pytest.mark.parametrize("argv, message", [
    (["rn"], "No such command 'rn'"),
    (["run", "--bogus"], "No such option: --bogus"),
    (["inspect"], "Missing argument"),
    (["run", "x.yaml", "--jobs", "0"], "--jobs"),
    (["report"], "Missing argument"),
])
def test_usage_errors_exit_2_without_traceback(argv, message, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_version_and_usage_errors_from_the_command_line():
    out = subprocess.run([sys.executable, "-m", "cytokit", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("cytokit ")
    bad = subprocess.run([sys.executable, "-m", "cytokit", "rnu"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "No such command" in bad.stderr


def test_inspect_on_a_non_fcs_file_exits_2(tmp_path, capsys):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a flow file\n")
    assert cli_main(["inspect", str(bogus)]) == 2
    assert "not an FCS file" in capsys.readouterr().err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    from cytokit.io_utils import atomic_write_text, write_table
    import pandas as pd

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t")
    finally:
        os.umask(old)
    for name in ("a.txt", "t.csv", "t.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_stale_temporaries_are_removed(tmp_path):
    from cytokit.io_utils import remove_stale_temporaries

    (tmp_path / "sub").mkdir()
    left = tmp_path / "sub" / ".result.json.k3j_a9x2.tmp"
    left.write_text("partial")
    keep = [tmp_path / ".hidden.tmp", tmp_path / "data.tmp", tmp_path / "result.json"]
    for p in keep:
        p.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [left]
    assert not left.exists() and all(p.exists() for p in keep)


def test_control_characters_in_log_arguments_are_escaped():
    import io

    from cytokit.log import OneLineFilter, one_line

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(OneLineFilter())
    logger = logging.getLogger("cytokit.test_robust_log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("patient %s failed: %s", "P1\nERROR forged line", ValueError("bad\r\x1b[2Jvalue"))
    finally:
        logger.removeHandler(handler)
    text = buf.getvalue()
    assert text.count("\n") == 1 and "P1\\nERROR forged line" in text and "\\x1b" in text
    assert one_line("a\tb\nc") == "a\tb\\nc"


def _alias_bomb(path: Path, depth: int) -> Path:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, depth + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"name: *a{depth}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    from cytokit.yamlio import read_yaml

    bomb = _alias_bomb(tmp_path / "bomb.yaml", 7)  # 10**8 nodes if expanded
    with pytest.raises(ConfigError, match="aliases expand"):
        read_yaml(bomb)
    assert cli_main(["run", str(bomb)]) == 2
    assert "aliases expand" in capsys.readouterr().err
    small = tmp_path / "ok.yaml"
    small.write_text("base: &b {x: 1, y: [1, 2]}\nuse: [*b, *b]\n")
    assert read_yaml(small)[0]["use"][1] == {"x": 1, "y": [1, 2]}


def test_builtin_definitions_are_far_below_the_alias_limit():
    from cytokit.definitions import resolve_definition  # noqa: F401 - built-ins resolve through it
    from cytokit.yamlio import MAX_EXPANDED_NODES, _expanded_size
    import yaml

    root = Path(__file__).resolve().parents[1]
    for path in [*root.glob("gating/*.yaml"), *root.glob("panels/*.yaml"), *root.glob("pipelines/*.yaml")]:
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        assert _expanded_size(node, path) < MAX_EXPANDED_NODES // 10, path
