"""``cytokit inspect FILE... [--json]``: what is in FCS files (version, instrument, events, channels,
spillover keyword, reader warnings). A file that cannot be read prints its error and the command goes
on with the others; the exit code is 1 when any file failed."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import CytokitError


def _safe(text: Any) -> str:
    """Untrusted FCS text for a terminal: control characters (ANSI escapes...) shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _inspect_one(path: Path, dataset: int, panel: Optional[str], tube: Optional[str], qc: bool) -> dict[str, Any]:
    from ..fcs import read_fcs
    from ..fcs.summary import describe

    sample = read_fcs(path, dataset=dataset)
    info = describe(sample)
    if panel:
        from ..panel import load_panel, panel_flags

        resolved = load_panel(panel).resolve(sample, tube=tube)
        for ch, marker, kind in zip(info["channels"], resolved.channels["marker"], resolved.channels["kind"]):
            ch["marker"], ch["kind"] = str(marker), str(kind)
        # the panel's own warnings (markers from detector names only, a fluorochrome other than expected)
        info["warnings"] = list(dict.fromkeys([*info["warnings"], *map(str, resolved.warnings)]))
        info["panel_flags"] = panel_flags(resolved)
        sample = resolved
    if qc:
        from ..qc import run_qc

        res = run_qc(sample)
        info["qc"] = {"kept": res.n_kept, "flags": list(res.flags),
                      "removed": {k: int(v) for k, v in res.removed.items()}}
    return info


def _print_plain(info: dict[str, Any]) -> None:
    echo = typer.echo
    echo(_safe(info['file']))
    echo(f"  FCS {info['fcs_version']}, data set {info['dataset']}, "
         f"instrument: {_safe(info['instrument'] or '-')}")
    echo(f"  events: {info['n_events']}  channels: {info['n_channels']}")
    spill = (f"{info['spillover_keyword']} ({info['spillover_size']} channels)" if info["spillover_keyword"]
             else "none")
    echo(f"  spillover: {_safe(spill)}")
    echo("  #   PnN                  PnS                       marker               kind          range")
    for i, ch in enumerate(info["channels"], start=1):
        rng = "" if ch["range"] is None else f"{ch['range']:g}"
        echo(f"  {i:<3} {_safe(ch['pnn']):<20} {_safe(ch['pns']):<25} {_safe(ch['marker']):<20} "
             f"{ch['kind']:<13} {rng}")
    if "qc" in info:
        q = info["qc"]
        removed = ", ".join(f"{k} {v}" for k, v in q["removed"].items() if v) or "nothing"
        echo(f"  QC: kept {q['kept']}/{info['n_events']}; removed {removed}; flags: {';'.join(q['flags']) or '-'}")
    for w in info["warnings"]:
        echo(f"  warning: {_safe(w)}")


def _print_rich(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def _esc(text: Any) -> str:
        return escape(_safe(text))

    console = Console()
    spill = (f"{info['spillover_keyword']} ({info['spillover_size']} channels)" if info["spillover_keyword"]
             else "none")
    title = (f"{_esc(info['file'])}\nFCS {info['fcs_version']} · data set {info['dataset']} · "
             f"{_esc(info['instrument'] or '-')} · {info['n_events']:,} events · "
             f"spillover: {_esc(spill)}")
    table = Table(title=title, title_justify="left")
    for col in ("#", "PnN", "PnS", "marker", "kind", "range"):
        table.add_column(col)
    for i, ch in enumerate(info["channels"], start=1):
        table.add_row(str(i), _esc(ch["pnn"]), _esc(ch["pns"]), _esc(ch["marker"]), ch["kind"],
                      "" if ch["range"] is None else f"{ch['range']:g}")
    console.print(table)
    if "qc" in info:
        q = info["qc"]
        removed = ", ".join(f"{k} {v}" for k, v in q["removed"].items() if v) or "nothing"
        console.print(f"QC: kept {q['kept']:,}/{info['n_events']:,}; removed {_esc(removed)}; "
                      f"flags: {_esc(';'.join(q['flags']) or '-')}")
    for w in info["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {_esc(w)}")


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        files: list[Path] = typer.Argument(..., help="FCS/LMD files to describe."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON list instead of tables."),
        dataset: int = typer.Option(0, "--dataset", help="Data set of multi-data-set files (0-based)."),
        panel: Optional[str] = typer.Option(None, "--panel", help="Resolve markers with this panel."),
        tube: Optional[str] = typer.Option(None, "--tube", help="Tube of the panel (with --panel)."),
        qc: bool = typer.Option(False, "--qc", help="Also run QC with default parameters."),
    ) -> None:
        """Describe FCS files: version, instrument, events, channels, spillover keyword, warnings."""
        results: list[dict[str, Any]] = []
        failed = 0
        rich_out = sys.stdout.isatty() and not as_json
        for path in files:
            try:
                info = _inspect_one(path, dataset, panel, tube, qc)
            except CytokitError as exc:
                failed += 1
                results.append({"file": str(path), "error": str(exc)})
                typer.echo(f"error: {_safe(exc)}", err=True)
                continue
            results.append(info)
            if not as_json:
                (_print_rich if rich_out else _print_plain)(info)
        if as_json:
            typer.echo(json.dumps(results, indent=2, ensure_ascii=False))
        if failed:  # bad input (exit 2) when nothing could be read; partial success is 1
            typer.echo(f"{failed} of {len(files)} file(s) could not be read", err=True)
            raise typer.Exit(2 if failed == len(files) else 1)
