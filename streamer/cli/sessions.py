"""``vitalstream record TOPIC... -o SESSION`` and ``vitalstream replay SESSION``: capture and publish sessions."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _cmd_record(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    from streamer.config import Settings
    from streamer.kafka.errors import probe
    from streamer.sessions.format import SessionWriter
    from streamer.sessions.replay import record_topics

    settings = Settings()
    probe(settings)
    consumer = KafkaConsumer(
        *args.topics, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        **settings.kafka_client_kwargs(),
    )  # fmt: skip
    source = "record:" + ",".join(args.topics)
    with SessionWriter(args.output, source=source) as writer:
        try:
            record_topics(consumer, writer, max_messages=args.max_messages, max_seconds=args.seconds)
        except KeyboardInterrupt:
            log.info("interrupted; closing the session file")
        finally:
            consumer.close()
    print(f"recorded {writer.count} messages to {args.output}")
    return 0


def _plan(args: argparse.Namespace, stats):  # type: ignore[no-untyped-def]
    from streamer.sessions.replay import ReplayPlan, resolve_anchor, timestamp_shift_ms

    now_ms = int(time.time() * 1000)
    anchor = resolve_anchor(args.anchor, args.speed)
    return ReplayPlan(
        speed=args.speed, fan_out=args.fan_out, loop_period_ms=stats.loop_period_ms, max_seq=stats.max_seq,
        shift_ms=timestamp_shift_ms(stats, now_ms, keep=args.keep_timestamps, anchor=anchor),
    )  # fmt: skip


def _cmd_replay(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from streamer.config import Settings
    from streamer.kafka.errors import probe
    from streamer.sessions.format import read_session
    from streamer.sessions.replay import OutRecord, replay, scan

    if args.fan_out < 1 or args.speed <= 0:
        raise SystemExit("--fan-out must be >= 1 and --speed > 0")
    settings = Settings()
    probe(settings)
    stats = scan(read_session(args.session))
    if stats.count == 0:
        print(f"{args.session}: empty session, nothing to send")
        return 1
    if stats.backward_jumps:
        log.warning("%s is not in time order (%d jumps back); the records after each jump go out at once "
                    "(import without --no-interleave)", args.session, stats.backward_jumps)  # fmt: skip
    plan = _plan(args, stats)
    topic = args.topic or settings.topics.telemetry
    producer = KafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=settings.producer_linger_ms,
        **settings.kafka_client_kwargs(),
    )  # fmt: skip
    total = None if args.loop else stats.count * args.fan_out
    progress = None if args.no_progress else _ProgressBar(total)

    def send(out: OutRecord) -> None:
        producer.send(topic, value=out.value, key=out.key, headers=list(out.headers), timestamp_ms=out.timestamp_ms)

    try:
        result = replay(lambda: read_session(args.session), send, plan, stats.first_ts_ms,
                        passes=None if args.loop else 1, on_progress=progress)  # fmt: skip
    finally:
        producer.flush()
        producer.close()
        if progress:
            progress.done()
    print(f"sent {result.sent} messages to {topic} in {result.elapsed_s:.1f} s ({result.rate_per_s:,.0f} msg/s)")
    return 0


class _ProgressBar:
    """Redraws one stderr line at most five times a second."""

    def __init__(self, total: int | None) -> None:
        self.total, self._last = total, 0.0

    def __call__(self, result) -> None:  # type: ignore[no-untyped-def]
        from streamer.sessions.replay import progress_line

        if time.monotonic() - self._last >= 0.2:
            self._last = time.monotonic()
            sys.stderr.write("\r" + progress_line(result.sent, self.total, result.elapsed_s))
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.help_texts import KAFKA

    rec = subparsers.add_parser(
        "record",
        help="capture topics into a session file",
        description="Capture the records of one or more topics (keys, values and timestamps) into a session "
        f"file, until --seconds, --max-messages or Ctrl-C. Joins no consumer group. Reads {KAFKA}.",
    )
    rec.add_argument("topics", nargs="+", metavar="TOPIC")
    rec.add_argument("-o", "--output", type=Path, required=True, help="session file to write (.jsonl.gz)")
    rec.add_argument("--seconds", type=float, help="stop after N seconds")
    rec.add_argument("--max-messages", type=int, help="stop after N messages")
    rec.add_argument("--from-beginning", action="store_true", help="start at the earliest offsets")
    rec.set_defaults(func=_cmd_record)
    rep = subparsers.add_parser(
        "replay",
        help="publish a session file into the telemetry topic",
        description="Publish a session file into the telemetry topic at a chosen speed, with timestamps moved "
        "so that the data looks live (or kept), optionally as K virtual devices per device and in a loop. "
        f"Shows a progress bar on stderr. Reads {KAFKA}.",
    )
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="speed factor (default 1: real time)")
    pace.add_argument("--realtime", dest="speed", action="store_const", const=1.0, help="same as --speed 1")
    pace.add_argument("--fast", dest="speed", action="store_const", const=math.inf, help="no pacing")
    rep.add_argument("session", type=Path)
    rep.add_argument("--keep-timestamps", action="store_true", help="send the recorded timestamps")
    rep.add_argument(
        "--anchor", choices=("auto", "start", "end"), default="auto",
        help="which message is 'now'; auto: the first in real time, the last when faster (so that no timestamp "
        "runs ahead of the ingest clock and gets dead-lettered as FUTURE_TIMESTAMP)",
    )  # fmt: skip
    rep.add_argument("--fan-out", type=int, default=1, metavar="K", help="K virtual devices per device")
    rep.add_argument("--loop", action="store_true", help="repeat until interrupted")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    rep.add_argument("--topic", help="target topic (default: the telemetry topic)")
    rep.set_defaults(func=_cmd_replay)
