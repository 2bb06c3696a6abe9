"""Write the lab's trial: FCS files, manifest, clinical table and the truth.

Folder layout (``generate_trial(out, ...)``)::

    fcs/<patient>_<visit>_<tube>.fcs   the lab's files (two instruments, own channel names and ranges)
    manifest.csv                       file, patient, visit, week, arm, tube, sample_date, instrument
    clinical.csv                       patient, arm, visit, week, date, lymphocytes_per_uL
    truth/populations.csv              file, population, parent, count, pct_parent (%), pct_lymphocytes (%)
    truth/files.csv                    file, tube, instrument, scenarios, clog events, gains
    truth/labels/<stem>.npz            per event: ``bits`` (bit k = k-th population of the tube's HIERARCHY),
                                       ``clog`` (acquired during a clog), ``kind`` (index in cells.KINDS),
                                       ``dead`` (a dead cell)
"""
from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.fcs import write_fcs
from cytokit.io_utils import atomic_write_bytes

from .acquire import acquire
from .cells import HIERARCHY, KINDS, LYMPHOCYTES, make_cells
from .donors import Visit, draw_visits
from .lab import FLUOROCHROMES, INSTRUMENTS, TUBES

#: share of files with a clog (every tube gets at least one)
CLOG_SHARE = 0.15


def _lab_of(tube: str) -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[str, str], tuple[str, ...]]:
    """(hierarchy, lymphocytes, event kinds) of the lab whose tube this is (lab A's, B's or C's tubes)."""
    if tube in HIERARCHY:
        return HIERARCHY, LYMPHOCYTES, KINDS
    from .cells_b import HIERARCHY_B, KINDS_B, LYMPHOCYTES_B
    if tube in HIERARCHY_B:
        return HIERARCHY_B, LYMPHOCYTES_B, KINDS_B
    from .cells_c import HIERARCHY_C, KINDS_C, LYMPHOCYTES_C
    return HIERARCHY_C, LYMPHOCYTES_C, KINDS_C


def population_table(file: str, tube: str, members: dict[str, np.ndarray]) -> pd.DataFrame:
    """Truth counts and % of parent / % of lymphocytes, in the terms cytokit reports them."""
    hierarchy, lymphocytes, _ = _lab_of(tube)
    counts = {pop: int(m.sum()) for pop, m in members.items()}
    n_events = int(next(iter(members.values())).size)
    lymph = counts[lymphocytes[tube]]
    rows = []
    for pop, parent in hierarchy[tube]:
        parent_n = counts[parent] if parent else n_events
        rows.append({"file": file, "population": pop, "parent": parent, "count": counts[pop],
                     "pct_parent": 100.0 * counts[pop] / parent_n if parent_n else np.nan,
                     "pct_lymphocytes": 100.0 * counts[pop] / lymph if lymph else np.nan})
    return pd.DataFrame(rows)


def pack_bits(tube: str, members: dict[str, np.ndarray]) -> np.ndarray:
    bits = np.zeros(next(iter(members.values())).size, dtype=np.uint32)
    for k, (pop, _) in enumerate(_lab_of(tube)[0][tube]):
        bits |= members[pop].astype(np.uint32) << np.uint32(k)
    return bits


def truth_masks(trial: str | Path, file: str) -> dict[str, np.ndarray]:
    """Population -> bool per event of ``file`` (a manifest path), from the trial's truth labels."""
    trial = Path(trial)
    tube = Path(file).stem.rsplit("_", 1)[-1]
    bits = np.load(trial / "truth" / "labels" / f"{Path(file).stem}.npz")["bits"]
    return {pop: (bits >> np.uint32(k)) & 1 == 1 for k, (pop, _) in enumerate(_lab_of(tube)[0][tube])}


def clog_mask(trial: str | Path, file: str) -> np.ndarray:
    """Bool per event of ``file``: acquired during a clog."""
    return np.load(Path(trial) / "truth" / "labels" / f"{Path(file).stem}.npz")["clog"]


def event_kinds(trial: str | Path, file: str) -> pd.Series:
    """Per event of ``file``: what it is (``cells.KINDS``; dead cells as "dead <kind>")."""
    z = np.load(Path(trial) / "truth" / "labels" / f"{Path(file).stem}.npz")
    names = np.asarray(_lab_of(Path(file).stem.rsplit("_", 1)[-1])[2], dtype=object)[z["kind"]]
    return pd.Series(np.where(z["dead"], "dead " + names, names))


