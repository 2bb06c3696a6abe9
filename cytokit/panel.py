"""Panels: which markers a tube carries, and how a file's channels map to them.

Contract
--------
A panel YAML (``panels/*.yaml``, validated by :class:`PanelDefinition`) names

* ``markers``: canonical marker name → ``aliases`` (texts that may appear in $PnS, e.g. ``"CD45RA FITC"``)
  and the expected ``fluorochrome``;
* ``fluorochromes``: fluorochrome → detector names ($PnN without the ``-A``/``-H``/``-W`` suffix) of the
  instruments the panel runs on (BD ``PE-Cy7``, Attune ``BL4``, FACSCalibur ``FL3``...). A channel whose
  $PnN is the fluorochrome's own name (``PerCP-Cy5-5-A``) is recognised without listing it;
* ``scatter``: canonical scatter name (``FSC-A``, ``FSC-H``, ``SSC-A``...) → channel-name aliases, and
  ``time``: aliases of the time channel;
* ``tubes``: tube name → ``required`` and ``optional`` markers, plus per-tube ``fluorochromes`` overrides
  (marker → fluorochrome) for panels that reuse a marker on different colours.

:meth:`Panel.resolve` maps a :class:`~cytokit.sample.Sample`'s channels to canonical names: scatter and
time by $PnN (fallback $PnS), fluorescence by $PnS text (fallback $PnN; fluorochrome words such as
``"CD4 PE-Cy7"`` are stripped before matching) and, when the text names no marker, by the detector's
fluorochrome when the tube assigns that fluorochrome to exactly one marker (such assignments are
listed in a warning, and :func:`panel_flags` gives the tables' flag ``markers_from_detector_names``). It returns a new Sample whose
channel table has ``marker``, ``fluorochrome`` and ``kind`` set, and raises :class:`PanelError` (listing
the channels found) when a required marker is missing or two channels claim the same marker.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .definitions import resolve_definition
from .errors import PanelError
from .fcs.channels import guess_kind
from .sample import Sample
from .yamlio import load_model

log = logging.getLogger(__name__)

__all__ = [
    "MarkerDefinition", "TubeDefinition", "PanelDefinition", "Panel", "ChannelMatch", "load_panel",
    "normalize_name", "DETECTOR_ONLY_FLAG", "panel_flags",
]

#: flag (tables' ``qc_flags``) of a sample whose markers were assigned from detector names only
DETECTOR_ONLY_FLAG = "markers_from_detector_names"
_DETECTOR_ONLY_PREFIX = "markers assigned from detector names only ($PnS empty):"

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_DETECTOR_SUFFIX = re.compile(r"[-_ ]?(a|h|w|area|height|width)$")

DEFAULT_SCATTER: dict[str, list[str]] = {
    "FSC-A": ["FSC-A", "FSC", "FS", "FS-A", "FS INT", "FSC-Area", "FS Lin", "FSC-Lin"],
    "FSC-H": ["FSC-H", "FS-H", "FS PEAK", "FSC-Height"],
    "FSC-W": ["FSC-W", "FS-W", "FS TOF", "FSC-Width"],
    "SSC-A": ["SSC-A", "SSC", "SS", "SS-A", "SS INT", "SSC-Area", "SS Lin", "SSC-Lin"],
    "SSC-H": ["SSC-H", "SS-H", "SS PEAK", "SSC-Height"],
    "SSC-W": ["SSC-W", "SS-W", "SS TOF", "SSC-Width"],
}
DEFAULT_TIME: list[str] = ["Time", "TIME", "HDR-T", "Time (s)", "Clock"]


def normalize_name(text: str) -> str:
    """Case-folded name with every non-alphanumeric character removed ("CD45RA-FITC" → "cd45rafitc")."""
    return _NON_ALNUM.sub("", str(text).strip().casefold())


def _detector_key(pnn: str) -> str:
    """Normalised detector name of a $PnN: the ``-A``/``-H``/``-W`` suffix removed ("BL1-A" → "bl1")."""
    text = str(pnn).strip().casefold()
    return normalize_name(_DETECTOR_SUFFIX.sub("", text))


# ------------------------------------------------------------------------------------------------------
# validated definition (YAML)
# ------------------------------------------------------------------------------------------------------
class MarkerDefinition(BaseModel):
    """One marker: texts that name it in $PnS and the fluorochrome it is expected on."""

    model_config = ConfigDict(extra="forbid")
    aliases: list[str] = Field(default_factory=list)
    fluorochrome: str | None = None
    description: str | None = None


class TubeDefinition(BaseModel):
    """One tube: markers that must / may be present, and per-tube fluorochrome assignments."""

    model_config = ConfigDict(extra="forbid")
    required: list[str]
    optional: list[str] = Field(default_factory=list)
    fluorochromes: dict[str, str] = Field(default_factory=dict)
    description: str | None = None


class PanelDefinition(BaseModel):
    """A panel YAML file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    species: str | None = None
    instrument: str | None = None
    markers: dict[str, MarkerDefinition]
    fluorochromes: dict[str, list[str]] = Field(default_factory=dict)
    scatter: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_SCATTER.items()})
    time: list[str] = Field(default_factory=lambda: list(DEFAULT_TIME))
    tubes: dict[str, TubeDefinition] = Field(default_factory=dict)

    @field_validator("markers")
    @classmethod
    def _markers_not_empty(cls, v: dict[str, MarkerDefinition]) -> dict[str, MarkerDefinition]:
        if not v:
            raise ValueError("a panel needs at least one marker")
        return v

    @model_validator(mode="after")
    def _check_consistency(self) -> "PanelDefinition":
        owner: dict[str, str] = {}
        for marker, mdef in self.markers.items():
            for text in [marker, *mdef.aliases]:
                key = normalize_name(text)
                if not key:
                    raise ValueError(f"marker {marker!r}: alias {text!r} is empty after normalisation")
                if owner.get(key, marker) != marker:
                    raise ValueError(f"alias {text!r} names both {owner[key]!r} and {marker!r}")
                owner[key] = marker
        for tube, tdef in self.tubes.items():
            names = [*tdef.required, *tdef.optional, *tdef.fluorochromes]
            unknown = sorted({m for m in names if m not in self.markers})
            if unknown:
                raise ValueError(f"tube {tube!r} names markers not defined under 'markers': {unknown}")
            both = sorted(set(tdef.required) & set(tdef.optional))
            if both:
                raise ValueError(f"tube {tube!r}: markers both required and optional: {both}")
        return self


