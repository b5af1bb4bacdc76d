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
    "streamer.cli.export",
    "streamer.cli.ward",
]


def build_parser() -> argparse.ArgumentParser:
    from streamer.cli.help_texts import COMMON

    parser = argparse.ArgumentParser(
        prog="vitalstream",
        description="Stream processor for wearable vital signs (Kafka in, features, scores and alerts out). "
        "Settings come from VITALS_* environment variables (README, Settings); `vitalstream COMMAND --help` says "
        "which ones a command reads.",
        epilog=COMMON,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--no-progress",
        dest="no_bars",
        action="store_true",
        help="no progress bars (they are drawn only on a terminal anyway)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    eval_parser = subparsers.add_parser(
        "eval",
        help="evaluate signals, models or alarm burden on real data",
        description="Figures on real recordings (any folder laid out like ../shared/data): signal processing, "
        "alarm burden and the three models. `vitalstream eval WHAT --help` for each.",
    )
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
    from streamer.logs import configure, log_format

    configure(logging.DEBUG if args.verbose else logging.INFO, log_format())
    from streamer.progress import enable_bars

    enable_bars(not args.no_bars)
    # kafka-python and aiokafka narrate every connection at INFO.
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