def _write(path: Path, tube: str, v: Visit, acq, date: dt.date) -> None:
    inst = INSTRUMENTS[v.instrument]
    marker_of = {fl: m for m, fl in TUBES[tube].items()}
    fl_order = list(inst.detectors)  # the instrument's detector order
    cols = [FLUOROCHROMES.index(f) for f in fl_order]
    pnn = ["FSC-A", "FSC-H", "SSC-A", "SSC-H"] + [inst.detectors[f] for f in fl_order] + [inst.time_name]
    pns = ["", "", "", ""] + [f"{marker_of[f]} {f}" if inst.pns_with_fluorochrome else marker_of[f]
                              for f in fl_order] + [""]
    ticks = acq.time / inst.timestep_s
    events = np.column_stack([acq.scatter, acq.fluorescence[:, cols], ticks])
    spill = acq.spillover_written[np.ix_(cols, cols)]
    names = [inst.detectors[f] for f in fl_order]
    spill_text = ",".join([str(len(names)), *names, *(f"{x:.6g}" for x in spill.ravel())])
    meta: dict[str, str] = {"$CYT": inst.name, "$FIL": path.name, "$SRC": f"{v.patient} {v.visit}",
                            "$DATE": date.strftime("%d-%b-%Y").upper(), "$BTIM": "09:30:00",
                            "$TIMESTEP": f"{inst.timestep_s:g}", "$SPILLOVER": spill_text, "TUBE NAME": tube}
    for i, name in enumerate(pnn, start=1):
        meta[f"$P{i}R"] = str(int(ticks.max()) + 1 if name == inst.time_name else inst.range)
    for k, f in enumerate(fl_order):
        meta[f"$P{5 + k}V"] = f"{500 * acq.gains[FLUOROCHROMES.index(f)]:.0f}"
    write_fcs(path, events, pnn, pns, meta)


def generate_trial(out: str | Path, *, patients: int = 8, events: int = 20_000, seed: int = 0,
                   tubes: tuple[str, ...] = ("tcell", "nkb"), max_files: int | None = None) -> Path:
    """Generate the lab's trial into ``out`` (created); the same seed gives the same files and truth.

    ``max_files`` keeps only the first files (patient-major order), e.g. for a smoke run."""
    out = Path(out)
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth" / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    visits = draw_visits(patients, rng)
    plan = [(v, tube) for v in visits for tube in tubes][:max_files]
    n_clog = max(len(tubes), int(round(CLOG_SHARE * len(plan))))
    clogged = set(rng.choice(len(plan), size=min(n_clog, len(plan)), replace=False).tolist())
    for tube in tubes:  # every tube has a clog
        idx = [i for i, (_, t) in enumerate(plan) if t == tube]
        if idx and not clogged & set(idx):
            clogged.add(int(rng.choice(idx)))
    manifest, truth, files = [], [], []
    start = dt.date(2025, 3, 3)
    for i, (v, tube) in enumerate(plan):
        file_rng = np.random.default_rng([seed, i])
        cells = make_cells(tube, v, events, file_rng)
        clog = (float(file_rng.uniform(0.2, 0.7)), float(file_rng.uniform(0.04, 0.1))) if i in clogged else None
        acq, order = acquire(cells, v.instrument, file_rng, clog=clog)
        members = {pop: m[order] for pop, m in cells.members.items()}
        rel = f"fcs/{v.patient}_{v.visit}_{tube}.fcs"
        date = start + dt.timedelta(days=7 * v.week + int(v.patient[1:]))
        _write(out / rel, tube, v, acq, date)
        buf = io.BytesIO()
        np.savez_compressed(buf, bits=pack_bits(tube, members), clog=acq.clog,
                            kind=cells.kind[order].astype(np.uint8), dead=cells.dead[order])
        atomic_write_bytes(out / "truth" / "labels" / f"{Path(rel).stem}.npz", buf.getvalue())
        truth.append(population_table(rel, tube, members))
        manifest.append({"file": rel, "patient": v.patient, "visit": v.visit, "week": v.week, "arm": v.arm,
                         "tube": tube, "sample_date": date.isoformat(), "instrument": INSTRUMENTS[v.instrument].name})
        files.append({"file": rel, "tube": tube, "instrument": v.instrument, "scenarios": ";".join(v.scenarios),
                      "clog_events": int(acq.clog.sum()),
                      "gains": ";".join(f"{g:.3f}" for g in acq.gains)})
    pd.DataFrame(manifest).to_csv(out / "manifest.csv", index=False)
    pd.concat(truth, ignore_index=True).to_csv(out / "truth" / "populations.csv", index=False)
    pd.DataFrame(files).to_csv(out / "truth" / "files.csv", index=False)
    clinical = pd.DataFrame([{"patient": v.patient, "arm": v.arm, "visit": v.visit, "week": v.week,
                              "date": (start + dt.timedelta(days=7 * v.week + int(v.patient[1:]))).isoformat(),
                              "lymphocytes_per_uL": round(v.lymphocytes_per_uL)} for v in visits])
    clinical.to_csv(out / "clinical.csv", index=False)
    return out
