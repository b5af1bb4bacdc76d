"""Ingest stage: specific reasons for impossible input, fuzzing that no input escapes, exact dedup."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.contracts import DeadLetter, ReasonCode
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Accepted, Rejected, dead_letter, validate

pytestmark = pytest.mark.unit
NOW = 1_800_000_000_000
LIMITS = {"now_ms": NOW, "max_message_bytes": 1_048_576, "future_margin_ms": 60_000}
BASE = {"device_id": "dev-1", "ts_ms": NOW - 1000, "seq": 1}


def _check(obj: object) -> Accepted | Rejected:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return validate(raw, **LIMITS)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({**BASE, "kind": "vitals", "heart_rate_bpm": 0}, ReasonCode.IMPOSSIBLE_VALUE),
        ({**BASE, "kind": "vitals", "heart_rate_bpm": 301}, ReasonCode.IMPOSSIBLE_VALUE),
        ({**BASE, "kind": "vitals", "spo2_pct": 100.5}, ReasonCode.IMPOSSIBLE_VALUE),
        (b'{"kind":"vitals","device_id":"d","ts_ms":1,"seq":1,"heart_rate_bpm":NaN}', ReasonCode.NON_FINITE),
        (b'{"kind":"vitals","device_id":"d","ts_ms":1,"seq":1,"temp_c":Infinity}', ReasonCode.NON_FINITE),
        ({**BASE, "kind": "waveform", "signal": "ppg", "fs_hz": 125, "samples": []}, ReasonCode.EMPTY_CHUNK),
        (
            {**BASE, "kind": "waveform", "signal": "ppg", "fs_hz": 0, "samples": [1]},
            ReasonCode.BAD_SAMPLE_RATE,
        ),
        (
            {**BASE, "kind": "waveform", "signal": "ppg", "fs_hz": -5, "samples": [1]},
            ReasonCode.BAD_SAMPLE_RATE,
        ),
        (
            {**BASE, "kind": "waveform", "signal": "ppg", "fs_hz": 20, "samples": [1] * 101},
            ReasonCode.OVERSIZED,
        ),
        (
            {**BASE, "kind": "vitals", "ts_ms": NOW + 61_000, "heart_rate_bpm": 70},
            ReasonCode.FUTURE_TIMESTAMP,
        ),
        ({**BASE, "kind": "vitals", "heart_rate_bpm": "fast"}, ReasonCode.SCHEMA_VIOLATION),
        ({**BASE, "kind": "vitals", "heart_rate_bpm": "72"}, ReasonCode.SCHEMA_VIOLATION),
        (
            {**BASE, "kind": "vitals", "heart_rate_bpm": 70, "schema_version": 9},
            ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
        ),
        ({**BASE, "kind": "vitals"}, ReasonCode.SCHEMA_VIOLATION),
        (b'{"kind": "vitals", "device_id": "d', ReasonCode.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", ReasonCode.MALFORMED_JSON),
        (b"[1, 2, 3]", ReasonCode.SCHEMA_VIOLATION),
    ],
)
def test_specific_reasons(payload: object, code: ReasonCode) -> None:
    result = _check(payload)
    assert isinstance(result, Rejected), result
    assert result.code is code, result.reason


def test_accepts_valid_and_margin_edge() -> None:
    assert isinstance(_check({**BASE, "kind": "vitals", "ts_ms": NOW + 60_000, "heart_rate_bpm": 70}), Accepted)


def test_oversized_payload_is_rejected_before_parsing() -> None:
    raw = json.dumps(
        {**BASE, "kind": "waveform", "signal": "ecg", "fs_hz": 500, "samples": [0.123456789] * 400_000}
    ).encode()
    assert len(raw) > 5_000_000
    result = validate(raw, **LIMITS)
    assert isinstance(result, Rejected) and result.code is ReasonCode.OVERSIZED
    assert result.device_id == "dev-1"


def test_dead_letter_keeps_original_bytes() -> None:
    raw = b"\x00\x01 not json"
    rej = _check(raw)
    assert isinstance(rej, Rejected)
    letter = dead_letter(raw, rej, topic="t", partition=3, offset=42, now_ms=NOW)
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert base64.b64decode(again.original_b64) == raw
    assert (again.source_partition, again.source_offset, again.reason_code) == (
        3,
        42,
        ReasonCode.MALFORMED_JSON,
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["vitals", "waveform", "motion", "other"]),
        "device_id": st.text(max_size=70),
        "ts_ms": st.integers(-5, 2 * NOW),
        "seq": st.integers(-5, 10**12),
    },
    optional={
        "heart_rate_bpm": json_values,
        "spo2_pct": st.floats(),
        "fs_hz": st.floats(),
        "samples": st.lists(st.floats(), max_size=30),
        "signal": st.text(max_size=5),
        "x_g": st.lists(st.floats(), max_size=5),
        "schema_version": st.integers(0, 3),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = validate(raw, **LIMITS)
    assert isinstance(result, Accepted | Rejected)
    if isinstance(result, Rejected):
        dead_letter(raw, result, topic="t", partition=0, offset=0, now_ms=NOW)  # envelope always builds


@settings(max_examples=400, deadline=None)
@given(shaped)
def test_fuzz_schema_shaped_nonsense(obj: dict[str, object]) -> None:
    raw = json.dumps(obj, allow_nan=True).encode()
    result = validate(raw, **LIMITS)
    if isinstance(result, Accepted):
        msg = result.message
        assert msg.ts_ms <= NOW + LIMITS["future_margin_ms"] and msg.seq >= 0
    else:
        assert result.code in ReasonCode and result.reason


def test_seq_tracker_exact_dedup_and_stale() -> None:
    tracker = SeqTracker(window=16)
    assert [tracker.check(s) for s in (1, 2, 2, 5, 3, 3)] == [
        SeqStatus.NEW,
        SeqStatus.NEW,
        SeqStatus.DUPLICATE,
        SeqStatus.NEW,
        SeqStatus.NEW,
        SeqStatus.DUPLICATE,
    ]
    assert tracker.duplicates == 2
    tracker.check(100)
    assert tracker.check(84) is SeqStatus.STALE
    assert tracker.check(85) is SeqStatus.NEW


@given(st.lists(st.integers(0, 200), max_size=300), st.integers(0, 300))
def test_seq_tracker_state_round_trip(seqs: list[int], cut: int) -> None:
    straight = SeqTracker(window=64)
    restored = SeqTracker(window=64)
    out_a = [straight.check(s) for s in seqs]
    out_b = []
    for i, s in enumerate(seqs):
        if i == cut:
            restored = SeqTracker.from_state(json.loads(json.dumps(restored.to_state())), window=64)
        out_b.append(restored.check(s))
    assert out_a == out_b


def test_seq_tracker_counter_reset_is_not_taken_for_duplicates() -> None:
    tracker = SeqTracker(window=16)
    assert [tracker.check(s, 1000 + s) for s in range(5)] == [SeqStatus.NEW] * 5
    assert tracker.check(3, 1003) is SeqStatus.DUPLICATE  # a resend: same seq, same time
    assert tracker.check(2, 990) is SeqStatus.DUPLICATE  # older time, seen seq: still a resend
    # The device rebooted: its counter starts again at 0 with newer timestamps.
    assert [tracker.check(s, 5000 + s) for s in range(3)] == [SeqStatus.NEW] * 3
    assert tracker.resets == 1
    assert tracker.check(1, 5001) is SeqStatus.DUPLICATE
    again = SeqTracker.from_state(json.loads(json.dumps(tracker.to_state())), window=16)
    assert again.check(2, 5002) is SeqStatus.DUPLICATE and again.check(3, 5003) is SeqStatus.NEW


@pytest.mark.parametrize(("signal", "fs_hz"), [("ecg", 20.0), ("ecg", 1500.0), ("ppg", 5.0), ("resp", 0.5)])
def test_unsupported_sample_rates_are_dead_lettered(signal: str, fs_hz: float) -> None:
    n = max(1, int(fs_hz))
    result = _check({**BASE, "kind": "waveform", "signal": signal, "fs_hz": fs_hz, "samples": [0.1] * n})
    assert isinstance(result, Rejected) and result.code is ReasonCode.BAD_SAMPLE_RATE, result


def test_every_accepted_rate_runs_through_the_signal_path() -> None:
    """The contract's supported rates are the ones the pipeline can process: no accepted chunk may crash it."""
    from streamer.config import Settings
    from streamer.contracts import SUPPORTED_FS_HZ
    from streamer.pipeline import Pipeline

    pipeline = Pipeline(Settings())
    for i, (signal, (lo, hi)) in enumerate(SUPPORTED_FS_HZ.items()):
        for j, fs_hz in enumerate((lo, (lo + hi) / 2, hi)):
            result = _check(
                {
                    **BASE,
                    "device_id": f"rate-{i}-{j}",
                    "kind": "waveform",
                    "signal": signal,
                    "fs_hz": fs_hz,
                    "samples": [0.1] * int(fs_hz),
                }
            )
            assert isinstance(result, Accepted)
            pipeline.process([(result.message, None)])
