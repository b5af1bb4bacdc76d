"""The worker as its own principal on the secured broker: it runs the pipeline, and no log line carries a payload value."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MARK = "ZQX"  # in every free-text field below; it must never reach a log


def _marked_telemetry(now_ms: int) -> list[bytes]:
    """One valid message with marked free text, and invalid ones that carry the marker in each field they can."""
    base = {"device_id": "wk-2", "ts_ms": now_ms, "seq": 10}
    wave = {**base, "kind": "waveform", "signal": "ppg", "fs_hz": 50, "samples": [0.1] * 50, "units": f"{MARK}-u1"}
    rows: list[object] = [
        wave,
        {**base, "seq": 11, "kind": "vitals", "heart_rate_bpm": f"{MARK} Jane Doe"},
        {**base, "seq": 12, "kind": "vitals", "heart_rate_bpm": 70, f"{MARK}_name": f"{MARK} Jane Doe"},
        {**base, "seq": 13, "kind": "vitals", "heart_rate_bpm": 70, "patient_id": f"{MARK} Jane Doe"},
        {**base, "seq": 14, "device_id": f"{MARK} Jane Doe", "kind": "vitals", "heart_rate_bpm": 70},
        {**wave, "seq": 15, "units": f"{MARK} units far too long"},
        {**wave, "seq": 16, "signal": f"{MARK}"},
        {**base, "seq": 17, "kind": f"{MARK} Jane Doe"},
        {**base, "seq": 18, "kind": "vitals", "consciousness": f"{MARK}"},
    ]
    lines = [json.dumps(r).encode() for r in rows]
    return [*lines, f'{{"kind": "vitals", "note": "{MARK} Jane'.encode()]


def _vitals(device: str, seq: int) -> bytes:
    now = int(time.time() * 1000)
    return json.dumps({"kind": "vitals", "device_id": device, "ts_ms": now, "seq": seq, "heart_rate_bpm": 72}).encode()


def test_worker_runs_the_pipeline_and_logs_no_payload_values(  # type: ignore[no-untyped-def]
    secured_env, cli, worker_factory, secure_kafka, tmp_path: Path
) -> None:
    from streamer.config import Settings

    worker_env, gateway, admin, alerts = (secured_env(r) for r in ("worker", "gateway", "admin", "alerts"))
    settings = Settings(
        **{k.removeprefix("VITALS_").lower(): v for k, v in worker_env.items()}, data_dir=tmp_path / "worker"
    )
    worker = worker_factory(settings)
    lines = b"".join(_vitals("wk-1", seq) + b"\n" for seq in range(1, 4)) + b"{not json\n"
    runs = [cli(gateway, "produce", stdin=lines)]
    valid = cli(admin, "tail", "valid", "--from-beginning", "--idle-timeout", "10", "--max-messages", "3", "--json")
    assert [json.loads(json.loads(r)["value"])["seq"] for r in valid.stdout.splitlines()] == [1, 2, 3]
    assert cli(worker_env, "produce", stdin=_vitals("wk-9", 1) + b"\n").returncode != 0  # may not forge telemetry

    marked = _marked_telemetry(int(time.time() * 1000))
    runs.append(cli(gateway, "produce", stdin=b"\n".join(marked) + b"\n"))
    ack_topic = admin["VITALS_TOPIC_PREFIX"] + "vitals.alerts.ack"
    runs.append(cli(admin, "produce", "--topic", ack_topic, stdin=f'{{"alert_id": 5, "note": "{MARK} x"}}\n'.encode()))
    bad_ack = cli(alerts, "ack", f"{MARK} Jane Doe", "--by", f"{MARK}-nurse", "--note", f"{MARK} Jane Doe note")
    assert bad_ack.returncode == 1 and "not an alert id" in bad_ack.stderr, bad_ack.stderr  # refused, not echoed
    dlq = cli(admin, "tail", "dlq", "--from-beginning", "--idle-timeout", "10", "--max-messages", "30", "--json")
    runs += [dlq, cli(alerts, "alerts", "--from-beginning", "--idle-timeout", "3")]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]

    letters = [json.loads(json.loads(r)["value"]) for r in dlq.stdout.splitlines()]
    # One letter per source record: a fault-free run reads each record once (at most a crash repeats a batch).
    by_source = {(x["source_topic"], x["source_partition"], x["source_offset"]): x for x in letters}
    assert len(by_source) == len(letters), "a record was dead-lettered twice"
    from_telemetry = [x for x in by_source.values() if x["source_topic"].endswith("vitals.telemetry")]
    codes = Counter(x["reason_code"] for x in from_telemetry)  # partitions interleave: compare as a multiset
    assert sum(codes.values()) == 10 and codes["MALFORMED_JSON"] == 2, codes  # 1 + 9 marked, 2 of them truncated
    from_acks = [
        x for x in by_source.values() if x["source_topic"] == ack_topic
    ]  # the malformed ack is dead-lettered too
    assert [x["reason_code"] for x in from_acks] == ["SCHEMA_VIOLATION"], letters
    worker.stop()
    logs = {"worker": worker.log_text(), "ack": bad_ack.stderr, **{f"cli-{i}": r.stderr for i, r in enumerate(runs)}}
    logs |= {p.name: p.read_text(errors="replace") for p in (secure_kafka.root / "logs").glob("*.log")}  # type: ignore[attr-defined]
    assert "dead-letter" in logs["worker"] and "malformed acknowledgement" in logs["worker"]
    assert {name for name, text in logs.items() if MARK in text} == set()
