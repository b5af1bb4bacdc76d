"""Faust agents: thin adapters that move bytes between topics and the plain-Python stages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import faust

from streamer.config import Settings
from streamer.contracts import ReasonCode
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Accepted, Rejected, dead_letter, error_summary, loggable_id, validate
from streamer.kafka import metrics
from streamer.kafka.app import AppTopics
from streamer.logs import DeadLetterLog

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


Outgoing = tuple[str, bytes | None, bytes, dict[str, bytes] | None]


async def publish(app: faust.App, outgoing: list[Outgoing]) -> None:
    """Send a batch's records straight through the producer and wait until the broker has them all.

    Faust's ``topic.send`` costs an attachment and a future per record; one batch of plain producer sends, awaited
    before the batch's offsets can be committed, keeps at-least-once delivery at a fraction of the cost
    (bench/results/ingest.json).
    """
    if not outgoing:
        return
    producer = app.producer
    futures = [
        await producer.send(topic, key, value, None, None, list(headers.items()) if headers else None)
        for topic, key, value, headers in outgoing
    ]
    await asyncio.gather(*futures)


async def warm_metadata(app: faust.App, *tables: Any) -> None:
    """Fetch partition metadata of the tables' changelog topics before the first write.

    Tables with ``use_partitioner`` hash the key synchronously, which fails with a TypeError inside aiokafka when
    the producer has never seen the changelog topic yet.
    """
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    for table in tables:
        await producer.partitions_for(table.changelog_topic.get_topic_name())


def wire(app: faust.App, topics: AppTopics, settings: Settings) -> None:
    """Register the agents and tables of the pipeline on ``app``."""
    _wire_ingest(app, topics, settings)
    _wire_pipeline(app, topics, settings)
    if settings.fhir_export:  # optional: FHIR Bundles on vitals.fhir (streamer/kafka/fhir_export.py)
        from streamer.kafka.fhir_export import wire_fhir_export

        wire_fhir_export(app, topics, settings)


def _wire_ingest(app: faust.App, topics: AppTopics, settings: Settings) -> None:
    # Keyed by device id; written after each batch, so the changelog partition comes from the key (the
    # telemetry topic is keyed by device id too, so both land on the same partition number).
    seq_table = app.Table(
        "ingest-seq",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=bytes,  # raw keys; values use the app default serializer (json)
    )
    counts: Counter[str] = Counter()
    dlq_log = DeadLetterLog(log, interval_s=10.0)  # flushed by report_counts
    valid_topic, dlq_topic = settings.topics.telemetry_valid, settings.topics.dlq

    @app.agent(topics.telemetry, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        await warm_metadata(app, seq_table)
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.stream_take_max, within=settings.stream_take_within_s
        ):
            started_s = time.perf_counter()
            trackers: dict[bytes, SeqTracker] = {}
            outgoing: list[Outgoing] = []
            for event in events:
                _ingest_one(event, trackers, outgoing)
            await publish(app, outgoing)
            for key, tracker in trackers.items():
                seq_table[key] = tracker.to_state()
            metrics.batch_done("ingest", len(events), started_s)

    def _ingest_one(event: Any, trackers: dict[bytes, SeqTracker], outgoing: list[Outgoing]) -> None:
        msg, raw = event.message, event.value
        now = _now_ms()
        result = validate(
            raw if isinstance(raw, bytes) else b"",
            now_ms=now,
            max_message_bytes=settings.max_message_bytes,
            future_margin_ms=settings.future_margin_ms,
        )
        if isinstance(result, Accepted):
            device = result.message.device_id.encode()
            if msg.key != device:
                result = Rejected(
                    ReasonCode.KEY_MISMATCH,
                    f"record key {msg.key!r} is not the device_id {result.message.device_id!r}",
                    result.message.device_id,
                )
        if isinstance(result, Rejected):
            outgoing.append(_to_dlq(raw, result, msg, now))
            return
        tracker = trackers.get(device)
        if tracker is None:
            tracker = trackers[device] = SeqTracker.from_state(seq_table.get(device), settings.dedup_window)
        status = tracker.check(result.message.seq, result.message.ts_ms)
        if status is SeqStatus.DUPLICATE:
            counts["duplicate"] += 1
            metrics.DUPLICATES.inc()
        elif status is SeqStatus.STALE:
            stale = Rejected(
                ReasonCode.STALE_SEQ,
                f"seq {result.message.seq} is older than the dedup window "
                f"({settings.dedup_window}) below seq {tracker.max_seq}",
                result.message.device_id,
            )
            outgoing.append(_to_dlq(raw, stale, msg, now))
        else:
            counts["valid"] += 1
            metrics.VALID.inc()
            headers = {"ingest_ts_ms": str(now).encode(), "src": f"{msg.topic}[{msg.partition}]@{msg.offset}".encode()}
            outgoing.append((valid_topic, device, raw, headers))

    def _to_dlq(raw: Any, rejected: Rejected, msg: Any, now: int) -> Outgoing:
        counts[f"dlq.{rejected.code}"] += 1
        metrics.dead_lettered(rejected.code)
        body = raw if isinstance(raw, bytes) else b""
        letter = dead_letter(body, rejected, topic=msg.topic, partition=msg.partition, offset=msg.offset, now_ms=now)
        dlq_log.add(
            rejected.code, f"{msg.topic}[{msg.partition}]@{msg.offset}", rejected.device_id, rejected.log_text()
        )
        key = rejected.device_id.encode() if rejected.device_id else None
        return (dlq_topic, key, letter.model_dump_json().encode(), None)

    @app.timer(interval=10.0)
    async def report_counts() -> None:
        dlq_log.flush()
        if counts:
            log.info("ingest counts: %s", dict(sorted(counts.items())))


def _load_inference(settings: Settings) -> Any | None:
    try:
        from streamer.inference.stage import InferenceStage

        return InferenceStage(settings, weights_dir=settings.weights_dir)
    except Exception:  # the rules go on without models; the stage itself reports MODEL_UNAVAILABLE when it can
        log.exception("inference stage could not be created; running on rules alone")
        return None


def _wire_pipeline(app: faust.App, topics: AppTopics, settings: Settings) -> None:
    from streamer.contracts import TELEMETRY, AlertAck
    from streamer.pipeline import Pipeline, PipelineOutput
    from streamer.state import decode_state, encode_state

    state_table = app.Table(  # values: streamer.state codec (binary buffers, zlib)
        "device-state",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=bytes,
        value_type=bytes,
    )

    def load_state(device: str) -> dict[str, Any] | None:
        packed = state_table.get(device.encode())
        return decode_state(packed) if packed else None

    alert_index = app.Table(  # alert_id -> device_id, so an acknowledgement finds its device after a restart
        "alert-index",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=bytes,  # raw keys; values use the app default serializer (json)
    )
    pipeline = Pipeline(settings, _load_inference(settings))
    metrics.watch_pipeline(pipeline)
    lock = asyncio.Lock()  # the stream, the wall-clock timer and acks all touch the same device runtimes
    names = settings.topics

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        pipeline.forget()
        metrics.state_forgotten()

    def _outgoing(out: PipelineOutput) -> list[Outgoing]:
        now = _now_ms()
        items: list[Outgoing] = []
        for f in out.features:
            items.append((names.features, f.device_id.encode(), f.model_dump_json(exclude_none=True).encode(), None))
        for sc in out.scores:
            items.append((names.scores, sc.device_id.encode(), sc.model_dump_json().encode(), None))
        for a in out.alerts:
            stamped = a.model_copy(update={"latency": a.latency.model_copy(update={"publish_ts_ms": now})})
            items.append((names.alerts, a.device_id.encode(), stamped.model_dump_json().encode(), None))
        metrics.alerts_published(out.alerts, now)
        return items

    def _persist(devices: set[str], out: PipelineOutput) -> None:
        for dev in devices:
            rt = pipeline.devices.get(dev)
            if rt is not None:
                packed = encode_state(rt.to_state())
                state_table[dev.encode()] = packed
                metrics.state_written(dev, len(packed))
        for a in out.alerts:
            alert_index[a.alert_id.encode()] = a.device_id

    @app.agent(topics.telemetry_valid, name="pipeline")
    async def process(stream: faust.StreamT[bytes]) -> None:
        await warm_metadata(app, state_table, alert_index)
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.stream_take_max, within=settings.stream_take_within_s
        ):
            started_s = time.perf_counter()
            batch = []
            for event in events:
                headers = dict(event.message.headers or ())
                ingest = headers.get("ingest_ts_ms")
                batch.append((TELEMETRY.validate_json(event.value), int(ingest) if ingest else None))
            devices = {m.device_id for m, _ in batch}
            async with lock:
                states = {d: load_state(d) for d in devices if d not in pipeline.devices}
                try:
                    out = await loop.run_in_executor(None, pipeline.process, batch, states)
                except Exception:  # a bug met by some input: find it, dead-letter it, keep the rest flowing
                    log.exception("pipeline failed on a batch of %d; retrying message by message", len(batch))
                    await _one_by_one(events, batch, devices)
                    continue
                await publish(app, _outgoing(out))
                _persist(devices, out)
            metrics.batch_done("pipeline", len(events), started_s)

    async def _one_by_one(events: list[Any], batch: list[Any], devices: set[str]) -> None:
        loop = asyncio.get_running_loop()
        for dev in devices:  # their live objects may hold half a batch: restart them from the table
            pipeline.devices.pop(dev, None)
        for event, item in zip(events, batch, strict=True):
            dev = item[0].device_id
            try:
                state = None if dev in pipeline.devices else load_state(dev)
                out = await loop.run_in_executor(None, pipeline.process, [item], {dev: state})
            except Exception as exc:
                pipeline.devices.pop(dev, None)
                msg = event.message
                reason = f"{type(exc).__name__}: {exc}"[:2000]
                rejected = Rejected(ReasonCode.PROCESSING_ERROR, reason, dev, type(exc).__name__)
                metrics.dead_lettered(rejected.code)
                letter = dead_letter(
                    event.value, rejected, topic=msg.topic, partition=msg.partition, offset=msg.offset, now_ms=_now_ms()
                )
                log.error("dead-letter %s[%d]@%d %s", msg.topic, msg.partition, msg.offset, rejected.log_text())
                await publish(app, [(names.dlq, dev.encode(), letter.model_dump_json().encode(), None)])
                continue
            await publish(app, _outgoing(out))
            _persist({dev}, out)

    @app.timer(interval=1.0)
    async def wall_clock() -> None:
        loop = asyncio.get_running_loop()
        async with lock:
            out = await loop.run_in_executor(None, pipeline.tick, _now_ms())
            if out.features or out.alerts or out.scores:
                await publish(app, _outgoing(out))
                touched = {f.device_id for f in out.features} | {a.device_id for a in out.alerts}
                _persist(touched | {sc.device_id for sc in out.scores}, out)

    @app.agent(topics.alerts_ack, name="acks")
    async def acks(stream: faust.StreamT[bytes]) -> None:
        await warm_metadata(app, state_table, alert_index)
        async for raw in stream:
            metrics.MESSAGES_IN.labels("acks").inc()
            try:
                ack = AlertAck.model_validate_json(raw)
            except ValueError as exc:  # by field and error type only: the input may hold free text
                log.warning("ignoring a malformed acknowledgement: %s", error_summary(exc, AlertAck.model_fields))
                continue
            device = ack.device_id or alert_index.get(ack.alert_id.encode())
            if not device:
                log.warning("acknowledgement for unknown alert %s", loggable_id(ack.alert_id))
                continue
            async with lock:
                if device not in pipeline.devices:
                    pipeline.runtime(device, load_state(device))
                alerts = pipeline.ack(ack, device)
                out = PipelineOutput(alerts=alerts)
                await publish(app, _outgoing(out))
                _persist({device}, out)
