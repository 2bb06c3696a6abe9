"""The gate editor widget (ipywidgets): a thin view over :class:`~.state.GateEditorState`.

Layout: population picker, the population's controls (built from ``state.controls()``), live counts,
the gate figure (PNG, so it renders in any Jupyter front end), buttons to reset / undo / make the gate
adaptive / apply to the cohort, a thumbnail grid of the cohort with outliers framed, and a save box.
Every action calls one state method and redraws; no gating logic lives here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from ..errors import CytokitError
from ..results import schema as S
from .figures import cohort_grid, gate_figure, png_bytes
from .state import CohortResult, Control, GateEditorState

log = logging.getLogger(__name__)


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CytokitError("the gate editor needs ipywidgets: pip install 'cytokit[notebook]'") from exc
    return ipywidgets


def format_number(value: float | None) -> str:
    """A text box's text for a number (gate scale): empty for None (an open bound, a position not fitted)."""
    return "" if value is None else repr(float(value))


def parse_number(text: str) -> float | None:
    """A text box's number: None for an empty box or ``open``; otherwise a float (else :class:`CytokitError`)."""
    t = text.strip()
    if t == "" or t.lower() == "open":
        return None
    try:
        return float(t)
    except ValueError:
        raise CytokitError(f"{text!r} is not a number (leave the box empty for an open bound)") from None


