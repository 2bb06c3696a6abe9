"""``cytokit compensate``: spillover matrices on the command line.

* ``cytokit compensate estimate CONTROL... --unstained U.fcs --out matrix.csv`` — estimate a spillover
  matrix from single-stain controls (channels from ``--match`` CSV, ``--channel FILE=PnN``, or detected);
  writes the matrix CSV atomically (``--force`` to overwrite) and optionally a per-control table.
* ``cytokit compensate show FILE`` — print a file's acquisition matrix or a matrix file.
* ``cytokit compensate apply FCS... --out DIR [--matrix M.csv]`` — write compensated FCS files.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import CompensationError, ConfigError, CytokitError

if TYPE_CHECKING:  # pragma: no cover
    from ..sample import Sample

compensate_app = typer.Typer(no_args_is_help=True, help="Estimate, show and apply spillover matrices.")


def _read_match(path: Path) -> dict[str, str]:
    """File name → channel from a CSV with a file column (name/filename/file) and a channel column."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read channel match table: {exc}", path=path) from None
    cols = {c.lower().strip(): c for c in table.columns}
    file_col = next((cols[c] for c in ("name", "filename", "file") if c in cols), None)
    if file_col is None or "channel" not in cols:
        raise ConfigError("channel match table needs a 'name' (or 'filename'/'file') and a 'channel' column",
                          path=path)
    return {Path(str(f)).name: str(c).strip() for f, c in zip(table[file_col], table[cols["channel"]])}


def _is_unstained(channel: str) -> bool:
    return channel.strip().lower() in ("unstained", "unstain", "blank", "negative", "nil")


@compensate_app.command("estimate")
def estimate(
    controls: list[Path] = typer.Argument(..., help="Single-stain control FCS files (uncompensated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Matrix CSV to write."),
    unstained: Optional[Path] = typer.Option(None, "--unstained", "-u", help="Unstained control FCS file."),
    match: Optional[Path] = typer.Option(None, "--match", help="CSV: file name → channel ('unstained' allowed)."),
    channel: list[str] = typer.Option([], "--channel", help="FILE=PnN for one control (repeatable)."),
    channels: Optional[str] = typer.Option(None, "--channels", help="Comma-separated matrix channels ($PnN)."),
    scatter_gate: str = typer.Option("auto", "--scatter-gate", help="'auto' or 'none'."),
    report: Optional[Path] = typer.Option(None, "--report", help="CSV with one row per control."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Estimate a spillover matrix from single-stain controls plus an unstained control."""
    from ..compensation import fit_spillover
    from ..fcs import read_fcs
    from ..io_utils import write_table

    if scatter_gate not in ("auto", "none"):
        raise ConfigError(f"--scatter-gate must be 'auto' or 'none', not {scatter_gate!r}")
    report_csv = report.with_suffix(".csv") if report is not None else None  # what is written
    for target in (out, report_csv):
        if target is not None and target.exists() and not force:
            raise CompensationError("output exists; use --force to overwrite", path=target)
    mapping = _read_match(match) if match else {}
    for item in channel:
        if "=" not in item:
            raise ConfigError(f"--channel expects FILE=PnN, got {item!r}")
        name, c = item.split("=", 1)
        mapping[Path(name).name] = c.strip()
    files = list(controls)
    if unstained is None:
        unstained_files = [f for f in files if _is_unstained(mapping.get(f.name, ""))]
        if len(unstained_files) == 1:
            unstained = unstained_files[0]
    files = [f for f in files if unstained is None or f.resolve() != unstained.resolve()]
    unstained_sample = read_fcs(unstained) if unstained is not None else None
    samples = [read_fcs(f) for f in files]
    if mapping:
        unknown = [f.name for f in files if f.name not in mapping]
        if unknown:
            raise ConfigError(f"no channel given for control(s) {', '.join(unknown)} (see --match / --channel)")
        by_channel: dict[str, Sample] = {}
        for f, s in zip(files, samples):
            ch = mapping[f.name]
            if ch in by_channel:
                raise ConfigError(f"two controls for channel {ch}: {by_channel[ch].name} and {f.name} "
                                  "(see --match / --channel)")
            by_channel[ch] = s
        single: dict[str, Sample] | list[Sample] = by_channel
    else:
        single = samples
    est = fit_spillover(single, unstained_sample,
                        channels=[c.strip() for c in channels.split(",")] if channels else None,
                        scatter_gate=None if scatter_gate == "none" else "auto")
    est.matrix.write(out, force=True)
    typer.echo(f"wrote {out} ({est.matrix.n} channels from {len(est.controls)} controls)")
    for r in est.controls.itertuples():
        typer.echo(f"  {r.channel:<20} {r.file:<30} {r.positive:>7} positive events ({r.method})")
    if report is not None:
        write_table(est.controls, report.with_suffix(""), formats=("csv",), force=True)
        typer.echo(f"wrote {report_csv}")


@compensate_app.command("show")
def show(path: Path = typer.Argument(..., help="FCS file (acquisition matrix) or matrix CSV/TSV.")) -> None:
    """Print a spillover matrix (rows = fluorochrome, columns = detector)."""
    import pandas as pd

    from ..compensation import acquisition_matrix, read_matrix

    if path.suffix.lower() in (".csv", ".tsv", ".txt", ".mtx") or not path.suffix:
        m = read_matrix(path)
    else:
        from ..fcs import read_fcs

        acquired = acquisition_matrix(read_fcs(path))
        if acquired is None:
            raise CompensationError("the file has no spillover matrix", path=path)
        m = acquired
    typer.echo(f"{m.source} ({m.n} channels)")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        typer.echo(m.to_dataframe().round(5).to_string())


@compensate_app.command("apply")
def apply(
    files: list[Path] = typer.Argument(..., help="FCS files to compensate."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    matrix: Optional[Path] = typer.Option(None, "--matrix", "-m", help="Matrix file (default: each file's own)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Write compensated copies of FCS files (FCS 3.1 float32, '<name>_comp.fcs'); inputs are not modified."""
    from ..compensation import compensate, read_matrix
    from ..fcs import read_fcs, write_fcs
    from ..io_utils import safe_name

    m = read_matrix(matrix) if matrix is not None else None
    failed = 0
    for f in files:
        try:
            s = read_fcs(f)
            c = compensate(s, m)
            if c is s:
                typer.echo(f"skipped {f} (already compensated)")
                continue
            meta = {k: v for k, v in s.metadata.items()
                    if k in ("fil", "cyt", "date", "btim", "etim", "src", "inst", "op")}
            meta["cytokit_compensated"] = c.provenance[-1]
            target = out / f"{safe_name(Path(f).stem)}_comp.fcs"
            write_fcs(target, c.events, list(c.channels["pnn"].astype(str)),
                      list(c.channels["pns"].fillna("").astype(str)), meta, force=force)
            typer.echo(f"wrote {target}")
        except CytokitError as exc:  # one bad file does not stop the batch
            failed += 1
            typer.echo(f"error: {exc}", err=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``cytokit compensate ...`` to the CLI."""
    app.add_typer(compensate_app, name="compensate")
