"""Colours shared by every figure that compares trial arms (trial summary, clustering abundance).

The treatment arm is always red and the control arm blue, whichever figure a reader looks at; further
arms get grey and green. :func:`arm_palette` takes the arms in trial order (treatment first, as
``TrialConfig.arms``); :func:`cytokit.trial.config.recorded_arm_order` recovers that order from a results
folder so a stage that does not hold the trial configuration (clustering) colours arms the same way.
"""
from __future__ import annotations

from typing import Sequence

#: treatment, control, then any further arms (hex colours)
ARM_COLOURS: tuple[str, ...] = ("#c0392b", "#2c7fb8", "#7f7f7f", "#31a354", "#8e44ad", "#d68910")


def arm_palette(arms: Sequence[str]) -> dict[str, str]:
    """Arm name -> colour, in trial order (treatment first); colours repeat past six arms."""
    return {str(a): ARM_COLOURS[i % len(ARM_COLOURS)] for i, a in enumerate(arms)}