class GateEditor:
    """Interactive editor for one strategy on one sample (``cohort``: files, a folder or a run folder
    for "apply to cohort"). Display it as the last expression of a cell, or ``editor.widget``."""

    def __init__(self, strategy: Any, sample: Any, *, cohort: Iterable[str | Path] | str | Path | None = None,
                 panel: Any = None, tube: str | None = None, population: str | None = None) -> None:
        self.state = strategy if isinstance(strategy, GateEditorState) else GateEditorState(
            strategy, sample, panel=panel, tube=tube, population=population)
        self.cohort = cohort
        self.last_cohort: CohortResult | None = None
        w = _ipywidgets()
        self._w = w
        self.picker = w.Dropdown(options=self.state.populations, value=self.state.population,
                                 description="Population")
        self.controls_box = w.VBox()
        self.counts = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(width="460px"))
        self.message = w.HTML()
        self.buttons = {k: w.Button(description=k) for k in ("Reset", "Undo", "Make adaptive", "Apply to cohort")}
        self.cohort_image = w.Image(format="png")
        self.cohort_table = w.HTML()
        self.save_path = w.Text(value=f"{self.state.strategy.name}_tuned.yaml", description="Save as")
        self.save_button = w.Button(description="Save YAML")
        self.picker.observe(self._on_pick, names="value")
        self.buttons["Reset"].on_click(lambda _b: self._act(self.state.reset))
        self.buttons["Undo"].on_click(lambda _b: self._act(self.state.undo))
        self.buttons["Make adaptive"].on_click(lambda _b: self._act(self.state.adapt))
        self.buttons["Apply to cohort"].on_click(lambda _b: self.apply_to_cohort())
        self.save_button.on_click(lambda _b: self.save())
        self.widget = w.VBox([
            self.picker,
            w.HBox([self.image, w.VBox([self.counts, self.controls_box, w.HBox(list(self.buttons.values()))])]),
            self.message, w.HBox([self.save_path, self.save_button]), self.cohort_table, self.cohort_image])
        self.refresh()

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)

    # -- view updates ----------------------------------------------------------------------------------
    def _control_widget(self, c: Control) -> Any:
        w = self._w
        style = {"description_width": "160px"}
        layout = w.Layout(width="420px")
        if c.kind == "bool":
            widget = w.Checkbox(value=bool(c.value), description=c.label, style=style, layout=layout)
        elif c.kind == "choice":
            widget = w.Dropdown(options=list(c.options), value=c.value, description=c.label, style=style, layout=layout)
        elif c.kind == "int":
            widget = w.IntSlider(value=int(c.value), min=int(c.minimum or 1), max=int(c.maximum or 10),
                                 description=c.label, style=style, layout=layout, continuous_update=False)
        elif c.kind == "float" and (c.optional or c.value is None):  # None shown empty, never as a number
            widget = w.Text(value=format_number(c.value), placeholder="open" if c.optional else "not fitted",
                            description=c.label, style=style, layout=layout, continuous_update=False)
            widget.observe(lambda change, key=c.key: self._act(self._set_text, key, change["new"]), names="value")
            if c.note:
                widget.tooltip = c.note
            return widget
        elif c.minimum is not None and c.maximum is not None and c.value is not None:
            widget = w.FloatSlider(value=float(c.value), min=c.minimum, max=c.maximum, step=c.step or 0.01,
                                   readout_format=".3f", description=c.label, style=style, layout=layout,
                                   continuous_update=False)
        else:
            widget = w.FloatText(value=float(c.value) if c.value is not None else 0.0, description=c.label,
                                 style=style, layout=layout)
        widget.observe(lambda change, key=c.key: self._act(self.state.set, key, change["new"]), names="value")
        if c.note:
            widget.tooltip = c.note
        return widget

    def _set_text(self, key: tuple[Any, ...], text: str) -> None:
        """A number typed in a text box (empty: None, e.g. an open rectangle side) -> ``state.set``."""
        self.state.set(key, parse_number(text))

    def refresh(self) -> None:
        """Redraw figure, counts and controls from the state."""
        s, w = self.state, self._w
        self.image.value = png_bytes(gate_figure(s.result, s.population))
        c = s.counts()
        pct_l = "" if c[S.PCT_LYMPHOCYTES] != c[S.PCT_LYMPHOCYTES] else f" · {c['pct_lymphocytes']:.2f}% of lymphocytes"
        import html

        from ..results.denominators import above_text, denominators

        den, above = denominators(s.table(), declared={"": s.result.definition.lymphocytes}).get("", ("", set()))
        if s.population in above:  # a gate above the lymphocyte denominator is not a % of it (as in reports)
            pct_l = f" · {html.escape(above_text(den))}"

        # review flags (the estimate may be wrong) in red; placement notes in grey (docs/gating.md, "Flags")
        flags = (f"<br><span style='color:#b00'><b>REVIEW</b>: {html.escape(c[S.REVIEW_FLAGS])}</span>"
                 if c[S.REVIEW] else "")
        if c[S.NOTES]:
            flags += f"<br><span style='color:#667'>notes: {html.escape(c[S.NOTES])}</span>"
        data = s.result.data_flags  # the sample's data flags, as qc_flags and `cytokit gate` show them
        if data:
            flags += f"<br><span style='color:#b00'>sample: {html.escape('; '.join(data))}</span>"

        self.counts.value = (f"<b>{html.escape(s.population)}</b>: {c['count']:,} events · "
                             f"<b>{c['pct_parent']:.2f}%</b> of parent ({c['parent_count']:,}){pct_l}"
                             f"{flags}")
        note = s.controls_note()  # a method without controls, or YAML parameters without one, is said so
        self.controls_box.children = ([w.HTML(f"<span style='color:#667'>{html.escape(note)}</span>")] if note else []) + \
            [self._control_widget(ctrl) for ctrl in s.controls()]

    def _act(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
            self.message.value = ""
        except CytokitError as exc:
            import html

            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
        self.refresh()

    def _on_pick(self, change: dict) -> None:
        self._act(self.state.select, change["new"])

    # -- actions ---------------------------------------------------------------------------------------
    def apply_to_cohort(self, files: Any = None) -> Any:
        """Re-fit the selected population on every cohort sample; show thumbnails and the table."""
        files = files if files is not None else self.cohort
        if files is None:
            self.message.value = "no cohort given (GateEditor(..., cohort=folder or files))"
            return None
        res = self.state.apply_to_cohort(files)
        self.last_cohort = res
        self.cohort_image.value = png_bytes(cohort_grid(res))
        t = res.table.copy()
        t[S.PCT_PARENT] = t[S.PCT_PARENT].map(lambda v: f"{v:.2f}")
        self.cohort_table.value = t.to_html(index=False, escape=True)
        return res

    def save(self, path: str | Path | None = None) -> Path:
        out = self.state.save(path or self.save_path.value)
        self.message.value = f"saved {out}"
        return out
