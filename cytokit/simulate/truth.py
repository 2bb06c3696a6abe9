"""Ground truth of a simulated trial: per-file population counts and per-event masks.

Contract
--------
* ``truth/labels/<stem>.npy``: uint8 leaf code per event, in file event order.
* ``truth/flags/<stem>.npy``: uint8 bit mask per event (:data:`~.events.FLAG_BITS`: 1 = acquired during a
  clog, 2 = saturated in at least one channel). A clog event keeps its leaf (it is still the same cell).
* ``truth/leaves.csv``: ``code``, ``tube``, ``leaf``, ``kind``, ``populations`` (``;``-joined).
* ``truth/populations.csv``: ``file``, ``population``, ``parent``, ``count``, ``pct_parent`` (%),
  ``pct_lymphocytes`` (% of ``Singlets``), ``abs_count_per_uL`` (cells/µL, = pct_lymphocytes / 100 ×
  the visit's ``lymphocytes_per_uL``; empty for ``Beads``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..results import schema as S
from .events import FLAG_BITS
from .phenotypes import HIERARCHY, all_leaves


def population_counts(labels: np.ndarray, tube: str, *, with_beads: bool = True) -> dict[str, int]:
    """Event count of every population of ``tube`` from leaf labels."""
    per_code = np.bincount(labels, minlength=256)
    counts = {pop: 0 for pop, _ in HIERARCHY[tube] if with_beads or pop != "Beads"}
    for leaf in all_leaves():
        if leaf.tube != tube:
            continue
        for pop in leaf.populations:
            if pop in counts:
                counts[pop] += int(per_code[leaf.code])
    return counts


def populations_table(file: str, tube: str, labels: np.ndarray, lymphocytes_per_uL: float, *,
                      with_beads: bool = True) -> pd.DataFrame:
    """True counts and percentages (0–100) of every population of one file."""
    counts = population_counts(labels, tube, with_beads=with_beads)
    total = len(labels)
    singlets = counts["Singlets"]
    rows = []
    for pop, parent in HIERARCHY[tube]:
        if pop not in counts:
            continue
        n = counts[pop]
        parent_n = counts[parent] if parent else total
        in_lymph = pop != "Beads"
        pct_l = 100.0 * n / singlets if (in_lymph and singlets) else np.nan
        rows.append({
            S.FILE: file, S.POPULATION: pop, S.PARENT: parent, S.COUNT: n,
            S.PCT_PARENT: 100.0 * n / parent_n if parent_n else np.nan,
            S.PCT_LYMPHOCYTES: pct_l,
            S.ABS_COUNT: pct_l / 100.0 * lymphocytes_per_uL if in_lymph else np.nan,
        })
    return pd.DataFrame(rows)


def _stem(file: str | Path) -> str:
    return Path(str(file)).stem


def _load(out_dir: Path, sub: str, file: str | Path) -> np.ndarray:
    path = Path(out_dir) / "truth" / sub / f"{_stem(file)}.npy"
    if not path.is_file():
        raise ConfigError(f"no truth {sub} for {file!r} (expected {path}); was it simulated here?", path=path)
    return np.load(path, allow_pickle=False)


def truth_masks(out_dir: str | Path, file: str | Path) -> dict[str, np.ndarray]:
    """Boolean mask over the file's events for every population of its tube (true membership).

    ``file`` is the manifest's ``file`` value, a path or a stem. Populations absent from the file's tube
    are not returned; a population with no events gets an all-False mask.
    """
    out_dir = Path(out_dir)
    labels = _load(out_dir, "labels", file)
    table = pd.read_csv(out_dir / "truth" / "leaves.csv", keep_default_na=False)
    present = table[table["code"].isin(np.unique(labels))]
    tubes = set(present[S.TUBE])
    if len(tubes) != 1:
        raise ConfigError(f"labels of {file!r} mix tubes {sorted(tubes)}; truth is inconsistent",
                          path=out_dir / "truth")
    tube = tubes.pop()
    masks: dict[str, np.ndarray] = {}
    for pop, _ in HIERARCHY[tube]:
        codes = table.loc[table["populations"].str.split(";").apply(lambda ps: pop in ps), "code"]
        masks[pop] = np.isin(labels, codes.to_numpy())
    return masks


def truth_flags(out_dir: str | Path, file: str | Path) -> dict[str, np.ndarray]:
    """Boolean masks of the event flags (``clog``, ``saturated``) of one simulated file."""
    flags = _load(Path(out_dir), "flags", file)
    return {name: (flags & bit) > 0 for name, bit in FLAG_BITS.items()}
