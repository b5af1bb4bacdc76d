"""Subscribing to alerts: ``vitalstream alerts`` follows them live with filters; ``vitalstream ack`` acknowledges one."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from streamer.config import Settings
from streamer.contracts import PRIORITY_RANK, Alert, AlertAck, AlertState, Priority
from streamer.kafka.clients import consume, producer
from streamer.kafka.errors import probe


def matching(
    alerts: Iterable[Alert], *, min_priority: Priority, conditions: set[str], devices: set[str]
) -> Iterator[Alert]:
    """The alerts that pass the filters (priority at least ``min_priority``; empty sets mean all)."""
    floor = PRIORITY_RANK[min_priority]
    for alert in alerts:
        if PRIORITY_RANK[alert.priority] < floor:
            continue
        if conditions and alert.condition.value not in conditions:
            continue
        if devices and alert.device_id not in devices:
            continue
        yield alert


def table_row(alert: Alert) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(alert.transition_ts_ms / 1000))
    return (
        f"{when}  {alert.priority.value.upper():6s} {alert.state.value:12s} {alert.condition.value:19s} "
        f"{alert.device_id:18s} {alert.alert_id[:12]}  {alert.message}"
    )


HEADER = f"{'device time (UTC)':19s}  {'PRIO':6s} {'STATE':12s} {'CONDITION':19s} {'DEVICE':18s} {'ALERT':12s}  WHY"


def _alerts(args: argparse.Namespace) -> int:
    settings = Settings()
    probe(settings)
    records = consume(
        settings,
        [settings.topics.alerts],
        from_beginning=args.from_beginning,
        idle_timeout_s=args.idle_timeout or None,
        max_messages=None,
    )

    def parsed() -> Iterator[Alert]:
        for record in records:
            try:
                yield Alert.model_validate_json(record.value)
            except (ValidationError, TypeError):
                print(f"skipping a record that is not an alert at offset {record.offset}", file=sys.stderr)

    if not args.json:
        print(HEADER, flush=True)
    selected = matching(
        parsed(),
        min_priority=Priority(args.min_priority),
        conditions=set(args.condition or ()),
        devices=set(args.device or ()),
    )
    for shown, alert in enumerate(selected, start=1):
        print(alert.model_dump_json() if args.json else table_row(alert), flush=True)
        if args.max_alerts and shown >= args.max_alerts:
            break
    return 0


def _ack(args: argparse.Namespace) -> int:
    from streamer.kafka.alert_lookup import AlertLookupError, read_history, resolve, wait_for_state

    settings = Settings()
    probe(settings)
    history = read_history(settings)
    try:
        alert = resolve(args.alert_id, history)
    except AlertLookupError as exc:
        print(f"error: {exc} (topic {settings.topics.alerts})", file=sys.stderr)
        return 1
    short = alert.alert_id[:12]
    if alert.state is AlertState.ACKNOWLEDGED:
        print(f"{short} ({alert.device_id} {alert.condition.value}) is already acknowledged: {alert.message}")
        return 0
    if alert.state is AlertState.RESOLVED:
        print(f"error: {short} ({alert.device_id} {alert.condition.value}) is resolved: nothing to acknowledge",
              file=sys.stderr)  # fmt: skip
        return 1
    ack = AlertAck(
        alert_id=alert.alert_id, device_id=alert.device_id, by=args.by, ts_ms=int(time.time() * 1000), note=args.note
    )
    prod = producer(settings)
    try:
        sent = prod.send(settings.topics.alerts_ack, key=ack.alert_id.encode(), value=ack.model_dump_json().encode())
        sent.get(timeout=15)  # raises an ACL refusal instead of reporting success
    finally:
        prod.close()
    if args.no_wait:
        print(f"sent the acknowledgement of {short} to {settings.topics.alerts_ack}")
        return 0
    done = wait_for_state(settings, alert.alert_id, AlertState.ACKNOWLEDGED, history.end_offsets, args.timeout)
    if done is None:
        print(f"error: sent the acknowledgement of {short}, but no ACKNOWLEDGED transition came within "
              f"{args.timeout:g} s: is a worker running on {settings.kafka_bootstrap} (VITALS_KAFKA_BOOTSTRAP), "
              "or did the alert resolve meanwhile?", file=sys.stderr)  # fmt: skip
        return 1
    print(f"{short} ({done.device_id} {done.condition.value}) ACKNOWLEDGED by {args.by}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.help_texts import KAFKA

    p = subparsers.add_parser(
        "alerts",
        help="follow alerts live (table or JSON lines) with filters",
        description="Follow the alert topic: one line per transition (RAISED, ESCALATED, ACKNOWLEDGED, "
        "RESOLVED) with device time, priority, condition, device, the 12-character id that `ack` takes, and why. "
        f"Filters by priority, condition and device. Reads {KAFKA}.",
    )
    p.add_argument("--min-priority", choices=[p.value for p in Priority], default="info")
    p.add_argument("--condition", action="append", help="only this condition (repeatable), e.g. SPO2_LOW")
    p.add_argument("--device", action="append", help="only this device (repeatable)")
    p.add_argument("--json", action="store_true", help="one alert JSON object per line")
    p.add_argument("--from-beginning", action="store_true", help="replay the retained history first")
    p.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many idle seconds (0: follow)")
    p.add_argument("--max-alerts", type=int, default=0, help="stop after this many alerts (0: no limit)")
    p.set_defaults(func=_alerts)

    p = subparsers.add_parser(
        "ack",
        help="acknowledge an alert by the id `alerts` shows, and wait for the worker to confirm",
        description="Acknowledge an open alert. ALERT_ID may be the 12 characters that `vitalstream alerts` shows "
        "(any unambiguous prefix of 4 or more): it is resolved against the alert topic, then the acknowledgement "
        "goes to the ack topic and the command waits for the worker's ACKNOWLEDGED transition. Exit 1 when the id "
        "is unknown or ambiguous, the alert is resolved, or no confirmation comes in time. "
        f"Reads {KAFKA}.",
    )
    p.add_argument("alert_id", metavar="ALERT_ID", help="full alert id or a prefix of at least 4 hex characters")
    p.add_argument("--by", default="cli", help="pseudonymous id of who acknowledges (no names)")
    p.add_argument("--note", help="free text (no names)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the confirmation (default 15)")
    p.add_argument("--no-wait", action="store_true", help="send the acknowledgement and return at once")
    p.set_defaults(func=_ack)
