"""``vitalstream ward``: serve the live ward view (devices, latest vitals, open alerts, acknowledge) from the topics."""

from __future__ import annotations

import argparse


def _cmd(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.ward.server import serve

    serve(Settings(), args.host, args.port, args.user)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ward", help="serve the live ward view of the feature and alert topics")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--user", default="ward", help="pseudonymous id recorded on acknowledgements from this page")
    p.set_defaults(func=_cmd)
