"""Kafka-facing commands: ``worker``, ``produce``, ``tail`` and ``topics``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from .config import Settings

log = logging.getLogger(__name__)


def _worker(args: argparse.Namespace) -> int:
    from .app import run_worker

    return run_worker(Settings(), loglevel="debug" if args.verbose else "info")


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
    prod = producer(settings)
    sent = 0
    try:
        for key, value in records:
            prod.send(topic, key=key, value=value)
            sent += 1
        prod.flush()
    finally:
        prod.close()
    return sent


def _produce(args: argparse.Namespace) -> int:
    from .topics import ensure_topics

    settings = Settings()
    ensure_topics(settings)
    topic = args.topic or settings.topics.telemetry
    if args.file in (None, "-"):
        sent = produce_lines(settings, iter_json_lines(sys.stdin.buffer), topic)
    else:
        with Path(args.file).open("rb") as fh:
            sent = produce_lines(settings, iter_json_lines(fh), topic)
    print(f"sent {sent} messages to {topic}")
    return 0


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


def _tail(args: argparse.Namespace) -> int:
    settings = Settings()
    names = settings.topics
    topic = {
        "dlq": names.dlq,
        "telemetry": names.telemetry,
        "valid": names.telemetry_valid,
        "features": names.features,
        "scores": names.scores,
        "alerts": names.alerts,
        "ack": names.alerts_ack,
    }.get(args.topic, args.topic)
    idle = args.idle_timeout if args.idle_timeout > 0 else None
    for record in consume(
        settings,
        [topic],
        from_beginning=args.from_beginning,
        idle_timeout_s=idle,
        max_messages=args.max_messages,
    ):
        value = record.value.decode("utf-8", "replace") if record.value is not None else "null"
        if args.json:
            key = record.key.decode("utf-8", "replace") if record.key else None
            print(
                json.dumps(
                    {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "key": key,
                        "value": value,
                    }
                ),
                flush=True,
            )
        else:
            print(f"{record.topic}[{record.partition}]@{record.offset} {value}", flush=True)
    return 0


def _topics(args: argparse.Namespace) -> int:
    from .topics import ensure_topics

    settings = Settings()
    created = ensure_topics(settings)
    for name in settings.topics.all():
        print(f"{name}{'  (created)' if name in created else ''}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("worker", help="run the Faust worker (all agents)")
    p.set_defaults(func=_worker)

    p = subparsers.add_parser("produce", help="send JSON lines (a file or stdin) to the telemetry topic")
    p.add_argument("file", nargs="?", help="JSON lines file; '-' or nothing for stdin")
    p.add_argument("--topic", help="default: the telemetry topic")
    p.set_defaults(func=_produce)

    p = subparsers.add_parser("tail", help="print a topic: dlq, telemetry, valid, features, scores, alerts, ack")
    p.add_argument("topic", help="a short name above or a full topic name")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    p.add_argument("--max-messages", type=int, default=None)
    p.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many idle seconds (0: never)")
    p.set_defaults(func=_tail)

    p = subparsers.add_parser("topics", help="create the pipeline's topics (idempotent) and list them")
    p.set_defaults(func=_topics)
