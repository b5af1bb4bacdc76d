"""Sustained limit breaches in 1 Hz monitor numerics, and whether (and how late) an alert covered each one.

Alarm burden alone rewards silence: a policy that never alerts has the best burden. This is the other half of
the score. A *sustained breach* is a run of at least ``min_s`` seconds (2 minutes by default) in which a monitor
value (HR, SpO2 or RESP) meets a limit rule's enter predicate at every second; a missing sample (NaN) holds the
previous second's value, as the naive count in :mod:`streamer.evaluation.alarm_burden` does. A breach is
*alerted* when an episode of the same condition was open at its start, or was raised between its start and
``grace_s`` after its end (a window that closes after the breach ended still counts; the default grace is one
policy window). Latency is the raise time minus the breach start (0 when the episode was already open).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamer.alerts.conditions import LIMIT_RULES, Rule

MIN_BREACH_S = 120.0
# Monitor column -> the feature a limit rule reads (only the rules whose value the numerics carry).
NUMERIC_COLUMNS = {"HR": "heart_rate_bpm", "RESP": "resp_rate_bpm", "SpO2": "spo2_pct"}


@dataclass(frozen=True)
class Breach:
    """One sustained breach: the condition and its first and last breaching second (record time)."""

    condition: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Episode:
    """One alert episode of the policy: when it was raised and when it resolved (None: still open)."""

    condition: str
    raised_s: float
    resolved_s: float | None


def _forward_fill(x: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(x), np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    return x[idx]  # leading NaNs stay NaN (nothing to hold yet)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of every run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _rule_breaches(rule: Rule, t_s: np.ndarray, x: np.ndarray, min_s: float) -> list[Breach]:
    filled = _forward_fill(np.asarray(x, dtype=float))
    finite = np.isfinite(filled)
    mask = np.zeros(len(filled), dtype=bool)
    mask[finite] = [rule.enter(float(v)) for v in filled[finite]]
    return [
        Breach(rule.condition.value, float(t_s[a]), float(t_s[b]))
        for a, b in _runs(mask)
        if t_s[b] - t_s[a] + 1.0 >= min_s  # b is the last breaching second: the run lasts b - a + 1 s
    ]


def sustained_breaches(num: dict[str, np.ndarray], min_s: float = MIN_BREACH_S) -> list[Breach]:
    """Every sustained breach of a limit rule in one record's numerics, ordered by start."""
    t_s = num["Time [s]"]
    by_value = {feature: col for col, feature in NUMERIC_COLUMNS.items() if col in num}
    out = [
        breach
        for rule in LIMIT_RULES
        if rule.value in by_value
        for breach in _rule_breaches(rule, t_s, num[by_value[rule.value]], min_s)
    ]
    return sorted(out, key=lambda b: (b.start_s, b.condition))


def breach_latency_s(breach: Breach, episodes: Sequence[Episode], grace_s: float) -> float | None:
    """Seconds from the breach start to the alert that covered it; None when no alert did."""
    for ep in sorted(episodes, key=lambda e: e.raised_s):
        if ep.condition != breach.condition:
            continue
        open_at_start = ep.raised_s <= breach.start_s and (ep.resolved_s is None or ep.resolved_s > breach.start_s)
        if open_at_start:
            return 0.0
        if breach.start_s < ep.raised_s <= breach.end_s + grace_s:
            return ep.raised_s - breach.start_s
    return None


def score_breaches(breaches: Sequence[Breach], episodes: Sequence[Episode], grace_s: float) -> list[dict]:
    """One row per breach: condition, start, duration, and the alert latency (None = missed)."""
    return [
        {
            "condition": b.condition,
            "start_s": b.start_s,
            "duration_s": b.end_s - b.start_s + 1.0,
            "alert_latency_s": breach_latency_s(b, episodes, grace_s),
        }
        for b in breaches
    ]


def summarise(rows: Sequence[dict]) -> dict:
    """How many breaches were alerted, and the median and worst latency of those that were."""
    latencies = [r["alert_latency_s"] for r in rows if r["alert_latency_s"] is not None]
    n = len(rows)
    return {
        "n_breaches": n,
        "n_alerted": len(latencies),
        "alerted_pct": round(100.0 * len(latencies) / n, 1) if n else None,
        "median_latency_s": float(np.median(latencies)) if latencies else None,
        "max_latency_s": float(np.max(latencies)) if latencies else None,
    }
