"""Wire contracts: valid, invalid and boundary values; the JSON Schema files in schemas/ match the code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamer.contracts import (
    TELEMETRY,
    Alert,
    MotionMessage,
    VitalsMessage,
    WaveformMessage,
    json_schemas,
)

pytestmark = pytest.mark.unit
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BASE = {"device_id": "dev-1", "ts_ms": 1_700_000_000_000, "seq": 7}


def test_schema_files_match_code() -> None:
    expected = json_schemas()
    on_disk = {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
    assert set(on_disk) == set(expected), "run `make schemas` to regenerate schemas/"
    for name, schema in expected.items():
        assert on_disk[name] == json.loads(json.dumps(schema)), f"schemas/{name}.schema.json is stale"


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [
        ("heart_rate_bpm", [0.1, 300], [0, -1, 300.01]),
        ("spo2_pct", [0.1, 100], [0, 100.01]),
        ("resp_rate_bpm", [0, 100], [-0.1, 100.5]),
        ("temp_c", [20, 45], [19.9, 45.1]),
        ("sbp_mmhg", [60, 300], [0, 301]),
    ],
)
def test_vitals_boundaries(field: str, ok: list[float], bad: list[float]) -> None:
    for v in ok:
        assert getattr(VitalsMessage(**BASE, **{field: v}), field) == v
    for v in bad:
        with pytest.raises(ValidationError):
            VitalsMessage(**BASE, **{field: v})


def test_vitals_rejects_empty_nan_and_inverted_pressure() -> None:
    with pytest.raises(ValidationError, match="empty"):
        VitalsMessage(**BASE)
    with pytest.raises(ValidationError, match="finite"):
        VitalsMessage(**BASE, heart_rate_bpm=math.nan)
    with pytest.raises(ValidationError, match="diastolic"):
        VitalsMessage(**BASE, sbp_mmhg=80, dbp_mmhg=90)


def test_waveform_duration_and_rate() -> None:
    ok = WaveformMessage(**BASE, signal="ecg", fs_hz=100, samples=[0.0] * 500)
    assert len(ok.samples) == 500
    with pytest.raises(ValidationError, match="oversized"):
        WaveformMessage(**BASE, signal="ecg", fs_hz=100, samples=[0.0] * 501)
    with pytest.raises(ValidationError):
        WaveformMessage(**BASE, signal="ecg", fs_hz=0, samples=[0.0])
    with pytest.raises(ValidationError):
        WaveformMessage(**BASE, signal="ecg", fs_hz=100, samples=[])
    with pytest.raises(ValidationError):
        WaveformMessage(**BASE, signal="eeg", fs_hz=100, samples=[1.0])


def test_motion_axes_must_agree() -> None:
    MotionMessage(**BASE, fs_hz=50, x_g=[0.0], y_g=[0.1], z_g=[1.0])
    with pytest.raises(ValidationError, match="axes"):
        MotionMessage(**BASE, fs_hz=50, x_g=[0.0, 0.0], y_g=[0.1], z_g=[1.0])


def test_contracts_are_frozen_and_strict() -> None:
    msg = VitalsMessage(**BASE, heart_rate_bpm=60)
    with pytest.raises(ValidationError):
        msg.heart_rate_bpm = 61  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        VitalsMessage(**BASE, heart_rate_bpm=60, name="Jane Doe")
    with pytest.raises(ValidationError):
        VitalsMessage(**BASE, heart_rate_bpm=60, schema_version=2)


def test_union_dispatches_on_kind() -> None:
    raw = json.dumps({**BASE, "kind": "waveform", "signal": "ppg", "fs_hz": 125, "samples": [1, 2, 3]})
    assert isinstance(TELEMETRY.validate_json(raw), WaveformMessage)
    with pytest.raises(ValidationError):
        TELEMETRY.validate_json(json.dumps({**BASE, "kind": "video"}))


def test_alert_priority_and_condition_are_closed_sets() -> None:
    alert = {
        "alert_id": "a1",
        "device_id": "dev-1",
        "condition": "SPO2_LOW",
        "priority": "high",
        "state": "RAISED",
        "episode_start_ms": 1,
        "transition_ts_ms": 1,
        "message": "SpO2 below 90% for 30 s",
        "evidence": {"rule": "spo2<90", "window_start_ms": 0, "window_end_ms": 1},
        "latency": {"device_ts_ms": 1},
    }
    assert Alert.model_validate(alert).priority == "high"
    with pytest.raises(ValidationError):
        Alert.model_validate({**alert, "priority": "urgent"})
    with pytest.raises(ValidationError):
        Alert.model_validate({**alert, "condition": "SPO2_LOWISH"})


def test_alert_filters_by_priority_condition_and_device() -> None:
    from streamer.cli.alerts import matching
    from streamer.contracts import Priority

    base = {
        "device_id": "dev-1",
        "state": "RAISED",
        "episode_start_ms": 1,
        "transition_ts_ms": 1,
        "message": "m",
        "evidence": {"rule": "r", "window_start_ms": 0, "window_end_ms": 1},
        "latency": {"device_ts_ms": 1},
    }
    alerts = [
        Alert.model_validate({**base, "alert_id": "a", "condition": "SPO2_LOW", "priority": "high"}),
        Alert.model_validate({**base, "alert_id": "b", "condition": "LOW_SIGNAL_QUALITY", "priority": "low"}),
        Alert.model_validate(
            {**base, "alert_id": "c", "condition": "HR_HIGH", "priority": "medium", "device_id": "dev-2"}
        ),
    ]
    ids = lambda **kw: [a.alert_id for a in matching(alerts, **kw)]  # noqa: E731
    assert ids(min_priority=Priority.INFO, conditions=set(), devices=set()) == ["a", "b", "c"]
    assert ids(min_priority=Priority.MEDIUM, conditions=set(), devices=set()) == ["a", "c"]
    assert ids(min_priority=Priority.INFO, conditions={"HR_HIGH"}, devices=set()) == ["c"]
    assert ids(min_priority=Priority.INFO, conditions=set(), devices={"dev-1"}) == ["a", "b"]
