"""Lab C's trial: acquisition on a spectral (unmixed) and a conventional instrument, the FCS files, manifest
(with the counting-bead columns of the ``tbnk`` tube), clinical table and truth.

Same folder layout and truth format as labs A and B (:mod:`.trial`); ``truth/populations.csv`` carries, for the
``tbnk`` tube, ``abs_per_uL``: the single-platform absolute count a perfect gate gives (true events x beads
per tube / (true bead events x sample volume)), and ``truth/files.csv`` the donor's true concentrations.

Spectral files (instrument E): photoelectrons in 30 detectors (every dye's signature, the cell's
autofluorescence, beads' broad spectrum), Poisson counts and electronic noise, then ordinary least-squares
unmixing against reference signatures measured with a 2 % error, an autofluorescence end-member (the
lymphocytes') extracted into ``AF-A``: unmixed values, negatives kept, no ``$SPILLOVER``. Conventional files
(instrument F): the same light through eight filters, gains per file, ``$SPILLOVER`` from the signatures at
those gains with a 3 % measurement error; the re-calibrated visit's files have every gain moved by a factor
drawn once per trial.
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import write_fcs
from cytokit.io_utils import atomic_write_bytes

from .acquire import CLOG_SIGNAL, _times
from .cells_c import CellsC, VisitC, draw_visits_c, make_cells_c
from .lab_c import (AF_PE, AF_SIGNATURE, BEAD_PE, BEAD_SIGNATURE, FLUOROCHROMES_C, INSTRUMENTS_C, SIGNATURES,
                    SPILL_F, TUBES_C)
from .trial import CLOG_SHARE, pack_bits, population_table

REFERENCE_ERROR_SD = 0.02  # log-sd of the spectral reference signatures (single-stain controls) per detector
SPILL_ERROR_SD_C = 0.03  # log-sd of instrument F's measured spillover
#: counting-bead tubes: beads per tube (lot value, written in the manifest) and the sample volume (uL)
BEADS_PER_TUBE = (48_500, 51_500)
SAMPLE_VOLUME_UL = 50.0


def _spectral(cells: CellsC, order: np.ndarray, dim: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Unmixed values (FLUOROCHROMES_C order + AF) of the spectral instrument, in its units."""
    inst = INSTRUMENTS_C["E"]
    n = order.size
    af_sig = np.where(cells.myeloid_af[order][:, None], AF_SIGNATURE["myeloid"][None, :],
                      AF_SIGNATURE["lymphoid"][None, :])
    pe = cells.levels[order] @ SIGNATURES + (cells.af[order] * AF_PE)[:, None] * af_sig
    pe = pe + np.where(cells.bead[order], BEAD_PE, 0.0)[:, None] * BEAD_SIGNATURE[None, :]
    pe = pe * dim[:, None]
    raw = rng.poisson(pe) + inst.noise * rng.standard_normal(pe.shape)
    ref = np.vstack([SIGNATURES, AF_SIGNATURE["lymphoid"]])
    ref = ref * np.exp(REFERENCE_ERROR_SD * rng.standard_normal(ref.shape))
    unmixed = raw @ np.linalg.pinv(ref)  # ordinary least squares per event
    return {"fl": unmixed * inst.units_per_pe, "gains": np.ones(len(FLUOROCHROMES_C)), "spill": np.zeros((0, 0))}


def _conventional(cells: CellsC, order: np.ndarray, dim: np.ndarray, rng: np.random.Generator,
                  recalibration: np.ndarray | None) -> dict[str, np.ndarray]:
    """Filter-detector values (FLUOROCHROMES_C order) of instrument F, its gains and measured spillover."""
    inst = INSTRUMENTS_C["F"]
    det = list(inst.detector_index)
    af_sig = np.where(cells.myeloid_af[order][:, None], AF_SIGNATURE["myeloid"][det][None, :],
                      AF_SIGNATURE["lymphoid"][det][None, :])
    pe = cells.levels[order] @ SIGNATURES[:, det] + (cells.af[order] * AF_PE)[:, None] * af_sig
    pe = pe + np.where(cells.bead[order], BEAD_PE, 0.0)[:, None] * BEAD_SIGNATURE[det][None, :]
    pe = pe * dim[:, None]
    gains = np.exp(inst.gain_sd * rng.standard_normal(len(det)))
    if recalibration is not None:
        gains = gains * recalibration
    counts = rng.poisson(pe) + inst.noise * rng.standard_normal(pe.shape)
    fl = counts * gains[None, :] * inst.units_per_pe
    measured = SPILL_F * gains[None, :] / gains[:, None]
    measured = measured * np.exp(SPILL_ERROR_SD_C * rng.standard_normal(measured.shape))
    np.fill_diagonal(measured, 1.0)
    measured[SPILL_F < 1e-3] = 0.0
    return {"fl": np.clip(fl, -inst.range, inst.range), "gains": gains, "spill": measured}


