"""Partition-scoped durable state: key -> bytes per input partition, kept in a compacted changelog topic.

Each input partition ``p`` owns changelog partition ``p``. Besides the stage's own keys (device ids), every
partition holds one marker, :data:`MARKER_KEY`, whose value is the highest input offset per input topic that the
states written before it reflect. A worker that takes over a partition reads changelog partition ``p`` to its end
and resumes the input at marker + 1: whatever the consumer group committed (faust-streaming#606 commits over a
missing head offset; we do not depend on any committed offset).

A stage need not write every key it changed on every batch: :class:`Checkpoints` keeps, per key whose live state is
ahead of the changelog, the first input offset that state does not hold yet. The marker is then the *floor*: one
below the oldest such offset, so every input above it is read again after a crash, and the stage skips what each
key's stored state already reflects. Writing a device's state every few seconds instead of every batch is what
keeps the changelog small (issue 11); the price is a replay of at most that many seconds after a kill -9.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
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
    offsets: dict[str, int] = field(default_factory=dict)  # input topic -> highest offset the changelog reflects
    processed: dict[str, int] = field(default_factory=dict)  # input topic -> highest offset handled (in memory)

    def handled(self, topic: str) -> int:
        """The highest offset of ``topic`` handled here: processed in this run, or reflected by the changelog."""
        return max(self.processed.get(topic, -1), self.offsets.get(topic, -1))

    def resume_offset(self, topic: str) -> int | None:
        last = self.offsets.get(topic)
        return None if last is None else last + 1

    def marker_after(self, handled: Iterable[tuple[str, int]], pending: dict[str, int]) -> dict[str, int]:
        """Note the (topic, offset) inputs just handled; the marker the changelog may then carry: per topic the
        highest offset handled, or one below the oldest input that a key state not written yet needs."""
        for topic, offset in handled:
            self.processed[topic] = max(self.handled(topic), offset)
        offsets = dict(self.offsets)
        for topic in self.processed:
            top = self.handled(topic)
            offsets[topic] = min(top, pending[topic] - 1) if topic in pending else top
        return offsets

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One changelog record, as written by the live path or read back on restore."""
        if key == MARKER_KEY:
            self.offsets = {str(t): int(o) for t, o in json.loads(value or b"{}").items()}
        elif key is not None:
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value


class Checkpoints:
    """Keys whose live state is ahead of the changelog: since when, and from which input offset on."""

    def __init__(self) -> None:
        # key -> (first offset not in its stored state, since when); insertion order is the order of ``since``
        self.pending: dict[bytes, tuple[int, float]] = {}

    def touch(self, key: bytes, offset: int) -> None:
        if key not in self.pending:
            self.pending[key] = (offset, time.monotonic())

    def due(self, max_age_s: float) -> list[bytes]:
        """Keys changed at least ``max_age_s`` ago and not written since (oldest first)."""
        cutoff = time.monotonic() - max_age_s
        due = []
        for key, (_, since) in self.pending.items():  # in the order they were touched: ``since`` only grows
            if since > cutoff:
                break
            due.append(key)
        return due

    def select(self, max_age_s: float, *, everything: bool) -> list[bytes]:
        """What a checkpoint writes: the keys that are due, or with ``everything`` all that are pending."""
        return list(self.pending) if everything else self.due(max_age_s)

    def written(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.pending.pop(key, None)

    def oldest(self) -> int | None:
        """The oldest input offset that some key's stored state does not reflect yet (None: every key written)."""
        return min((offset for offset, _ in self.pending.values()), default=None)

    def __len__(self) -> int:
        return len(self.pending)


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
