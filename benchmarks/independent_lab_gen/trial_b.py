"""Lab B's trial: acquisition on its instruments, the FCS files, manifest, clinical table and truth.

Same folder layout and truth format as lab A (:mod:`.trial`): ``fcs/<patient>_<visit>_<tube>.fcs``,
``manifest.csv``, ``clinical.csv``, ``truth/populations.csv``, ``truth/files.csv``, ``truth/labels/*.npz``
(``kind`` indexes :data:`.cells_b.KINDS_B`). Tubes ``mem`` and ``nk``; 42-100 % of ``events`` per file.

Acquisition (lab B's own): photoelectrons through the spillover (a degraded PE-Cy7 tandem emits into PE),
Poisson counting with the photomultiplier's excess noise (variance 1.3 x the count), electronic noise,
gains per file; instrument C floors values at 0 and records its gains in ``$PnG``; a file re-exported after
compensation (scenario ``already_compensated``) holds compensated values and still carries the matrix.
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
from .cells_b import CellsB, VisitB, draw_visits_b, make_cells_b
from .lab_b import (AUTOFLUORESCENCE_PE_B, FLUOROCHROMES_B, INSTRUMENTS_B, SPILL_REFERENCE_B, TANDEM_KEEP,
                    TANDEM_TO_PE, TUBES_B)
from .trial import CLOG_SHARE, pack_bits, population_table

SPILL_ERROR_SD_B = 0.02  # log-sd of the measured spillover (single-stain controls) around the fresh reagents'
EXCESS_NOISE = 0.3  # photomultiplier excess noise: variance of a count = (1 + EXCESS_NOISE) x mean


def _true_spill(tandem_degraded: bool) -> np.ndarray:
    s = SPILL_REFERENCE_B.copy()
    if tandem_degraded:
        k, pe = FLUOROCHROMES_B.index("PE-Cy7"), FLUOROCHROMES_B.index("PE")
        s[k] *= TANDEM_KEEP
        s[k, pe] += TANDEM_TO_PE
    return s


def acquire_b(cells: CellsB, v: VisitB, rng: np.random.Generator, clog: tuple[float, float] | None
              ) -> dict[str, np.ndarray]:
    """Linear values as the instrument records them (FLUOROCHROMES_B order), scatter, times, clog flags, gains
    and the spillover the lab measured at those gains; events in acquisition order (``order``)."""
    inst = INSTRUMENTS_B[v.instrument]
    n = cells.levels.shape[0]
    order = rng.permutation(n)
    t, in_clog = _times(n, rng.uniform(1500.0, 4000.0), clog, rng)
    dim = np.where(in_clog, CLOG_SIGNAL, 1.0)[:, None]
    af = cells.af[order][:, None] * AUTOFLUORESCENCE_PE_B[None, :] * np.exp(
        0.25 * rng.standard_normal((n, len(FLUOROCHROMES_B))))
    pe = (cells.levels[order] @ _true_spill(v.tandem_degraded) + af) * dim
    counts = rng.poisson(pe) + np.sqrt(EXCESS_NOISE * pe) * rng.standard_normal(pe.shape)
    gains = np.asarray(inst.nominal_gain) * np.exp(inst.gain_sd * rng.standard_normal(len(FLUOROCHROMES_B)))
    fl = counts * (gains * inst.units_per_pe)[None, :] + inst.noise * rng.standard_normal(pe.shape)
    sc = np.column_stack([cells.fsc_a[order], cells.fsc_h[order], cells.ssc_a[order], cells.ssc_h[order]])
    sc = sc * inst.scatter_scale * np.exp(0.06 * rng.standard_normal()) * dim
    sc = sc + inst.noise * rng.standard_normal(sc.shape)
    measured = SPILL_REFERENCE_B * gains[None, :] / gains[:, None]
    measured = measured * np.exp(SPILL_ERROR_SD_B * rng.standard_normal(measured.shape))
    np.fill_diagonal(measured, 1.0)
    measured[SPILL_REFERENCE_B == 0] = 0.0
    if v.already_compensated:  # re-exported from analysis software: compensated with the file's own matrix
        fl = fl @ np.linalg.inv(measured)
    low = 0.0 if inst.floor_at_zero else -np.inf
    return {"fl": np.clip(fl, low, inst.range), "scatter": np.clip(sc, 0.0, inst.range), "time": t,
            "clog": in_clog, "gains": gains, "spill": measured, "order": order}


def _write(path: Path, tube: str, v: VisitB, acq: dict[str, np.ndarray], date: dt.date) -> None:
    inst = INSTRUMENTS_B[v.instrument]
    marker_of = {fl: m for m, fl in TUBES_B[tube].items()}
    fl_order = list(inst.detectors)
    cols = [FLUOROCHROMES_B.index(f) for f in fl_order]
    pnn, pns, data = ["FSC-A", "FSC-H", "SSC-A", "SSC-H"], ["", "", "", ""], [acq["scatter"]]
    png: dict[str, str] = {}
    for f, c in zip(fl_order, cols):
        det = inst.detectors[f]
        text = marker_of.get(f, "")
        if text and inst.pns_style == "marker-dye":
            text = f"{text}-{f}"
        x = acq["fl"][:, c]
        pnn.append(det)
        pns.append(text)
        data.append(x[:, None])
        if inst.gain_in_png:
            png[f"$P{len(pnn)}G"] = f"{acq['gains'][c]:.3f}"
        if inst.heights:  # the pulse height of the same detector: a little below the area
            pnn.append(det[:-2] + "-H")
            pns.append(text)
            data.append((x * 0.92)[:, None])
    ticks = acq["time"] / inst.timestep_s
    pnn.append(inst.time_name)
    pns.append("")
    data.append(ticks[:, None])
    events = np.hstack(data)
    spill = acq["spill"][np.ix_(cols, cols)]
    names = [inst.detectors[f] for f in fl_order]
    meta: dict[str, str] = {"$CYT": inst.name, "$FIL": path.name, "$SRC": f"{v.patient} {v.visit}",
                            "$DATE": date.strftime("%d-%b-%Y").upper(), "$BTIM": "10:15:00",
                            "$TIMESTEP": f"{inst.timestep_s:g}", "TUBE NAME": tube,
                            inst.matrix_keyword: ",".join([str(len(names)), *names, *(f"{x:.6g}" for x in spill.ravel())])}
    for i, name in enumerate(pnn, start=1):
        meta[f"$P{i}R"] = str(int(ticks.max()) + 1 if name == inst.time_name else inst.range)
        meta[f"$P{i}E"] = "0,0" if inst.floor_at_zero else "0.0,0.0"
    meta.update(png)
    write_fcs(path, events, pnn, pns, meta)


def generate_trial_b(out: str | Path, *, patients: int = 6, events: int = 60_000, seed: int = 0,
                     max_files: int | None = None) -> Path:
    """Generate lab B's trial into ``out``; each file has 42-100 % of ``events`` (25,000-60,000 by default).
    The same seed gives the same files and truth; ``max_files`` keeps the first files (patient-major)."""
    out = Path(out)
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth" / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0xB])
    visits = draw_visits_b(patients, rng)
    tubes = tuple(TUBES_B)
    plan = [(v, tube) for v in visits for tube in tubes][:max_files]
    n_clog = max(len(tubes), int(round(CLOG_SHARE * len(plan))))
    clogged = set(rng.choice(len(plan), size=min(n_clog, len(plan)), replace=False).tolist())
    for tube in tubes:
        idx = [i for i, (_, t) in enumerate(plan) if t == tube]
        if idx and not clogged & set(idx):
            clogged.add(int(rng.choice(idx)))
    manifest, truth, files = [], [], []
    start = dt.date(2025, 9, 1)
    for i, (v, tube) in enumerate(plan):
        file_rng = np.random.default_rng([seed, 0xB, i])
        n = int(file_rng.integers(int(0.42 * events), events + 1))
        cells = make_cells_b(tube, v, n, file_rng)
        clog = (float(file_rng.uniform(0.2, 0.7)), float(file_rng.uniform(0.05, 0.12))) if i in clogged else None
        acq = acquire_b(cells, v, file_rng, clog)
        order = acq["order"]
        members = {pop: m[order] for pop, m in cells.members.items()}
        rel = f"fcs/{v.patient}_{v.visit}_{tube}.fcs"
        date = start + dt.timedelta(days=7 * v.week + int(v.patient[1:]))
        _write(out / rel, tube, v, acq, date)
        buf = io.BytesIO()
        np.savez_compressed(buf, bits=pack_bits(tube, members), clog=acq["clog"],
                            kind=cells.kind[order].astype(np.uint8), dead=cells.dead[order])
        atomic_write_bytes(out / "truth" / "labels" / f"{Path(rel).stem}.npz", buf.getvalue())
        truth.append(population_table(rel, tube, members))
        scen = v.scenarios if tube == "mem" else [s for s in v.scenarios if s not in ("tandem_degraded", "dr_smear")]
        manifest.append({"file": rel, "patient": v.patient, "visit": v.visit, "week": v.week, "arm": v.arm,
                         "tube": tube, "sample_date": date.isoformat(), "instrument": INSTRUMENTS_B[v.instrument].name})
        files.append({"file": rel, "tube": tube, "instrument": v.instrument, "scenarios": ";".join(scen),
                      "clog_events": int(acq["clog"].sum()), "events": n,
                      "gains": ";".join(f"{g:.3f}" for g in acq["gains"])})
    pd.DataFrame(manifest).to_csv(out / "manifest.csv", index=False)
    pd.concat(truth, ignore_index=True).to_csv(out / "truth" / "populations.csv", index=False)
    pd.DataFrame(files).to_csv(out / "truth" / "files.csv", index=False)
    pd.DataFrame([{"patient": v.patient, "arm": v.arm, "visit": v.visit, "week": v.week,
                   "date": (start + dt.timedelta(days=7 * v.week + int(v.patient[1:]))).isoformat(),
                   "lymphocytes_per_uL": round(v.lymphocytes_per_uL)} for v in visits]
                 ).to_csv(out / "clinical.csv", index=False)
    return out


__all__ = ["generate_trial_b", "acquire_b"]
