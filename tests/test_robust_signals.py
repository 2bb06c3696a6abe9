"""SIGTERM during a module import: the import completes, then the command is terminated cleanly."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_sigterm_during_an_import_is_delivered_after_it(tmp_path: Path) -> None:
    (tmp_path / "slow_module.py").write_text(textwrap.dedent("""
        import os, signal, time
        os.kill(os.getpid(), signal.SIGTERM)   # arrives while this module is being imported
        t = time.monotonic()
        while time.monotonic() - t < 0.3:      # Python code keeps running: the handler gets its chance here
            pass
        LOADED = True
    """))
    script = textwrap.dedent("""
        import time
        from cytokit.cli.signals import Terminated, terminate_on_sigterm
        try:
            with terminate_on_sigterm():
                import slow_module
                print("imported", slow_module.LOADED, flush=True)
                time.sleep(5)
                print("not terminated", flush=True)
        except Terminated:
            print("terminated", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.split() == ["imported", "True", "terminated"], (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_cli_log_lines_follow_the_current_stderr(monkeypatch) -> None:
    """A stream swapped and closed after logging was configured (CLI runner, notebooks) is not written to."""
    import io
    import logging

    from cytokit.log import configure_cli_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_cli_logging()
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("cytokit.test").warning("after the swap")
    assert "Logging error" not in second.getvalue()
    assert second.getvalue() == "WARNING cytokit.test: after the swap\n"


def test_sigterm_inside_a_finaliser_is_delivered_after_it(tmp_path: Path) -> None:
    """A SIGTERM handled while the garbage collector runs a finaliser (matplotlib's weakref callbacks during a
    report) is neither printed as a traceback nor lost: the command is terminated in the code it interrupted."""
    import cytokit

    script = textwrap.dedent("""
        import os, signal, time
        from cytokit.cli.signals import Terminated, terminate_on_sigterm

        class Finalised:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)   # handled on the finaliser's next bytecodes
                t = time.monotonic()
                while time.monotonic() - t < 0.2:
                    pass
                print("finaliser done", flush=True)

        try:
            with terminate_on_sigterm():
                obj = Finalised()
                del obj
                time.sleep(5)
                print("not terminated", flush=True)
        except Terminated:
            print("terminated", flush=True)
    """)
    root = str(Path(cytokit.__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"})
    assert proc.stdout.split() == ["terminated"], (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