# ------------------------------------------------------------------------------------------------------
# runtime panel
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelMatch:
    """How one channel resolved: canonical ``marker`` (or None), ``kind``, ``fluorochrome`` and why."""

    pnn: str
    pns: str
    marker: str | None
    kind: str
    fluorochrome: str
    how: str


class Panel:
    """A loaded, validated panel. Build with :func:`load_panel`."""

    def __init__(self, definition: PanelDefinition, path: str | Path | None = None) -> None:
        self.definition = definition
        self.path = Path(path) if path is not None else None
        d = definition
        self._marker_alias = {normalize_name(t): m for m, md in d.markers.items() for t in [m, *md.aliases]}
        # fluorochrome lookup: normalised fluorochrome name and its detector names → fluorochrome
        self._fluor_names = {normalize_name(f): f for f in d.fluorochromes}
        for mdef in d.markers.values():
            if mdef.fluorochrome:
                self._fluor_names.setdefault(normalize_name(mdef.fluorochrome), mdef.fluorochrome)
        for tdef in d.tubes.values():
            for fl in tdef.fluorochromes.values():
                self._fluor_names.setdefault(normalize_name(fl), fl)
        self._detector = dict(self._fluor_names)
        for fl, detectors in d.fluorochromes.items():
            for det in detectors:
                self._detector[_detector_key(det)] = fl
        self._scatter = {normalize_name(a): canon for canon, al in d.scatter.items() for a in [canon, *al]}
        self._time = {normalize_name(a) for a in d.time}
        # longest fluorochrome words first so "PE-Cy7" is stripped before "PE"
        self._fluor_words = sorted(self._fluor_names, key=len, reverse=True)

    # -- simple accessors ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def markers(self) -> list[str]:
        """Canonical marker names in definition order."""
        return list(self.definition.markers)

    @property
    def tubes(self) -> list[str]:
        return list(self.definition.tubes)

    def _tube(self, tube: str) -> TubeDefinition:
        try:
            return self.definition.tubes[tube]
        except KeyError:
            raise PanelError(
                f"panel {self.name!r} has no tube {tube!r}; tubes are: {', '.join(self.tubes) or 'none'}",
                path=self.path,
            ) from None

    def tube_markers(self, tube: str) -> list[str]:
        """Required then optional markers of a tube."""
        t = self._tube(tube)
        return [*t.required, *t.optional]

    def fluorochrome(self, marker: str, tube: str | None = None) -> str | None:
        """Expected fluorochrome of ``marker`` (the tube's override first, then the marker's default)."""
        if tube is not None:
            override = self._tube(tube).fluorochromes.get(marker)
            if override:
                return override
        mdef = self.definition.markers.get(marker)
        return mdef.fluorochrome if mdef else None

    def reagents(self, tube: str) -> dict[str, str]:
        """Marker → expected fluorochrome for every marker of a tube (for run records)."""
        return {m: (self.fluorochrome(m, tube) or "") for m in self.tube_markers(tube)}

    # -- matching -----------------------------------------------------------------------------------
    def match_marker_text(self, text: str) -> tuple[str | None, str | None]:
        """Canonical marker named by a $PnS-like text, and the fluorochrome word found in it (if any).

        ``"CD4"``, ``"cd4 PE-Cy7"``, ``"PE-Cy7 CD4"`` and ``"CD4-PE-Cy7"`` all give ``("CD4", ...)``.
        """
        key = normalize_name(text)
        if not key:
            return None, None
        stripped = self._strip_fluorochrome(key)
        if key in self._marker_alias:
            marker = self._marker_alias[key]
            fl = stripped[1] if stripped and self._marker_alias.get(stripped[0]) == marker else None
            return marker, fl
        if stripped and stripped[0] in self._marker_alias:
            return self._marker_alias[stripped[0]], stripped[1]
        # an unknown fluorochrome word ("CD4 BV711"): exactly one whitespace-separated token names a marker
        tokens = [t for t in re.split(r"[\s_,;]+", str(text).strip()) if t]
        hits = {self._marker_alias[normalize_name(t)]: t for t in tokens if normalize_name(t) in self._marker_alias}
        if len(tokens) > 1 and len(hits) == 1:
            marker, token = next(iter(hits.items()))
            rest = " ".join(t for t in tokens if t != token)
            return marker, rest or None
        return None, None

    def _strip_fluorochrome(self, key: str) -> tuple[str, str] | None:
        """(rest, fluorochrome) when the normalised text starts or ends with a known fluorochrome word."""
        for fl in self._fluor_words:
            if len(fl) >= len(key):
                continue
            if key.endswith(fl):
                return key[: -len(fl)], self._fluor_names[fl]
            if key.startswith(fl):
                return key[len(fl):], self._fluor_names[fl]
        return None

    def detector_fluorochrome(self, pnn: str) -> str | None:
        """Fluorochrome measured by a detector, from its $PnN ("BL4-A" → "PE-Cy7" in the IL-2 panel)."""
        key = _detector_key(pnn)
        return self._detector.get(key) or self._detector.get(normalize_name(pnn))

    def match_channel(self, pnn: str, pns: str, tube: str | None = None) -> ChannelMatch:
        """Resolve one channel (see the module docstring for the order of rules)."""
        pnn_s, pns_s = str(pnn).strip(), str(pns or "").strip()
        for text, src in ((pnn_s, "$PnN"), (pns_s, "$PnS")):
            key = normalize_name(text)
            if key in self._time:
                return ChannelMatch(pnn_s, pns_s, "Time", "time", "", f"time alias in {src}")
            if key in self._scatter:
                return ChannelMatch(pnn_s, pns_s, self._scatter[key], "scatter", "", f"scatter alias in {src}")
        det_fl = self.detector_fluorochrome(pnn_s)
        for text, src in ((pns_s, "$PnS"), (pnn_s, "$PnN")):
            marker, text_fl = self.match_marker_text(text)
            if marker is not None:
                fl = det_fl or text_fl or self.fluorochrome(marker, tube) or ""
                return ChannelMatch(pnn_s, pns_s, marker, "fluorescence", fl, f"marker alias in {src}")
        if tube is not None and det_fl is not None and not pns_s:
            owners = [m for m in self.tube_markers(tube) if normalize_name(self.fluorochrome(m, tube) or "")
                      == normalize_name(det_fl)]
            if len(owners) == 1:
                return ChannelMatch(pnn_s, pns_s, owners[0], "fluorescence", det_fl,
                                    f"detector {pnn_s} carries {det_fl} in tube {tube}")
        named_kind = guess_kind(pnn_s, pns_s)  # what the names say (as the reader classifies channels)
        if det_fl is None and named_kind in ("scatter", "time"):
            kind = named_kind  # a scatter/time channel the panel does not list stays scatter/time
        else:
            kind = "fluorescence" if det_fl is not None or _looks_like_detector(pnn_s) else "other"
        named = self._markers_named(pns_s or pnn_s)
        how = f"ambiguous: names {', '.join(named)}" if len(named) > 1 else "unresolved"
        return ChannelMatch(pnn_s, pns_s, None, kind, det_fl or "", how)

    def _markers_named(self, text: str) -> list[str]:
        """Every marker a word of ``text`` names (for explaining ambiguous channels)."""
        words = [w for w in re.split(r"[\s_,;/|+]+", str(text).strip()) if w]
        keys = (normalize_name(w) for w in words)
        return sorted({self._marker_alias[k] for k in keys if k in self._marker_alias})

    def match_channels(self, sample: Sample, tube: str | None = None) -> list[ChannelMatch]:
        """One :class:`ChannelMatch` per channel of ``sample``, in channel order."""
        ch = sample.channel_table
        return [self.match_channel(pnn, pns, tube) for pnn, pns in zip(ch.texts("pnn"), ch.texts("pns", ""))]

    def detect_tube(self, sample: Sample) -> str:
        """The tube whose required markers are all present (the one with most markers when several)."""
        if not self.tubes:
            raise PanelError(f"panel {self.name!r} defines no tubes", path=self.path)
        fits: list[tuple[int, str]] = []
        for tube in self.tubes:
            found = {m.marker for m in self.match_channels(sample, tube) if m.marker}
            if set(self._tube(tube).required) <= found:
                fits.append((len(self._tube(tube).required), tube))
        if not fits:
            raise PanelError(
                f"sample {sample.name!r} matches no tube of panel {self.name!r}; "
                + _describe_found(self.match_channels(sample)),
                path=sample.path or sample.name,
            )
        fits.sort(reverse=True)
        if len(fits) > 1 and fits[0][0] == fits[1][0]:
            raise PanelError(
                f"sample {sample.name!r} matches several tubes of panel {self.name!r} equally well "
                f"({', '.join(t for _, t in fits)}); pass tube=...",
                path=sample.path or sample.name,
            )
        return fits[0][1]

    def resolve(self, sample: Sample, tube: str | None = None) -> Sample:
        """A new Sample whose channel table's ``marker``, ``fluorochrome`` and ``kind`` follow this panel.

        ``tube=None`` picks the tube from the channels (:meth:`detect_tube`) when the panel has tubes.
        Raises :class:`PanelError` when a required marker of the tube is missing, or when two channels
        resolve to the same marker or scatter name. Events are not touched.
        """
        if tube is None and self.tubes:
            tube = self.detect_tube(sample)
        elif tube is not None:
            self._tube(tube)
        matches = _area_keeps_marker(self.match_channels(sample, tube))
        seen: dict[str, list[str]] = {}
        for m in matches:
            if m.marker:
                seen.setdefault(m.marker, []).append(m.pnn)
        dup = {k: v for k, v in seen.items() if len(v) > 1}
        if dup:
            raise PanelError(
                "ambiguous channels: "
                + "; ".join(f"{k} is claimed by {', '.join(v)}" for k, v in dup.items())
                + f" (panel {self.name!r}); " + _describe_found(matches),
                path=sample.path or sample.name,
            )
        if tube is not None:
            missing = [m for m in self._tube(tube).required if m not in seen]
            if missing:
                raise PanelError(
                    f"required marker(s) {', '.join(missing)} of tube {tube!r} (panel {self.name!r}) not "
                    "found; " + _describe_found(matches),
                    path=sample.path or sample.name,
                )
        warnings = list(sample.warnings)
        for m in matches:
            if m.marker and m.kind == "fluorescence":
                expected = self.fluorochrome(m.marker, tube)
                if expected and m.fluorochrome and normalize_name(expected) != normalize_name(m.fluorochrome):
                    msg = (f"{m.marker} is on {m.fluorochrome} ({m.pnn}); panel {self.name!r} expects "
                           f"{expected}")
                    log.warning("%s: %s", sample.name, msg)
                    warnings.append(msg)
        by_detector = [m for m in matches if m.marker and m.how.startswith("detector ")]
        if by_detector:
            msg = (f"{_DETECTOR_ONLY_PREFIX} "
                   + ", ".join(f"{m.pnn}->{m.marker}" for m in by_detector)
                   + f" (from the fluorochromes of panel {self.name!r}"
                   + (f" tube {tube!r}" if tube else "") + "; check the reagents)")
            log.warning("%s: %s", sample.name, msg)
            warnings.append(msg)
        channels = sample.channel_table.replace_columns(
            marker=[m.marker if m.marker else (m.pns or m.pnn) for m in matches],
            fluorochrome=[m.fluorochrome for m in matches], kind=[m.kind for m in matches])
        note = f"panel {self.name}" + (f" tube {tube}" if tube else "") + " resolved channel names"
        return sample.replace(channels=channels, warnings=tuple(warnings),
                              provenance=sample.provenance + (note,))

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"Panel({self.name!r}, markers={len(self.markers)}, tubes={self.tubes})"


