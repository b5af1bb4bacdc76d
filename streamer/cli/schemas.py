"""``vitalstream schemas [DIR]``: write the JSON Schema files of the wire contracts (default: schemas/)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd(args: argparse.Namespace) -> int:
    from streamer.config import REPO_ROOT
    from streamer.contracts import write_schemas

    for path in write_schemas(args.directory or REPO_ROOT / "schemas"):
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "schemas",
        help="write the JSON Schemas of the wire contracts (default: schemas/)",
        description="Write one JSON Schema file per wire contract (telemetry, dead letter, features, scores, "
        "alerts, acknowledgements) from the pydantic models, for clients in other languages. Reads no setting.",
    )
    p.add_argument("directory", type=Path, nargs="?", help="target folder")
    p.set_defaults(func=_cmd)
