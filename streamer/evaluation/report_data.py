"""What a session report draws, as plain series with plain names; the PNG and the HTML renderers share it.

Times stay in epoch milliseconds of the device's own clock (the session's ``ts_ms``); each renderer turns them
into its axis. Labels are words a clinician reads ("heart rate from ECG"); model names and versions go into a
caption, not the legend.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamer.interop.codes import CODES
from streamer.sessions.format import read_session

PRIORITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3}
NUMERIC_GROUPS = {
    "HR [/min], BP [mm[Hg]]": ("heart_rate_bpm", "sbp_mmhg", "map_mmhg", "dbp_mmhg"),
    "SpO2 [%]": ("spo2_pct",),
    "RR [/min], temp [Cel]": ("resp_rate_bpm", "temp_c"),
}
FEATURE_RATES = {
    ("ecg", "heart_rate_bpm"): "heart rate from ECG",
    ("ppg", "pulse_rate_bpm"): "pulse rate from PPG",
    ("resp", "resp_rate_bpm"): "respiratory rate from resp. waveform",
    ("ppg", "resp_rate_bpm_ppg"): "respiratory rate from PPG",
    ("numerics", "heart_rate_bpm"): "heart rate, device numerics",
}
MODEL_NAMES = {"af": "AF likelihood", "anomaly": "anomaly score", "sepsis": "sepsis risk"}
SOURCE_NAMES = {"ecg": "ECG", "ppg": "PPG", "rr": "RR intervals", "resp": "resp.", "numerics": "numerics"}


@dataclass(frozen=True)
class Episode:
    """One alert episode: from its start to its RESOLVED transition (or the end of the data)."""

    alert_id: str
    condition: str
    priority: str
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True)
class Line:
    label: str
    t_ms: np.ndarray
    y: np.ndarray
    style: str = "line"  # "line" | "threshold" (dashed step) | "marks" (open circles, no line)


@dataclass(frozen=True)
class Panel:
    key: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    ylim: tuple[float, float] | None = None


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
    by_id: dict[str, Episode] = {}
    for a in sorted(alerts, key=lambda a: a["transition_ts_ms"]):
        prev = by_id.get(a["alert_id"])
        higher = not prev or PRIORITY_RANK[a["priority"]] > PRIORITY_RANK[prev.priority]
        priority = a["priority"] if higher else prev.priority  # type: ignore[union-attr]
        end = a["transition_ts_ms"] if a["state"] == "RESOLVED" else (prev.end_ms if prev else None)
        by_id[a["alert_id"]] = Episode(a["alert_id"], a["condition"], priority, a["episode_start_ms"], end)
    return sorted(by_id.values(), key=lambda e: (e.start_ms, e.alert_id))


def assign_lanes(eps: list[Episode], last_ms: int, min_width_ms: float = 0.0) -> list[int]:
    """A lane per episode such that no two in one lane overlap (nor their labels, ``min_width_ms`` wide).

    Greedy by start time into the first free lane: this uses as few lanes as the deepest overlap needs.
    """
    lane_free_at: list[float] = []
    lanes = []
    for ep in eps:
        end = max(ep.end_ms if ep.end_ms is not None else last_ms, ep.start_ms + min_width_ms)
        lane = next((i for i, free in enumerate(lane_free_at) if free < ep.start_ms), len(lane_free_at))
        if lane == len(lane_free_at):
            lane_free_at.append(end)
        lane_free_at[lane] = end
        lanes.append(lane)
    return lanes


def waveform(msgs: list[dict[str, Any]], signal: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(t_ms, value, fs_hz) of one signal's chunks in order, scaled to physical units."""
    chunks = sorted(
        (m for m in msgs if m.get("kind") == "waveform" and m["signal"] == signal), key=lambda m: m["ts_ms"]
    )
    if not chunks:
        return np.zeros(0), np.zeros(0), 0.0
    t = np.concatenate([m["ts_ms"] + 1000 * np.arange(len(m["samples"])) / m["fs_hz"] for m in chunks])
    x = np.concatenate([np.asarray(m["samples"], float) * (m.get("scale") or 1) + (m.get("offset") or 0)
                        for m in chunks])  # fmt: skip
    return t, x, float(chunks[0]["fs_hz"])


