"""Offline analysis: stages 1-5 in-process over a session file, no Kafka, same code and same alerts as the live path."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamer.config import Settings
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Accepted, Message, validate
from streamer.pipeline import Pipeline, PipelineOutput
from streamer.sessions.format import SessionRecord

BATCH = 256


@dataclass
class Analysis:
    output: PipelineOutput = field(default_factory=PipelineOutput)
    counts: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": [f.model_dump(mode="json") for f in self.output.features],
            "scores": [s.model_dump(mode="json") for s in self.output.scores],
            "alerts": [a.model_dump(mode="json") for a in self.output.alerts],
            "counts": dict(sorted(self.counts.items())),
        }


def analyze_records(
    records: Iterable[SessionRecord], settings: Settings, *, inference: Any | None = None, flush: bool = True
) -> Analysis:
    """Validate, dedup and run the pipeline over telemetry records in order (as one partition would see them)."""
    result = Analysis()
    pipeline = Pipeline(settings, inference)
    trackers: dict[str, SeqTracker] = {}
    batch: list[tuple[Message, int | None]] = []
    now_ms = int(time.time() * 1000)
    for record in records:
        result.counts["records"] += 1
        checked = validate(
            record.value or b"",
            now_ms=now_ms,
            max_message_bytes=settings.max_message_bytes,
            future_margin_ms=settings.future_margin_ms,
        )
        if not isinstance(checked, Accepted):
            result.counts[f"dead_lettered.{checked.code}"] += 1
            continue
        msg = checked.message
        tracker = trackers.setdefault(msg.device_id, SeqTracker(window=settings.dedup_window))
        status = tracker.check(msg.seq, msg.ts_ms)
        if status is SeqStatus.DUPLICATE:
            result.counts["duplicates"] += 1
            continue
        if status is SeqStatus.STALE:
            result.counts["dead_lettered.STALE_SEQ"] += 1
            continue
        result.counts["valid"] += 1
        batch.append((msg, record.timestamp_ms))
        if len(batch) >= BATCH:
            result.output.extend(pipeline.process(batch))
            batch = []
    if batch:
        result.output.extend(pipeline.process(batch))
    if flush:
        result.output.extend(pipeline.flush())
    result.counts["features"] = len(result.output.features)
    result.counts["scores"] = len(result.output.scores)
    result.counts["alerts"] = len(result.output.alerts)
    return result


def default_inference(settings: Settings) -> Any | None:
    from streamer.kafka.worker import load_inference

    return load_inference(settings)
