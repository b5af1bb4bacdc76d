"""``vitalstream analyze SESSION``: stages 1-5 offline over a session file, no Kafka."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _cmd(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.offline.analyze import analyze_records, default_inference
    from streamer.progress import track
    from streamer.sessions.format import read_session

    settings = Settings()
    records = (
        r
        for r in track(read_session(args.session), desc=f"analyze {args.session.name}", unit="msg")
        if r.key is None or args.device is None or r.key.decode("utf-8", "replace") == args.device
    )
    inference = None if args.no_models else default_inference(settings)
    result = analyze_records(records, settings, inference=inference, flush=not args.no_flush)
    if args.fhir:
        _write_fhir(args.fhir, result)
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    _print_summary(args.session, result)
    return 0


def _write_fhir(path: Path, result) -> None:  # type: ignore[no-untyped-def]
    from streamer.interop import fhir

    out = result.output
    bundle = fhir.transaction(fhir.resources(out.features, out.scores, out.alerts))
    path.write_bytes(fhir.dumps(bundle) + b"\n")
    print(f"FHIR transaction Bundle with {len(bundle['entry'])} resources: {path}", file=sys.stderr)


def _print_summary(session: Path, result) -> None:  # type: ignore[no-untyped-def]
    counts = result.counts
    dead = sum(v for k, v in counts.items() if k.startswith("dead_lettered"))
    print(
        f"session {session}: {counts['records']} records, {counts['valid']} valid, "
        f"{dead} dead-lettered, {counts['duplicates']} duplicates"
    )
    print(f"features: {counts['features']} windows; scores: {counts['scores']}; alert transitions: {counts['alerts']}")
    for a in result.output.alerts:
        when = time.strftime("%H:%M:%S", time.gmtime(a.transition_ts_ms / 1000))
        print(
            f"  {when}  {a.priority.value:6s} {a.state.value:12s} {a.condition.value:20s} {a.device_id:16s} "
            f"{a.alert_id[:12]}  {a.message}"
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.help_texts import PIPELINE

    p = subparsers.add_parser(
        "analyze",
        help="run stages 1-5 over a session offline (no Kafka): features, scores, alerts",
        description="Run validation, dedup, windows, features, the models and the alert policy in this process "
        "over a session file (no Kafka), with the same code as the worker; print the counts and the alert "
        f"transitions, or one JSON object with --json. Reads {PIPELINE}.",
    )
    p.add_argument("session", type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object: features, scores, alerts, counts")
    p.add_argument("--device", help="only this device")
    p.add_argument("--fhir", type=Path, metavar="BUNDLE.json", help="also write a FHIR R4 transaction Bundle")
    p.add_argument("--no-models", action="store_true", help="rules only, as when no checkpoint is available")
    p.add_argument("--no-flush", action="store_true", help="do not close the last open windows at the end")
    p.set_defaults(func=_cmd)
