"""Stage 1 on Kafka, and the worker that wires the stages: telemetry -> validated, deduplicated, dead-lettered.

The stages are plain classes over :class:`streamer.kafka.runner.PartitionedRunner`: each handles one input
partition's batch and returns the records to publish and the key states to make durable. The ingest stage keeps,
per device, the dedup tracker and the highest telemetry offset it reflects (faust-streaming#606 shows why
committed offsets alone cannot be trusted); a telemetry record at or below that offset was handled already.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from streamer.config import Settings
from streamer.contracts import ReasonCode
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Accepted, Message, Rejected, dead_letter, validate
from streamer.kafka import metrics
from streamer.kafka.runner import Effects, Outgoing
from streamer.kafka.store import Checkpoints, PartitionState
from streamer.logs import DeadLetterLog
from streamer.state import decode_state, encode_state

log = logging.getLogger(__name__)
# Dead-letter warnings of every stage, aggregated per reason (flushed by the worker's counts timer).
DLQ_LOG = DeadLetterLog(log, interval_s=10.0)


def now_ms() -> int:
    return int(time.time() * 1000)


def ingest_stamp(record: ConsumerRecord) -> int:
    """The record's own timestamp (producer or broker time): the same on every redelivery, unlike the wall clock."""
    return int(record.timestamp) if record.timestamp and record.timestamp > 0 else now_ms()


