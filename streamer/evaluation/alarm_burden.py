"""``vitalstream eval alarms``: alerts per patient-hour on BIDMC against naive alarms, and sustained breaches caught.

Data: BIDMC PPG and Respiration Dataset (Pimentel MAF et al., "Toward a robust estimation of respiratory
rate from pulse oximeters", IEEE TBME 64(8):1914-1923, 2017) from PhysioNet (Goldberger AL et al.,
Circulation 101(23):e215-e220, 2000). Each record's 1 Hz monitor numerics (HR, PULSE, RESP, SpO2) are
used twice:

- naive: every 1 Hz sample is compared with the same enter limits as the policy (and the same NEWS2
  triggers, from the same three parameters); each crossing from not-in-alarm into alarm is one alarm.
  A missing sample (NaN) keeps the previous state, as a monitor holds its alarm through a dropout.
- policy: the numerics are cut into tumbling windows of ``window_s`` (medians, min and max) and fed,
  with a PPG quality window before each, through ``AlertPolicy``; RAISED transitions of physiological
  conditions are counted. An incomplete last window is dropped.
- sustained breaches (:mod:`streamer.evaluation.breaches`): runs of >= 2 minutes beyond a limit in the 1 Hz
  numerics, and whether the policy's episodes covered each one and how late. Fewer alerts only count as a
  gain if these are still caught.

PPG quality proxy (a hook until streamer/signals/quality.py): the fraction of seconds in the window whose PPG
pulse rate (PULSE) agrees with the ECG heart rate (HR) within 10 bpm. A pulse oximeter that counts the
pulse wrongly is usually reading artefact, so its SpO2 is not trusted either. It misjudges a real pulse
deficit (e.g. atrial fibrillation) as poor quality.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamer.alerts.conditions import LIMIT_RULES, NEWS2_RULES, news2_values
from streamer.alerts.policy import AlertPolicy
from streamer.config import Settings
from streamer.contracts import Alert, AlertState
from streamer.evaluation.breaches import MIN_BREACH_S, Episode, score_breaches, summarise, sustained_breaches
from streamer.progress import track
from streamer.records import FeatureWindow
from streamer.sessions.bidmc import read_csv_columns

COLUMNS = {"HR": "heart_rate_bpm", "RESP": "resp_rate_bpm", "SpO2": "spo2_pct"}
PULSE_AGREEMENT_BPM = 10.0
PHYSIOLOGICAL = {r.condition.value for r in (*LIMIT_RULES, *NEWS2_RULES)}


def load_numerics(path: Path) -> dict[str, np.ndarray]:
    """The numerics CSV as column arrays keyed by header name (``Time [s]``, HR, PULSE, RESP, SpO2)."""
    return read_csv_columns(path)


def ppg_quality(hr_bpm: np.ndarray, pulse_bpm: np.ndarray) -> float:
    """Fraction of seconds where the PPG pulse rate agrees with the ECG heart rate (missing = disagree)."""
    agree = np.abs(hr_bpm - pulse_bpm) <= PULSE_AGREEMENT_BPM  # nan compares False
    return float(np.mean(agree)) if len(agree) else 0.0


def _per_second_values(num: dict[str, np.ndarray], i: int) -> dict[str, float | None]:
    vitals = {name: _finite(num[col][i]) for col, name in COLUMNS.items() if col in num}
    return {**vitals, **news2_values({}, vitals)}


def naive_alarms(num: dict[str, np.ndarray]) -> Counter:
    """Count crossings into alarm, sample by sample, with the policy's enter limits and nothing else."""
    counts: Counter = Counter()
    in_alarm = {r.condition.value: False for r in (*LIMIT_RULES, *NEWS2_RULES)}
    for i in range(len(num["Time [s]"])):
        values = _per_second_values(num, i)
        for rule in (*LIMIT_RULES, *NEWS2_RULES):
            value = values.get(rule.value)
            if value is None:
                continue  # hold the previous state through a dropout
            now = rule.enter(value)
            if now and not in_alarm[rule.condition.value]:
                counts[rule.condition.value] += 1
            in_alarm[rule.condition.value] = now
    return counts


def _window_features(num: dict[str, np.ndarray], rows: slice) -> dict[str, float | None]:
    features: dict[str, float | None] = {}
    for col, name in COLUMNS.items():
        x = num[col][rows] if col in num else np.array([])
        x = x[np.isfinite(x)]
        features[name] = float(np.median(x)) if len(x) else None
        features[f"{name}_min"] = float(x.min()) if len(x) else None
        features[f"{name}_max"] = float(x.max()) if len(x) else None
    return features


