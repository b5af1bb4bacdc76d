"""Record topics into session files; replay session files into the telemetry topic (record, replay).

The logic is in pure functions (pacing, timestamp rewriting, fan-out, loop continuation, stop conditions)
and in :func:`replay`, which takes the send function, clock and sleep as arguments; the Kafka calls are
the thin ``_cmd_*`` handlers at the bottom.

Replay rules:

- Pacing follows the Kafka record timestamps of the session: record ``i`` is sent
  ``(t_i - t_0) / speed`` seconds after the start (``speed=inf``: as fast as possible). A record whose
  timestamp goes back in time is sent at once, never before the one ahead of it.
- Timestamps (the message ``ts_ms`` and the record timestamp) are shifted by one constant, so that the
  first message is "now" (``anchor="start"``) or the last one is (``anchor="end"``, the default for replays
  faster than real time, so that event time does not run ahead of the ingest's future-timestamp margin), or kept
  as recorded.
- Fan-out K > 1 sends each message as K virtual devices ``<id>:k<i>`` (key too); each keeps the
  recorded seq, so each virtual device has its own independent seq stream. The separator must stay inside
  the contract's device-id pattern (``~`` would be dead-lettered); ``FANOUT_SEPARATOR`` is the one place for it.
- Loop pass ``L`` adds ``L * period`` to every timestamp (``period`` = session span + its typical
  step) and ``L * (max seq + 1)`` to each device's seq, so both keep increasing.
- Values that are not a JSON object are sent unchanged (a replay of bad input must stay bad input).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamer.sessions.format import SessionRecord, SessionWriter

log = logging.getLogger(__name__)

FANOUT_SEPARATOR = ":k"
DEFAULT_STEP_MS = 1000  # loop step when a session has a single timestamp
BACKWARD_JUMP_MS = 10_000  # partitions of a recorded topic interleave a little; more means unordered


@dataclass(frozen=True)
class SessionStats:
    """What a first pass over a session tells the replay: span, step and per-device seq range."""

    count: int
    first_ts_ms: int
    last_ts_ms: int
    step_ms: int
    max_seq: Mapping[str, int] = field(default_factory=dict)
    backward_jumps: int = 0  # records more than BACKWARD_JUMP_MS older than the record before them

    @property
    def loop_period_ms(self) -> int:
        return self.last_ts_ms - self.first_ts_ms + self.step_ms


@dataclass(frozen=True)
class ReplayPlan:
    speed: float = 1.0  # math.inf: as fast as possible
    shift_ms: int = 0  # added to every timestamp
    fan_out: int = 1
    loop_period_ms: int = 0
    max_seq: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OutRecord:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()


def _message(value: bytes | None) -> dict[str, Any] | None:
    """The JSON object in a value, or None for anything else (sent through unchanged)."""
    if value is None:
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def scan(records: Iterable[SessionRecord]) -> SessionStats:
    """First pass: count, timestamp span, typical step between distinct timestamps, max seq per device."""
    timestamps: set[int] = set()
    max_seq: dict[str, int] = {}
    count = jumps = 0
    previous = -math.inf
    for record in records:
        count += 1
        timestamps.add(record.timestamp_ms)
        jumps += previous - record.timestamp_ms > BACKWARD_JUMP_MS
        previous = record.timestamp_ms
        msg = _message(record.value)
        if msg and isinstance(msg.get("device_id"), str) and isinstance(msg.get("seq"), int):
            max_seq[msg["device_id"]] = max(max_seq.get(msg["device_id"], -1), msg["seq"])
    ordered = sorted(timestamps) or [0]
    steps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    step_ms = int(statistics.median(steps)) if steps else DEFAULT_STEP_MS
    return SessionStats(count, ordered[0], ordered[-1], step_ms, max_seq, jumps)


def timestamp_shift_ms(
    stats: SessionStats, now_ms: int, *, keep: bool = False, anchor: Literal["start", "end"] = "start"
) -> int:
    """The constant added to every timestamp so the first (or last) message is ``now_ms``."""
    if keep:
        return 0
    return now_ms - (stats.first_ts_ms if anchor == "start" else stats.last_ts_ms)


def resolve_anchor(anchor: str, speed: float) -> Literal["start", "end"]:
    """``auto``: real time anchors the first message at now; a faster replay anchors the last one, since its
    event time would otherwise run ahead of the wall clock."""
    if anchor == "auto":
        return "start" if speed <= 1.0 else "end"
    return "end" if anchor == "end" else "start"


def send_offset_s(timestamp_ms: int, first_ts_ms: int, speed: float) -> float:
    """Seconds after the start at which a record is due."""
    if math.isinf(speed):
        return 0.0
    return max(0.0, (timestamp_ms - first_ts_ms) / 1000.0 / speed)


def fanout_id(device_id: str, copy: int, fan_out: int) -> str:
    """The id of virtual device ``copy`` (the original id when there is no fan-out)."""
    return device_id if fan_out == 1 else f"{device_id}{FANOUT_SEPARATOR}{copy}"


def rewrite(record: SessionRecord, plan: ReplayPlan, loop: int = 0) -> list[OutRecord]:
    """The records a session record becomes: one per fan-out copy, timestamps and seqs continued."""
    dt_ms = plan.shift_ms + loop * plan.loop_period_ms
    msg = _message(record.value)
    out = []
    for copy in range(plan.fan_out):
        key, value = record.key, record.value
        if key is not None and plan.fan_out > 1:
            key = fanout_id(key.decode("utf-8", "replace"), copy, plan.fan_out).encode()
        if msg is not None and (dt_ms or loop or plan.fan_out > 1):
            value, key = _rewrite_message(msg, plan, loop, dt_ms, copy, key)
        out.append(OutRecord(key, value, record.timestamp_ms + dt_ms, record.headers))
    return out


def _rewrite_message(
    msg: dict[str, Any], plan: ReplayPlan, loop: int, dt_ms: int, copy: int, key: bytes | None
) -> tuple[bytes, bytes | None]:
    new = dict(msg)
    device_id = msg.get("device_id")
    if isinstance(msg.get("ts_ms"), int):
        new["ts_ms"] = msg["ts_ms"] + dt_ms
    if isinstance(device_id, str):
        if isinstance(msg.get("seq"), int):
            new["seq"] = msg["seq"] + loop * (plan.max_seq.get(device_id, msg["seq"]) + 1)
        new["device_id"] = fanout_id(device_id, copy, plan.fan_out)
        key = new["device_id"].encode()
    if isinstance(msg.get("patient_id"), str):  # a virtual device is a virtual patient too
        new["patient_id"] = fanout_id(msg["patient_id"], copy, plan.fan_out)
    return json.dumps(new, separators=(",", ":"), ensure_ascii=False).encode(), key


@dataclass
class ReplayResult:
    sent: int = 0
    passes: int = 0  # completed passes over the session
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else math.inf


def replay(
    open_session: Callable[[], Iterable[SessionRecord]],
    send: Callable[[OutRecord], None],
    plan: ReplayPlan,
    first_ts_ms: int,
    *,
    passes: int | None = 1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    """Send the session ``passes`` times (None: until Ctrl-C), each record at its paced time.

    Ctrl-C ends the replay early and returns what was sent so far (``interrupted=True``).
    """
    result, start = ReplayResult(), clock()
    try:
        while passes is None or result.passes < passes:
            loop_ms = result.passes * plan.loop_period_ms
            for record in open_session():
                due_s = send_offset_s(record.timestamp_ms + loop_ms, first_ts_ms, plan.speed)
                if due_s > clock() - start:
                    sleep(due_s - (clock() - start))
                for out in rewrite(record, plan, result.passes):
                    send(out)
                    result.sent += 1
                result.elapsed_s = clock() - start
                if on_progress:
                    on_progress(result)
            result.passes += 1
    except KeyboardInterrupt:
        result.interrupted = True
    result.elapsed_s = clock() - start
    return result


def progress_line(sent: int, total: int | None, elapsed_s: float, width: int = 30) -> str:
    """One progress-bar line: a bar when the total is known, else a count; always the rate."""
    rate = f"{sent / elapsed_s:,.0f} msg/s" if elapsed_s > 0 else "- msg/s"
    if not total:
        return f"{sent:,} sent  {rate}"
    done = min(1.0, sent / total)
    bar = "#" * int(done * width) + "-" * (width - int(done * width))
    return f"[{bar}] {sent:,}/{total:,} {done:4.0%}  {rate}"


def should_stop(count: int, elapsed_s: float, *, max_messages: int | None, max_seconds: float | None) -> bool:
    """Record stop condition: N messages or N seconds, whichever comes first (None: no limit)."""
    if max_messages is not None and count >= max_messages:
        return True
    return max_seconds is not None and elapsed_s >= max_seconds


def from_consumer_record(msg: Any) -> SessionRecord:
    """A kafka-python ``ConsumerRecord`` as a session record (headers as recorded)."""
    return SessionRecord(
        topic=msg.topic,
        key=msg.key,
        value=msg.value,
        timestamp_ms=int(msg.timestamp),
        partition=int(msg.partition),
        offset=int(msg.offset),
        headers=tuple((str(name), value) for name, value in (msg.headers or [])),
    )


def _poll_forever(consumer: Any, poll_ms: int) -> Iterator[SessionRecord | None]:
    """Consumed records, and a None after every poll so that time limits apply on idle topics too."""
    while True:
        for batch in consumer.poll(timeout_ms=poll_ms).values():
            yield from (from_consumer_record(m) for m in batch)
        yield None


def record_topics(
    consumer: Any, writer: SessionWriter, *, max_messages: int | None, max_seconds: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> int:  # fmt: skip
    """Copy consumed records into ``writer`` until a limit is reached; returns the count."""
    start = clock()
    for record in _poll_forever(consumer, poll_ms=200):
        if record is not None:
            writer.write(record)
        if should_stop(writer.count, clock() - start, max_messages=max_messages, max_seconds=max_seconds):
            break
    return writer.count


# ---- command line: thin Kafka adapters ----
