"""``vitalstream ward``: serve the live ward view (devices, latest vitals, open alerts, acknowledge) from the topics."""

from __future__ import annotations

import argparse

from streamer.cli import help_texts


def _cmd(args: argparse.Namespace) -> int:
    from streamer.config import Settings
    from streamer.ward.server import serve

    serve(Settings(), args.host, args.port, args.user)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ward",
        help="serve the live ward view of the feature and alert topics",
        description="Serve a read-only web page of the ward: devices with their latest vitals and signal quality, "
        "open alerts by priority then age, updated live (server-sent events); Acknowledge publishes to the ack "
        f"topic like `vitalstream ack`. Reads {help_texts.KAFKA}.",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--user", default="ward", help="pseudonymous id recorded on acknowledgements from this page")
    p.set_defaults(func=_cmd)
