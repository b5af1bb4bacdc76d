"""``vitalstream worker``, ``produce``, ``tail`` and ``topics``: the commands that move records through Kafka."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TOPIC_SHORT_NAMES = ("dlq", "telemetry", "valid", "features", "scores", "alerts", "ack")


def _worker(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.kafka.app import run_worker
    from streamer.kafka.errors import probe

    settings = Settings()
    probe(settings)
    return run_worker(settings, loglevel="debug" if args.verbose else "info")


def _produce(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.kafka.clients import iter_json_lines, produce_lines
    from streamer.kafka.errors import probe
    from streamer.kafka.topics import ensure_topics

    settings = Settings()
    probe(settings)
    topic = args.topic or settings.topics.telemetry
    ensure_topics(settings, [topic])  # only the topic it writes: a gateway principal may see no other
    if args.file in (None, "-"):
        sent = produce_lines(settings, iter_json_lines(sys.stdin.buffer), topic)
    else:
        with Path(args.file).open("rb") as fh:
            sent = produce_lines(settings, iter_json_lines(fh), topic)
    print(f"sent {sent} messages to {topic}")
    return 0


def _topic_name(settings, short: str) -> str:  # type: ignore[no-untyped-def]
    names = settings.topics
    return {
        "dlq": names.dlq,
        "telemetry": names.telemetry,
        "valid": names.telemetry_valid,
        "features": names.features,
        "scores": names.scores,
        "alerts": names.alerts,
        "ack": names.alerts_ack,
    }.get(short, short)


def _tail(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.kafka.clients import consume
    from streamer.kafka.errors import probe

    settings = Settings()
    probe(settings)
    idle = args.idle_timeout if args.idle_timeout > 0 else None
    records = consume(
        settings,
        [_topic_name(settings, args.topic)],
        from_beginning=args.from_beginning,
        idle_timeout_s=idle,
        max_messages=args.max_messages,
    )
    for record in records:
        value = record.value.decode("utf-8", "replace") if record.value is not None else "null"
        if args.json:
            key = record.key.decode("utf-8", "replace") if record.key else None
            row = {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": key}
            print(json.dumps({**row, "value": value}), flush=True)
        else:
            print(f"{record.topic}[{record.partition}]@{record.offset} {value}", flush=True)
    return 0


def _topics(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.kafka.errors import probe
    from streamer.kafka.topics import ensure_topics

    settings = Settings()
    probe(settings)
    created = ensure_topics(settings)
    for name in settings.topics.all():
        print(f"{name}{'  (created)' if name in created else ''}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.help_texts import KAFKA, PIPELINE

    p = subparsers.add_parser(
        "worker",
        help="run the Faust worker (all agents)",
        description="Run the stream processor until SIGINT/SIGTERM: the ingest agent (validate, dedup, "
        "dead-letter with a reason), the pipeline agent (windows, features, GRU scores, alerts) and the "
        "acknowledgement agent, with their state in changelogged tables. Creates missing topics first. Serves "
        "/health, /ready and /metrics on VITALS_WEB_HOST:VITALS_WEB_PORT (0 turns them off; docs/OPERATIONS.md). "
        f"Reads {KAFKA}; VITALS_APP_ID (consumer group and table names), VITALS_DATA_DIR, VITALS_PARTITIONS, "
        f"VITALS_REPLICATION_FACTOR, VITALS_STREAM_TAKE_*, VITALS_PRODUCER_*; {PIPELINE}; VITALS_LOG_FORMAT.",
    )
    p.set_defaults(func=_worker)

    p = subparsers.add_parser(
        "produce",
        help="send JSON lines (a file or stdin) to the telemetry topic",
        description="Send one telemetry message per JSON line, keyed by its device_id; lines that do not parse "
        "are sent as they are, for the worker to dead-letter with a reason. Creates missing topics first. "
        f"Reads {KAFKA}, VITALS_PARTITIONS.",
    )
    p.add_argument("file", nargs="?", help="JSON lines file; '-' or nothing for stdin")
    p.add_argument("--topic", help="default: the telemetry topic")
    p.set_defaults(func=_produce)

    p = subparsers.add_parser(
        "tail",
        help="print a topic: " + ", ".join(TOPIC_SHORT_NAMES),
        description="Print the records of a pipeline topic (short names: " + ", ".join(TOPIC_SHORT_NAMES) + ") "
        "or of any topic by its full name, as topic[partition]@offset and the value, or --json. Joins no "
        f"consumer group and commits nothing. Reads {KAFKA}.",
    )
    p.add_argument("topic", help="a short name above or a full topic name")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    p.add_argument("--max-messages", type=int, default=None)
    p.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many idle seconds (0: never)")
    p.set_defaults(func=_tail)

    p = subparsers.add_parser(
        "topics",
        help="create the pipeline's topics (idempotent) and list them",
        description="Create the seven topics of the pipeline (telemetry, valid, dead-letter, features, scores, "
        "alerts, acknowledgements) under VITALS_TOPIC_PREFIX with VITALS_PARTITIONS partitions and "
        "VITALS_REPLICATION_FACTOR replicas, then list them and mark those just created. Existing topics are "
        "left as they are (their partition count is not changed). The worker and produce do this too. "
        f"Reads {KAFKA}, VITALS_PARTITIONS, VITALS_REPLICATION_FACTOR.",
    )
    p.set_defaults(func=_topics)
