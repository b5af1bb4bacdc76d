"""Alerts by the short id that ``vitalstream alerts`` shows: resolve it on the alert topic, follow its transitions.

Alerts are matched by the ``alert_id`` field of each JSON value, never by the record key (the topic's keying
may change). Exceptions::

    AlertLookupError        the id cannot be resolved to one alert
    ├── UnknownAlert        no retained transition has an id with this prefix
    └── AmbiguousAlert      several alerts share the prefix
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from streamer.config import Settings
from streamer.contracts import Alert, AlertState

MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-f]+")


class AlertLookupError(Exception):
    """The id given cannot be resolved to one alert."""


class UnknownAlert(AlertLookupError):
    pass


class AmbiguousAlert(AlertLookupError):
    pass


@dataclass(frozen=True)
class AlertHistory:
    """The latest transition of every alert retained on the topic, and where the topic ended when read."""

    latest: dict[str, Alert]
    end_offsets: dict[int, int]  # partition -> offset just past the last record read


def _consumer(settings: Settings):  # -> kafka.KafkaConsumer
    from kafka import KafkaConsumer

    return KafkaConsumer(group_id=None, enable_auto_commit=False, **settings.kafka_client_kwargs())


def _alerts(records: Iterator) -> Iterator[Alert]:
    for record in records:
        try:
            yield Alert.model_validate_json(record.value)
        except (ValidationError, TypeError):
            continue  # not an alert transition (foreign producer): nothing to resolve against


def read_history(settings: Settings, timeout_s: float = 10.0) -> AlertHistory:
    """Read the alert topic from the beginning up to its end offsets at the time of the call."""
    from kafka import TopicPartition

    from streamer.kafka.errors import require_topics

    topic = settings.topics.alerts
    require_topics(settings, [topic], "READ")  # a refused read is an error, not an empty history
    consumer = _consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return AlertHistory({}, {})
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        latest: dict[str, Alert] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                # one alert's transitions share a partition, so read order within it is transition order
                for alert in _alerts(iter(records)):
                    latest[alert.alert_id] = alert
        return AlertHistory(latest, {tp.partition: end[tp] for tp in tps})
    finally:
        consumer.close()


def resolve(prefix: str, history: AlertHistory) -> Alert:
    """The one alert whose id starts with ``prefix`` (case-insensitive hex, at least 4 characters)."""
    wanted = prefix.strip().lower()
    if len(wanted) < MIN_PREFIX or not _HEX.fullmatch(wanted):
        # Not echoed: whatever was typed could be free text (a name), and this line goes to stderr and logs.
        raise AlertLookupError(f"that is not an alert id: give at least {MIN_PREFIX} hex characters of one")
    matches = sorted((a for i, a in history.latest.items() if i.startswith(wanted)), key=lambda a: a.alert_id)
    if not matches:
        raise UnknownAlert(f"no alert id starts with {wanted} ({len(history.latest)} alerts retained on the topic)")
    if len(matches) > 1:
        shown = ", ".join(f"{a.alert_id[:16]} ({a.device_id} {a.condition.value})" for a in matches[:5])
        raise AmbiguousAlert(f"{wanted} matches {len(matches)} alerts: {shown}; give more characters")
    return matches[0]


def wait_for_state(
    settings: Settings, alert_id: str, state: AlertState, after: dict[int, int], timeout_s: float
) -> Alert | None:
    """The first transition of ``alert_id`` into ``state`` past the offsets ``after``, or None after ``timeout_s``."""
    from kafka import TopicPartition

    topic = settings.topics.alerts
    consumer = _consumer(settings)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(after)]
        if not tps:
            return None
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, after[tp.partition])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for alert in _alerts(iter(records)):
                    if alert.alert_id == alert_id and alert.state is state:
                        return alert
        return None
    finally:
        consumer.close()
