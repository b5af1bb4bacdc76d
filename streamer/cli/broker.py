"""``vitalstream kafka up|down|status|reset``: the local single-node development broker."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys


def _cmd(args: argparse.Namespace) -> int:
    from streamer.kafka.devbroker import DevKafkaError, LocalKafka, down, status, up

    kafka = LocalKafka(name=args.name, port=args.port, controller_port=args.port + 1)
    try:
        if args.action == "up":
            print(up(kafka))
        elif args.action == "down":
            print("stopped" if down(kafka) else "was not running")
        elif args.action == "reset":
            down(kafka)
            shutil.rmtree(kafka.data, ignore_errors=True)
            print("stopped and wiped", kafka.data)
        else:
            state = status(kafka)
            print(state)
            return 0 if state.startswith("up") else 1
    except DevKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "kafka",
        help="start, stop or check the local single-node Kafka broker",
        description="The local single-node KRaft development broker (Apache Kafka jars from Maven Central into "
        ".kafka/libs; data, logs and pid under .kafka/NAME; listens on 127.0.0.1). up: start it and print its "
        "bootstrap; down: stop it; status: exit 0 when up; reset: stop it and wipe its data. Reads no VITALS_* "
        "setting: --port and --name choose the instance.",
    )
    p.add_argument("action", choices=["up", "down", "status", "reset"])
    p.add_argument("--port", type=int, default=9092, help="client port (controller uses port+1)")
    p.add_argument("--name", default="dev", help="instance name: data, logs and pid under .kafka/NAME")
    p.set_defaults(func=_cmd)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m streamer.cli.broker")
    register(parser.add_subparsers(dest="command", required=True))
    sys.exit(_cmd(parser.parse_args(["kafka", *sys.argv[1:]])))
