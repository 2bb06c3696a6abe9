"""Validated parameters of a clustering run (one pydantic model, one uniform error message)."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ClusterError


class ClusterParams(BaseModel):
    """Parameters of the SOM + consensus metaclustering; recorded with every result.

    Units: marker values are on the transformed scale; ``margin_pp`` is in percentage points;
    ``alpha`` is a false-discovery rate (fraction, 0-1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    xdim: int = Field(14, ge=1, le=100, description="SOM grid width (nodes)")
    ydim: int = Field(14, ge=1, le=100, description="SOM grid height (nodes)")
    n_metaclusters: int = Field(10, ge=1, le=200, description="number of metaclusters")
    seed: int = Field(42, ge=0, description="seed of the subsample and consensus resampling")
    n_train: int = Field(200_000, ge=100, description="training events in total, balanced over samples")
    epochs: int = Field(10, ge=0, le=1000, description="neighbourhood epochs of the batch SOM")
    refine_epochs: int = Field(2, ge=0, le=100, description="final epochs without neighbourhood")
    radius_end: float = Field(0.5, gt=0, description="final Gaussian neighbourhood radius (grid units)")
    consensus_resamples: int = Field(50, ge=0, le=10_000, description="resamples of consensus clustering")
    resample_fraction: float = Field(0.9, gt=0, le=1)
    scale: bool = Field(False, description="z-score markers (on the training set) before clustering")
    margin_pp: float = Field(5.0, ge=0, description="gating-vs-clustering difference flagged above this (pp)")
    alpha: float = Field(0.05, gt=0, lt=1, description="FDR level of the differential-abundance tests")

    @field_validator("seed")
    @classmethod
    def _seed_fits(cls, v: int) -> int:
        if v >= 2**32:
            raise ValueError("seed must be < 2**32")
        return v

    @property
    def n_nodes(self) -> int:
        return self.xdim * self.ydim


def parse_grid(text: str) -> tuple[int, int]:
    """``"10x10"`` -> ``(10, 10)``; raises :class:`ClusterError` on anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise ClusterError(f"grid {text!r} is not of the form WxH (e.g. 10x10)")
    return int(m.group(1)), int(m.group(2))


def make_params(**values: Any) -> ClusterParams:
    """Build :class:`ClusterParams`; invalid values raise one :class:`ClusterError` listing each problem."""
    values = {k: v for k, v in values.items() if v is not None}
    try:
        return ClusterParams(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
        raise ClusterError(f"invalid clustering parameters: {problems}") from None