def panel_flags(sample: Sample) -> list[str]:
    """Flags for the tables from a resolved sample: ``[DETECTOR_ONLY_FLAG]`` when :meth:`Panel.resolve`
    assigned any marker from its detector's fluorochrome alone (the channel's $PnS was empty), else
    ``[]``."""
    return [DETECTOR_ONLY_FLAG] if any(str(w).startswith(_DETECTOR_ONLY_PREFIX) for w in sample.warnings) else []


_PULSE = re.compile(r"^(.*?)[-_ ]?([AHW])$", re.IGNORECASE)


def _area_keeps_marker(matches: list[ChannelMatch]) -> list[ChannelMatch]:
    """Area, height and width of one detector (``PE-A``, ``PE-H``) carrying the same $PnS: the area channel
    keeps the marker (gates use areas), the others become ``<marker>-H`` / ``<marker>-W``. Channels of
    different detectors claiming one marker are left as they are (an ambiguity :meth:`Panel.resolve`
    refuses)."""
    claims: dict[str, list[int]] = {}
    for i, m in enumerate(matches):
        if m.marker and m.kind == "fluorescence":
            claims.setdefault(m.marker, []).append(i)
    out = list(matches)
    for marker, idx in claims.items():
        if len(idx) < 2:
            continue
        parts = [_PULSE.match(matches[i].pnn.strip()) for i in idx]
        if not all(parts) or len({p.group(1).casefold() for p in parts if p}) != 1:
            continue
        pulses = [p.group(2).upper() for p in parts if p]
        if pulses.count("A") != 1 or len(set(pulses)) != len(pulses):
            continue
        for i, pulse in zip(idx, pulses):
            if pulse != "A":
                out[i] = replace(matches[i], marker=f"{marker}-{pulse}",
                                 how=f"{matches[i].how}; {pulse} pulse of the area channel")
    return out


def _looks_like_detector(pnn: str) -> bool:
    return bool(re.search(r"(^fl\d+)|([-_ ](a|h|w)$)", pnn.strip().casefold()))


def _describe_found(matches: list[ChannelMatch]) -> str:
    parts = []
    for m in matches:
        label = m.marker or (f"{m.how}, $PnS={m.pns!r}" if m.how.startswith("ambiguous") else
                             f"unresolved, $PnS={m.pns!r}")
        parts.append(f"{m.pnn} → {label}")
    return "channels found: " + ", ".join(parts)


def load_panel(name_or_path: str | Path) -> Panel:
    """Load a panel by built-in name (``"il2_trial"``) or YAML path; invalid files raise ConfigError."""
    path = resolve_definition(name_or_path, "panels")
    return Panel(load_model(path, PanelDefinition), path=path)
