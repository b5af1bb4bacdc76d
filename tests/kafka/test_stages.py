"""The stages' delivery logic without a broker: redelivery skipped, recomputation byte-identical, silence honest.

The stages are plain classes fed with aiokafka's own record type; the broker tests (test_delivery_broker.py) run
the same classes on the real broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from aiokafka.structs import ConsumerRecord

from streamer.config import Settings
from streamer.kafka.agents import IngestStage
from streamer.kafka.pipeline_stage import PipelineStage
from streamer.kafka.runner import Effects
from streamer.kafka.store import MARKER_KEY, PartitionState, marker_value
from streamer.offline.golden import GOLDENS, session_path
from streamer.sessions.format import SessionRecord, read_session

pytestmark = pytest.mark.unit
SETTINGS = Settings(topic_prefix="u.", app_id="u.app")
VALID = SETTINGS.topics.telemetry_valid
ACKS = "u.app-acks-by-device"
T = 1_577_836_900_000  # record timestamps of the hand-made records: within the recordings, ingest time


def _session(name: str) -> list[SessionRecord]:
    return list(read_session(session_path(next(g for g in GOLDENS if g.name == name))))


def _records(session: list[SessionRecord], topic: str = VALID) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(topic, 0, i, r.timestamp_ms, 0, r.key, r.value, None, 0, len(r.value), [])
        for i, r in enumerate(session)
    ]


def _stage(state: PartitionState) -> PipelineStage:
    stage = PipelineStage(SETTINGS, None, ACKS)
    stage.assigned({0: state})
    return stage


def _run(stage: PipelineStage | IngestStage, state: PartitionState, batch: list[ConsumerRecord]) -> Effects:
    effects = asyncio.run(stage.handle(state, batch))
    state.values.update(effects.writes)  # what the runner does once the changelog has them
    state.offsets[batch[0].topic] = batch[-1].offset
    return effects


def _comparable(effects: Effects) -> list[tuple[str, bytes | None, bytes]]:
    """Published records, the alerts' wall-clock publish stamp set aside (the one stamp consumers ignore)."""
    out = []
    for o in effects.outgoing:
        value = o.value
        if o.topic == SETTINGS.topics.alerts:
            alert = json.loads(value)
            alert["latency"]["publish_ts_ms"] = None
            value = json.dumps(alert).encode()
        out.append((o.topic, o.key, value))
    return out


def test_resumed_stage_skips_what_its_state_reflects_and_recomputes_the_same_bytes() -> None:
    records = _records(_session("mitdb201_af"))
    batches = [records[i : i + 40] for i in range(0, len(records), 40)]
    state = PartitionState(0)
    stage = _stage(state)
    first = [_comparable(_run(stage, state, b)) for b in batches]
    assert sum(map(len, first)) > 100

    # The worker dies after batch 6's states were written but before the marker of batches 5 and 6 was: the
    # input resumes at batch 5, which the states already reflect.
    crash_after = 6
    restored = PartitionState(0)
    before = _stage(restored)
    for b in batches[: crash_after + 1]:
        _run(before, restored, b)
    restored.offsets = {VALID: batches[crash_after - 2][-1].offset}
    replay = _stage(restored)
    again = [_comparable(_run(replay, restored, b)) for b in batches[crash_after - 1 :]]
    assert again[:2] == [[], []], "redelivered input was processed again"
    assert again[2:] == first[crash_after + 1 :]
    assert replay.counts["redelivered"] == len(batches[crash_after - 1]) + len(batches[crash_after])


