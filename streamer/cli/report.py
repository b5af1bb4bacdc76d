"""``vitalstream report SESSION -o FILE.png|html``: signals, features, scores and alerts of a session."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd(args: argparse.Namespace) -> int:
    from streamer.evaluation.report import render_report

    analysis = json.loads(args.analysis.read_text()) if args.analysis else None
    print(render_report(args.session, args.output, analysis, args.device))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="draw signals, features, scores and alerts of a session",
        description="Draw one device of a session: its waveforms and numerics, with the features, scores and "
        "alerts of an analysis (`vitalstream analyze SESSION --json`) when given, as PNG or HTML. Reads "
        "VITALS_SQI_THRESHOLD (drawn as the usable line).",
    )
    parser.add_argument("session", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="FILE.png or FILE.html")
    parser.add_argument("--analysis", type=Path, help="JSON printed by `vitalstream analyze SESSION --json`")
    parser.add_argument("--device", help="device id (default: the first device in the session)")
    parser.set_defaults(func=_cmd)
