"""The agreement page (HTML): per population summary, per sample rows worst first, parameter changes.

All text from files (sample, population names) is escaped. F1 is per event (0..1); |Δ%| in percentage
points of the parent population.
"""
from __future__ import annotations

import html
import json
import math
from typing import Any, Sequence

import pandas as pd

from ..results import schema as S
from .agreement import summarise, worst_first

ROLE_TEXT = {
    "untuned": "base strategy, before tuning",
    "loso": "leave-one-sample-out: tuned on the other training samples",
    "train": "tuned strategy on its training samples",
    "holdout": "tuned strategy on expert-gated samples not used for training",
    "compare": "gates compared with the expert's",
}
F1_WARN = 0.95


def _fmt(column: str, v: Any) -> str:
    """F1/precision/recall with 4 decimals, percentages with 2, counts as integers."""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4f}" if any(k in column for k in ("f1", "precision", "recall")) else f"{v:.2f}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, f1_cols: Sequence[str] = ("f1", "f1_median", "f1_min")) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            bad = c in f1_cols and isinstance(v, float) and v < F1_WARN
            cells.append(f"<td class='{'bad' if bad else ''}'>{_fmt(str(c), v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def agreement_html(table: pd.DataFrame, *, title: str, changes: Sequence[dict] = (),
                   train: Sequence[str] = (), not_adopted: Sequence[dict] = (),
                   warnings: Sequence[str] = ()) -> str:
    """A self-contained HTML page of an agreement table (see module docstring); ``warnings`` (sentences)
    are shown at the top."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if train:
        parts.append(f"<p>Training samples: {html.escape(', '.join(train))}.</p>")
    if warnings:
        parts.append("<div class='warn'><b>Not settled by the training samples:</b><ul>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>")
    parts.append(f"<p>Per-event F1 against the expert's gates (1 = identical events). pct_expert / pct_auto are "
                 f"% of the reference population (the nearest ancestor both sides gate, usually the parent); "
                 f"|Δ%| is their difference in percentage points. F1 below {F1_WARN} is marked.</p>")
    roles = [r for r in ROLE_TEXT if "role" in table and r in set(table["role"])]
    if roles:
        wide = []
        for r in roles:
            s = summarise(table[table.role == r]).set_index(S.POPULATION)
            wide.append(s[["f1_min", "abs_delta_pct_max"]].add_prefix(f"{r}: "))
        summary = pd.concat(wide, axis=1).reset_index()
        key = next((f"{r}: f1_min" for r in ("loso", "holdout", "compare", "train") if f"{r}: f1_min" in summary), None)
        if key:
            summary = summary.sort_values(key, kind="stable")
        parts.append("<h2>Per population (worst sample)</h2>")
        parts.append(_table(summary, f1_cols=[c for c in summary.columns if c.endswith("f1_min")]))
    for r in roles or [""]:
        sub = table[table.role == r] if r else table
        parts.append(f"<h2>{html.escape(ROLE_TEXT.get(r, 'agreement'))}</h2>")
        cols = [c for c in ("sample", S.POPULATION, "expert_population", "f1", "precision", "recall",
                            "pct_expert", "pct_auto", "abs_delta_pct", "n_expert", "n_auto") if c in sub]
        parts.append(_table(worst_first(sub)[cols]))
    if changes:
        parts.append("<h2>Parameters changed by tuning</h2><table><thead><tr><th>population</th><th>method</th>"
                     "<th>before</th><th>after</th></tr></thead><tbody>")
        for c in changes:
            parts.append(f"<tr><td>{html.escape(c['population'])}</td><td>{html.escape(c['method'])}</td>"
                         f"<td><code>{html.escape(json.dumps(c['before'], sort_keys=True))}</code></td>"
                         f"<td><code>{html.escape(json.dumps(c['after'], sort_keys=True))}</code></td></tr>")
        parts.append("</tbody></table>")
    if not_adopted:
        parts.append("<h2>Tuning not adopted (leave-one-out check)</h2><p>These populations' parameters were "
                     "fitted closer to the expert's gates on the training samples, but tuned without one training "
                     "sample they did worse than the base parameters on it, or no better on average: they keep "
                     "the base parameters. More expert-gated training samples may settle them.</p>"
                     "<table><thead><tr><th>population</th><th>training score before → after</th>"
                     "<th>gain on each left-out sample</th><th>proposed</th></tr></thead><tbody>")
        for d in not_adopted:
            gains = ", ".join(f"{g:+.4f}" for g in d["loo_gains"])
            parts.append(f"<tr><td>{html.escape(d['population'])}</td>"
                         f"<td>{d['score_before']:.4f} → {d['score_after']:.4f}</td><td>{gains}</td>"
                         f"<td><code>{html.escape(json.dumps(d['proposed'], sort_keys=True))}</code></td></tr>")
        parts.append("</tbody></table>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#eef}"
             "td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}td.bad{background:#fdd;font-weight:bold}"
             "code{font-size:11px;white-space:pre-wrap;text-align:left;display:block}"
             ".warn{background:#fff4d6;border:1px solid #e0b000;padding:0.5em 1em;margin:1em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
