"""The interactive report: one self-contained HTML page (plotly, its JavaScript inline, so it works offline).

Zoom and pan run over the whole session on the device's clock; waveforms keep every sample up to
``MAX_WAVE_POINTS`` (above that a min/max envelope), so zooming into a minute shows real beats. Under the
plot: the PNG (with the onset strips) and a table of every alert transition.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from streamer.evaluation.report_data import Panel, episodes, model_caption, panels, signals, units, waveform

MAX_WAVE_POINTS = 400_000  # per signal; 30 min of 360 Hz ECG is 648,000 samples
PRIORITY_COLOURS = {"high": "#d62728", "medium": "#ff7f0e", "low": "#e6c700", "info": "#1f77b4"}


def _dt(t_ms: np.ndarray) -> np.ndarray:
    # A plotly date axis reads numbers as epoch milliseconds; float arrays travel as compact binary, ISO strings not.
    return np.asarray(t_ms, dtype="float64")


def _envelope(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= MAX_WAVE_POINTS:
        return t, x
    bins = -(-len(x) // (MAX_WAVE_POINTS // 2))
    n = len(x) // bins * bins
    lo, hi = x[:n].reshape(-1, bins).min(axis=1), x[:n].reshape(-1, bins).max(axis=1)
    tt = t[:n:bins]
    return np.repeat(tt, 2), np.column_stack([lo, hi]).ravel()


def figure(msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> go.Figure:
    waves = signals(msgs)
    rest = panels(msgs, analysis)
    eps = episodes(analysis.get("alerts", []))
    titles = [f"{s.upper()} [{units(msgs, s) or 'a.u.'}]" for s in waves] + [p.ylabel for p in rest]
    titles += ["alerts"] if eps else []
    n = max(1, len(titles))
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.02, subplot_titles=titles)
    for row, s in enumerate(waves, start=1):
        t, x, _ = waveform(msgs, s)
        tt, xx = _envelope(t, x)
        fig.add_trace(go.Scattergl(x=_dt(tt), y=xx.astype("float32"), mode="lines", line={"width": 0.8, "color": "black"},
                                   name=s.upper(), showlegend=False), row=row, col=1)  # fmt: skip
    for row, panel in enumerate(rest, start=len(waves) + 1):
        _add_panel(fig, panel, row)
    if eps:
        _add_alerts(fig, eps, len(titles), max(m["ts_ms"] for m in msgs))
    fig.update_layout(height=170 * n + 120, margin={"l": 70, "r": 20, "t": 40, "b": 60}, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.04}, template="plotly_white")  # fmt: skip
    fig.update_xaxes(title_text="device time (the session's own clock, UTC)", row=n, col=1)
    fig.update_xaxes(type="date", rangeslider={"visible": False}, tickformat="%H:%M:%S")
    return fig


def _add_panel(fig: go.Figure, panel: Panel, row: int) -> None:
    for line in panel.lines:
        style = {"dash": "dash", "shape": "hv", "color": "grey"} if line.style == "threshold" else {}
        fig.add_trace(go.Scatter(x=_dt(line.t_ms), y=line.y, mode="lines+markers" if not style else "lines",
                                 name=line.label, line=style, marker={"size": 3}), row=row, col=1)  # fmt: skip
    if panel.ylim:
        fig.update_yaxes(range=list(panel.ylim), row=row, col=1)


def _add_alerts(fig: go.Figure, eps: list, row: int, last_ms: int) -> None:
    from streamer.evaluation.report_data import assign_lanes

    first_ms = min(ep.start_ms for ep in eps)
    lanes = assign_lanes(eps, last_ms, min_width_ms=0.13 * (last_ms - first_ms))  # room for a label at full zoom-out
    for lane, ep in zip(lanes, eps, strict=True):
        end = ep.end_ms if ep.end_ms is not None else last_ms
        x = _dt(np.array([ep.start_ms, end, end, ep.start_ms, ep.start_ms], float))
        y = [lane - 0.35, lane - 0.35, lane + 0.35, lane + 0.35, lane - 0.35]
        fig.add_trace(go.Scatter(x=x, y=y, fill="toself", mode="lines", line={"width": 0},
                                 fillcolor=PRIORITY_COLOURS[ep.priority], name=f"{ep.condition} ({ep.priority})",
                                 hoverinfo="name", showlegend=False), row=row, col=1)  # fmt: skip
        label = ep.condition + ("" if ep.end_ms is not None else " (open)")
        fig.add_trace(go.Scatter(x=_dt(np.array([ep.start_ms], float)), y=[lane], mode="text", text=[label],
                                 textposition="middle right", hoverinfo="skip", showlegend=False), row=row, col=1)  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, row=row, col=1)


def html_page(device_id: str, session_name: str, msgs: list, analysis: dict[str, Any], png: bytes) -> str:
    """The whole page: title, interactive figure (plotly.js inline), caption, the PNG, the alert table."""
    plot = figure(msgs, analysis).to_html(full_html=False, include_plotlyjs=True, config={"scrollZoom": True})
    alerts = analysis.get("alerts", [])
    cols = ("alert_id", "condition", "priority", "state", "episode_start_ms", "transition_ts_ms", "message")
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(a.get(c, '')))}</td>" for c in cols) + "</tr>\n"
        for a in sorted(alerts, key=lambda a: (a["transition_ts_ms"], a["alert_id"]))
    )
    head = "".join(f"<th>{c}</th>" for c in cols)
    title = html.escape(f"{device_id} - {session_name}")
    caption = html.escape(model_caption(analysis))
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style></head><body>\n"
        f"<h1>{title}</h1>\n<p>Drag to zoom, double-click to reset; scroll to zoom. {caption}</p>\n{plot}\n"
        f"<h2>Overview and strips at alert onsets</h2>\n"
        f"<img id='report-png' alt='report' src='data:image/png;base64,{base64.b64encode(png).decode()}'>\n"
        f"<h2>Alert transitions ({len(alerts)})</h2>\n"
        f"<table><tr>{head}</tr>\n{rows}</table>\n</body></html>\n"
    )
