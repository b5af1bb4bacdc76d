"""Kafka-facing commands: ``worker``, ``produce``, ``tail`` and ``topics``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import IO

from streamer.config import Settings

log = logging.getLogger(__name__)


def producer(settings: Settings, **overrides: object):  # -> kafka.KafkaProducer
    """A kafka-python producer with the project's delivery settings (acks=all, idempotent)."""
    from kafka import KafkaProducer

    kwargs: dict[str, object] = dict(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
        **settings.kafka_client_kwargs(),
    )
    kwargs.update(overrides)
    return KafkaProducer(**kwargs)


def iter_json_lines(stream: IO[bytes]) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) per non-empty line: the key is the line's device_id when it parses, else None."""
    for line in stream:
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        key = None
        try:
            obj = json.loads(raw)
            if isinstance(obj, dict) and isinstance(obj.get("device_id"), str):
                key = obj["device_id"].encode()
        except ValueError:
            pass  # malformed lines are sent as they are: ingest dead-letters them with a reason
        yield key, raw


def produce_lines(settings: Settings, records: Iterable[tuple[bytes | None, bytes]], topic: str) -> int:
    """Send every record and wait for the broker; raise the first send failure (e.g. an ACL refusal)."""
    prod = producer(settings)
    sent, failures = 0, list[Exception]()
    try:
        for key, value in records:
            prod.send(topic, key=key, value=value).add_errback(failures.append)
            sent += 1
            if failures:
                break
        prod.flush()
    finally:
        prod.close()
    if failures:
        raise failures[0]
    return sent


def consume(
    settings: Settings,
    topics: list[str],
    *,
    from_beginning: bool,
    idle_timeout_s: float | None,
    max_messages: int | None = None,
):  # -> Iterator[ConsumerRecord]
    """Yield records of ``topics`` (no consumer group, nothing committed) until idle or ``max_messages``."""
    from kafka import KafkaConsumer

    from streamer.kafka.errors import require_topics

    require_topics(settings, topics, "READ")
    consumer = KafkaConsumer(
        *topics,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        consumer_timeout_ms=int(idle_timeout_s * 1000) if idle_timeout_s else float("inf"),
        **settings.kafka_client_kwargs(),
    )
    try:
        for n, record in enumerate(consumer, start=1):
            yield record
            if max_messages and n >= max_messages:
                return
    finally:
        consumer.close()
