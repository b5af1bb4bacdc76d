"""What the ward view shows, as plain data: each device's latest vitals and signal quality, and the open alerts.

Fed with the JSON values of ``vitals.features`` and ``vitals.alerts`` (alert ids are read from the value, never
from the record key); ``snapshot()`` is the page's whole content. No Kafka or web code here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamer.interop.codes import CODES, VITAL_FEATURES

PRIORITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3}
STATE_ORDER = ("RAISED", "ESCALATED", "ACKNOWLEDGED", "RESOLVED")
# Shown columns: table key -> short label. Rates from the waveforms and from numerics land in the same column.
COLUMNS = {"heart_rate_bpm": "HR", "pulse_rate_bpm": "PR", "spo2_pct": "SpO2", "resp_rate_bpm": "RR",
           "resp_rate_bpm_ppg": "RR (PPG)", "temp_c": "Temp", "sbp_mmhg": "SBP", "dbp_mmhg": "DBP"}  # fmt: skip


def device_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class DeviceView:
    device_id: str
    last_seen_ms: int = 0  # wall clock when its last window arrived: whether it is streaming now
    last_device_ms: int = 0  # device clock at the end of its latest window
    vitals: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float | None] = field(default_factory=dict)


@dataclass
class WardState:
    """Latest state per device and per alert id; ``stale_ms`` without a window marks a device not streaming."""

    stale_ms: int = 30_000
    devices: dict[str, DeviceView] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # alert id -> why it was raised (an ack's message is not)

    def apply_feature(self, rec: dict[str, Any], now_ms: int) -> None:
        dev = self.devices.setdefault(rec["device_id"], DeviceView(rec["device_id"]))
        dev.last_seen_ms = max(dev.last_seen_ms, now_ms)
        if rec["window_end_ms"] < dev.last_device_ms - 600_000:
            return  # a window ten minutes older than what we show (a replay of history): not the latest vitals
        dev.last_device_ms = max(dev.last_device_ms, rec["window_end_ms"])
        dev.quality[rec["signal"]] = rec.get("signal_quality")
        if not rec.get("usable"):
            return
        for (signal, name), key in VITAL_FEATURES.items():
            value = rec["features"].get(name) if signal == rec["signal"] else None
            if value is not None and key in COLUMNS:
                dev.vitals[key] = float(value)

    def apply_alert(self, alert: dict[str, Any]) -> None:
        if alert["state"] in ("RAISED", "ESCALATED") or alert["alert_id"] not in self.reasons:
            self.reasons[alert["alert_id"]] = alert["message"]
        prev = self.alerts.get(alert["alert_id"])
        if prev is None or _order(alert) >= _order(prev):
            self.alerts[alert["alert_id"]] = alert

    def open_alerts(self) -> list[dict[str, Any]]:
        """Not yet resolved, highest priority first, then the oldest episode first (it has waited longest)."""
        live = [a for a in self.alerts.values() if a["state"] != "RESOLVED"]
        return sorted(live, key=lambda a: (-PRIORITY_RANK[a["priority"]], a["episode_start_ms"], a["alert_id"]))

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        devices = [self._device_row(d, now_ms) for _, d in sorted(self.devices.items())]
        return {"devices": devices, "alerts": [self._alert_row(a) for a in self.open_alerts()], "now_ms": now_ms}

    def _device_row(self, dev: DeviceView, now_ms: int) -> dict[str, Any]:
        vitals = {COLUMNS[k]: {"value": round(v, 1), "unit": CODES[k].ucum} for k, v in dev.vitals.items()}
        return {
            "device_id": dev.device_id,
            "streaming": now_ms - dev.last_seen_ms <= self.stale_ms,
            "last_data": device_time(dev.last_device_ms) if dev.last_device_ms else None,
            "vitals": vitals,
            "quality": {s: None if q is None else round(q, 2) for s, q in sorted(dev.quality.items())},
        }

    def _alert_row(self, a: dict[str, Any]) -> dict[str, Any]:
        dev = self.devices.get(a["device_id"])
        # The device's clock, as the data: an acknowledgement's transition time is the wall clock of the click.
        latest = dev.last_device_ms if dev and dev.last_device_ms else a["episode_start_ms"]
        return {
            "alert_id": a["alert_id"],
            "device_id": a["device_id"],
            "condition": a["condition"],
            "priority": a["priority"],
            "state": a["state"],
            "opened": device_time(a["episode_start_ms"]),
            "age_s": max(0, (latest - a["episode_start_ms"]) // 1000),  # on the device's clock, as the data
            "message": self.reasons.get(a["alert_id"], a["message"]),
        }


def _order(alert: dict[str, Any]) -> tuple[int, int]:
    state = alert["state"]
    return alert["transition_ts_ms"], STATE_ORDER.index(state) if state in STATE_ORDER else -1
