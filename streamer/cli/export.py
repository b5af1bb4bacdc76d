"""``vitalstream export fhir``: the feature, score and alert topics as one FHIR R4 transaction Bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamer.cli import help_texts


def _fhir(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from streamer.config import Settings
    from streamer.contracts import Alert, FeatureRecord, ScoreRecord
    from streamer.interop import fhir
    from streamer.kafka.clients import consume

    settings = Settings()
    names = settings.topics
    wanted: dict[str, type[FeatureRecord] | type[ScoreRecord] | type[Alert]] = {
        names.features: FeatureRecord,
        names.alerts: Alert,
    }
    if not args.no_scores:
        wanted[names.scores] = ScoreRecord
    parsed: dict[type, list] = {FeatureRecord: [], ScoreRecord: [], Alert: []}
    skipped = 0
    for record in consume(settings, list(wanted), from_beginning=True, idle_timeout_s=args.idle_timeout):
        model = wanted[record.topic]
        try:
            item = model.model_validate_json(record.value or b"")
        except ValidationError:
            skipped += 1  # not ours to fix here: the export carries what parses and says how much did not
            continue
        if args.device and item.device_id not in args.device:
            continue
        parsed[model].append(item)
    bundle = fhir.transaction(fhir.resources(parsed[FeatureRecord], parsed[ScoreRecord], parsed[Alert]))
    data = fhir.dumps(bundle) + b"\n"
    if args.output in (None, Path("-")):
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
    counts = ", ".join(f"{len(v)} {k.__name__}" for k, v in parsed.items())
    print(f"FHIR transaction Bundle with {len(bundle['entry'])} resources from {counts}; {skipped} unparsable "
          "records skipped", file=sys.stderr)  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the topics in another format (fhir)",
        description="Export what the pipeline published (features, scores, alerts) in another format; today FHIR R4. "
        f"Reads {help_texts.KAFKA}.",
    )
    formats = p.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    f = formats.add_parser(
        "fhir",
        help="features, scores and alerts on the topics as a FHIR R4 transaction Bundle",
        description="Read the feature, score and alert topics from the beginning until idle and write one FHIR R4 "
        "transaction Bundle: vital-sign Observations (LOINC, UCUM), score Observations, one DetectedIssue per alert, "
        f"all linked to a Device by its pseudonymous id. Reads {help_texts.KAFKA}.",
    )
    f.add_argument("-o", "--output", type=Path, help="BUNDLE.json (default: stdout)")
    f.add_argument("--device", action="append", help="only this device (repeatable)")
    f.add_argument("--no-scores", action="store_true", help="leave out the model score Observations")
    f.add_argument("--idle-timeout", type=float, default=5.0, help="stop after this many idle seconds")
    f.set_defaults(func=_fhir)
