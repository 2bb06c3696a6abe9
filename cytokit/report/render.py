"""Render a :class:`PatientReport` to self-contained HTML (all text escaped, images inlined) and PDF."""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from typing import Any

import jinja2
import markupsafe

from .. import __version__
from ..errors import ReportError
from ..gating.count_error import FEW_EVENTS
from ..results.schema import TUBE
from .config import ReportOptions
from .figures import data_uri, trend_png
from .patient import PatientReport
from .reference import ReferenceIntervals

log = logging.getLogger(__name__)


def _fmt(value: Any, digits: int = 1, signed: bool = False) -> str:
    """Number formatting for tables: '—' for missing values."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(v):
        return "—"
    return f"{v:+,.{digits}f}" if signed else f"{v:,.{digits}f}"


_BREAK_AFTER = re.compile(r"([;:_/])")


def _breakable(value: Any) -> markupsafe.Markup:
    """``value`` escaped, with a line-break opportunity (``<wbr>``) after each ``;``, ``:``, ``_`` and ``/``, so
    a flag list such as ``CD14:logicle_w_clipped;uncertain`` wraps between its parts in a narrow column
    instead of inside a word; the text is unchanged (``None`` -> "")."""
    text = "" if value is None else str(value)
    return markupsafe.Markup(_BREAK_AFTER.sub(r"\1<wbr>", str(markupsafe.escape(text))))


def _flag_words(value: Any) -> markupsafe.Markup:
    """A flag list (``;``-separated words such as ``CD4:overcompensated;uncertain``) as the report shows it: the
    words separated by ``; `` and :func:`_breakable` (so a narrow column wraps between a word's parts)."""
    words = [w.strip() for w in ("" if value is None else str(value)).split(";")]
    return _breakable("; ".join(w for w in words if w))


#: width of a report table on A4 (pt): the page's 595 pt less its 12 mm margins and the body's 1 em each side
TABLE_WIDTH_PT = 506.0
#: a cell's horizontal padding and borders (pt), with 1 pt to spare
CELL_EXTRA_PT = 8.0
#: where a name may wrap without breaking a word: after a hyphen, ``_``, ``/``, ``:`` or ``;``, and at spaces
_NAME_PARTS = re.compile(r"(?<=[-_/:;])|\s+")


def _text_width_pt(text: str, size_pt: float, weight: str = "normal") -> float:
    """Width (pt) of ``text`` set in the report's font (DejaVu Sans) at ``size_pt`` points, ``weight`` ``normal``
    or ``bold``."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(family="DejaVu Sans", size=size_pt, weight=weight), ismath=False)
    return float(width)


def column_pct(names: Iterable[Any], size_pt: float, least_pct: float, most_pct: float,
               whole: Iterable[str] = (), weight: str = "normal") -> float:
    """Width of a table column (% of the table's width) showing ``names`` (e.g. tube names) at ``size_pt`` points:
    wide enough for the longest part of a name (the text between the places where it may wrap: spaces, after
    ``-``, ``_``, ``/``), so a name such as ``memory`` is never broken inside a word, and for each of ``whole``
    (text the column never wraps, such as the pieces of :func:`unit_parts`); never below ``least_pct`` (the
    layout's usual width) nor above ``most_pct`` (where a longer part breaks inside, rather than run into the
    next column). ``weight``: the font weight the column is set in (``bold`` for the reference flags)."""
    parts = [p for n in names for p in _NAME_PARTS.split(str(n)) if p] + [str(w) for w in whole]
    need = max((_text_width_pt(p, size_pt, weight) for p in parts), default=0.0) + CELL_EXTRA_PT
    return round(min(max(100.0 * need / TABLE_WIDTH_PT, least_pct), most_pct), 1)


def unit_parts(unit: Any) -> list[str]:
    """The pieces of a unit string (e.g. ``cells/µL``, ``% of lymphocytes``) that the report never breaks: its
    words, a word without letters (``%``) kept with the next one; ``cells/µL`` is one piece, never split at its
    ``/`` (``% of lymphocytes`` -> ``% of`` / ``lymphocytes``)."""
    parts: list[str] = []
    glue = False
    for word in str("" if unit is None else unit).split():
        if glue:
            parts[-1] += " " + word
        else:
            parts.append(word)
        glue = not any(c.isalpha() for c in word)
    return parts


def _unit(value: Any) -> markupsafe.Markup:
    """A unit string as the report shows it: each piece of :func:`unit_parts` in a ``span.unit`` (never wrapped,
    ``white-space: nowrap``), the pieces separated by spaces (where a line may end)."""
    return markupsafe.Markup(" ").join(
        markupsafe.Markup('<span class="unit">{}</span>').format(p) for p in unit_parts(value))


#: units that a line never breaks inside when they stand in running text or a header (``cells/µL`` at its ``/``)
_UNITS_IN_TEXT = re.compile(r"cells/µL")


def _units_whole(value: Any) -> markupsafe.Markup:
    """``value`` escaped, each unit in it (``cells/µL``) in a ``span.unit`` (``white-space: nowrap``), so a
    header such as ``CD4 > 200 cells/µL`` wraps at its spaces but never at the unit's ``/``."""
    text = str(markupsafe.escape("" if value is None else str(value)))
    return markupsafe.Markup(_UNITS_IN_TEXT.sub(r'<span class="unit">\g<0></span>', text))


#: the measure of a reference flag, in brackets: ``(cells/µL)`` of ``L (cells/µL)``
_FLAG_MEASURE = re.compile(r"\(([^)]*)\)")


def _reference_flag(value: Any) -> markupsafe.Markup:
    """A reference flag (``L (cells/µL)``, ``H (% and cells/µL)``) as the Flag column shows it: the letters as
    they are (bold, from the cell), each measure in a ``span.flag-measure`` (smaller, regular weight) whose
    :func:`unit_parts` never break, so ``(cells/µL)`` wraps whole under its letter."""
    text = "" if value is None else str(value)
    out, last = [], 0
    for m in _FLAG_MEASURE.finditer(text):
        out.append(markupsafe.escape(text[last:m.start()]))
        out.append(markupsafe.Markup('<span class="flag-measure">{}</span>').format(_unit(m.group(0))))
        last = m.end()
    out.append(markupsafe.escape(text[last:]))
    return markupsafe.Markup("").join(out)


def flag_measures(flags: Iterable[Any]) -> list[str]:
    """The unbroken pieces of the measures (in brackets) of ``flags``, for the Flag column's width."""
    return sorted({p for f in flags for m in _FLAG_MEASURE.findall("" if f is None else str(f))
                   for p in unit_parts(f"({m})")})


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cytokit.report", "templates"),
        autoescape=True,  # every value from FCS files / manifests is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.globals["fmt"] = _fmt
    env.globals["column_pct"] = column_pct
    env.filters["breakable"] = _breakable
    env.filters["flag_words"] = _flag_words
    env.filters["unit"] = _unit
    env.filters["units_whole"] = _units_whole
    env.filters["reference_flag"] = _reference_flag
    env.globals["few_events_limit"] = FEW_EVENTS  # parent events below which % of parent shows its counting SD
    return env


def render_html(report: PatientReport, options: ReportOptions, intervals: ReferenceIntervals,
                generated: str | None = None) -> str:
    """The report as one HTML document with no external assets."""
    for visit in report.visits:
        for thumb in visit["thumbnails"]:
            thumb["uri"] = data_uri(path=thumb["path"]) if thumb.get("path") else ""
    sources = sorted({iv.source for iv in intervals.intervals})
    try:
        return _environment().get_template("patient.html.j2").render(
            r=report, options=options, methods=report.methods, version=__version__,
            trend_uri=data_uri(trend_png(report, options.trends)),
            tube_names=sorted({str(q.get(TUBE, "")) for q in report.qc}
                              | {str(row.get(TUBE, "")) for v in report.visits for row in v["rows"]}),
            # the cross-check column: "tube: value unit (+diff %)" per other tube, units never broken
            xcheck_names=sorted({f"{c.get(TUBE, '')}:" for v in report.visits for row in v["rows"]
                                 for c in row.get("cross_check", ())}),
            xcheck_whole=sorted({p for v in report.visits for row in v["rows"] for c in row.get("cross_check", ())
                                 for p in unit_parts(c.get("unit"))}),
            # the Flag column: the measures of "L (cells/µL)", "H (% and cells/µL)", each piece never broken
            flag_whole=flag_measures(row.get("flag") for v in report.visits for row in v["rows"]),
            generated=generated or "",  # no date by default: the same results give the same bytes
            intervals_name=intervals.name, sources=sources,
        )
    except jinja2.TemplateError as exc:
        raise ReportError(f"report template failed for patient {report.patient!r}: {exc}") from exc


def render_pdf(html: str) -> bytes:
    """PDF bytes from the report HTML (WeasyPrint; needs the Pango library of the system)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango/cairo shared libraries missing
        raise ReportError(
            f"PDF output needs WeasyPrint and the Pango system library ({exc}); "
            "install them or disable PDF output (pipeline YAML `report: {pdf: false}` / `cytokit report --no-pdf`)"
        ) from exc
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return weasyprint.HTML(string=html).write_pdf()
