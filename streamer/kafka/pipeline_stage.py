"""Stages 2-5 on Kafka: validated telemetry and device-keyed acknowledgements -> features, scores, alerts.

One :class:`streamer.pipeline.Pipeline` per owned partition, so a device's runtime, its dedup tracker and its
alerts move with the partition on a rebalance. Each device's stored state records the highest valid-topic offset
it reflects; input at or below it is skipped, so a redelivered batch changes nothing and a recomputed one gives the
same bytes (the outputs are functions of the input only; the one wall-clock field is ``latency.publish_ts_ms``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.structs import ConsumerRecord

from streamer.config import Settings
from streamer.contracts import TELEMETRY, AlertAck, ReasonCode
from streamer.ingest.validation import Message, Rejected, loggable_id
from streamer.kafka import metrics
from streamer.kafka.agents import ParsedMessages, ingest_stamp, now_ms, to_dlq
from streamer.kafka.runner import Effects, Outgoing
from streamer.kafka.store import Checkpoints, PartitionState
from streamer.pipeline import Pipeline, PipelineOutput
from streamer.state import decode_state, encode_state

log = logging.getLogger(__name__)

Batch = list[tuple[Message, int | None]]


class PipelineStage:
    """Windows, features, inference and alert policy for the devices of the partitions this worker owns."""

    name = "pipeline"

    def __init__(self, settings: Settings, inference: Any | None, acks_topic: str) -> None:
        self.settings, self.inference = settings, inference
        self.valid_topic, self.acks_topic = settings.topics.telemetry_valid, acks_topic
        self.topics = [self.valid_topic, acks_topic]
        self.pipelines: dict[int, Pipeline] = {}
        self.offsets: dict[str, int] = {}  # device -> highest valid-topic offset its live runtime reflects
        # partition -> (newest ingest stamp read, wall clock when it was read): the partition's own clock
        self.progress: dict[int, tuple[int, int]] = {}
        self.late: dict[str, int] = {}  # device -> late chunks dropped so far (reported when it grows)
        self.pending: dict[int, Checkpoints] = {}  # partition -> devices whose live state is ahead of the changelog
        # device -> its valid-topic records since its state was last written (to rebuild it if a batch fails)
        self.since_written: dict[str, list[ConsumerRecord]] = {}
        self.counts: Counter[str] = Counter()
        self.unloaded: set[int] = set()
        self.parsed: ParsedMessages | None = None  # this process's ingest stage's messages (the worker wires it)

    def device_count(self) -> int:
        """Device runtimes held in memory over every owned partition (a gauge)."""
        return sum(len(p.devices) for p in self.pipelines.values())

    def assigned(self, states: dict[int, PartitionState]) -> None:
        self.pipelines = {p: Pipeline(self.settings, self.inference) for p in states}
        self.pending = {p: Checkpoints() for p in states}
        self.since_written.clear()
        self.offsets.clear()
        self.progress.clear()
        self.unloaded = set(states)  # partitions whose stored devices are not all in memory yet (see ``tick``)

    def revoked(self, partitions: list[int]) -> None:
        self.pipelines.clear()
        self.pending.clear()
        self.since_written.clear()
        metrics.state_forgotten()
        self.offsets.clear()
        self.progress.clear()
        self.unloaded = set()

    def replay_from(self, partition: int) -> dict[str, int]:
        oldest = self.pending[partition].oldest() if partition in self.pending else None
        return {} if oldest is None else {self.valid_topic: oldest}

    async def checkpoint(self, state: PartitionState, *, everything: bool) -> Effects:
        """Write the device states that changed ``checkpoint_s`` ago (or all that changed), off the event loop."""
        effects = Effects()
        pending = self.pending.get(state.partition)
        if pending is not None:
            due = pending.select(self.settings.checkpoint_s, everything=everything)
            if due:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self._persist, state, {d.decode() for d in due}, effects)
        return effects

    # -- one partition's batch -------------------------------------------------------------------------------
    async def handle(self, state: PartitionState, records: list[ConsumerRecord]) -> Effects:
        started_s = time.perf_counter()
        effects = Effects()
        loop = asyncio.get_running_loop()
        telemetry = [r for r in records if r.topic == self.valid_topic]
        batch, admitted = await loop.run_in_executor(None, self._admit, state, telemetry, effects)
        await self._run(state, batch, admitted, effects)
        acked: set[str] = set()
        for record in records:
            if record.topic == self.acks_topic:
                acked |= self._ack(state, record, effects)
        # Acknowledged devices are written now (acks are few); the others once they are due.
        due = acked | {d.decode() for d in self.pending[state.partition].due(self.settings.checkpoint_s)}
        if due:
            await loop.run_in_executor(None, self._persist, state, due, effects)
        metrics.batch_done("pipeline", len(records), started_s)
        return effects

    def _admit(
        self, state: PartitionState, records: list[ConsumerRecord], effects: Effects
    ) -> tuple[Batch, list[ConsumerRecord]]:
        """Validate each record once, inside the guard; skip what the device's state already reflects."""
        batch: Batch = []
        admitted: list[ConsumerRecord] = []
        pipeline = self.pipelines[state.partition]
        for record in records:
            try:
                msg = self._parsed(record) or TELEMETRY.validate_json(record.value or b"")
                if record.key != msg.device_id.encode():
                    raise ValueError("record key is not the message's device_id")
                self._runtime(state, msg.device_id, msg.patient_id)
            except Exception as exc:  # ingest let it through: a bug or a foreign producer; never a crash
                reason = f"bad record on the valid topic: {exc}"
                rejected = Rejected(ReasonCode.PROCESSING_ERROR, reason, None, type(exc).__name__)
                effects.outgoing.append(to_dlq(self.settings, record, rejected, self.counts))
                continue
            stamp = _header_stamp(record)
            if stamp > self.progress.get(state.partition, (-1, 0))[0]:
                self.progress[state.partition] = (stamp, now_ms())
            if record.offset <= self.offsets[msg.device_id]:
                self.counts["redelivered"] += 1
                continue
            self.offsets[msg.device_id] = record.offset
            self.pending[state.partition].touch(record.key or b"", record.offset)
            batch.append((msg, stamp))
            admitted.append(record)
        assert all(m.device_id in pipeline.devices for m, _ in batch)
        return batch, admitted

    async def _run(self, state: PartitionState, batch: Batch, records: list[ConsumerRecord], effects: Effects) -> None:
        if not batch:
            return
        pipeline = self.pipelines[state.partition]
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(None, pipeline.process, batch, None)
        except Exception:  # a bug met by some input: find it, dead-letter it, keep the rest flowing
            log.exception("pipeline failed on a batch of %d; retrying message by message", len(batch))
            await self._one_by_one(state, batch, records, effects)
            return
        effects.outgoing += self._outgoing(out, state.partition)
        self._remember(records)
        self._report_late(pipeline, {m.device_id for m, _ in batch})

    def _report_late(self, pipeline: Pipeline, devices: set[str]) -> None:
        """Chunks later than VITALS_LATE_GRACE_MS cannot be put in order any more: count and report each one."""
        for device in devices:
            late = _late_count(pipeline, device)
            before = self.late.get(device, late)
            self.late[device] = late
            if late > before:
                self.counts["late_chunks_dropped"] += late - before
                log.warning("device %s: %d chunk(s) later than the grace period were dropped", device, late - before)

    async def _one_by_one(
        self, state: PartitionState, batch: Batch, records: list[ConsumerRecord], effects: Effects
    ) -> None:
        pipeline = self.pipelines[state.partition]
        loop = asyncio.get_running_loop()
        admitted = {m.device_id: self.offsets[m.device_id] for m, _ in batch}
        # Their live objects may hold half a batch: back to the stored state plus the input since it was written.
        await loop.run_in_executor(None, self._rebuild, state, set(admitted))
        for item, record in zip(batch, records, strict=True):
            msg = item[0]
            before = encode_state(pipeline.devices[msg.device_id].to_state())
            try:
                out = await loop.run_in_executor(None, pipeline.process, [item], None)
            except Exception as exc:
                pipeline.devices.pop(msg.device_id, None)  # back to where it was before this message
                pipeline.runtime(msg.device_id, decode_state(before), msg.patient_id)
                reason = f"{type(exc).__name__}: {exc}"
                rejected = Rejected(ReasonCode.PROCESSING_ERROR, reason, msg.device_id, type(exc).__name__)
                effects.outgoing.append(to_dlq(self.settings, record, rejected, self.counts))
                continue
            self._remember([record])
            effects.outgoing += self._outgoing(out, state.partition)
        self.offsets.update(admitted)

    def _remember(self, records: list[ConsumerRecord]) -> None:
        """Keep each handled record with its device until the device's state is written (see ``_rebuild``)."""
        for record in records:
            self.since_written.setdefault((record.key or b"").decode(), []).append(record)

    def _rebuild(self, state: PartitionState, devices: set[str]) -> None:
        """Devices as their stored states plus the records handled since they were written (outputs dropped:
        they were published when those records were handled)."""
        pipeline = self.pipelines[state.partition]
        for device in devices:
            pipeline.devices.pop(device, None)
        replay = sorted((r for d in devices for r in self.since_written.pop(d, ())), key=lambda r: r.offset)
        batch, records = self._admit(state, replay, Effects())
        pipeline.process(batch, None)
        self._remember(records)
        for device in devices:  # devices new in the failed batch
            if device not in pipeline.devices:
                self._runtime(state, device, None)

    def _ack(self, state: PartitionState, record: ConsumerRecord, effects: Effects) -> set[str]:
        try:
            ack = AlertAck.model_validate_json(record.value or b"")
            device = (record.key or b"").decode()
            if device not in self.pipelines[state.partition].devices and device.encode() not in state.values:
                self.counts["ack.unknown_device"] += 1
                log.warning("acknowledgement of alert %s for a device without state here", loggable_id(ack.alert_id))
                return set()
            self._runtime(state, device, None)
            alerts = self.pipelines[state.partition].ack(ack, device)
        except Exception as exc:
            rejected = Rejected(ReasonCode.PROCESSING_ERROR, f"bad acknowledgement: {exc}", None, type(exc).__name__)
            effects.outgoing.append(to_dlq(self.settings, record, rejected, self.counts))
            return set()
        effects.outgoing += self._outgoing(PipelineOutput(alerts=alerts), state.partition)
        return {device}

    # -- timers ----------------------------------------------------------------------------------------------
    async def tick(
        self, states: dict[int, PartitionState], complete: Callable[[int], Awaitable[bool]]
    ) -> dict[int, Effects]:
        """Close windows of quiet devices and judge silence on each partition's own clock.

        The clock of a partition is the newest ingest stamp read from it. It runs on at wall-clock speed from there
        only when nothing more can come: ``complete(p)`` (its upstream ingest partition and then this partition are
        processed to their ends), or nothing arrived for ``silence_timeout_s``. So a backlog, here or in ingest after a
        restart, never closes windows early or makes devices look silent; a device that stops while the others
        on its partition go on is judged against them.
        """
        result: dict[int, Effects] = {}
        loop = asyncio.get_running_loop()
        for p in sorted(self.unloaded & set(states)):
            await loop.run_in_executor(None, self._load_all, states[p])
        for p, pipeline in self.pipelines.items():
            if p not in self.progress or not pipeline.devices:
                continue
            newest, read_at = self.progress[p]
            idle_ms = max(0, now_ms() - read_at)
            waited = idle_ms > self.settings.late_grace_ms  # below the grace, running on would change nothing
            runs_on = idle_ms >= self.settings.silence_timeout_s * 1000 or (waited and await complete(p))
            clock = newest + idle_ms if runs_on else newest
            out = await loop.run_in_executor(None, pipeline.tick, clock)
            if out.features or out.scores or out.alerts:
                # Written now: a replay would not repeat what the clock did to them (a silence, say).
                effects = Effects(outgoing=self._outgoing(out, p))
                touched = {f.device_id for f in out.features} | {a.device_id for a in out.alerts}
                touched |= {s.device_id for s in out.scores}
                await loop.run_in_executor(None, self._persist, states[p], touched, effects)
                result[p] = effects
        return result

    def _load_all(self, state: PartitionState) -> None:
        """Every device stored on a partition just taken over, and the partition's clock from their last data.

        Devices are otherwise loaded when their next record comes; one that stopped sending just before a
        rebalance would then never be judged silent, nor its last windows closed.
        """
        pipeline = self.pipelines[state.partition]
        for key in list(state.values):
            self._runtime(state, key.decode(), None)
        self.unloaded.discard(state.partition)
        stamps = [rt.signals.last_ingest_ms for rt in pipeline.devices.values() if rt.signals.last_ingest_ms]
        if stamps and state.partition not in self.progress:
            self.progress[state.partition] = (max(stamps), now_ms())  # idle counted from the takeover

    # -- state and outputs -----------------------------------------------------------------------------------
    def _parsed(self, record: ConsumerRecord) -> Message | None:
        """The message this process's ingest validated from these very bytes, if it still holds it."""
        return None if self.parsed is None else self.parsed.take(_header(record, "src"), record.value)

    def _runtime(self, state: PartitionState, device: str, patient: str | None) -> None:
        pipeline = self.pipelines[state.partition]
        if device in pipeline.devices:
            return
        packed = state.values.get(device.encode())
        stored = decode_state(packed) if packed else None
        pipeline.runtime(device, stored, patient)
        self.late[device] = _late_count(pipeline, device)
        self.offsets[device] = int(stored.get("offset", -1)) if stored else -1

    def _persist(self, state: PartitionState, devices: set[str], effects: Effects) -> None:
        """Encode the devices' states into ``effects`` (on an executor thread: the event loop keeps polling)."""
        pipeline = self.pipelines[state.partition]
        pending = self.pending[state.partition]
        for device in devices:
            rt = pipeline.devices.get(device)
            if rt is not None:
                stored = rt.to_state()
                stored["offset"] = self.offsets.get(device, -1)
                packed = effects.writes[device.encode()] = encode_state(stored)
                metrics.state_written(device, len(packed))
            pending.written([device.encode()])
            self.since_written.pop(device, None)

    def _outgoing(self, out: PipelineOutput, partition: int) -> list[Outgoing]:
        """Every output on the partition of its device (per-device order); alerts keyed by alert id."""
        names = self.settings.topics
        items = [
            Outgoing(names.features, f.device_id.encode(), f.model_dump_json(exclude_none=True).encode(), partition)
            for f in out.features
        ]
        items += [
            Outgoing(names.scores, s.device_id.encode(), s.model_dump_json().encode(), partition) for s in out.scores
        ]
        stamp = now_ms()
        metrics.alerts_published(out.alerts, stamp)
        for a in out.alerts:
            stamped = a.model_copy(update={"latency": a.latency.model_copy(update={"publish_ts_ms": stamp})})
            items.append(Outgoing(names.alerts, a.alert_id.encode(), stamped.model_dump_json().encode(), partition))
        return items


def _late_count(pipeline: Pipeline, device: str) -> int:
    rt = pipeline.devices.get(device)
    stats = rt.signals.stats if rt is not None else {}
    return stats.get("late_dropped", 0) + stats.get("numerics_too_late", 0)


def _header(record: ConsumerRecord, name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return value
    return None


def _header_stamp(record: ConsumerRecord) -> int:
    value = _header(record, "ingest_ts_ms")
    return int(value) if value is not None else ingest_stamp(record)
