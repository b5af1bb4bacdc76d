"""Ingest on the real broker: 10,000 valid + 1,000 invalid messages over 20 devices; nothing lost, nothing twice."""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter

import pytest

from streamer.contracts import ReasonCode
from streamer.kafka.clients import producer
from streamer.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration
N_DEVICES, N_VALID, N_INVALID, N_DUPLICATES = 20, 10_000, 1_000, 200


def _valid(device: str, seq: int, ts_ms: int, rng: random.Random) -> bytes:
    if seq % 2:
        return json.dumps(
            {
                "kind": "vitals",
                "device_id": device,
                "ts_ms": ts_ms,
                "seq": seq,
                "heart_rate_bpm": rng.uniform(50, 120),
                "spo2_pct": rng.uniform(90, 100),
            }
        ).encode()
    return json.dumps(
        {
            "kind": "waveform",
            "device_id": device,
            "ts_ms": ts_ms,
            "seq": seq,
            "signal": "ppg",
            "fs_hz": 125,
            "samples": [round(rng.random(), 4) for _ in range(125)],
        }
    ).encode()


def _invalid(i: int, device: str, now_ms: int) -> tuple[bytes, bytes | None, ReasonCode]:
    """The i-th invalid message, its record key and the reason we expect; each one unique by its marker i."""
    base = {"device_id": device, "ts_ms": now_ms - 10_000, "seq": 10**9 + i}
    kind = i % 10
    key = device.encode()
    if kind == 0:
        return f"random-{i}-".encode() + random.Random(i).randbytes(40), None, ReasonCode.MALFORMED_JSON
    if kind == 1:
        full = json.dumps({**base, "kind": "vitals", "heart_rate_bpm": 70})
        return full[:-7].encode(), key, ReasonCode.MALFORMED_JSON
    if kind == 2:
        return (
            json.dumps({**base, "kind": "vitals", "heart_rate_bpm": str(i)}).encode(),
            key,
            ReasonCode.SCHEMA_VIOLATION,
        )
    if kind == 3:
        return (
            json.dumps({**base, "kind": "vitals", "heart_rate_bpm": 0}).encode(),
            key,
            ReasonCode.IMPOSSIBLE_VALUE,
        )
    if kind == 4:
        return (
            json.dumps({**base, "kind": "vitals", "spo2_pct": 100 + i / 1000 + 0.5}).encode(),
            key,
            ReasonCode.IMPOSSIBLE_VALUE,
        )
    if kind == 5:
        return (
            b'{"kind":"vitals","device_id":"%s","ts_ms":%d,"seq":%d,"temp_c":NaN}'
            % (device.encode(), base["ts_ms"], base["seq"]),
            key,
            ReasonCode.NON_FINITE,
        )
    if kind == 6:
        return (
            json.dumps({**base, "kind": "waveform", "signal": "ecg", "fs_hz": 250, "samples": []}).encode(),
            key,
            ReasonCode.EMPTY_CHUNK,
        )
    if kind == 7:
        return (
            json.dumps({**base, "kind": "waveform", "signal": "ecg", "fs_hz": 0, "samples": [1.0]}).encode(),
            key,
            ReasonCode.BAD_SAMPLE_RATE,
        )
    if kind == 8:
        return (
            json.dumps({**base, "kind": "vitals", "ts_ms": now_ms + 3_600_000, "heart_rate_bpm": 70}).encode(),
            key,
            ReasonCode.FUTURE_TIMESTAMP,
        )
    return (
        json.dumps({**base, "kind": "vitals", "heart_rate_bpm": 70}).encode(),
        b"other-device",
        ReasonCode.KEY_MISMATCH,
    )


def test_every_message_accounted_for(settings_factory, worker_factory) -> None:
    settings = settings_factory()
    ensure_topics(settings)
    worker_factory(settings)
    rng = random.Random(2024)
    now_ms = int(time.time() * 1000)
    devices = [f"wear-{d:02d}" for d in range(N_DEVICES)]

    valid = [
        (dev, seq, _valid(dev, seq, now_ms - 600_000 + seq * 1000, rng))
        for seq in range(N_VALID // N_DEVICES)
        for dev in devices
    ]
    invalid = [_invalid(i, devices[i % N_DEVICES], now_ms) for i in range(N_INVALID - 1)]
    huge = json.dumps(
        {
            "kind": "waveform",
            "device_id": devices[0],
            "ts_ms": now_ms,
            "seq": 10**10,
            "signal": "ecg",
            "fs_hz": 500,
            "samples": [0.25] * 1_000_000,
        }
    ).encode()
    assert len(huge) > 5_000_000
    invalid.append((huge, devices[0].encode(), ReasonCode.OVERSIZED))
    expected_reason = {raw: code for raw, _, code in invalid}
    assert len(expected_reason) == N_INVALID

    outgoing = [(dev.encode(), raw) for dev, _, raw in valid]
    outgoing += [(key, raw) for raw, key, _ in invalid]
    outgoing += [(dev.encode(), raw) for dev, _, raw in rng.sample(valid, N_DUPLICATES)]
    rng.shuffle(outgoing)  # interleaves devices and puts some duplicates before their first copy
    prod = producer(settings)
    for key, raw in outgoing:
        prod.send(settings.topics.telemetry, key=key, value=raw)
    prod.flush()
    prod.close()

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topics.telemetry_valid,
        settings.topics.dlq,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        **settings.kafka_client_kwargs(),
    )
    seen_valid: Counter[tuple[str, int]] = Counter()
    dlq: dict[bytes, dict[str, object]] = {}
    deadline = time.monotonic() + 180
    quiet_since = None
    while time.monotonic() < deadline:
        got = 0
        for record in consumer:
            got += 1
            if record.topic == settings.topics.dlq:
                letter = json.loads(record.value)
                dlq[base64.b64decode(letter["original_b64"])] = letter
            else:
                msg = json.loads(record.value)
                seen_valid[(msg["device_id"], msg["seq"])] += 1
        done = len(seen_valid) >= N_VALID and len(dlq) >= N_INVALID
        if done and got == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 3:  # stay a little longer to catch late duplicates
                break
    consumer.close()

    expected_valid = {(dev, seq) for dev, seq, _ in valid}
    assert set(seen_valid) == expected_valid, f"missing {len(expected_valid - set(seen_valid))}"
    assert max(seen_valid.values()) == 1, "a (device_id, seq) came out twice"
    assert set(dlq) == set(expected_reason), f"dead letters: {len(dlq)} of {N_INVALID}"
    wrong = {
        raw[:60]: (dlq[raw]["reason_code"], code)
        for raw, code in expected_reason.items()
        if dlq[raw]["reason_code"] != code
    }
    assert not wrong, wrong
    assert all(letter["reason"] and letter["source_topic"] == settings.topics.telemetry for letter in dlq.values())
    # The counts close: everything sent is forwarded once, dead-lettered, or a counted duplicate.
    assert len(outgoing) == len(seen_valid) + len(dlq) + N_DUPLICATES
