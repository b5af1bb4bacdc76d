"""A picture of one device's session: signals, features, scores and alerts on one time axis.

Panels, top to bottom, each only when there is something to draw: one per waveform (min/max envelope
when decimated), numerics grouped by unit, derived rates and signal quality from the analysis features,
model scores with their thresholds, and an alert lane. Alert episodes are shaded across every panel in
their priority colour, so a reader sees what the signals did while an alert was open.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.sessions.format import read_session  # noqa: E402

log = logging.getLogger(__name__)

FIG_WIDTH_PX = 1400
PANEL_HEIGHT_PX = 170
MARGIN_HEIGHT_PX = 90  # title and time-axis labels
DPI = 100
MAX_POINTS = 3000  # per waveform panel; above that, a min/max envelope per bin
PRIORITY_COLOURS = {"high": "#d62728", "medium": "#ff7f0e", "low": "#e6c700", "info": "#1f77b4"}
NUMERIC_GROUPS = {
    "HR [bpm], BP [mmHg]": ("heart_rate_bpm", "sbp_mmhg", "map_mmhg", "dbp_mmhg"),
    "SpO2 [%]": ("spo2_pct",),
    "resp [/min], temp [°C]": ("resp_rate_bpm", "temp_c"),
}
FEATURE_RATES = (("ecg", "heart_rate_bpm"), ("ppg", "pulse_rate_bpm"), ("resp", "resp_rate_bpm"),
                 ("ppg", "resp_rate_bpm_ppg"), ("numerics", "heart_rate_bpm"))  # fmt: skip


@dataclass(frozen=True)
class Episode:
    """One alert episode: from its start to its RESOLVED transition (or the end of the data)."""

    alert_id: str
    condition: str
    priority: str
    start_ms: int
    end_ms: int | None


def device_messages(session_path: Path, device_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The telemetry messages of ``device_id`` (default: the first device in the session)."""
    out: list[dict[str, Any]] = []
    for record in read_session(session_path):
        try:
            msg = json.loads(record.value or b"")
        except ValueError:
            continue  # not telemetry (a replayed dead letter, say); nothing to draw
        if not isinstance(msg, dict) or "device_id" not in msg:
            continue
        device_id = device_id or msg["device_id"]
        if msg["device_id"] == device_id:
            out.append(msg)
    if not out:
        raise ValueError(f"{session_path}: no telemetry message of device {device_id or '(any)'}")
    return out[0]["device_id"], out


def episodes(alerts: Iterable[dict[str, Any]]) -> list[Episode]:
    """Alert transitions grouped by alert_id; an escalation raises the episode's priority."""
    rank = {"info": 0, "low": 1, "medium": 2, "high": 3}
    by_id: dict[str, Episode] = {}
    for a in sorted(alerts, key=lambda a: a["transition_ts_ms"]):
        prev = by_id.get(a["alert_id"])
        priority = a["priority"] if not prev or rank[a["priority"]] > rank[prev.priority] else prev.priority
        end = a["transition_ts_ms"] if a["state"] == "RESOLVED" else (prev.end_ms if prev else None)
        by_id[a["alert_id"]] = Episode(a["alert_id"], a["condition"], priority, a["episode_start_ms"], end)
    return sorted(by_id.values(), key=lambda e: (e.start_ms, e.alert_id))


def _waveform(msgs: list[dict[str, Any]], signal: str, t0_ms: int) -> tuple[np.ndarray, np.ndarray]:
    chunks = [m for m in msgs if m.get("kind") == "waveform" and m["signal"] == signal]
    t = np.concatenate([(m["ts_ms"] - t0_ms) / 1000 + np.arange(len(m["samples"])) / m["fs_hz"] for m in chunks])
    x = np.concatenate([np.asarray(m["samples"], float) * (m.get("scale") or 1) + (m.get("offset") or 0)
                        for m in chunks])  # fmt: skip
    return t, x


def _draw_waveform(ax: Axes, t_s: np.ndarray, x: np.ndarray) -> None:
    if len(x) <= MAX_POINTS:
        ax.plot(t_s, x, lw=0.6, color="k")
        return
    bins = len(x) // (MAX_POINTS // 2)  # min and max per bin keep the QRS spikes a plain stride would skip
    n = len(x) // bins * bins
    lo, hi = x[:n].reshape(-1, bins).min(axis=1), x[:n].reshape(-1, bins).max(axis=1)
    ax.fill_between(t_s[:n:bins], lo, hi, color="k", lw=0.4, step="post")