def src_label(record: ConsumerRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def to_dlq(settings: Settings, record: ConsumerRecord, rejected: Rejected, counts: Counter[str]) -> Outgoing:
    """A dead letter for ``record`` (the original bytes, the reason, the origin), keyed by its device when known."""
    counts[f"dlq.{rejected.code}"] += 1
    metrics.dead_lettered(rejected.code)
    raw = record.value if isinstance(record.value, bytes) else b""
    letter = dead_letter(
        raw, rejected, topic=record.topic, partition=record.partition, offset=record.offset, now_ms=now_ms()
    )
    DLQ_LOG.add(rejected.code, src_label(record), rejected.device_id, rejected.log_text())  # never the values
    key = rejected.device_id.encode() if rejected.device_id else None
    return Outgoing(settings.topics.dlq, key, letter.model_dump_json().encode())


class ParsedMessages:
    """The messages ingest has just validated, for the pipeline stage of the same process to take instead of
    parsing the same bytes again (the second ``validate_json`` was about 3% of the worker's GIL time, py-spy at 1,000
    devices). Keyed by the forwarded record's ``src`` header; taken only when the bytes are the same, so a record
    from another process's ingest, or after an eviction, is simply validated. At most ``cap`` entries, the oldest
    dropped first (the pipeline that lags ingest by more than that parses again). Ingest adds on the event loop,
    the pipeline takes in a worker thread: one lock.

    An ``OrderedDict`` so that dropping the oldest is O(1) (a plain dict's ``next(iter(d))`` walks the slots the
    takes emptied). The drop still costs the freeing of the dropped message (2.9% of the GIL samples at 1,000
    devices with the pipeline far behind; docs/RESULTS.md "Fleet"): what is wasted there is the lag itself."""

    def __init__(self, cap: int = 10_000) -> None:
        self.cap = cap
        self._by_src: OrderedDict[bytes, tuple[bytes, Message]] = OrderedDict()
        self._lock = threading.Lock()
        self.taken = 0

    def add(self, src: bytes, raw: bytes, msg: Message) -> None:
        with self._lock:
            self._by_src[src] = (raw, msg)
            if len(self._by_src) > self.cap:
                self._by_src.popitem(last=False)

    def take(self, src: bytes | None, raw: bytes | None) -> Message | None:
        if src is None:
            return None
        with self._lock:
            entry = self._by_src.pop(src, None)
        if entry is None or entry[0] != raw:
            return None
        self.taken += 1
        return entry[1]


@dataclass
class _Seen:
    tracker: SeqTracker
    offset: int  # highest telemetry offset this tracker reflects


class IngestStage:
    """Validate, check the key, deduplicate by seq; forward to the valid topic on the same partition."""

    name = "ingest"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = [settings.topics.telemetry]
        self.seen: dict[bytes, _Seen] = {}
        self.pending: dict[int, Checkpoints] = {}  # partition -> trackers ahead of the changelog
        self.counts: Counter[str] = Counter()
        self.parsed = ParsedMessages()  # handed to the pipeline stage of this process (``DeliveryWorker``)

    def assigned(self, states: dict[int, PartitionState]) -> None:
        self.seen.clear()  # decoded again, lazily, from the restored partition states
        self.pending = {p: Checkpoints() for p in states}

    def revoked(self, partitions: list[int]) -> None:
        self.seen.clear()
        self.pending.clear()

    def replay_from(self, partition: int) -> dict[str, int]:
        oldest = self.pending[partition].oldest() if partition in self.pending else None
        return {} if oldest is None else {self.topics[0]: oldest}

    async def checkpoint(self, state: PartitionState, *, everything: bool) -> Effects:
        effects = Effects()
        pending = self.pending.get(state.partition)
        if pending is not None:
            due = pending.select(self.settings.checkpoint_s, everything=everything)
            for device in due:
                s = self.seen[device]
                effects.writes[device] = encode_state({"seen": s.tracker.to_state(), "offset": s.offset})
            pending.written(due)
        return effects

    async def handle(self, state: PartitionState, records: list[ConsumerRecord]) -> Effects:
        effects = Effects()
        started_s = time.perf_counter()
        for record in records:
            try:
                self._one(state, record, effects)
            except Exception as exc:  # a bug met by some input: dead-letter it, keep the batch flowing
                log.exception("ingest failed on %s", src_label(record))
                reason = f"{type(exc).__name__}: {exc}"
                rejected = Rejected(ReasonCode.PROCESSING_ERROR, reason, None, type(exc).__name__)
                effects.outgoing.append(to_dlq(self.settings, record, rejected, self.counts))
        effects.writes = (await self.checkpoint(state, everything=False)).writes
        metrics.batch_done("ingest", len(records), started_s)
        return effects

    def _one(self, state: PartitionState, record: ConsumerRecord, effects: Effects) -> None:
        result = self._validate(record)
        if isinstance(result, Rejected):
            effects.outgoing.append(to_dlq(self.settings, record, result, self.counts))
            return
        msg = result.message
        device = msg.device_id.encode()
        seen = self._seen(state, device)
        if record.offset <= seen.offset:
            self.counts["redelivered"] += 1  # its outputs were durable before this state was
            return
        seen.offset = record.offset
        self.pending[state.partition].touch(device, record.offset)
        status = seen.tracker.check(msg.seq, msg.ts_ms)
        if status is SeqStatus.DUPLICATE:
            self.counts["duplicate"] += 1
            metrics.DUPLICATES.inc()
        elif status is SeqStatus.STALE:
            reason = f"seq {msg.seq} is older than the dedup window ({self.settings.dedup_window}) below seq "
            stale = Rejected(ReasonCode.STALE_SEQ, reason + str(seen.tracker.max_seq), msg.device_id, "seq stale")
            effects.outgoing.append(to_dlq(self.settings, record, stale, self.counts))
        else:
            effects.outgoing.append(self._forward(record, msg))

    def _validate(self, record: ConsumerRecord) -> Accepted | Rejected:
        raw = record.value if isinstance(record.value, bytes) else b""
        result = validate(
            raw,
            now_ms=ingest_stamp(record),
            max_message_bytes=self.settings.max_message_bytes,
            future_margin_ms=self.settings.future_margin_ms,
        )
        if isinstance(result, Accepted) and record.key != result.message.device_id.encode():
            device_id = result.message.device_id
            return Rejected(
                ReasonCode.KEY_MISMATCH, f"record key is not the device_id {device_id!r}", device_id, "key mismatch"
            )
        return result

    def _seen(self, state: PartitionState, device: bytes) -> _Seen:
        seen = self.seen.get(device)
        if seen is None:
            packed = state.values.get(device)
            stored = decode_state(packed) if packed else {}
            tracker = SeqTracker.from_state(stored.get("seen"), self.settings.dedup_window)
            seen = self.seen[device] = _Seen(tracker, int(stored.get("offset", -1)))
        return seen

    def _forward(self, record: ConsumerRecord, msg: Message) -> Outgoing:
        self.counts["valid"] += 1
        metrics.VALID.inc()
        src = src_label(record).encode()
        headers = (("ingest_ts_ms", str(ingest_stamp(record)).encode()), ("src", src))
        self.parsed.add(src, record.value, msg)
        # Same partition as the input: the pipeline's device state lives where ingest's dedup state lives.
        return Outgoing(
            self.settings.topics.telemetry_valid, msg.device_id.encode(), record.value, record.partition, headers
        )
