"""Acknowledgements to the device: ``vitals.alerts.ack`` (keyed by alert id) -> the device's own partition.

The ack topic is keyed by alert id, so an ack lands on any partition; the device's state lives on the partition
of its telemetry. The router finds the alert's device and partition in the alerts topic (alerts are published on
their device's partition, keyed by alert id, compacted) and forwards the ack, keyed by device id, to the internal
topic that the pipeline stage reads together with that partition's telemetry. The pipeline applies it where the
device's state lives, whichever worker that is now.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streamer.config import Settings
from streamer.contracts import AlertAck, ReasonCode
from streamer.ingest.validation import Rejected, error_summary, loggable_id
from streamer.kafka.agents import to_dlq
from streamer.kafka.runner import Effects, Outgoing
from streamer.kafka.store import PartitionState

log = logging.getLogger(__name__)


class AlertIndex:
    """alert id -> (device id, partition), read from the alerts topic itself (all partitions, no group)."""

    def __init__(self, topic: str, partitions: int, client_kwargs: dict[str, object]) -> None:
        self.topic, self.partitions = topic, partitions
        self.where: dict[str, tuple[str, int]] = {}
        self.consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **client_kwargs
        )
        self._started = False

    async def catch_up(self) -> None:
        """Read what the alerts topic holds now."""
        if not self._started:
            await self.consumer.start()
            self.consumer.assign([TopicPartition(self.topic, p) for p in range(self.partitions)])
            self._started = True
        tps = list(self.consumer.assignment())
        end = await self.consumer.end_offsets(tps)
        pending = {tp for tp in tps if await self.consumer.position(tp) < end[tp]}
        while pending:
            for records in (await self.consumer.getmany(*pending, timeout_ms=200)).values():
                for record in records:
                    self._learn(record)
            pending = {tp for tp in pending if await self.consumer.position(tp) < end[tp]}

    def _learn(self, record: ConsumerRecord) -> None:
        try:
            alert = json.loads(record.value or b"{}")
            self.where[str(alert["alert_id"])] = (str(alert["device_id"]), record.partition)
        except (ValueError, KeyError, TypeError):
            log.warning(
                "unreadable record on the alerts topic at %s[%d]@%d", record.topic, record.partition, record.offset
            )

    async def stop(self) -> None:
        if self._started:
            await self.consumer.stop()


class AckRouter:
    """A stage without state of its own: each ack forwarded once to the device's partition (acks are idempotent)."""

    name = "acks"

    def __init__(self, settings: Settings, index: AlertIndex, by_device_topic: str) -> None:
        self.settings, self.index, self.by_device_topic = settings, index, by_device_topic
        self.topics = [settings.topics.alerts_ack]
        self.counts: Counter[str] = Counter()

    def assigned(self, states: dict[int, PartitionState]) -> None:
        pass

    def revoked(self, partitions: list[int]) -> None:
        pass

    async def handle(self, state: PartitionState, records: list[ConsumerRecord]) -> Effects:
        effects = Effects()
        await self.index.catch_up()
        for record in records:
            try:
                ack = AlertAck.model_validate_json(record.value or b"")
            except ValueError as exc:  # logged by field and error type only: an ack may carry free text
                log.warning(
                    "malformed acknowledgement %s: %s", self._src(record), error_summary(exc, AlertAck.model_fields)
                )
                summary = error_summary(exc, AlertAck.model_fields)[:120]
                rejected = Rejected(ReasonCode.SCHEMA_VIOLATION, f"malformed acknowledgement: {exc}", None, summary)
                effects.outgoing.append(to_dlq(self.settings, record, rejected, self.counts))
                continue
            target = self.index.where.get(ack.alert_id)
            if target is None:
                self.counts["ack.unknown_alert"] += 1
                log.warning("acknowledgement for unknown alert %s (%s)", loggable_id(ack.alert_id), self._src(record))
                continue
            device, partition = target
            self.counts["ack.forwarded"] += 1
            effects.outgoing.append(Outgoing(self.by_device_topic, device.encode(), record.value, partition))
        return effects

    @staticmethod
    def _src(record: ConsumerRecord) -> str:
        return f"{record.topic}[{record.partition}]@{record.offset}"