def test_a_pipeline_running_behind_raises_no_device_silent() -> None:
    icu = _records(_session("bidmc01_icu"))
    state = PartitionState(0)
    stage = _stage(state)
    for i in range(0, len(icu) // 2, 50):
        _run(stage, state, icu[i : i + 50])

    async def behind(partition: int) -> bool:
        return False

    async def caught_up(partition: int) -> bool:
        return True

    def silent(result: dict[int, Effects]) -> list[str]:
        alerts = [json.loads(o.value) for e in result.values() for o in e.outgoing if o.topic.endswith("alerts")]
        return [a["device_id"] for a in alerts if a["condition"] == "DEVICE_SILENT" and a["state"] == "RAISED"]

    # The recording is from 2020: on the wall clock alone this device has been quiet for years.
    assert silent(asyncio.run(stage.tick({0: state}, behind))) == []
    assert silent(asyncio.run(stage.tick({0: state}, caught_up))) == []
    # Another device on the partition goes on for minutes beyond the first one's last data: that one is silent.
    clean = _records(_session("mitdb100_clean"))
    for i in range(0, len(clean), 50):
        _run(stage, state, [dataclasses.replace(r, offset=r.offset + len(icu)) for r in clean[i : i + 50]])
    assert silent(asyncio.run(stage.tick({0: state}, behind))) == ["bidmc-01"]


def test_bad_record_on_the_valid_topic_is_dead_lettered_and_the_batch_flows() -> None:
    records = _records(_session("mitdb100_clean")[:60])
    bad = [
        ConsumerRecord(VALID, 0, 1000, 1, 0, b"mitdb-100", b'{"kind":"vitals","seq":"x"}', None, 0, 0, []),
        ConsumerRecord(VALID, 0, 1001, 1, 0, b"other", records[5].value, None, 0, 0, []),  # key mismatch
        ConsumerRecord(VALID, 0, 1002, 1, 0, b"mitdb-100", b"\xff\x00", None, 0, 0, []),
    ]
    state = PartitionState(0)
    stage = _stage(state)
    effects = _run(stage, state, records[:30] + bad + records[30:])
    letters = [json.loads(o.value) for o in effects.outgoing if o.topic == SETTINGS.topics.dlq]
    assert sorted(x["source_offset"] for x in letters) == [1000, 1001, 1002]
    assert {x["reason_code"] for x in letters} == {"PROCESSING_ERROR"}
    clean = PartitionState(0)
    reference = _run(_stage(clean), clean, records)
    assert [o for o in effects.outgoing if o.topic != SETTINGS.topics.dlq] == reference.outgoing


def test_ingest_stage_survives_a_4000_digit_seq_and_forwards_the_rest() -> None:
    good = _session("mitdb100_clean")[:20]
    poison = b'{"kind":"vitals","device_id":"mitdb-100","ts_ms":1577836800000,"seq":' + b"9" * 4000 + b',"spo2_pct":97}'
    older = b'{"kind":"vitals","device_id":"mitdb-100","ts_ms":1577836800000,"seq":20,"spo2_pct":97}'
    records = _records(good, SETTINGS.topics.telemetry)
    n = len(records)
    records += [
        ConsumerRecord(SETTINGS.topics.telemetry, 0, n, T, 0, b"mitdb-100", poison, None, 0, 0, []),
        ConsumerRecord(SETTINGS.topics.telemetry, 0, n + 1, T, 0, b"mitdb-100", older, None, 0, 0, []),
    ]
    state = PartitionState(0)
    stage = IngestStage(SETTINGS)
    stage.assigned({0: state})
    effects = _run(stage, state, records)
    forwarded = [o for o in effects.outgoing if o.topic == SETTINGS.topics.telemetry_valid]
    letters = [json.loads(o.value) for o in effects.outgoing if o.topic == SETTINGS.topics.dlq]
    assert len(forwarded) == n + 1 and all(o.partition == 0 for o in forwarded)  # the older seq is good traffic
    assert [(x["source_offset"], x["reason_code"]) for x in letters] == [(n, "IMPOSSIBLE_VALUE")]
    assert len(letters[0]["reason"]) <= 2000
    # Redelivery of the whole batch after a crash: nothing is forwarded twice.
    assert [o for o in _run(stage, state, records).outgoing if o.topic == SETTINGS.topics.telemetry_valid] == []
    assert state.values and MARKER_KEY not in state.values and marker_value({"a": 1}) == b'{"a":1}'


def test_chunks_later_than_the_grace_are_counted_and_reported_not_silently_dropped() -> None:
    session = _session("mitdb100_clean")
    order = list(range(len(session)))
    order.remove(50)
    order.insert(order.index(60) + 1, 50)  # 10 s of event time late: beyond the 2 s grace
    order[100], order[101] = order[101], order[100]  # 1 s late: put back in order within the grace
    records = _records([session[i] for i in order])
    state = PartitionState(0)
    stage = _stage(state)
    for i in range(0, len(records), 40):
        _run(stage, state, records[i : i + 40])
    assert stage.counts["late_chunks_dropped"] == 1
    stats = stage.pipelines[0].devices["mitdb-100"].signals.stats
    assert stats["late_dropped"] == 1  # the chunk 1 s late was put in order, not dropped


def test_topics_with_three_replicas_need_two_in_sync_and_no_unclean_leader() -> None:
    from streamer.kafka.topics import changelog_topic, internal_topics, topic_config

    single = Settings(topic_prefix="u.", app_id="u.app")
    cluster = Settings(topic_prefix="u.", app_id="u.app", replication_factor=3)
    names = [*single.topics.all(), *internal_topics(single)]
    assert all("min.insync.replicas" not in topic_config(single, n) for n in names)  # one broker: 1 of 1
    for name in names:  # every topic, the changelogs and the internal ack topic included
        config = topic_config(cluster, name)
        assert config["min.insync.replicas"] == "2" and config["unclean.leader.election.enable"] == "false", name
    assert topic_config(cluster, changelog_topic(cluster, "pipeline"))["cleanup.policy"] == "compact"
    assert topic_config(cluster, cluster.topics.alerts)["cleanup.policy"] == "compact,delete"
