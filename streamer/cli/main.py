"""The ``vitalstream`` command line: one module per command group in ``streamer/cli/``; library code is imported lazily."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module listed here (argparse only at import time: no numpy, torch or Faust) defines ``register(subparsers)`` (top-level subcommands) and/or
# ``register_eval(eval_subparsers)`` (``vitalstream eval NAME``); each parser sets ``func`` with
# ``set_defaults(func=...)`` and ``func(args)`` returns the process exit code.
COMMAND_MODULES: list[str] = [
    "streamer.cli.kafka_io",
    "streamer.cli.broker",
    "streamer.cli.analyze",
    "streamer.cli.alerts",
    "streamer.cli.golden",
    "streamer.cli.evaluate",
    "streamer.cli.importing",
    "streamer.cli.sessions",
    "streamer.cli.report",
    "streamer.cli.train",
    "streamer.cli.schemas",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitalstream",
        description="Stream processor for wearable vital signs (Kafka in, features, scores and alerts out).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    eval_parser = subparsers.add_parser("eval", help="evaluate signals, models or alarm burden on real data")
    eval_subparsers = eval_parser.add_subparsers(dest="eval_command", metavar="WHAT")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(subparsers)
        if hasattr(module, "register_eval"):
            module.register_eval(eval_subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python and aiokafka narrate every connection at INFO. kafka-python also logs each retry of a failure
    # that the command then raises and explains in one line (streamer/kafka/errors.py): keep it quiet unless -v.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # Kafka client errors become one line naming the setting; anything else is a bug
        line = _kafka_error_line(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2


def _kafka_error_line(exc: Exception) -> str | None:
    """The one-line explanation of a Kafka client, TLS or broker-setup error (streamer/kafka/errors.py)."""
    import ssl

    origin = type(exc).__module__.split(".")[0]
    if origin not in ("kafka", "aiokafka") and not isinstance(exc, ssl.SSLError):
        from streamer.kafka.errors import KafkaSetupError

        if not isinstance(exc, KafkaSetupError):
            return None
    from streamer.kafka.errors import explain

    return explain(exc)


if __name__ == "__main__":
    sys.exit(main())
