"""Trial-analysis inputs from a simulated trial's ground truth (``cytokit simulate`` output).

:func:`inputs_from_simulation` turns ``truth/populations.csv`` + ``manifest.csv`` + ``clinical.csv`` (+
``il2_cycles.csv``) into the results-store layout, so the analysis can be run on true population values
without gating. :func:`designed_cd4` reads ``truth/patients.csv`` - the simulator's designed (noise-free)
CD4 course per patient - to check what the analysis recovers. Counts are cells/µL.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import StatsError
from ..results import schema as S
from .inputs import TrialInputs, check_clinical, check_populations


def _csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise StatsError(f"not a simulated trial folder: {what} is missing", path=path)
    try:
        return pd.read_csv(path, dtype={S.PATIENT: str, S.VISIT: str, S.FILE: str})
    except Exception as exc:  # pandas parser errors on a damaged file
        raise StatsError(f"cannot read {what}: {exc}", path=path) from exc


def inputs_from_simulation(sim_dir: str | Path) -> TrialInputs:
    """A :class:`TrialInputs` whose populations table holds the simulator's true values.

    Columns follow the results store (``sample_id`` = file stem, ``parent_count`` from the parent's true
    count in the same file, ``abs_method`` = ``truth``).
    """
    root = Path(sim_dir)
    truth = _csv(root / "truth" / "populations.csv", "truth/populations.csv")
    manifest = _csv(root / "manifest.csv", "manifest.csv")
    clinical = _csv(root / "clinical.csv", "clinical.csv")
    cycles_path = root / "il2_cycles.csv"
    cycles = _csv(cycles_path, "il2_cycles.csv") if cycles_path.is_file() else pd.DataFrame()
    keys = [S.FILE, S.PATIENT, S.VISIT, S.WEEK, S.ARM, S.TUBE]
    missing = [c for c in keys if c not in manifest.columns]
    if missing:
        raise StatsError(f"manifest lacks columns {missing}", path=root / "manifest.csv")
    pops = truth.merge(manifest[keys], on=S.FILE, how="inner")
    if pops.empty:
        raise StatsError("no truth rows match the manifest's files", path=root / "truth" / "populations.csv")
    counts = truth.set_index([S.FILE, S.POPULATION])[S.COUNT]
    idx = pd.MultiIndex.from_arrays([pops[S.FILE], pops[S.PARENT].fillna("")])
    pops[S.PARENT_COUNT] = counts.reindex(idx).to_numpy()
    pops[S.SAMPLE_ID] = pops[S.FILE].map(lambda f: Path(f).stem)
    pops[S.ABS_METHOD] = "truth"
    src = str(root / "truth" / "populations.csv")
    return TrialInputs(populations=check_populations(pops, src),
                       clinical=check_clinical(clinical, str(root / "clinical.csv")),
                       cycles=cycles, source=src, clinical_source=str(root / "clinical.csv"))


def designed_cd4(sim_dir: str | Path, *, baseline_visit: str = "W0", final_visit: str | None = None,
                 increase_pct: float = 80.0) -> pd.DataFrame:
    """Per patient: ``arm``, designed CD4 at baseline and final visit (cells/µL), ``gain`` (final − baseline)
    and ``reached`` (gain ≥ ``increase_pct`` % of baseline), from ``truth/patients.csv``."""
    root = Path(sim_dir)
    pat = _csv(root / "truth" / "patients.csv", "truth/patients.csv")
    if final_visit is None:
        final_visit = str(pat.loc[pat[S.WEEK].idxmax(), S.VISIT])
    base = pat[pat[S.VISIT] == baseline_visit].set_index(S.PATIENT)
    fin = pat[pat[S.VISIT] == final_visit].set_index(S.PATIENT)
    out = pd.DataFrame({S.ARM: base[S.ARM], "cd4_baseline": base["cd4_per_uL"],
                        "cd4_final": fin["cd4_per_uL"].reindex(base.index)})
    out["gain"] = out["cd4_final"] - out["cd4_baseline"]
    out["reached"] = out["gain"] >= increase_pct / 100.0 * out["cd4_baseline"]
    return out.reset_index()
