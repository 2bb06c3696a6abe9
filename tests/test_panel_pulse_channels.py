"""Area and height of one detector under the same $PnS (BD files that record -A and -H for every colour):
the area channel keeps the marker, the height becomes <marker>-H; different detectors still conflict."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.errors import PanelError
from cytokit.panel import Panel, PanelDefinition
from cytokit.sample import Sample


def _sample(pnn: list[str], pns: list[str]) -> Sample:
    n = len(pnn)
    channels = pd.DataFrame({"pnn": pnn, "pns": pns, "marker": pns, "fluorochrome": [""] * n,
                             "range": [262144.0] * n, "gain": [1.0] * n, "log_decades": [0.0] * n,
                             "log_offset": [0.0] * n, "bits": [32] * n, "kind": ["fluorescence"] * n})
    return Sample(events=np.zeros((10, n), np.float32), channels=channels, metadata={})


def _panel() -> Panel:
    return Panel(PanelDefinition.model_validate({
        "name": "p", "markers": {"CD4": {"aliases": ["CD4"]}, "CD8": {"aliases": ["CD8"]}},
        "tubes": {"t": {"required": ["CD4", "CD8"]}}}))


def test_area_channel_keeps_the_marker_and_height_gets_a_suffix():
    s = _panel().resolve(_sample(["PE-A", "PE-H", "APC-A", "APC-W"], ["CD4", "CD4", "CD8", "CD8"]), tube="t")
    assert s.channels["marker"].tolist() == ["CD4", "CD4-H", "CD8", "CD8-W"]
    assert s.channel_index("PE-A") == s.channels.index[s.channels["marker"] == "CD4"][0]


def test_two_detectors_claiming_one_marker_are_still_refused():
    with pytest.raises(PanelError, match="CD4 is claimed by PE-A, FITC-A"):
        _panel().resolve(_sample(["PE-A", "FITC-A", "APC-A"], ["CD4", "CD4", "CD8"]), tube="t")
    with pytest.raises(PanelError, match="CD4 is claimed by PE-H, PE-W"):  # no area channel to prefer
        _panel().resolve(_sample(["PE-H", "PE-W", "APC-A"], ["CD4", "CD4", "CD8"]), tube="t")
