"""Partition-scoped durable state: key -> bytes per input partition, kept in a compacted changelog topic.

Each input partition ``p`` owns changelog partition ``p``. Besides the stage's own keys (device ids), every
partition holds one marker, :data:`MARKER_KEY`, whose value is the highest input offset per input topic that the
states written before it reflect. A worker that takes over a partition reads changelog partition ``p`` to its end
and resumes the input at marker + 1: whatever the consumer group committed (faust-streaming#606 commits over a
missing head offset; we do not depend on any committed offset).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

# Device ids match ``^[A-Za-z0-9._:-]+$``, so a key starting with a NUL byte can never be a device's.
MARKER_KEY = b"\x00offsets"
RESTORE_POLL_MS = 200


@dataclass
class PartitionState:
    """One input partition's keys (decoded by the stage) and the input offsets they reflect."""

    partition: int
    values: dict[bytes, bytes] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)  # input topic -> highest offset reflected

    def resume_offset(self, topic: str) -> int | None:
        last = self.offsets.get(topic)
        return None if last is None else last + 1

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One changelog record, as written by the live path or read back on restore."""
        if key == MARKER_KEY:
            self.offsets = {str(t): int(o) for t, o in json.loads(value or b"{}").items()}
        elif key is not None:
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value


def marker_value(offsets: dict[str, int]) -> bytes:
    return json.dumps(offsets, sort_keys=True, separators=(",", ":")).encode()


async def restore(changelog: str, partitions: list[int], client_kwargs: dict[str, object]) -> dict[int, PartitionState]:
    """Read changelog partitions to their current end (no consumer group, nothing committed)."""
    states = {p: PartitionState(p) for p in partitions}
    if not partitions:
        return states
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **client_kwargs)
    await consumer.start()
    try:
        tps = [TopicPartition(changelog, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=RESTORE_POLL_MS)
            for tp, records in batches.items():
                for record in records:
                    states[tp.partition].apply(record.key, record.value)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    for p, st in states.items():
        log.info("restored %s[%d]: %d keys, resume at %s", changelog, p, len(st.values), st.offsets)
    return states
