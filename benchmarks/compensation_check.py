"""Benchmark of the compensation check (cytokit.compensation.check) across scenario families (issue 11).

Each *base file* is raw (uncompensated, linear-scale) events with the spillover matrix the file carries. Every
base file is checked in these variants, as :func:`cytokit.compensation.compensate` would check it:

* ``once``: compensated with its own matrix (must pass: a flag here is a false positive);
* ``twice``: its compensated events compensated again (data already compensated that still carry
  ``$SPILLOVER``; must be flagged ``overcompensated``);
* ``over10`` / ``over25`` / ``over50``: compensated with the matrix's off-diagonal values scaled by 1.10 /
  1.25 / 1.50 (over-subtraction). The check is given the matrix that was applied, so its residual is
  ``d = -(k - 1) / k``: -0.09 / -0.20 / -0.33 for these scales, against the ``-0.6`` verdict limit. What a
  cytometrist wants flagged: 10-25 % is the routine error of a measured matrix (a single-stain control's
  spillover is measured to about that) and should pass; 50 % puts the negatives of bright cells visibly
  below their dim neighbours, which a cytometrist would fix by hand — the table reports how often the
  check sees it (the verdict is named for spillover removed about twice, ``d`` near -1);
* ``wrong``: compensated with another instrument's matrix (the values of a base file from another source with
  at least as many colours, mapped onto this file's detectors in order) — reported, not scored: it can
  under- or over-compensate.

Sources (``--sources``): ``param`` (a parametric generator in this file: colours, spillover structure,
brightness, co-expression and event counts set per family; independent of cytokit.simulate), ``sim``
(:func:`cytokit.simulate.simulate_file`, its own spillover at instrument scale 0.5 / 1 / 2), ``labA`` /
``labB`` / ``labC`` (``benchmarks/independent_lab_gen``: their own spillover matrices and acquisition; lab B's
``already_compensated`` files are a family of their own: compensated as they are, they must be flagged), and
``real`` (``/work/shared/data``-style folder: the real files with a ``$SPILLOVER`` and the compensation
controls). ``_qc`` families run the gating chain's QC (:func:`cytokit.gating.preprocess.apply_qc`) on the raw
file first (QC-thinned files).

Printed per family: detection rate (``twice``, ``over10/25/50``), false-positive rate (``once``),
``compensation_unchecked`` rate (share of ``once`` and ``twice`` checks with no informative pair), the rate the
wrong matrix is flagged, and the median ``d`` of ``once`` / ``twice``; ``seen_*``: the share flagged or noted
``compensation_suspect`` (the lean of the negatives' centre, ``d_mode``; ``seen_once`` is its false-alarm
rate). Rates are fractions (0-1).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/compensation_check.py --csv /tmp/comp.csv
    PYTHONPATH=$PWD .venv/bin/python benchmarks/compensation_check.py --sources param --files 4
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cytokit.compensation import SpilloverMatrix, acquisition_matrix, compensate_events, matrix_indices  # noqa: E402
from cytokit.compensation.check import FLAG_OVER, NOTE_SUSPECT, NOTE_UNCHECKED, check_compensation  # noqa: E402

log = logging.getLogger(__name__)

VARIANTS = ("once", "twice", "over10", "over25", "over50", "wrong")
OVER_SCALES = {"over10": 1.10, "over25": 1.25, "over50": 1.50}
DEFAULT_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class BaseFile:
    """One file to check: raw linear-scale ``events`` (all columns), the ``matrix`` it carries and the event
    columns of the matrix's detectors (``indices``). ``compensated_already``: the events as written are
    compensated (lab B's re-exported files): the file compensated with its matrix is the ``twice`` case."""

    source: str
    family: str
    name: str
    events: np.ndarray
    matrix: SpilloverMatrix
    indices: list[int]
    compensated_already: bool = False


# --------------------------------------------------------------------------------------- parametric source
@dataclass(frozen=True)
class ParamFamily:
    """A parametric family: ``colours`` detectors; ``spill`` ``many_small`` (each dye into 2-4 detectors,
    0.01-0.06), ``few_large`` (2 pairs 0.2-0.5 in the matrix, the rest 0-0.005), ``weak`` (0.005-0.02 into 2-3)
    or ``strong`` (0.05-0.3 into 2-3); ``brightness``: positive median over the detector noise SD (a range,
    log-uniform per marker); ``coexpression``: probability a cell positive for one marker is positive for the
    next one too; ``events`` per file."""

    name: str
    colours: int = 8
    spill: str = "many_small"
    brightness: tuple[float, float] = (30.0, 300.0)
    coexpression: float = 0.0
    events: int = 30_000
    extra: dict = field(default_factory=dict)


PARAM_FAMILIES: tuple[ParamFamily, ...] = (
    ParamFamily("p_many_small"),
    ParamFamily("p_weak", spill="weak"),
    ParamFamily("p_few_large", spill="few_large"),
    ParamFamily("p_strong", spill="strong"),
    ParamFamily("p_4_colours", colours=4),
    ParamFamily("p_16_colours", colours=16),
    ParamFamily("p_dim", brightness=(5.0, 20.0)),
    ParamFamily("p_bright", brightness=(300.0, 3000.0)),
    ParamFamily("p_coexpressed", coexpression=0.8),
    ParamFamily("p_10k", events=10_000),
    ParamFamily("p_300k", events=300_000),
)


def _param_spillover(fam: ParamFamily, rng: np.random.Generator) -> np.ndarray:
    n = fam.colours
    s = np.eye(n)
    if fam.spill == "few_large":
        for _ in range(2):
            i, j = rng.choice(n, size=2, replace=False)
            s[i, j] = rng.uniform(0.2, 0.5)
        small = rng.uniform(0, 0.005, size=(n, n)) * (rng.random((n, n)) < 0.3)
        s = np.where(s == 0, small, s)
        return s
    lo, hi, k = {"many_small": (0.01, 0.06, (2, 5)), "weak": (0.005, 0.02, (2, 4)),
                 "strong": (0.05, 0.3, (2, 4))}[fam.spill]
    for i in range(n):
        targets = rng.choice([j for j in range(n) if j != i], size=min(n - 1, int(rng.integers(*k))), replace=False)
        s[i, targets] = rng.uniform(lo, hi, size=len(targets))
    return s


def param_file(fam: ParamFamily, seed: int) -> BaseFile:
    """One parametric file: log-normal autofluorescence (median 100, log-sd 0.4), each marker positive on
    ~30 % of cells (co-expressed with the previous marker at ``fam.coexpression``) at a log-normal level
    (log-sd 0.3) around a per-marker median ``brightness × 50`` (50 = the electronic noise SD), spillover
    applied to the signal, Poisson counting (1 unit per photoelectron), electronic noise; the matrix written
    carries a 3 % (log-sd) measurement error."""
    rng = np.random.default_rng([seed, len(fam.name), sum(map(ord, fam.name))])
    n, ev, noise = fam.colours, fam.events, 50.0
    level = 50.0 * np.exp(rng.uniform(*np.log(fam.brightness), size=n))
    pos = rng.random((ev, n)) < 0.3
    for j in range(1, n):
        co = rng.random(ev) < fam.coexpression
        pos[co, j] = pos[co, j - 1]
    signal = pos * level * np.exp(0.3 * rng.standard_normal((ev, n)))
    signal += 100.0 * np.exp(0.4 * rng.standard_normal((ev, n)))
    s = _param_spillover(fam, rng)
    detected = rng.poisson(signal @ s).astype(np.float64) + noise * rng.standard_normal((ev, n))
    written = s * np.exp(0.03 * rng.standard_normal(s.shape))
    np.fill_diagonal(written, 1.0)
    written[s == 0] = 0.0
    m = SpilloverMatrix(tuple(f"D{j + 1}-A" for j in range(n)), written, source="parametric")
    return BaseFile("param", fam.name, f"{fam.name}_{seed}", detected, m, list(range(n)))


def param_files(files: int, seed: int) -> Iterator[BaseFile]:
    for fam in PARAM_FAMILIES:
        for k in range(files):
            yield param_file(fam, seed * 1000 + k)


# ------------------------------------------------------------------------------------ FCS-backed sources
def _from_sample(source: str, family: str, sample, *, qc: bool = False,
                 compensated_already: bool = False) -> BaseFile | None:
    """A BaseFile from a read Sample (None when it carries no matrix that moves a channel); ``qc``: the
    gating chain's QC first (kept events only)."""
    m = acquisition_matrix(sample)
    if m is None or not np.any(np.abs(m.values - np.eye(m.n)) > 0):
        return None
    if qc:
        from cytokit.gating.preprocess import apply_qc

        sample, _ = apply_qc(sample)
    name = Path(str(sample.path or sample.name)).name
    return BaseFile(source, family + ("_qc" if qc else ""), name, np.asarray(sample.events, dtype=np.float64),
                    m, matrix_indices(sample, m), compensated_already)


def sim_files(files: int, seed: int, root: Path) -> Iterator[BaseFile]:
    from cytokit.fcs import read_fcs
    from cytokit.simulate import SimulationConfig, simulate_file

    cfg = SimulationConfig()
    plan = [("sim_tmem", "tmem", "bd", 1.0, 30_000, False), ("sim_nkb", "nkb", "attune", 1.0, 30_000, False),
            ("sim_spill_x0.5", "tmem", "bd", 0.5, 30_000, False), ("sim_spill_x2", "tmem", "bd", 2.0, 30_000, False),
            ("sim_10k", "tmem", "attune", 1.0, 10_000, False), ("sim_100k", "tmem", "bd", 1.0, 100_000, False),
            ("sim_tmem", "tmem", "bd", 1.0, 30_000, True)]
    for family, tube, style, scale, n, qc in plan:
        base = next(i for i in cfg.instruments if i.style == style)
        inst = base.model_copy(update={"spillover_scale": base.spillover_scale * scale})
        for k in range(files):
            path = root / f"{family}_{k}.fcs"
            simulate_file(path, n, tube, inst, seed=seed * 100 + k, config=cfg, week=4 * k, arm="IL-2" if k % 2 else "control")
            bf = _from_sample("sim", family, read_fcs(path), qc=qc)
            if bf is not None:
                yield bf


def lab_files(lab: str, files: int, seed: int, root: Path, *, qc: bool = False) -> Iterator[BaseFile]:
    from cytokit.fcs import read_fcs

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from independent_lab_gen.trial import generate_trial
    from independent_lab_gen.trial_b import generate_trial_b
    from independent_lab_gen.trial_c import generate_trial_c

    out = root / f"lab{lab}_{seed}"
    gen: Callable[..., Path] = {"a": generate_trial, "b": generate_trial_b, "c": generate_trial_c}[lab]
    events = {"a": 20_000, "b": 60_000, "c": 150_000}[lab]
    patients = max(2, files // 2)
    if not (out / "truth" / "files.csv").exists():
        gen(out, patients=patients, events=events, seed=seed)
    meta = pd.read_csv(out / "truth" / "files.csv").fillna("")
    scen = dict(zip(meta["file"], meta["scenarios"] if "scenarios" in meta else [""] * len(meta)))
    paths = sorted((out / "fcs").glob("*.fcs"))
    used = 0
    for p in paths:
        already = "already_compensated" in str(scen.get(f"fcs/{p.name}", ""))
        family = f"lab{lab.upper()}" + ("_already_compensated" if already else "")
        if used >= files and not already:
            continue
        bf = _from_sample(f"lab{lab.upper()}", family, read_fcs(p), qc=qc, compensated_already=already)
        if bf is not None:
            used += not already
            yield bf


REAL_FILES = ("flowsom_68983/68983.fcs", "flowkit/100715.fcs", "gatingml2/FCSFiles/9399_1_3_NKR.fcs",
              "gatingml2/FCSFiles/data2.fcs", "flowjo9_diva/diva/124500.fcs")


def real_files(shared: Path, *, qc: bool = False) -> Iterator[BaseFile]:
    """The real files that carry a spillover matrix, and the LSRII single-stain controls (each bright in
    one dye) with CytoExploreR's matrix estimated from them."""
    from cytokit.compensation import read_matrix
    from cytokit.fcs import read_fcs

    for rel in REAL_FILES:
        if (shared / rel).exists():
            bf = _from_sample("real", "real_files", read_fcs(shared / rel), qc=qc)
            if bf is not None:
                yield bf
    ctrl = shared / "compensation" / "cytoexplorer_lsrii"
    mpath = ctrl / "Compensation-Spillover-Matrix.csv"
    if qc or not mpath.exists():
        return
    m = read_matrix(mpath)
    for p in sorted(ctrl.rglob("*.fcs")):
        s = read_fcs(p)
        try:
            idx = matrix_indices(s, m)
        except Exception as exc:  # a control that does not hold the matrix's detectors
            log.info("%s: skipped (%s)", p.name, exc)
            continue
        yield BaseFile("real", "real_lsrii_controls", p.name, np.asarray(s.events, dtype=np.float64), m, idx)


# --------------------------------------------------------------------------------------------- scoring
def _scaled(m: SpilloverMatrix, k: float) -> SpilloverMatrix:
    off = m.values - np.diag(np.diag(m.values))
    return SpilloverMatrix(m.channels, np.diag(np.diag(m.values)) + k * off, source=f"{m.source} x{k}")


def _wrong(bf: BaseFile, others: list[BaseFile]) -> SpilloverMatrix | None:
    """Another instrument's matrix: the first base file of another source with at least as many colours,
    its top-left values on this file's detectors."""
    for o in others:
        if o.source != bf.source and o.matrix.n >= bf.matrix.n:
            vals = np.array(o.matrix.values[:bf.matrix.n, :bf.matrix.n])
            np.fill_diagonal(vals, 1.0)
            return SpilloverMatrix(bf.matrix.channels, vals, source=f"{o.source}:{o.name}")
    return None


def check_variants(bf: BaseFile, wrong: SpilloverMatrix | None = None) -> list[dict]:
    """One row per variant of ``bf``: ``flagged`` (the check's ``overcompensated``), ``unchecked`` (its
    ``compensation_unchecked`` note), ``d`` (median residual, NaN without an informative pair), ``pairs``."""
    m, idx, raw = bf.matrix, bf.indices, bf.events
    once = compensate_events(raw, m, idx)
    cases: dict[str, tuple[np.ndarray, SpilloverMatrix]]
    if bf.compensated_already:  # the file as written is `once`; compensating it is `twice`
        cases = {"twice": (once, m)}
    else:
        cases = {"once": (once, m), "twice": (compensate_events(once, m, idx), m)}
        for v, k in OVER_SCALES.items():
            mk = _scaled(m, k)
            cases[v] = (compensate_events(raw, mk, idx), mk)
        if wrong is not None:
            cases["wrong"] = (compensate_events(raw, wrong, idx), wrong)
    rows = []
    for v, (x, mat) in cases.items():
        r = check_compensation(x, x, mat, idx)
        rows.append({"source": bf.source, "family": bf.family, "file": bf.name, "variant": v,
                     "events": raw.shape[0], "colours": m.n, "flagged": FLAG_OVER in r.flags,
                     "unchecked": NOTE_UNCHECKED in r.notes, "suspect": NOTE_SUSPECT in r.notes,
                     "d": r.median_residual, "d_mode": r.median_mode_residual, "pairs": len(r.pairs)})
    return rows


def _rate(x: pd.Series) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _median(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.median()) if len(x) else float("nan")


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """Per family (fractions 0-1): ``detect_twice`` / ``detect_over10/25/50`` = share flagged; ``silent_twice``
    = share of ``twice`` neither flagged nor noted unchecked (the silent miss); ``fp_once`` =
    share of ``once`` flagged; ``unchecked`` = share of ``once`` and ``twice`` checks with the note;
    ``flag_wrong`` = share of ``wrong`` flagged; ``d_once`` / ``d_twice`` = median residuals; ``files``;
    ``seen_once`` / ``seen_over10/25/50`` = share flagged ``overcompensated`` or noted ``compensation_suspect``
    (``once`` must stay 0); ``dm_once`` / ``dm_over50`` = median mode residuals ``d_mode``."""
    out = []
    for (source, family), g in rows.groupby(["source", "family"], sort=False):
        by = {v: g[g["variant"] == v] for v in VARIANTS}
        ot = g[g["variant"].isin(["once", "twice"])]
        out.append({"source": source, "family": family, "files": g["file"].nunique(),
                    "detect_twice": _rate(by["twice"]["flagged"]),
                    "silent_twice": _rate(~by["twice"]["flagged"] & ~by["twice"]["unchecked"]),
                    **{f"detect_{v}": _rate(by[v]["flagged"]) for v in OVER_SCALES},
                    "fp_once": _rate(by["once"]["flagged"]), "unchecked": _rate(ot["unchecked"]),
                    "flag_wrong": _rate(by["wrong"]["flagged"]),
                    "d_once": _median(by["once"]["d"]), "d_twice": _median(by["twice"]["d"]),
                    "seen_once": _rate(by["once"]["flagged"] | by["once"]["suspect"]),
                    **{f"seen_{v}": _rate(by[v]["flagged"] | by[v]["suspect"]) for v in OVER_SCALES},
                    "dm_once": _median(by["once"]["d_mode"]), "dm_over50": _median(by["over50"]["d_mode"])})
    return pd.DataFrame(out)


def base_files(sources: list[str], files: int, seed: int, root: Path, shared: Path) -> Iterator[BaseFile]:
    for src in sources:
        if src == "param":
            yield from param_files(files, seed)
        elif src == "sim":
            yield from sim_files(files, seed, root)
        elif src in ("labA", "labB", "labC"):
            lab = src[-1].lower()
            lab_seed = {"a": 6161, "b": 6262, "c": 6363}[lab] if seed == 0 else seed
            yield from lab_files(lab, files, lab_seed, root)
            yield from lab_files(lab, max(1, files // 2), lab_seed, root, qc=True)
        elif src == "real":
            yield from real_files(shared)
            yield from real_files(shared, qc=True)
        else:
            raise SystemExit(f"unknown source {src!r}; expected param, sim, labA, labB, labC, real")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", default="param,sim,labA,labB,labC,real")
    ap.add_argument("--files", type=int, default=4, help="base files per family (labs: files of the trial)")
    ap.add_argument("--seed", type=int, default=0, help="0: param/sim seed 0, labs their fresh seeds 6161/6262/6363")
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    ap.add_argument("--csv", type=Path, help="per-check rows")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        bases = list(base_files(args.sources.split(","), args.files, args.seed, Path(tmp), args.shared))
    rows: list[dict] = []
    for bf in bases:
        rows += check_variants(bf, None if bf.compensated_already else _wrong(bf, bases))
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    table = score(df)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.2f}".format):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
