"""Delivery on the real broker: internal topics follow the input partitions, alert compaction keeps every open
alert, an acknowledgement reaches its device's state after a rebalance."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType

from streamer.kafka.app import check_partitions
from streamer.kafka.clients import producer
from streamer.kafka.topics import changelog_topic, ensure_topics, internal_topics, partition_counts
from tests.conftest import REPO_ROOT, settings_env
from tests.kafka.test_pipeline_broker import QUIET, _collect, _offline, _produce, _records

pytestmark = pytest.mark.integration


def _alert_records(settings) -> list:
    consumer = KafkaConsumer(
        settings.topics.alerts,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        **settings.kafka_client_kwargs(),
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def _topic_config(settings, name: str) -> dict[str, str]:
    admin = KafkaAdminClient(**settings.kafka_client_kwargs())
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        admin.close()
    return {key: entry["value"] for key, entry in described["topic"][name].items()}


def test_internal_topics_have_the_input_partition_count(settings_factory) -> None:
    settings = settings_factory(partitions=5)
    created = ensure_topics(settings)
    internal = list(internal_topics(settings))
    assert set(internal) <= set(created) and len(internal) == 4
    assert partition_counts(settings, internal + settings.topics.all()) == dict.fromkeys(
        internal + settings.topics.all(), 5
    )
    assert _topic_config(settings, changelog_topic(settings, "pipeline"))["cleanup.policy"] == "compact"
    check_partitions(settings)  # consistent: no complaint

    wrong = settings_factory(partitions=1, topic_prefix=settings.topic_prefix + "w.", app_id=settings.app_id + "w")
    ensure_topics(wrong, [changelog_topic(wrong, "ingest")])  # a changelog left over with 1 partition
    ensure_topics(settings_factory(partitions=5, topic_prefix=wrong.topic_prefix, app_id=wrong.app_id))
    with pytest.raises(SystemExit, match="partition count"):
        check_partitions(settings_factory(partitions=5, topic_prefix=wrong.topic_prefix, app_id=wrong.app_id))


def test_alert_compaction_keeps_every_open_alert(settings_factory, worker_factory) -> None:
    settings = settings_factory(**QUIET)
    records = _records(["mitdb201_af", "mitdb202_af_onset"])
    offline = _offline(settings, records)
    ensure_topics(settings)
    worker_factory(settings)
    _produce(settings, records)
    _collect(settings, {"alerts": len(offline.output.alerts)})
    history = _alert_records(settings)
    latest = {r.key: json.loads(r.value) for r in history}
    open_ids = {k for k, a in latest.items() if a["state"] != "RESOLVED"}
    devices = {a["device_id"] for a in latest.values()}
    # Several alerts per device: keyed by device, compaction would keep one of them per device.
    assert open_ids and len(latest) > len(devices), (len(latest), devices)
    assert all(r.key == json.loads(r.value)["alert_id"].encode() for r in history)
    by_device = {}
    for r in history:  # one device, one partition: consumers see a device's transitions in order
        by_device.setdefault(json.loads(r.value)["device_id"], set()).add(r.partition)
    assert all(len(p) == 1 for p in by_device.values())

    admin = KafkaAdminClient(**settings.kafka_client_kwargs())
    aggressive = {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(7 * 24 * 3600 * 1000),
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.001",
        "delete.retention.ms": "100",
    }
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topics.alerts, configs=aggressive)])
    admin.close()
    time.sleep(1.0)
    prod = producer(settings)  # a re-sent last transition (at-least-once) rolls the segments that hold the rest
    for p in {r.partition for r in history}:
        last = [r for r in history if r.partition == p][-1]
        prod.send(settings.topics.alerts, key=last.key, value=last.value, partition=p)
    prod.flush()
    prod.close()

    deadline = time.monotonic() + 150
    compacted = history
    while time.monotonic() < deadline and len(compacted) >= len(history):
        time.sleep(3)
        compacted = _alert_records(settings)
    assert len(compacted) < len(history), "the log cleaner did not compact the alert topic in time"
    after = {r.key: json.loads(r.value) for r in compacted}
    assert {k for k, a in after.items() if a["state"] != "RESOLVED"} == open_ids
    assert {k: a["state"] for k, a in after.items()} == {k: a["state"] for k, a in latest.items()}


def _ack(settings, alert_id: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", "ack", alert_id, "--by", "nurse-7"],
        cwd=REPO_ROOT,
        env=settings_env(settings),
        check=True,
        capture_output=True,
    )


def _owned(worker, stage: str) -> list[int]:
    lines = [ln for ln in worker.log_text().splitlines() if f"{stage}: partitions [" in ln]
    inside = lines[-1].split(f"{stage}: partitions [", 1)[1].split("]", 1)[0] if lines else ""
    return [int(p) for p in inside.split(",") if p.strip()]


def test_acknowledgement_reaches_the_device_after_a_rebalance(settings_factory, worker_factory) -> None:
    settings = settings_factory(**QUIET)
    records = _records(["mitdb202_af_onset"])
    offline = _offline(settings, records)
    resolved = {a.alert_id for a in offline.output.alerts if a.state.value == "RESOLVED"}
    open_id = sorted({a.alert_id for a in offline.output.alerts} - resolved)[0]
    ensure_topics(settings)
    first = worker_factory(settings, name="first")
    _produce(settings, records)
    _collect(settings, {"alerts": len(offline.output.alerts)})
    partition = next(r.partition for r in _alert_records(settings) if r.key == open_id.encode())

    second = worker_factory(settings, name="second")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (_owned(second, "pipeline") and len(_owned(first, "pipeline")) < 4):
        time.sleep(0.5)
    assert _owned(second, "pipeline"), "the second worker took no partition"
    if partition in _owned(first, "pipeline"):  # make the device's state move: the first worker leaves
        assert first.stop() == 0
        while time.monotonic() < deadline and len(_owned(second, "pipeline")) < 4:
            time.sleep(0.5)
    assert partition in _owned(second, "pipeline")

    _ack(settings, open_id)
    _ack(settings, open_id)  # the second acknowledgement changes nothing
    live = _collect(settings, {"alerts": len(offline.output.alerts) + 1}, quiet_s=5)
    acked = [a for a in live["alerts"] if a["alert_id"] == open_id and a["state"] == "ACKNOWLEDGED"]
    assert len(acked) == 1 and acked[0]["evidence"]["values"]["by"] == "nurse-7"
    assert "acknowledgement for unknown alert" not in second.log_text()
