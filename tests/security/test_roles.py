"""Each role on the secured broker can do its job and nothing else; every refusal is one line and a non-zero exit."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.integration


def _vitals(device: str, seq: int) -> bytes:
    now = int(time.time() * 1000)
    return json.dumps({"kind": "vitals", "device_id": device, "ts_ms": now, "seq": seq, "heart_rate_bpm": 72}).encode()


def _refused(run, setting: str = "VITALS_SASL_USERNAME") -> None:  # type: ignore[no-untyped-def]
    assert run.returncode != 0, run
    assert len(run.error_lines) == 1, run.stderr
    line = run.error_lines[0]
    assert line.startswith("error: not authorised") and setting in line, line


def test_gateway_writes_telemetry_and_nothing_else(secured_env, cli) -> None:  # type: ignore[no-untyped-def]
    gateway, admin = secured_env("gateway"), secured_env("admin")
    sent = cli(gateway, "produce", stdin=_vitals("gw-1", 1) + b"\n")
    assert sent.returncode == 0, sent.stderr
    landed = cli(admin, "tail", "telemetry", "--from-beginning", "--idle-timeout", "3", "--max-messages", "1", "--json")
    assert json.loads(json.loads(landed.stdout)["value"])["device_id"] == "gw-1"
    _refused(cli(gateway, "tail", "telemetry", "--from-beginning", "--idle-timeout", "2"))
    _refused(cli(gateway, "produce", "--topic", admin["VITALS_TOPIC_PREFIX"] + "vitals.alerts", stdin=b"{}\n"))


def test_alert_consumer_reads_alerts_and_writes_acks_only(secured_env, cli) -> None:  # type: ignore[no-untyped-def]
    alerts, admin = secured_env("alerts"), secured_env("admin")
    unknown = cli(alerts, "ack", "a1b2c3d4e5f6", "--note", "seen")  # read allowed: the id is looked up, not refused
    assert unknown.returncode == 1 and "no alert id starts with a1b2c3d4e5f6" in unknown.stderr, unknown.stderr
    ack_topic = admin["VITALS_TOPIC_PREFIX"] + "vitals.alerts.ack"
    body = json.dumps({"alert_id": "a1b2c3d4e5f6", "by": "nurse-1", "ts_ms": int(time.time() * 1000)}).encode()
    sent = cli(alerts, "produce", "--topic", ack_topic, stdin=body + b"\n")  # the role may write acknowledgements
    assert sent.returncode == 0, sent.stderr
    acks = cli(admin, "tail", "ack", "--from-beginning", "--idle-timeout", "3", "--max-messages", "1", "--json")
    assert json.loads(json.loads(acks.stdout)["value"])["alert_id"] == "a1b2c3d4e5f6"
    listed = cli(alerts, "alerts", "--from-beginning", "--idle-timeout", "2", "--json")
    assert listed.returncode == 0, listed.stderr
    _refused(cli(alerts, "produce", stdin=_vitals("al-1", 1) + b"\n"))
    _refused(cli(alerts, "tail", "dlq", "--from-beginning", "--idle-timeout", "2"))


def test_a_consumer_group_join_is_refused(secured_env) -> None:  # type: ignore[no-untyped-def]
    from kafka import KafkaConsumer
    from kafka.errors import GroupAuthorizationFailedError

    from streamer.config import Settings

    env = secured_env("alerts")
    settings = Settings(**{k.removeprefix("VITALS_").lower(): v for k, v in env.items()})
    consumer = KafkaConsumer(
        settings.topics.alerts, group_id=f"{settings.topic_prefix}pager", **settings.kafka_client_kwargs()
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in range(20):
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()


def test_principal_without_acls_is_refused_everywhere(secured_env, cli) -> None:  # type: ignore[no-untyped-def]
    nobody = secured_env("nobody")
    _refused(cli(nobody, "produce", stdin=_vitals("nb-1", 1) + b"\n"))
    _refused(cli(nobody, "tail", "alerts", "--idle-timeout", "2"))
    _refused(cli(nobody, "alerts", "--idle-timeout", "2"))
    _refused(cli(nobody, "ack", "a1b2c3d4e5f6"))
    _refused(cli(nobody, "worker"))
