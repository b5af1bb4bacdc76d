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
from streamer.kafka.store import MARKER_KEY, Checkpoints, PartitionState, marker_value
from streamer.offline.golden import GOLDENS, session_path
from streamer.sessions.format import SessionRecord, read_session

pytestmark = pytest.mark.unit
SETTINGS = Settings(topic_prefix="u.", app_id="u.app", checkpoint_s=0)  # states written with every batch
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


def _apply(stage: PipelineStage, state: PartitionState, batch: list[ConsumerRecord], effects: Effects) -> None:
    """What the runner does once the changelog has the writes: the states, then the marker (the floor)."""
    state.values.update(effects.writes)
    state.offsets = state.marker_after(((r.topic, r.offset) for r in batch), stage.replay_from(state.partition))


def test_states_written_every_few_seconds_resume_from_the_floor_and_resend_the_same_bytes() -> None:
    settings = Settings(topic_prefix="u.", app_id="u.app", checkpoint_s=3600)  # nothing falls due by itself
    records = _records(_session("mitdb201_af"))
    batches = [records[i : i + 40] for i in range(0, len(records), 40)]
    state = PartitionState(0)
    stage = PipelineStage(settings, None, ACKS)
    stage.assigned({0: state})
    first = []
    for i, b in enumerate(batches[:9]):
        effects = asyncio.run(stage.handle(state, b))
        assert not effects.writes
        _apply(stage, state, b, effects)
        first.append(_comparable(effects))
        if i < 5:  # the first record's state is not written yet: a crash now repeats everything
            assert state.offsets[VALID] == -1
        if i == 5:  # the checkpoint timer: every state that changed is written, the marker moves up to here
            written = asyncio.run(stage.checkpoint(state, everything=True))
            assert set(written.writes) == {b"mitdb-201"}
            _apply(stage, state, [], written)
            assert state.offsets[VALID] == b[-1].offset
    assert state.offsets[VALID] == batches[5][-1].offset, "the marker ran past states not written yet"

    # kill -9 after batch 8: only the changelog survives; the input resumes at the marker + 1 (batch 6)
    restored = PartitionState(0, values=dict(state.values), offsets=dict(state.offsets))
    again_stage = PipelineStage(settings, None, ACKS)
    again_stage.assigned({0: restored})
    again = []
    for b in batches[6:9]:
        effects = asyncio.run(again_stage.handle(restored, b))
        _apply(again_stage, restored, b, effects)
        again.append(_comparable(effects))
    assert sum(map(len, again)) > 0
    assert again == first[6:9], "a replay from the floor re-sent other bytes"


def test_the_floor_is_below_the_oldest_input_a_pending_state_needs() -> None:
    pending = Checkpoints()
    pending.touch(b"a", 10)
    pending.touch(b"b", 12)
    pending.touch(b"a", 15)  # a stays pending from 10
    assert pending.oldest() == 10
    state = PartitionState(0, offsets={VALID: 7})
    assert state.marker_after([(VALID, 16)], {VALID: pending.oldest()}) == {VALID: 9}
    pending.written([b"a"])
    assert state.marker_after([], {VALID: pending.oldest()}) == {VALID: 11}
    pending.written([b"b"])
    assert pending.oldest() is None and pending.due(0) == []
    assert state.marker_after([], {}) == {VALID: 16}


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


def test_a_batch_that_breaks_the_pipeline_rebuilds_its_devices_from_the_changelog_and_the_input_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """States not written yet survive a failing batch: the devices are rebuilt (stored state + the records since)
    and the batch is retried message by message; the breaking message is dead-lettered and the outputs equal a run
    that never saw it."""
    from streamer.signals.device import DeviceSignalProcessor

    settings = Settings(topic_prefix="u.", app_id="u.app", checkpoint_s=3600)
    a, b = _session("mitdb201_af")[:300], _session("bidmc01_icu")[:300]
    mixed = [r for pair in zip(a, b, strict=True) for r in pair]
    records = [dataclasses.replace(r, offset=i) for i, r in enumerate(_records(mixed))]
    poison = records[250]
    finish = DeviceSignalProcessor.finish  # the last step of a message: the batch's others are half done by then

    def breaks(self: DeviceSignalProcessor, msg, ingest_ts_ms, admitted):  # type: ignore[no-untyped-def]
        if msg.device_id == poison.key.decode() and msg.seq == json.loads(poison.value)["seq"]:
            raise RuntimeError("a bug met by this message")
        return finish(self, msg, ingest_ts_ms, admitted)

    monkeypatch.setattr(DeviceSignalProcessor, "finish", breaks)

    def run(batches: list[list[ConsumerRecord]]) -> tuple[list[tuple[str, bytes | None, bytes]], list[int]]:
        state = PartitionState(0)
        stage = PipelineStage(settings, None, ACKS)
        stage.assigned({0: state})
        out, letters = [], []
        for i, batch in enumerate(batches):
            effects = asyncio.run(stage.handle(state, batch))
            _apply(stage, state, batch, effects)
            if i == 2:  # some states written, then more input: the failing batch meets both kinds
                _apply(stage, state, [], asyncio.run(stage.checkpoint(state, everything=True)))
            out += [o for o in _comparable(effects) if o[0] != settings.topics.dlq]
            letters += [
                json.loads(o.value)["source_offset"] for o in effects.outgoing if o.topic == settings.topics.dlq
            ]
        return out, letters

    cut = [records[i : i + 60] for i in range(0, len(records), 60)]
    broken, letters = run(cut)
    reference, none = run([[r for r in batch if r is not poison] for batch in cut])
    assert letters == [poison.offset] and none == []
    assert len(broken) > 50
    assert broken == reference


