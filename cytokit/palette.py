"""Colours shared by every figure that compares trial arms (trial summary, clustering abundance).

The treatment arm is always red and the control arm blue, whichever figure a reader looks at; further
arms get grey and green. :func:`arm_palette` takes the arms in trial order (treatment first, as
``TrialConfig.arms``); :func:`recorded_arm_order` recovers that order from a results folder so a stage
that does not hold the trial configuration (clustering) colours arms the same way.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

#: treatment, control, then any further arms (hex colours)
ARM_COLOURS: tuple[str, ...] = ("#c0392b", "#2c7fb8", "#7f7f7f", "#31a354", "#8e44ad", "#d68910")


def arm_palette(arms: Sequence[str]) -> dict[str, str]:
    """Arm name -> colour, in trial order (treatment first); colours repeat past six arms."""
    return {str(a): ARM_COLOURS[i % len(ARM_COLOURS)] for i, a in enumerate(arms)}


def recorded_arm_order(results_dir: str | Path, present: Iterable[str]) -> list[str]:
    """The arms in ``present`` ordered as the run's trial configuration orders them (treatment, control);
    arms it does not name follow alphabetically. Without a recorded configuration the pipeline defaults
    (``TrialConfig()``) decide, then alphabetical order."""
    present = sorted({str(a) for a in present})
    order: list[str] = []
    path = Path(results_dir) / "trial" / "trial_config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8")).get("config", {}) if path.is_file() else {}
        order = [str(cfg[k]) for k in ("treatment_arm", "control_arm") if k in cfg]
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable trial configuration (%s); arm colours by name", path, exc)
    if not order:
        from .trial.config import TrialConfig

        order = list(TrialConfig().arms)
    known = [a for a in order if a in present]
    return known + [a for a in present if a not in known]
