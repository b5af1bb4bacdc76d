"""The ward's state: latest vitals and quality per device, open alerts by priority then age, streaming status."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.ward.state import WardState

pytestmark = pytest.mark.unit
T0 = 1_577_836_800_000


def _feature(device: str, end_s: int, signal: str = "ecg", usable: bool = True, **features: float | None) -> dict:
    return {"device_id": device, "signal": signal, "window_start_ms": T0 + (end_s - 10) * 1000,
            "window_end_ms": T0 + end_s * 1000, "signal_quality": 0.9 if usable else 0.2, "usable": usable,
            "features": features}  # fmt: skip


def _alert(alert_id: str, priority: str, state: str, start_s: int, at_s: int, device: str = "d1") -> dict[str, Any]:
    return {"alert_id": alert_id, "device_id": device, "condition": "AF_EPISODE", "priority": priority,
            "state": state, "episode_start_ms": T0 + start_s * 1000, "transition_ts_ms": T0 + at_s * 1000,
            "message": f"why {alert_id}" if state != "ACKNOWLEDGED" else "Acknowledged by n-1."}  # fmt: skip


def test_latest_vitals_and_quality_per_device() -> None:
    ward = WardState(stale_ms=30_000)
    ward.apply_feature(_feature("d1", 10, heart_rate_bpm=70.0, sdnn_ms=40.0), now_ms=1_000)
    ward.apply_feature(_feature("d1", 12, heart_rate_bpm=None, usable=False), now_ms=2_000)  # unusable: keep 70
    ward.apply_feature(_feature("d1", 14, signal="ppg", pulse_rate_bpm=71.26), now_ms=3_000)
    ward.apply_feature(_feature("d2", 10, signal="numerics", spo2_pct=93.0, sbp_mmhg=110.0), now_ms=3_000)
    snap = ward.snapshot(now_ms=20_000)
    d1, d2 = snap["devices"]
    assert d1["vitals"] == {"HR": {"value": 70.0, "unit": "/min"}, "PR": {"value": 71.3, "unit": "/min"}}
    assert d1["quality"] == {"ecg": 0.2, "ppg": 0.9} and d1["last_data"] == "2020-01-01 00:00:14"
    assert d2["vitals"]["SpO2"]["value"] == 93.0 and d2["vitals"]["SBP"]["value"] == 110.0
    assert d1["streaming"] and d2["streaming"]
    assert not any(d["streaming"] for d in ward.snapshot(now_ms=34_000)["devices"])  # 31 s without a window


def test_open_alerts_by_priority_then_oldest_first_and_resolved_drop_out() -> None:
    ward = WardState()
    for a in (
        _alert("low-old", "low", "RAISED", 0, 0),
        _alert("high-new", "high", "RAISED", 50, 50),
        _alert("high-old", "high", "RAISED", 10, 10),
        _alert("gone", "high", "RAISED", 5, 5),
        _alert("gone", "high", "RESOLVED", 5, 20),
        _alert("high-old", "high", "ACKNOWLEDGED", 10, 60),
    ):
        ward.apply_alert(a)
    ward.apply_alert(_alert("high-old", "high", "RAISED", 10, 10))  # a late, older transition changes nothing
    rows = ward.snapshot(now_ms=0)["alerts"]
    assert [(r["alert_id"], r["state"]) for r in rows] == [
        ("high-old", "ACKNOWLEDGED"),
        ("high-new", "RAISED"),
        ("low-old", "RAISED"),
    ]
    assert rows[0]["opened"] == "2020-01-01 00:00:10" and rows[0]["age_s"] == 0  # no data of d1 yet
    assert rows[0]["message"] == "why high-old"  # the reason it was raised, not the acknowledgement's text
    ward.apply_feature(_feature("d1", 70, heart_rate_bpm=80.0), now_ms=0)
    assert ward.snapshot(now_ms=0)["alerts"][0]["age_s"] == 60  # on the device's clock
