"""Offline analysis: stages 1-5 in-process over a session file, no Kafka, same code and same alerts as the live path."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .ingest import Accepted, Message, SeqStatus, SeqTracker, validate
from .pipeline import Pipeline, PipelineOutput
from .sessions import SessionRecord, read_session

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
    from .agents import _load_inference

    return _load_inference(settings)


def _cmd(args: argparse.Namespace) -> int:
    settings = Settings()
    records = (
        r
        for r in read_session(args.session)
        if r.key is None or args.device is None or r.key.decode("utf-8", "replace") == args.device
    )
    inference = None if args.no_models else default_inference(settings)
    result = analyze_records(records, settings, inference=inference, flush=not args.no_flush)
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    counts = result.counts
    print(
        f"session {args.session}: {counts['records']} records, {counts['valid']} valid, "
        f"{sum(v for k, v in counts.items() if k.startswith('dead_lettered'))} dead-lettered, "
        f"{counts['duplicates']} duplicates"
    )
    print(f"features: {counts['features']} windows; scores: {counts['scores']}; alert transitions: {counts['alerts']}")
    for a in result.output.alerts:
        when = time.strftime("%H:%M:%S", time.gmtime(a.transition_ts_ms / 1000))
        print(
            f"  {when}  {a.priority.value:6s} {a.state.value:12s} {a.condition.value:20s} {a.device_id:16s} "
            f"{a.alert_id[:12]}  {a.message}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze", help="run stages 1-5 over a session offline (no Kafka): features, scores, alerts"
    )
    p.add_argument("session", type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object: features, scores, alerts, counts")
    p.add_argument("--device", help="only this device")
    p.add_argument("--no-models", action="store_true", help="rules only, as when no checkpoint is available")
    p.add_argument("--no-flush", action="store_true", help="do not close the last open windows at the end")
    p.set_defaults(func=_cmd)
