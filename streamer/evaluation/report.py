"""A picture of one device's session: an overview on the device's own clock, then 10-s strips at every alert onset.

Overview panels, top to bottom, each only when there is something to draw: one per waveform (min/max envelope
when decimated), numerics grouped by unit, rates and signal quality from the analysis features, model scores
with their thresholds, and alert lanes in which no two episodes (nor their labels) overlap. Episodes are shaded
across every panel in their priority colour. Below, one ECG/PPG strip per onset at 25 mm/s
(``report_strips``). ``render_report(..., "x.html")`` also writes the interactive page (``report_html``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from streamer.config import Settings  # noqa: E402
from streamer.evaluation import report_strips  # noqa: E402
from streamer.evaluation.report_data import (  # noqa: E402
    Episode,
    Panel,
    assign_lanes,
    device_messages,
    episodes,
    model_caption,
    panels,
    signals,
    units,
    waveform,
)

__all__ = ["Layout", "ReportPlan", "device_messages", "episodes", "plan_report", "render_png", "render_report"]
log = logging.getLogger(__name__)

FIG_WIDTH_PX = 1400
PANEL_HEIGHT_PX = 170
LANE_HEIGHT_PX = 22
TOP_PX, AXIS_PX, CAPTION_PX = 40, 60, 30  # title; time-axis labels under the overview; model caption at the foot
LEFT_PX, RIGHT_PX, HSPACE_PX = 100, 20, 12
DPI = 100
MAX_POINTS = 3000  # per waveform panel; above that, a min/max envelope per bin
MS_PER_DAY = 86_400_000  # matplotlib dates count days since 1970-01-01
PRIORITY_COLOURS = {"high": "#d62728", "medium": "#ff7f0e", "low": "#e6c700", "info": "#1f77b4"}


class Layout:
    """Pixel heights of the figure's parts, from the top down, so the PNG's size follows from its content."""

    def __init__(self, n_panels: int, n_lanes: int, strip_heights: list[int]) -> None:
        self.panels = [PANEL_HEIGHT_PX] * n_panels + ([max(2, n_lanes) * LANE_HEIGHT_PX + 10] if n_lanes else [])
        self.strips = strip_heights
        overview = sum(self.panels) + HSPACE_PX * max(0, len(self.panels) - 1)
        self.overview_px = overview or PANEL_HEIGHT_PX
        self.height_px = TOP_PX + self.overview_px + AXIS_PX + sum(strip_heights) + CAPTION_PX


def render_report(
    session_path: Path, out_path: Path, analysis: dict[str, Any] | None = None, device_id: str | None = None
) -> Path:
    """Draw one device's report as PNG; for ``.html`` the interactive page, with the PNG written beside it."""
    device_id, msgs = device_messages(session_path, device_id)
    analysis = _for_device(analysis or {}, device_id)
    png = render_png(device_id, msgs, analysis)
    if out_path.suffix.lower() in (".html", ".htm"):
        from streamer.evaluation.report_html import html_page

        out_path.with_suffix(".png").write_bytes(png)
        out_path.write_text(html_page(device_id, session_path.name, msgs, analysis, png))
    else:
        out_path.write_bytes(png)
    return out_path


def _for_device(analysis: dict[str, Any], device_id: str) -> dict[str, Any]:
    keep = ("features", "scores", "alerts")
    return {k: [r for r in analysis.get(k, []) if r.get("device_id") == device_id] for k in keep}