class _Timeline:
    """Converts epoch ms to the axis unit (s, min or h, chosen by the span)."""

    def __init__(self, t0_ms: int, t1_ms: int) -> None:
        span_s = (t1_ms - t0_ms) / 1000
        self.t0_ms = t0_ms
        self.unit, self.div = ("s", 1) if span_s <= 300 else ("min", 60) if span_s <= 3 * 3600 else ("h", 3600)

    def __call__(self, ts_ms: Any) -> Any:
        return (np.asarray(ts_ms, float) - self.t0_ms) / 1000 / self.div


def _plan_panels(msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> list[str]:
    signals = sorted({m["signal"] for m in msgs if m.get("kind") == "waveform"}, key=["ecg", "ppg", "resp"].index)
    vitals = [m for m in msgs if m.get("kind") == "vitals"]
    panels = [f"wave:{s}" for s in signals]
    panels += [f"num:{g}" for g, fields in NUMERIC_GROUPS.items() if any(f in v for v in vitals for f in fields)]
    if analysis.get("features"):
        panels += ["rates", "quality"]
    panels += ["scores"] if analysis.get("scores") else []
    panels += ["alerts"] if analysis.get("alerts") else []
    return panels


def render_report(
    session_path: Path, out_path: Path, analysis: dict[str, Any] | None = None, device_id: str | None = None
) -> Path:
    """Draw one device's report as PNG, or as a self-contained HTML page when ``out_path`` ends in .html."""
    device_id, msgs = device_messages(session_path, device_id)
    analysis = _for_device(analysis or {}, device_id)
    png = render_png(device_id, msgs, analysis)
    if out_path.suffix.lower() in (".html", ".htm"):
        out_path.write_text(_html_page(device_id, session_path.name, png, analysis.get("alerts", [])))
    else:
        out_path.write_bytes(png)
    return out_path


def _for_device(analysis: dict[str, Any], device_id: str) -> dict[str, Any]:
    keep = ("features", "scores", "alerts")
    return {k: [r for r in analysis.get(k, []) if r.get("device_id") == device_id] for k in keep}


def render_png(device_id: str, msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> bytes:
    """The report picture as PNG bytes: FIG_WIDTH_PX wide, PANEL_HEIGHT_PX per panel plus a margin."""
    panels = _plan_panels(msgs, analysis) or ["empty"]
    times = [m["ts_ms"] for m in msgs] + [e.start_ms for e in episodes(analysis.get("alerts", []))]
    times += [s["ts_ms"] for s in analysis.get("scores", [])] + [
        f["window_end_ms"] for f in analysis.get("features", [])
    ]
    tl = _Timeline(min(times, default=0), max(times, default=0))
    height_px = MARGIN_HEIGHT_PX + PANEL_HEIGHT_PX * len(panels)
    fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False,
                             figsize=(FIG_WIDTH_PX / DPI, height_px / DPI), dpi=DPI)  # fmt: skip
    try:
        for ax, panel in zip(axes[:, 0], panels, strict=True):
            _draw_panel(ax, panel, msgs, analysis, tl, max(times, default=0))
            _shade_episodes(ax, episodes(analysis.get("alerts", [])), tl, max(times, default=0))
        start = datetime.fromtimestamp(tl.t0_ms / 1000, UTC).isoformat(timespec="seconds")
        axes[-1, 0].set_xlabel(f"time since {start} [{tl.unit}]")
        n_alerts = len(episodes(analysis.get("alerts", [])))
        title = f"{device_id}: {len(msgs)} telemetry messages, {n_alerts} alert episodes"
        fig.suptitle(title, x=0.01, y=1 - 8 / height_px, ha="left", va="top", fontsize=11)
        fig.subplots_adjust(left=0.07, right=0.99, top=1 - 45 / height_px, bottom=50 / height_px, hspace=0.35)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()


def _draw_panel(ax: Axes, panel: str, msgs: list[dict], analysis: dict[str, Any], tl: _Timeline, last_ms: int) -> None:
    kind, _, name = panel.partition(":")
    if kind == "wave":
        t_s, x = _waveform(msgs, name, tl.t0_ms)
        _draw_waveform(ax, t_s / tl.div, x)
        units = next((m.get("units") for m in msgs if m.get("signal") == name and m.get("units")), None)
        ax.set_ylabel(f"{name} [{units}]" if units else name)
    elif kind == "num":
        vitals = [m for m in msgs if m.get("kind") == "vitals"]
        for field in NUMERIC_GROUPS[name]:
            pts = [(m["ts_ms"], m[field]) for m in vitals if field in m]
            if pts:
                ts, v = zip(*pts, strict=True)
                ax.plot(tl(ts), v, ".-", ms=3, lw=0.8, label=field)
        _finish(ax, name)
    elif kind == "rates":
        for signal, feature in FEATURE_RATES:
            # None (an unusable window) becomes NaN, so the line breaks instead of bridging the gap.
            pts = [(f["window_end_ms"], _nan(f["features"].get(feature))) for f in analysis["features"]
                   if f["signal"] == signal and feature in f["features"]]  # fmt: skip
            if any(np.isfinite(v) for _, v in pts):
                ts, v = zip(*pts, strict=True)
                ax.plot(tl(ts), v, ".-", ms=3, lw=0.8, label=f"{signal} {feature}")
        _finish(ax, "features [/min]")
    elif kind == "quality":
        _draw_quality(ax, analysis["features"], tl)
    elif kind == "scores":
        _draw_scores(ax, analysis["scores"], tl)
    elif kind == "alerts":
        _draw_alert_lane(ax, episodes(analysis["alerts"]), tl, last_ms)


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _finish(ax: Axes, ylabel: str) -> None:
    ax.set_ylabel(ylabel, fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, ncols=4, framealpha=0.7)


def _draw_quality(ax: Axes, features: list[dict[str, Any]], tl: _Timeline) -> None:
    for signal in sorted({f["signal"] for f in features}):
        pts = [(f["window_end_ms"], f["signal_quality"]) for f in features
               if f["signal"] == signal and f.get("signal_quality") is not None]  # fmt: skip
        if pts:
            ts, q = zip(*pts, strict=True)
            ax.plot(tl(ts), q, ".-", ms=3, lw=0.8, label=signal)
    ax.axhline(Settings().sqi_threshold, color="grey", ls="--", lw=0.8, label="usable threshold")
    ax.set_ylim(-0.05, 1.05)
    _finish(ax, "signal quality")


def _draw_scores(ax: Axes, scores: list[dict[str, Any]], tl: _Timeline) -> None:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for s in sorted(scores, key=lambda s: s["ts_ms"]):
        by_model.setdefault(f"{s['model']['name']} {s['model']['version']}", []).append(s)
    for label, rows in by_model.items():
        t = tl([r["ts_ms"] for r in rows])
        (line,) = ax.plot(t, [r["score"] for r in rows], ".-", ms=3, lw=0.9, label=label)
        thr = [(ti, r["threshold"]) for ti, r in zip(t, rows, strict=True) if r.get("threshold") is not None]
        if thr:
            tt, th = zip(*thr, strict=True)
            ax.step(tt, th, where="post", color=line.get_color(), ls="--", lw=0.8, label=f"{label} threshold")
        above = [(ti, r["score"]) for ti, r in zip(t, rows, strict=True) if r.get("above_threshold")]
        if above:
            ax.plot(*zip(*above, strict=True), "o", mfc="none", color=line.get_color(), ms=6)
    _finish(ax, "model scores")


def _draw_alert_lane(ax: Axes, eps: list[Episode], tl: _Timeline, last_ms: int) -> None:
    ax.set_yticks([])
    for lane, ep in enumerate(eps):
        end = ep.end_ms if ep.end_ms is not None else last_ms
        x0, x1 = tl(ep.start_ms), tl(end)
        y = lane % 4
        ax.barh(y, max(x1 - x0, 0), left=x0, height=0.8, color=PRIORITY_COLOURS[ep.priority], alpha=0.8)
        still = "" if ep.end_ms is not None else " (open)"
        ax.text(x0, y, f" {ep.condition} ({ep.priority}){still}", va="center", fontsize=7)
    ax.set_ylim(-0.6, min(len(eps), 4) - 0.4)
    ax.set_ylabel("alerts", fontsize=8)


def _shade_episodes(ax: Axes, eps: list[Episode], tl: _Timeline, last_ms: int) -> None:
    for ep in eps:
        end = ep.end_ms if ep.end_ms is not None else last_ms
        ax.axvspan(tl(ep.start_ms), tl(end), color=PRIORITY_COLOURS[ep.priority], alpha=0.12, lw=0)


def _html_page(device_id: str, session_name: str, png: bytes, alerts: list[dict[str, Any]]) -> str:
    cols = ("alert_id", "condition", "priority", "state", "episode_start_ms", "transition_ts_ms", "message")
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(a.get(c, '')))}</td>" for c in cols) + "</tr>\n"
        for a in sorted(alerts, key=lambda a: (a["transition_ts_ms"], a["alert_id"]))
    )
    head = "".join(f"<th>{c}</th>" for c in cols)
    title = html.escape(f"{device_id} - {session_name}")
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>\n"
        f"<h1>{title}</h1>\n<img alt='report' src='data:image/png;base64,{base64.b64encode(png).decode()}'>\n"
        f"<h2>Alert transitions ({len(alerts)})</h2>\n"
        f"<table><tr>{head}</tr>\n{rows}</table>\n</body></html>\n"
    )
