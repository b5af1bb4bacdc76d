"""10-second ECG/PPG strips around alert onsets, drawn at ECG-paper scale (25 mm/s, 10 mm/mV at the figure's dpi)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from streamer.evaluation.report_data import Episode, waveform
from streamer.evaluation.report_data import signals as signals_of

STRIP_S = 10.0
BEFORE_S = 5.0  # the onset sits in the middle of its strip: what led up to it and what followed
MM_PER_S, MM_PER_MV = 25.0, 10.0
MM_PER_INCH = 25.4
ECG_RANGE_MV = (3.0, 6.0)  # strip height in mV (30-60 mm at 10 mm/mV): enough for the strip's own beats
PPG_HEIGHT_PX = 90
TITLE_PX = 22
GAP_PX = 52  # the tick labels and x label under a strip
MAX_STRIPS = 12
STRIP_SIGNALS = ("ecg", "ppg")


@dataclass(frozen=True)
class Strip:
    episode: Episode
    t0_ms: float  # left edge
    signals: tuple[str, ...]
    note: str = ""  # why the alert was raised, shown beside the strip
    ecg_range_mv: float = ECG_RANGE_MV[0]


def plan_strips(
    msgs: list[dict[str, Any]], eps: list[Episode], notes: dict[str, str] | None = None
) -> tuple[list[Strip], int]:
    """The strips to draw (at most MAX_STRIPS, one per onset with waveform data) and how many onsets had data."""
    waves = {s: waveform(msgs, s)[:2] for s in signals_of(msgs) if s in STRIP_SIGNALS}
    strips = []
    for ep in eps:
        t0 = ep.start_ms - BEFORE_S * 1000
        inside = {s: (t >= t0) & (t < t0 + STRIP_S * 1000) for s, (t, _) in waves.items()}
        have = tuple(s for s, keep in inside.items() if keep.any())
        if have:
            ecg = waves["ecg"][1][inside["ecg"]] if "ecg" in have else np.zeros(1)
            span = float(np.ceil(np.ptp(np.percentile(ecg, [0.5, 99.5])) + 1.0))  # + 0.5 mV above and below
            strips.append(Strip(ep, t0, have, (notes or {}).get(ep.alert_id, ""), float(np.clip(span, *ECG_RANGE_MV))))
    return strips[:MAX_STRIPS], len(strips)


def strip_width_px(dpi: float) -> int:
    return round(STRIP_S * MM_PER_S / MM_PER_INCH * dpi)


def ecg_height_px(range_mv: float, dpi: float) -> int:
    return round(range_mv * MM_PER_MV / MM_PER_INCH * dpi)


def strip_height_px(strip: Strip, dpi: float) -> int:
    parts = {"ecg": ecg_height_px(strip.ecg_range_mv, dpi), "ppg": PPG_HEIGHT_PX}
    return TITLE_PX + sum(parts[s] for s in strip.signals) + GAP_PX


def draw_strip(fig: Figure, strip: Strip, msgs: list[dict[str, Any]], top_px: float, left_px: float) -> None:
    """Draw one strip with its top edge ``top_px`` below the figure's top."""
    w_px, h_px = fig.get_size_inches() * fig.dpi
    y = top_px + TITLE_PX
    ep = strip.episode
    for i, signal in enumerate(strip.signals):
        height = ecg_height_px(strip.ecg_range_mv, fig.dpi) if signal == "ecg" else PPG_HEIGHT_PX
        ax = fig.add_axes((left_px / w_px, 1 - (y + height) / h_px, strip_width_px(fig.dpi) / w_px, height / h_px))
        _draw_signal(ax, signal, msgs, strip)
        if i == 0:
            onset = _clock(ep.start_ms)
            ax.set_title(f"{ep.condition} ({ep.priority}), onset {onset} device time; 25 mm/s"
                         + (", 10 mm/mV" if signal == "ecg" else ""), loc="left", fontsize=9)  # fmt: skip
        if i == len(strip.signals) - 1:
            ax.set_xlabel("seconds from onset", fontsize=8)
        y += height
    if strip.note:
        x = (left_px + strip_width_px(fig.dpi) + 20) / w_px
        fig.text(x, 1 - (top_px + TITLE_PX + 4) / h_px, _wrap(strip.note), va="top", fontsize=8)


def _draw_signal(ax: Axes, signal: str, msgs: list[dict[str, Any]], strip: Strip) -> None:
    t_ms, x, _ = waveform(msgs, signal)
    keep = (t_ms >= strip.t0_ms) & (t_ms < strip.t0_ms + STRIP_S * 1000)
    t_s = (t_ms[keep] - strip.episode.start_ms) / 1000
    ax.set_xlim(-BEFORE_S, STRIP_S - BEFORE_S)
    if signal == "ecg":
        lo, hi = np.percentile(x[keep], [0.5, 99.5]) if keep.any() else (0.0, 0.0)
        mid = (lo + hi) / 2
        ax.set_ylim(mid - strip.ecg_range_mv / 2, mid + strip.ecg_range_mv / 2)
        _ecg_paper(ax)
        ax.set_ylabel("ECG [mV]", fontsize=8)
    else:
        ax.grid(True, color="#e0e0e0", lw=0.6)
        ax.set_yticks([])
        ax.set_ylabel("PPG", fontsize=8)
    ax.plot(t_s, x[keep], color="k", lw=0.8)
    ax.axvline(0, color="#d62728", lw=1.0, ls="--")
    ax.tick_params(labelsize=7)


def _ecg_paper(ax: Axes) -> None:
    """Pink paper grid: 0.04 s x 0.1 mV small squares, 0.2 s x 0.5 mV large ones."""
    lo, hi = ax.get_ylim()
    ax.set_xticks(np.arange(-BEFORE_S, STRIP_S - BEFORE_S + 1e-9, 1.0))
    ax.set_xticks(np.arange(-BEFORE_S, STRIP_S - BEFORE_S + 1e-9, 0.2), minor=True)
    ax.set_yticks(np.arange(np.ceil(lo / 0.5) * 0.5, hi, 0.5))
    ax.grid(True, which="major", color="#f4a6a6", lw=0.7)
    ax.grid(True, which="minor", axis="x", color="#fbdada", lw=0.4)
    for v in np.arange(np.ceil(lo / 0.1) * 0.1, hi, 0.1):
        ax.axhline(v, color="#fbdada", lw=0.3, zorder=0)


def _wrap(text: str, width: int = 38) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:8])


def _clock(ts_ms: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%H:%M:%S")
