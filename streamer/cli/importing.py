"""``vitalstream import KIND PATH -o SESSION``: real recordings turned into a telemetry session file."""

from __future__ import annotations

import argparse
from pathlib import Path

# streamer.sessions.importers.READERS, named here so that --help imports no numpy or wfdb (a test keeps them equal).
IMPORT_KINDS = ("bidmc", "cinc2017", "sepsis2019", "wfdb")


def _cmd(args: argparse.Namespace) -> int:
    from streamer.sessions.importers import write_session

    summary = write_session(args.kind, args.path, args.output, topic=args.topic, interleave=args.interleave)
    print(f"wrote {args.output}")
    print("\n".join(summary.lines()))
    return 0 if summary.records else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="turn real recordings into a telemetry session file",
        description="Read one record or every record of a folder (WFDB such as MIT-BIH, BIDMC CSV, Challenge "
        "2017 .mat, Challenge 2019 .psv) and write the telemetry messages a wearable would have sent, as a "
        "session file for replay and analyze. Values a device could not send are dropped and counted. Reads "
        "VITALS_TOPIC_PREFIX (the topic stored in the session, unless --topic).",
    )
    parser.add_argument("kind", choices=IMPORT_KINDS, help="recording format")
    parser.add_argument("path", type=Path, help="one record (WFDB: path without extension) or a folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="session file to write (.jsonl.gz)")
    parser.add_argument("--topic", help="topic stored in the session (default: the telemetry topic)")
    parser.add_argument(
        "--no-interleave",
        dest="interleave",
        action="store_false",
        help="write record after record (streaming) instead of all devices in time order (in memory)",
    )
    parser.set_defaults(func=_cmd)