def policy_alerts(record: str, num: dict[str, np.ndarray], window_s: int, settings: Settings) -> dict:
    """Feed one record through ``AlertPolicy``; count RAISED transitions by condition."""
    policy = AlertPolicy(record, settings)
    raised: Counter = Counter()
    episodes: list[Episode] = []
    low_windows = 0
    t0_s = int(num["Time [s]"][0])
    for k in range(len(num["Time [s]"]) // window_s):
        rows = slice(k * window_s, (k + 1) * window_s)
        start_ms, end_ms = (t0_s + k * window_s) * 1000, (t0_s + (k + 1) * window_s) * 1000
        quality = ppg_quality(num["HR"][rows], num["PULSE"][rows])
        usable = quality >= settings.sqi_threshold
        low_windows += not usable
        ppg = FeatureWindow(record, "ppg", start_ms, end_ms, quality, usable, {"pulse_rate_bpm": None})
        numerics = FeatureWindow(record, "numerics", start_ms, end_ms, None, True, _window_features(num, rows))
        for alert in policy.on_window(ppg) + policy.on_window(numerics):
            if alert.state is AlertState.RAISED:
                raised[alert.condition.value] += 1
            _track_episode(episodes, alert)
    physio = {c: n for c, n in raised.items() if c in PHYSIOLOGICAL}
    technical = {c: n for c, n in raised.items() if c not in PHYSIOLOGICAL}
    return {
        "physiological": physio,
        "technical": technical,
        "ppg_low_quality_windows": low_windows,
        "episodes": episodes,
    }


def _track_episode(episodes: list[Episode], alert: Alert) -> None:
    """Episodes in record seconds: a RAISED alert opens one, a RESOLVED alert closes the open one."""
    t_s = alert.transition_ts_ms / 1000.0
    if alert.state is AlertState.RAISED:
        episodes.append(Episode(alert.condition.value, t_s, None))
    elif alert.state is AlertState.RESOLVED:
        for k, ep in enumerate(episodes):
            if ep.condition == alert.condition.value and ep.resolved_s is None:
                episodes[k] = Episode(ep.condition, ep.raised_s, t_s)


def evaluate(
    bidmc_dir: Path, window_s: int = 60, settings: Settings | None = None, breach_min_s: float = MIN_BREACH_S
) -> dict:
    """Alarm burden over every ``bidmc_NN_Numerics.csv`` in ``bidmc_dir``, and the sustained breaches caught."""
    settings = settings or Settings()
    rows = []
    for path in track(sorted(bidmc_dir.glob("bidmc_*_Numerics.csv")), desc="bidmc"):
        record = path.name.removesuffix("_Numerics.csv")
        num = load_numerics(path)
        naive = naive_alarms(num)
        pol = policy_alerts(record, num, window_s, settings)
        breaches = score_breaches(sustained_breaches(num, breach_min_s), pol["episodes"], grace_s=window_s)
        rows.append({
            "record": record,
            "duration_s": len(num["Time [s]"]),
            "policy_alerts": sum(pol["physiological"].values()),
            "naive_alarms": sum(naive.values()),
            "policy_by_condition": dict(sorted(pol["physiological"].items())),
            "naive_by_condition": dict(sorted(naive.items())),
            "technical_alerts": dict(sorted(pol["technical"].items())),
            "ppg_low_quality_windows": pol["ppg_low_quality_windows"],
            "sustained_breaches": breaches,
        })  # fmt: skip
    hours = sum(r["duration_s"] for r in rows) / 3600
    return {
        "dataset": "BIDMC PPG and Respiration (PhysioNet bidmc 1.0.0)",
        "window_s": window_s,
        "breach_min_s": breach_min_s,
        "n_records": len(rows),
        "patient_hours": round(hours, 4),
        "policy_alerts_per_patient_hour": _rate(rows, "policy_alerts", hours),
        "naive_alerts_per_patient_hour": _rate(rows, "naive_alarms", hours),
        "policy_by_condition": _total(rows, "policy_by_condition"),
        "naive_by_condition": _total(rows, "naive_by_condition"),
        "technical_by_condition": _total(rows, "technical_alerts"),
        **_breach_summary(rows),
        "records": rows,
    }


def _breach_summary(rows: Sequence[dict]) -> dict:
    """Sustained breaches (>= 2 min beyond a limit) over all records: alerted, and how late; by condition."""
    every = [b for r in rows for b in r["sustained_breaches"]]
    conditions = sorted({b["condition"] for b in every})
    by_condition = {c: summarise([b for b in every if b["condition"] == c]) for c in conditions}
    return {"sustained_breaches": summarise(every), "sustained_breaches_by_condition": by_condition}


def _rate(rows: Sequence[dict], key: str, hours: float) -> float | None:
    return round(sum(r[key] for r in rows) / hours, 2) if hours else None


def _total(rows: Sequence[dict], key: str) -> dict[str, int]:
    total: Counter = Counter()
    for r in rows:
        total.update(r[key])
    return dict(sorted(total.items()))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