def acquire_c(cells: CellsC, instrument: str, rng: np.random.Generator, clog: tuple[float, float] | None,
              recalibration: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Values as the instrument writes them, scatter, times, clog flags, gains and spillover; events in
    acquisition order (``order``)."""
    inst = INSTRUMENTS_C[instrument]
    n = cells.levels.shape[0]
    order = rng.permutation(n)
    t, in_clog = _times(n, rng.uniform(2000.0, 6000.0), clog, rng)
    dim = np.where(in_clog, CLOG_SIGNAL, 1.0)
    acq = _spectral(cells, order, dim, rng) if inst.spectral else _conventional(cells, order, dim, rng, recalibration)
    cols = [cells.fsc_a[order], cells.fsc_h[order], cells.ssc_a[order], cells.ssc_h[order]]
    if inst.spectral:  # violet side scatter: a little less than the blue one for lymphocytes
        cols += [cells.ssc_a[order] * 0.8, cells.ssc_h[order] * 0.8]
    sc = np.column_stack(cols) * inst.scatter_scale * np.exp(0.05 * rng.standard_normal()) * dim[:, None]
    sc = np.clip(sc + 30.0 * rng.standard_normal(sc.shape), 0.0, inst.range)
    return {**acq, "scatter": sc, "time": t, "clog": in_clog, "order": order}


def _write(path: Path, tube: str, v: VisitC, acq: dict[str, np.ndarray], date: dt.date) -> None:
    inst = INSTRUMENTS_C[v.instrument]
    marker_of = {fl: m for m, fl in TUBES_C[tube].items()}
    fl_order = list(inst.detectors)
    cols = [FLUOROCHROMES_C.index(f) for f in fl_order]
    pnn = ["FSC-A", "FSC-H", "SSC-A", "SSC-H"] + (["SSC-B-A", "SSC-B-H"] if inst.spectral else [])
    pnn += [inst.detectors[f] for f in fl_order]
    pns = [""] * (len(pnn) - len(fl_order)) + [marker_of[f] for f in fl_order]
    data = [acq["scatter"], acq["fl"][:, cols]]
    if inst.spectral:  # the extracted autofluorescence end-member
        pnn.append("AF-A")
        pns.append("")
        data.append(acq["fl"][:, [len(FLUOROCHROMES_C)]])
    ticks = acq["time"] / inst.timestep_s
    pnn.append(inst.time_name)
    pns.append("")
    data.append(ticks[:, None])
    meta: dict[str, str] = {"$CYT": inst.name, "$FIL": path.name, "$SRC": f"{v.patient} {v.visit}",
                            "$DATE": date.strftime("%d-%b-%Y").upper(), "$BTIM": "11:05:00",
                            "$TIMESTEP": f"{inst.timestep_s:g}", "TUBE NAME": tube}
    if not inst.spectral:
        names = [inst.detectors[f] for f in fl_order]
        spill = acq["spill"][np.ix_(cols, cols)]
        meta["$SPILLOVER"] = ",".join([str(len(names)), *names, *(f"{x:.6g}" for x in spill.ravel())])
    for i, name in enumerate(pnn, start=1):
        meta[f"$P{i}R"] = str(int(ticks.max()) + 1 if name == inst.time_name else inst.range)
        meta[f"$P{i}E"] = "0,0"
    if not inst.spectral:
        first = pnn.index(inst.detectors[fl_order[0]]) + 1
        for k, c in enumerate(cols):
            meta[f"$P{first + k}V"] = f"{450 * acq['gains'][c]:.0f}"
    write_fcs(path, np.hstack(data), pnn, pns, meta)


def generate_trial_c(out: str | Path, *, patients: int = 6, events: int = 300_000, seed: int = 0,
                     max_files: int | None = None) -> Path:
    """Generate lab C's trial into ``out``; each file has 1/3 to all of ``events`` (100,000-300,000 by default).
    The same seed gives the same files and truth; ``max_files`` keeps the first files (patient-major)."""
    out = Path(out)
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth" / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0xC])
    visits = draw_visits_c(patients, rng)
    recalibration = np.exp(rng.choice([-1.0, 1.0], len(FLUOROCHROMES_C)) * rng.uniform(0.3, 0.55, len(FLUOROCHROMES_C)))
    tubes = tuple(TUBES_C)
    plan = [(v, tube) for v in visits for tube in tubes][:max_files]
    n_clog = max(len(tubes), int(round(CLOG_SHARE * len(plan))))
    clogged = set(rng.choice(len(plan), size=min(n_clog, len(plan)), replace=False).tolist())
    for tube in tubes:
        idx = [i for i, (_, t) in enumerate(plan) if t == tube]
        if idx and not clogged & set(idx):
            clogged.add(int(rng.choice(idx)))
    manifest, truth, files = [], [], []
    start = dt.date(2026, 1, 12)
    for i, (v, tube) in enumerate(plan):
        file_rng = np.random.default_rng([seed, 0xC, i])
        n = int(file_rng.integers(events // 3, events + 1))
        beads = int(file_rng.integers(*BEADS_PER_TUBE)) if tube == "tbnk" else 0
        cells = make_cells_c(tube, v, n, file_rng, beads_per_uL=beads / SAMPLE_VOLUME_UL)
        clog = (float(file_rng.uniform(0.2, 0.7)), float(file_rng.uniform(0.05, 0.12))) if i in clogged else None
        acq = acquire_c(cells, v.instrument, file_rng, clog, recalibration if v.recalibrated else None)
        order = acq["order"]
        members = {pop: m[order] for pop, m in cells.members.items()}
        rel = f"fcs/{v.patient}_{v.visit}_{tube}.fcs"
        date = start + dt.timedelta(days=7 * v.week + int(v.patient[1:]))
        _write(out / rel, tube, v, acq, date)
        buf = io.BytesIO()
        np.savez_compressed(buf, bits=pack_bits(tube, members), clog=acq["clog"],
                            kind=cells.kind[order].astype(np.uint8), dead=cells.dead[order])
        atomic_write_bytes(out / "truth" / "labels" / f"{Path(rel).stem}.npz", buf.getvalue())
        table = population_table(rel, tube, members)
        if tube == "tbnk":
            n_beads = int(members["Beads"].sum())
            table["abs_per_uL"] = (table["count"] * beads / (n_beads * SAMPLE_VOLUME_UL) if n_beads else np.nan)
            table.loc[table.population.isin(["Lymphocytes", "Beads"]), "abs_per_uL"] = np.nan
        truth.append(table)
        manifest.append({"file": rel, "patient": v.patient, "visit": v.visit, "week": v.week, "arm": v.arm,
                         "tube": tube, "sample_date": date.isoformat(), "instrument": INSTRUMENTS_C[v.instrument].name,
                         "beads_per_tube": beads if beads else None,
                         "sample_volume_uL": SAMPLE_VOLUME_UL if beads else None})
        files.append({"file": rel, "tube": tube, "instrument": v.instrument, "scenarios": ";".join(v.scenarios),
                      "clog_events": int(acq["clog"].sum()), "events": n,
                      "gains": ";".join(f"{g:.3f}" for g in acq["gains"]),
                      "lymphocytes_per_uL": round(v.lymphocytes_per_uL, 1)})
    pd.DataFrame(manifest).to_csv(out / "manifest.csv", index=False)
    pd.concat(truth, ignore_index=True).to_csv(out / "truth" / "populations.csv", index=False)
    pd.DataFrame(files).to_csv(out / "truth" / "files.csv", index=False)
    pd.DataFrame([{"patient": v.patient, "arm": v.arm, "visit": v.visit, "week": v.week,
                   "date": (start + dt.timedelta(days=7 * v.week + int(v.patient[1:]))).isoformat(),
                   # the haematology analyser's count: the donor's concentration with a 4 % measurement error
                   "lymphocytes_per_uL": round(v.lymphocytes_per_uL * float(np.exp(0.04 * rng.standard_normal())))}
                  for v in visits]).to_csv(out / "clinical.csv", index=False)
    return out


__all__ = ["generate_trial_c", "acquire_c"]