def signals(msgs: list[dict[str, Any]]) -> list[str]:
    found = {m["signal"] for m in msgs if m.get("kind") == "waveform"}
    return [s for s in ("ecg", "ppg", "resp") if s in found]


def units(msgs: list[dict[str, Any]], signal: str) -> str | None:
    return next((m.get("units") for m in msgs if m.get("signal") == signal and m.get("units")), None)


def panels(msgs: list[dict[str, Any]], analysis: dict[str, Any]) -> list[Panel]:
    """The overview panels below the waveforms, each only when it has something to draw."""
    vitals = [m for m in msgs if m.get("kind") == "vitals"]
    out = []
    for group, names in NUMERIC_GROUPS.items():
        lines = [_line(CODES[n].display, [(m["ts_ms"], m[n]) for m in vitals if m.get(n) is not None]) for n in names]
        out.append(Panel(f"num:{group}", group, [ln for ln in lines if ln.t_ms.size]))
    features = analysis.get("features", [])
    rates = []
    for (signal, name), label in FEATURE_RATES.items():
        # None (an unusable window) becomes NaN, so the line breaks instead of bridging the gap.
        pts = [(f["window_end_ms"], _nan(f["features"].get(name))) for f in features
               if f["signal"] == signal and name in f["features"]]  # fmt: skip
        if any(np.isfinite(v) for _, v in pts):
            rates.append(_line(label, pts))
    out.append(Panel("rates", "rates [/min]", rates))
    quality = [_line(f"{SOURCE_NAMES.get(s, s)} signal quality", [(f["window_end_ms"], f["signal_quality"])
               for f in features if f["signal"] == s and f.get("signal_quality") is not None])
               for s in sorted({f["signal"] for f in features})]  # fmt: skip
    out.append(Panel("quality", "signal quality [0-1]", [q for q in quality if q.t_ms.size], (-0.05, 1.05)))
    out.append(Panel("scores", "model scores", _score_lines(analysis.get("scores", []))))
    return [p for p in out if p.lines]


def _score_lines(scores: list[dict[str, Any]]) -> list[Line]:
    by_model: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for s in sorted(scores, key=lambda s: s["ts_ms"]):
        by_model.setdefault((s["model"]["name"], s.get("source")), []).append(s)
    lines = []
    for (name, source), rows in by_model.items():
        label = MODEL_NAMES.get(name, f"{name} score") + (f" ({SOURCE_NAMES.get(source, source)})" if source else "")
        lines.append(_line(label, [(r["ts_ms"], r["score"]) for r in rows]))
        thr = [(r["ts_ms"], r["threshold"]) for r in rows if r.get("threshold") is not None]
        if thr:
            lines.append(_line(f"{label} alert threshold", thr, "threshold"))
    return lines


def model_caption(analysis: dict[str, Any]) -> str:
    """ "Models: af 1-70fb996d, anomaly ..." for the figure caption (the legend keeps plain names)."""
    refs = sorted({(s["model"]["name"], s["model"]["version"]) for s in analysis.get("scores", [])})
    refs += sorted({(a["model"]["name"], a["model"]["version"]) for a in analysis.get("alerts", []) if a.get("model")})
    seen = list(dict.fromkeys(refs))
    return "Models: " + ", ".join(f"{n} {v}" for n, v in seen) if seen else ""


def _line(label: str, pts: list[tuple[int, float]], style: str = "line") -> Line:
    if not pts:
        return Line(label, np.zeros(0), np.zeros(0), style)
    t, y = zip(*pts, strict=True)
    return Line(label, np.asarray(t, float), np.asarray(y, float), style)


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)
