"""Optional agent (``VITALS_FHIR_EXPORT=1``): features, scores and alerts become FHIR R4 transaction Bundles on ``vitals.fhir``.

One Bundle per input record, keyed by device id: the Device (and Patient), then the Observations of a window,
the score Observation, or the alert's DetectedIssue. Resource ids are deterministic, so a consumer that POSTs each
Bundle to a FHIR server gets updates, not duplicates. A record that does not parse is dead-lettered with a reason.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

import faust
from pydantic import ValidationError

from streamer.config import Settings
from streamer.contracts import Alert, AlertState, FeatureRecord, ReasonCode, ScoreRecord
from streamer.ingest.validation import Rejected, dead_letter
from streamer.interop import fhir

log = logging.getLogger(__name__)
ACK_MEMORY = 10_000  # acknowledged alert ids kept, so their later RESOLVED version still carries the mitigation


def fhir_topic_name(settings: Settings) -> str:
    return f"{settings.topic_prefix}vitals.fhir"


class _Acks:
    """The ACKNOWLEDGED transition of recent alerts (bounded, in memory: a restart forgets older ones)."""

    def __init__(self, size: int = ACK_MEMORY) -> None:
        self._by_id: OrderedDict[str, Alert] = OrderedDict()
        self._size = size

    def history(self, alert: Alert) -> list[Alert]:
        if alert.state is AlertState.ACKNOWLEDGED:
            self._by_id[alert.alert_id] = alert
            self._by_id.move_to_end(alert.alert_id)
            while len(self._by_id) > self._size:
                self._by_id.popitem(last=False)
        ack = self._by_id.get(alert.alert_id)
        return [alert] if ack is None or ack is alert else [ack, alert]


def bundle_for(record: FeatureRecord | ScoreRecord | Alert, acks: _Acks) -> dict[str, Any] | None:
    """The transaction Bundle of one parsed record, or None when it has nothing to export (an unusable window)."""
    if isinstance(record, FeatureRecord):
        body = fhir.feature_observations(record)
    elif isinstance(record, ScoreRecord):
        body = [fhir.score_observation(record)]
    elif isinstance(record, Alert):
        body = [fhir.alert_issue(acks.history(record))]
    else:
        raise TypeError(type(record).__name__)
    if not body:
        return None
    patient_id = getattr(record, "patient_id", None)
    head = [fhir.device(record.device_id)] + ([fhir.patient(patient_id)] if patient_id else [])
    return fhir.transaction(head + body)


def wire_fhir_export(app: faust.App, settings: Settings) -> None:
    """Register the export agent; creates the ``vitals.fhir`` topic when it is missing."""
    from streamer.kafka.topics import ensure_topics

    out_topic = fhir_topic_name(settings)
    ensure_topics(settings, [out_topic])
    names = settings.topics
    models: dict[str, type[FeatureRecord] | type[ScoreRecord] | type[Alert]] = {
        names.features: FeatureRecord,
        names.scores: ScoreRecord,
        names.alerts: Alert,
    }
    source = app.topic(*models, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    acks = _Acks()

    @app.agent(source, name="fhir-export")
    async def export(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                record = models[msg.topic].model_validate_json(event.value)
            except ValidationError as exc:
                await _dead_letter(app, settings, event.value, msg, str(exc))
                continue
            bundle = bundle_for(record, acks)
            if bundle is not None:
                value = fhir.dumps(bundle)
                await app.producer.send_and_wait(out_topic, record.device_id.encode(), value, None, None, None)


async def _dead_letter(app: faust.App, settings: Settings, raw: Any, msg: Any, reason: str) -> None:
    body = raw if isinstance(raw, bytes) else b""
    rejected = Rejected(ReasonCode.SCHEMA_VIOLATION, f"fhir export: {reason}"[:2000], None)
    letter = dead_letter(
        body, rejected, topic=msg.topic, partition=msg.partition, offset=msg.offset, now_ms=int(time.time() * 1000)
    )
    log.warning("dead-letter %s[%d]@%d SCHEMA_VIOLATION (fhir export)", msg.topic, msg.partition, msg.offset)
    await app.producer.send_and_wait(settings.topics.dlq, None, letter.model_dump_json().encode(), None, None, None)
