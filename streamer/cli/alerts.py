"""Subscribing to alerts: ``vitalstream alerts`` follows them live with filters; ``vitalstream ack`` acknowledges one."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from streamer.config import Settings
from streamer.contracts import PRIORITY_RANK, Alert, AlertAck, Priority
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
    settings = Settings()
    probe(settings)
    ack = AlertAck(
        alert_id=args.alert_id, device_id=args.device, by=args.by, ts_ms=int(time.time() * 1000), note=args.note
    )
    prod = producer(settings)
    try:
        sent = prod.send(settings.topics.alerts_ack, key=ack.alert_id.encode(), value=ack.model_dump_json().encode())
        sent.get(timeout=15)  # raises an ACL refusal instead of reporting success
    finally:
        prod.close()
    print(json.dumps({"acknowledged": ack.alert_id, "topic": settings.topics.alerts_ack}))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alerts", help="follow alerts live (table or JSON lines) with filters")
    p.add_argument("--min-priority", choices=[p.value for p in Priority], default="info")
    p.add_argument("--condition", action="append", help="only this condition (repeatable), e.g. SPO2_LOW")
    p.add_argument("--device", action="append", help="only this device (repeatable)")
    p.add_argument("--json", action="store_true", help="one alert JSON object per line")
    p.add_argument("--from-beginning", action="store_true", help="replay the retained history first")
    p.add_argument("--idle-timeout", type=float, default=0.0, help="stop after this many idle seconds (0: follow)")
    p.add_argument("--max-alerts", type=int, default=0, help="stop after this many alerts (0: no limit)")
    p.set_defaults(func=_alerts)

    p = subparsers.add_parser("ack", help="acknowledge an alert (publishes to the ack topic)")
    p.add_argument("alert_id")
    p.add_argument("--device", help="the alert's device (optional: the worker looks it up)")
    p.add_argument("--by", default="cli", help="pseudonymous id of who acknowledges")
    p.add_argument("--note", help="free text (no names)")
    p.set_defaults(func=_ack)