def test_a_device_that_stopped_before_a_rebalance_is_still_judged_silent_by_its_new_owner() -> None:
    """The new owner loads every stored device of a partition it takes over, and runs the partition's clock from
    their last data: a device that sends nothing after the rebalance still gets DEVICE_SILENT and its last
    windows closed, exactly as its old owner would have."""
    import time

    settings = Settings(topic_prefix="u.", app_id="u.app", checkpoint_s=0, silence_timeout_s=0.01)
    records = _records(_session("bidmc01_icu"))[:400]
    old_state = PartitionState(0)
    old = PipelineStage(settings, None, ACKS)
    old.assigned({0: old_state})
    for i in range(0, len(records), 50):
        _apply(old, old_state, records[i : i + 50], asyncio.run(old.handle(old_state, records[i : i + 50])))

    async def complete(partition: int) -> bool:
        return True

    def closing(stage: PipelineStage, state: PartitionState) -> tuple[list[bytes], list[str]]:
        out = []
        for _ in range(2):  # the timer runs every second: the first tick after the takeover loads the devices
            out += asyncio.run(stage.tick({0: state}, complete)).get(0, Effects()).outgoing
            time.sleep(0.05)  # longer than the silence timeout
        alerts = [json.loads(o.value) for o in out if o.topic == settings.topics.alerts]
        return [o.value for o in out if o.topic == settings.topics.features], [a["condition"] for a in alerts]

    new_state = PartitionState(0, values=dict(old_state.values), offsets=dict(old_state.offsets))
    new = PipelineStage(settings, None, ACKS)
    new.assigned({0: new_state})
    taken_over = closing(new, new_state)
    assert "DEVICE_SILENT" in taken_over[1]
    assert taken_over[0], "the last windows were not closed"
    assert taken_over == closing(old, old_state)


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


def test_worker_takes_startup_objects_out_of_the_collector() -> None:
    """Full collections over torch's, numba's and pydantic's objects cost 325 ms pauses on the batch thread."""
    import gc

    from streamer.kafka.worker import GC_THRESHOLDS, settle_garbage_collector

    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 10_000  # the imported libraries at least
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def _ingested(session: list[SessionRecord], ingest: IngestStage) -> list[ConsumerRecord]:
    """The session through the ingest stage; its forwarded records as the pipeline stage reads them back."""
    state = PartitionState(0)
    ingest.assigned({0: state})
    out = _run(ingest, state, _records(session, SETTINGS.topics.telemetry)).outgoing
    valid = [o for o in out if o.topic == VALID]
    return [
        ConsumerRecord(VALID, 0, i, T, 0, o.key, o.value, None, 0, len(o.value), list(o.headers))
        for i, o in enumerate(valid)
    ]


def test_the_pipeline_takes_ingests_parsed_messages_only_for_the_same_bytes_and_outputs_do_not_change() -> None:
    session = _session("mitdb201_af")
    ingest = IngestStage(SETTINGS)
    records = _ingested(session, ingest)
    assert len(ingest.parsed._by_src) == len(records) > 100
    # One record's bytes differ from what ingest parsed (a foreign producer on the valid topic): parsed again.
    i = 7
    tampered = records[i].value.replace(b'"seq":', b'"seq": ', 1)
    records[i] = dataclasses.replace(records[i], value=tampered)

    shared = PartitionState(0)
    with_handoff = _stage(shared)
    with_handoff.parsed = ingest.parsed
    reference_state = PartitionState(0)
    reference = _stage(reference_state)  # parses every record itself
    got = [_comparable(_run(with_handoff, shared, records[j : j + 50])) for j in range(0, len(records), 50)]
    want = [_comparable(_run(reference, reference_state, records[j : j + 50])) for j in range(0, len(records), 50)]
    assert got == want and sum(map(len, got)) > 50
    assert ingest.parsed.taken == len(records) - 1  # every other record's message was taken, not parsed
    assert not ingest.parsed._by_src  # the tampered one's entry was taken and refused


def test_parsed_messages_keep_at_most_their_cap_oldest_dropped_first() -> None:
    from streamer.kafka.agents import ParsedMessages

    parsed = ParsedMessages(cap=3)
    for n in range(5):
        parsed.add(b"src%d" % n, b"raw%d" % n, n)  # type: ignore[arg-type]
    assert parsed.take(b"src0", b"raw0") is None and parsed.take(b"src1", b"raw1") is None
    assert parsed.take(b"src4", b"raw4") == 4 and parsed.take(b"src4", b"raw4") is None  # taken once
    assert parsed.take(None, b"raw2") is None and parsed.take(b"src2", b"other") is None
