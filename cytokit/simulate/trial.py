"""Orchestration: a whole simulated trial folder (:func:`simulate_trial`) or one big file
(:func:`simulate_file`, used by benchmarks to build large workloads).

Output layout (see docs/architecture.md and docs/simulate.md): ``fcs/``, ``manifest.csv``,
``clinical.csv``, ``il2_cycles.csv``, ``truth/`` (populations, labels, flags, leaves, patients,
acquisition). Everything written goes through :mod:`cytokit.io_utils` / :func:`cytokit.fcs.write_fcs`.
Determinism: every patient and file draws from its own ``numpy`` generator seeded from
``(seed, patient, visit, tube)``; no wall-clock value is written.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import ConfigError, PipelineError
from ..fcs import write_fcs
from ..io_utils import atomic_writer, safe_name, write_table
from ..results import schema as S
from .channels import TUBES, channel_names, spillover_text
from .clinical import clinical_rows, draw_info, frame, il2_cycle_rows, lymphocytes_per_uL, truth_rows
from .config import ARMS, InstrumentConfig, SimulationConfig, load_config
from .courses import check_arms, draw_patient, lymphocyte_weights, visit_state, VisitState
from .events import FLAG_BITS, SimulatedEvents, simulate_events
from .phenotypes import leaf_by_name, leaves_table
from .truth import populations_table

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [S.FILE, S.PATIENT, S.VISIT, S.WEEK, S.ARM, S.TUBE, "sample_date", "instrument",
                    "beads_per_tube", "sample_volume_uL"]
CLINICAL_COLUMNS = [S.PATIENT, S.ARM, "stratum", "age", "sex", S.VISIT, S.WEEK, "date", S.LYMPHOCYTES_PER_UL,
                    "viral_load_copies_per_mL", "tetanus_titre_IU_per_mL", "recall_antigen_responder"]
CYCLE_COLUMNS = [S.PATIENT, "cycle", "start_date", "end_date"]
ACQUISITION_COLUMNS = [S.FILE, "instrument", "n_events", "duration_s", "clog_start_s", "clog_end_s",
                       "n_clog_events", "n_saturated_events", "n_doublet_events", "n_beads"]
_TUBE_INDEX = {t: i for i, t in enumerate(TUBES)}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def event_leaf_probs(state: VisitState, tube: str, cfg: SimulationConfig, *, beads: bool) -> dict[int, float]:
    """Probability of each leaf code for one file: the event mix, lymphocytes split by the visit's
    immunology and, with ``beads``, counting beads in proportion to lymphocytes per µL."""
    mix = cfg.event_mix
    leaves = leaf_by_name(tube)
    lw = lymphocyte_weights(state, tube, cfg.course)
    total = sum(lw.values())
    probs = {leaves[name].code: mix.lymphocytes * w / total for name, w in lw.items()}
    for name, share in (("Debris", mix.debris), ("Monocyte", mix.monocytes), ("Granulocyte", mix.granulocytes),
                        ("Lymphocyte-debris doublet", mix.lymphocyte_debris_doublets),
                        ("Cell-cell doublet", mix.cell_doublets), ("Aggregate", mix.aggregates)):
        probs[leaves[name].code] = share
    if beads and "Counting bead" in leaves:
        per_uL = cfg.beads.beads_per_tube / cfg.beads.sample_volume_uL
        # single-platform count: singlets / beads × beads per µL of sample = lymphocytes per µL
        probs[leaves["Counting bead"].code] = mix.lymphocytes * per_uL / state.lymphocytes
    norm = sum(probs.values())
    return {code: p / norm for code, p in probs.items()}


def _fcs_date(d) -> str:
    return f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year}"


def _etim(btim: str, seconds: float) -> str:
    h, m, s = (int(x) for x in btim.split(":"))
    t = h * 3600 + m * 60 + s + int(round(seconds))
    return f"{(t // 3600) % 24:02d}:{(t // 60) % 60:02d}:{t % 60:02d}"


def _write_file(path: Path, sim: SimulatedEvents, tube: str, instrument: InstrumentConfig,
                cfg: SimulationConfig, *, date=None, src: str = "", force: bool = True) -> None:
    pnn, pns = channel_names(tube, instrument.style)
    absent = set(cfg.phenotype.absent_markers)
    markers = [m for m, _ in TUBES[tube]]
    keep_fl = [j for j, m in enumerate(markers) if m not in absent]
    events, spill, gains = sim.events, sim.spillover, sim.gains
    if len(keep_fl) < len(markers):  # the lab's panel has no such channel
        cols = [0, 1, 2] + [3 + j for j in keep_fl] + [len(pnn) - 1]
        events = events[:, cols]
        pnn, pns = [pnn[c] for c in cols], [pns[c] for c in cols]
        spill, gains = spill[np.ix_(keep_fl, keep_fl)], gains[keep_fl]
    fl_pnn = pnn[3:-1]
    acq = cfg.acquisition
    meta = {
        "$CYT": instrument.name, "$FIL": path.name, "$TIMESTEP": f"{acq.time_step_s:g}",
        "$SPILLOVER": spillover_text(spill, fl_pnn), "$BTIM": cfg.acquisition_time,
        "$ETIM": _etim(cfg.acquisition_time, sim.duration_s), "$SRC": src, "TUBE NAME": tube,
    }
    if date is not None:
        meta["$DATE"] = _fcs_date(date)
    time_range = max(acq.range, int(np.ceil(float(events[:, -1].max(initial=0.0)))) + 1)
    for i, name in enumerate(pnn, start=1):
        meta[f"$P{i}R"] = str(time_range if name == "Time" else acq.range)
        meta[f"$P{i}G"] = "1"
        if i > 3 and name != "Time":
            meta[f"$P{i}V"] = f"{400 * gains[i - 4]:.0f}"  # detector voltage tracks the file's gain
    write_fcs(path, events, pnn, pns, meta, force=force)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    with atomic_writer(path, "wb") as fh:
        fh.write(buf.getvalue())


def simulate_file(path: str | Path, n_events: int = 1_000_000, tube: str = "tmem",
                  instrument: str | InstrumentConfig = "bd", seed: int = 0, *,
                  config: SimulationConfig | None = None, arm: str = "control", week: int = 0,
                  truth_out: str | Path | None = None, force: bool = True,
                  anomaly: str | None = None) -> SimulatedEvents:
    """Write one simulated FCS file (e.g. a 1M-event benchmark workload) and return its events.

    ``instrument`` is a channel style (``"bd"`` / ``"attune"``) picking the config's instrument of that
    style, or an :class:`InstrumentConfig`. The patient is a typical one of ``arm`` at ``week``. With
    ``truth_out``, labels, flags and the leaf table are written under ``truth_out/truth/`` as in a trial
    folder, so ``truth_masks(truth_out, path)`` works. ``anomaly`` forces one acquisition anomaly
    family (:data:`cytokit.simulate.acquisition.FAMILIES`; ``"none"`` = a clean acquisition with the
    anomaly model's rate wander).
    """
    cfg = config or SimulationConfig()
    if tube not in TUBES:
        raise ConfigError(f"unknown tube {tube!r}; expected one of {list(TUBES)}", path=path)
    if isinstance(instrument, str):
        matches = [i for i in cfg.instruments if i.style == instrument]
        if not matches:
            raise ConfigError(f"no instrument of style {instrument!r} in the simulation config "
                              f"(styles: {sorted({i.style for i in cfg.instruments})})", path=path)
        instrument = matches[0]
    path = Path(path)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, _TUBE_INDEX[tube]]))
    patient = draw_patient("P000", 0, arm, cfg.course, rng)
    state = visit_state(patient, week, cfg.course)
    beads = cfg.beads.enabled and tube == "nkb"
    sim = simulate_events(tube, n_events, event_leaf_probs(state, tube, cfg, beads=beads),
                          instrument=instrument, acquisition=cfg.acquisition, rng=rng,
                          phenotype=cfg.phenotype, anomaly=anomaly)
    _write_file(path, sim, tube, instrument, cfg, date=cfg.clinical.start_date, force=force)
    if truth_out is not None:
        truth = Path(truth_out) / "truth"
        _save_npy(truth / "labels" / f"{path.stem}.npy", sim.labels)
        _save_npy(truth / "flags" / f"{path.stem}.npy", sim.flags)
        write_table(leaves_table(), truth / "leaves", formats=("csv",))
    return sim


@dataclass(frozen=True)
class TrialResult:
    out_dir: Path
    manifest: pd.DataFrame
    clinical: pd.DataFrame
    populations: pd.DataFrame


def _prepare(out: Path, force: bool) -> None:
    generated = (out / "manifest.csv").exists() or any((out / "fcs").glob("*.fcs"))
    if generated and not force:
        raise PipelineError("folder already holds a simulated trial; use --force to regenerate it", path=out)
    out.mkdir(parents=True, exist_ok=True)


def _remove_stale(out: Path, keep_stems: set[str]) -> None:
    """Delete generated files (fcs/*.fcs, truth/labels|flags/*.npy) not produced by this run."""
    for folder, suffix in (("fcs", ".fcs"), ("truth/labels", ".npy"), ("truth/flags", ".npy")):
        for p in (out / folder).glob(f"*{suffix}"):
            if p.stem not in keep_stems:
                log.info("removing stale generated file %s", p)
                p.unlink()


def simulate_trial(out_dir: str | Path, config: SimulationConfig | str | Path | None = None, *,
                   force: bool = False, progress: Callable[[int, int], None] | None = None) -> TrialResult:
    """Simulate a two-arm trial into ``out_dir`` (layout in docs/architecture.md).

    ``config`` is a :class:`SimulationConfig`, a YAML path or None (defaults). An existing simulated trial
    in ``out_dir`` is only replaced with ``force``; files the simulator does not generate (README.md,
    the config YAML...) are never touched. ``progress(done, total)`` is called after each file.
    """
    cfg = config if isinstance(config, SimulationConfig) else load_config(config)
    check_arms(cfg.course)
    out = Path(out_dir)
    _prepare(out, force)
    n = cfg.patients_per_arm
    arms = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0])).permutation(
        np.repeat(np.array(ARMS), n))
    manifest, clinical, cycles, pops, truth_pat, acq_rows = [], [], [], [], [], []
    stems: set[str] = set()
    kinds = leaves_table().set_index("code")["kind"]
    total = 2 * n * len(cfg.visits) * len(cfg.tubes)
    done = 0
    for i in range(2 * n):
        pid = f"P{i + 1:03d}"
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1, i]))
        patient = draw_patient(pid, i, str(arms[i]), cfg.course, rng,
                               tetanus_median=cfg.clinical.tetanus_median_IU_per_mL)
        info = draw_info(patient, cfg, rng)
        instrument = cfg.instruments[i % len(cfg.instruments)]
        states = {v: visit_state(patient, w, cfg.course) for v, w in zip(cfg.visits, cfg.weeks)}
        clinical += clinical_rows(info, states, cfg, rng)
        cycles += il2_cycle_rows(info, cfg)
        truth_pat += truth_rows(info, states, cfg)
        for visit, week in zip(cfg.visits, cfg.weeks):
            for tube in cfg.tubes:
                stem = safe_name(f"{pid}_{visit}_{tube}")
                rel = f"fcs/{stem}.fcs"
                beads = cfg.beads.enabled and tube == "nkb"
                frng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2, i, week, _TUBE_INDEX[tube]]))
                sim = simulate_events(tube, cfg.events, event_leaf_probs(states[visit], tube, cfg, beads=beads),
                                      instrument=instrument, acquisition=cfg.acquisition, rng=frng,
                                      phenotype=cfg.phenotype)
                _write_file(out / rel, sim, tube, instrument, cfg, date=info.visit_dates[visit], src=pid)
                _save_npy(out / "truth" / "labels" / f"{stem}.npy", sim.labels)
                _save_npy(out / "truth" / "flags" / f"{stem}.npy", sim.flags)
                stems.add(stem)
                lpu = lymphocytes_per_uL(states[visit])
                pops.append(populations_table(rel, tube, sim.labels, lpu, with_beads=beads))
                leaf_kind = kinds.reindex(sim.labels).to_numpy()
                acq_rows.append({
                    S.FILE: rel, "instrument": instrument.name, "n_events": cfg.events,
                    "duration_s": round(sim.duration_s, 3),
                    "clog_start_s": round(sim.clog[0], 3) if sim.clog else None,
                    "clog_end_s": round(sim.clog[1], 3) if sim.clog else None,
                    "n_clog_events": int(((sim.flags & FLAG_BITS["clog"]) > 0).sum()),
                    "n_saturated_events": int(((sim.flags & FLAG_BITS["saturated"]) > 0).sum()),
                    "n_doublet_events": int(np.isin(leaf_kind, ("doublet_debris", "doublet_cells")).sum()),
                    "n_beads": int((leaf_kind == "bead").sum()),
                })
                manifest.append({
                    S.FILE: rel, S.PATIENT: pid, S.VISIT: visit, S.WEEK: week, S.ARM: patient.arm, S.TUBE: tube,
                    "sample_date": info.visit_dates[visit].isoformat(), "instrument": instrument.name,
                    "beads_per_tube": cfg.beads.beads_per_tube if beads else None,
                    "sample_volume_uL": cfg.beads.sample_volume_uL if beads else None,
                })
                done += 1
                if progress is not None:
                    progress(done, total)
    _remove_stale(out, stems)
    man = frame(manifest, MANIFEST_COLUMNS)
    man["beads_per_tube"] = man["beads_per_tube"].astype("Int64")
    clin = frame(clinical, CLINICAL_COLUMNS)
    clin["recall_antigen_responder"] = clin["recall_antigen_responder"].astype("Int64")
    populations = pd.concat(pops, ignore_index=True)
    tables = {
        "manifest": man, "clinical": clin, "il2_cycles": frame(cycles, CYCLE_COLUMNS),
        "truth/populations": populations, "truth/leaves": leaves_table(),
        "truth/patients": pd.DataFrame(truth_pat), "truth/acquisition": frame(acq_rows, ACQUISITION_COLUMNS),
    }
    for name, df in tables.items():
        write_table(df, out / name, formats=("csv",))
    log.info("simulated %d files for %d patients into %s", total, 2 * n, out)
    return TrialResult(out, man, clin, populations)