def span_ms(msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> tuple[int, int]:
    times = [m["ts_ms"] for m in msgs] + [e.start_ms for e in episodes(analysis.get("alerts", []))]
    times += [s["ts_ms"] for s in analysis.get("scores", [])] + [
        f["window_end_ms"] for f in analysis.get("features", [])
    ]
    return min(times, default=0), max(times, default=0)


@dataclass(frozen=True)
class ReportPlan:
    """What the PNG will hold: overview panels, alert episodes and their lanes, onset strips, and its layout."""

    overview: list[str | Panel]
    eps: list[Episode]
    lanes: list[int]
    strips: list[report_strips.Strip]
    n_onsets: int  # onsets with waveform data; strips are drawn for the first MAX_STRIPS of them
    t0_ms: int
    t1_ms: int
    layout: Layout


def plan_report(msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> ReportPlan:
    t0, t1 = span_ms(msgs, analysis)
    eps = episodes(analysis.get("alerts", []))
    label_ms = 9 * 16 * (t1 - t0) / (FIG_WIDTH_PX - LEFT_PX - RIGHT_PX)  # ~16 characters of lane label
    lanes = assign_lanes(eps, t1, label_ms)
    strips, n_onsets = report_strips.plan_strips(msgs, eps, _raised_messages(analysis))
    overview: list[str | Panel] = [f"wave:{s}" for s in signals(msgs)]
    overview += panels(msgs, analysis)
    heights = [report_strips.strip_height_px(s, DPI) for s in strips]
    layout = Layout(len(overview), max(lanes, default=-1) + 1, heights)
    return ReportPlan(overview, eps, lanes, strips, n_onsets, t0, t1, layout)


def render_png(device_id: str, msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> bytes:
    """The report picture as PNG bytes, FIG_WIDTH_PX wide and as tall as its plan's ``Layout`` says."""
    plan = plan_report(msgs, analysis)
    layout = plan.layout
    fig = plt.figure(figsize=(FIG_WIDTH_PX / DPI, layout.height_px / DPI), dpi=DPI)
    try:
        axes = _overview_axes(fig, layout)
        for ax, panel in zip(axes, plan.overview, strict=False):
            _draw_panel(ax, panel, msgs)
        if plan.eps:
            _draw_lanes(axes[-1], plan.eps, plan.lanes, plan.t1_ms)
        for ax in axes:
            _shade(ax, plan.eps, plan.t1_ms)
            ax.set_xlim(plan.t0_ms / MS_PER_DAY, plan.t1_ms / MS_PER_DAY)
        _time_axis(axes, plan.t0_ms)
        top = TOP_PX + layout.overview_px + AXIS_PX
        for strip, height in zip(plan.strips, layout.strips, strict=True):
            report_strips.draw_strip(fig, strip, msgs, top, LEFT_PX)
            top += height
        _texts(fig, device_id, msgs, analysis, (len(plan.eps), len(plan.strips), plan.n_onsets), layout)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buf.getvalue()


def _raised_messages(analysis: dict[str, Any]) -> dict[str, str]:
    """alert_id -> the message of its first transition (the reason it was raised)."""
    out: dict[str, str] = {}
    for a in sorted(analysis.get("alerts", []), key=lambda a: a["transition_ts_ms"]):
        out.setdefault(a["alert_id"], a["message"])
    return out


def _overview_axes(fig: Figure, layout: Layout) -> list[Axes]:
    axes: list[Axes] = []
    y = TOP_PX
    width = (FIG_WIDTH_PX - LEFT_PX - RIGHT_PX) / FIG_WIDTH_PX
    for height in layout.panels or [PANEL_HEIGHT_PX]:
        rect = (LEFT_PX / FIG_WIDTH_PX, 1 - (y + height) / layout.height_px, width, height / layout.height_px)
        axes.append(fig.add_axes(rect, sharex=axes[0] if axes else None))
        y += height + HSPACE_PX
    return axes


def _time_axis(axes: list[Axes], t0_ms: int) -> None:
    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)
    for ax in axes:
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.tick_params(labelbottom=ax is axes[-1], labelsize=8)
    day = datetime.fromtimestamp(t0_ms / 1000, UTC).strftime("%Y-%m-%d")
    axes[-1].set_xlabel(f"device time (the session's own clock, UTC), starting {day}", fontsize=9)


def _texts(fig: Figure, device_id: str, msgs: list, analysis: dict, counts: tuple, layout: Layout) -> None:
    n_eps, n_strips, n_onsets = counts
    title = f"{device_id}: {len(msgs)} telemetry messages, {n_eps} alert episodes"
    fig.text(LEFT_PX / FIG_WIDTH_PX / 3, 1 - 12 / layout.height_px, title, ha="left", va="top", fontsize=12)
    caption = model_caption(analysis)
    if n_onsets > n_strips:
        caption += f"{'; ' if caption else ''}strips of the first {n_strips} of {n_onsets} alert onsets"
    if caption:
        fig.text(LEFT_PX / FIG_WIDTH_PX / 3, 8 / layout.height_px, caption, ha="left", va="bottom", fontsize=8)


def _x(t_ms: Any) -> Any:
    return np.asarray(t_ms, float) / MS_PER_DAY


def _draw_panel(ax: Axes, panel: str | Panel, msgs: list[dict[str, Any]]) -> None:
    if isinstance(panel, str):
        signal = panel.removeprefix("wave:")
        t_ms, x, _ = waveform(msgs, signal)
        _draw_waveform(ax, _x(t_ms), x)
        unit = units(msgs, signal)
        ax.set_ylabel(f"{signal.upper()} [{unit}]" if unit else signal.upper(), fontsize=8)
        return
    colour: Any = "grey"
    for line in panel.lines:
        if line.style == "threshold":  # in the colour of the score it belongs to (the line before it)
            ax.step(_x(line.t_ms), line.y, where="post", ls="--", lw=0.8, color=colour, label=line.label)
        else:
            colour = ax.plot(_x(line.t_ms), line.y, ".-", ms=3, lw=0.8, label=line.label)[0].get_color()
    if panel.key == "quality":
        ax.axhline(Settings().sqi_threshold, color="grey", ls=":", lw=0.8, label="usable above")
    if panel.ylim:
        ax.set_ylim(*panel.ylim)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.legend(loc="best", fontsize=7, ncols=3, framealpha=0.8)  # where it hides the fewest points


def _draw_waveform(ax: Axes, t: np.ndarray, x: np.ndarray) -> None:
    if len(x) <= MAX_POINTS:
        ax.plot(t, x, lw=0.6, color="k")
        return
    bins = len(x) // (MAX_POINTS // 2)  # min and max per bin keep the QRS spikes a plain stride would skip
    n = len(x) // bins * bins
    lo, hi = x[:n].reshape(-1, bins).min(axis=1), x[:n].reshape(-1, bins).max(axis=1)
    ax.fill_between(t[:n:bins], lo, hi, color="#444", lw=0.3, step="post")


def _draw_lanes(ax: Axes, eps: list[Episode], lanes: list[int], last_ms: int) -> None:
    ax.set_yticks([])
    for lane, ep in zip(lanes, eps, strict=True):
        end = ep.end_ms if ep.end_ms is not None else last_ms
        x0 = _x(ep.start_ms)
        ax.barh(lane, max(_x(end) - x0, 0), left=x0, height=0.75, color=PRIORITY_COLOURS[ep.priority], alpha=0.85)
        still = "" if ep.end_ms is not None else " (open)"
        ax.text(x0, lane, f" {ep.condition}{still}", va="center", fontsize=7)
    ax.set_ylim(max(lanes, default=0) + 0.6, -0.6)  # first lane on top
    ax.set_ylabel("alerts", fontsize=8)


def _shade(ax: Axes, eps: list[Episode], last_ms: int) -> None:
    for ep in eps:
        end = ep.end_ms if ep.end_ms is not None else last_ms
        ax.axvspan(_x(ep.start_ms), _x(end), color=PRIORITY_COLOURS[ep.priority], alpha=0.12, lw=0)
