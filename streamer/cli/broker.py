"""``vitalstream kafka up|down|status|reset|env|acls``: the local development broker, plain or secured."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys


def _cmd(args: argparse.Namespace) -> int:
    from streamer.kafka.devbroker import DevKafkaError, LocalKafka, down, status, up

    kafka = LocalKafka(name=args.name, port=args.port, controller_port=args.port + 1, secure=args.secure)
    try:
        if args.action == "up":
            print(up(kafka))
            if kafka.secure:
                _prepare_secured(kafka, args)
        elif args.action == "down":
            print("stopped" if down(kafka) else "was not running")
        elif args.action == "reset":
            down(kafka)
            shutil.rmtree(kafka.data, ignore_errors=True)
            print("stopped and wiped", kafka.data)
        elif args.action == "env":
            for key, value in kafka.client_env(args.role).items():
                print(f"export {key}={value}")
        elif args.action == "acls":
            return _acls(args)
        elif args.action == "docker-secrets":
            from streamer.kafka.secure import docker_files

            print(docker_files(kafka.root))
        else:
            state = status(kafka)
            print(state)
            return 0 if state.startswith("up") else 1
    except DevKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _prepare_secured(kafka, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """As the tool's super user: create the pipeline's topics and apply deploy/acls.json for the default names."""
    from streamer.config import Settings
    from streamer.kafka.acls import apply_grants, load_grants
    from streamer.kafka.topics import ensure_topics

    settings = Settings(**{k.removeprefix("VITALS_").lower(): v for k, v in kafka.client_env("admin").items()})
    ensure_topics(settings)
    count = apply_grants(settings.kafka_client_kwargs(), load_grants(settings.topic_prefix, settings.app_id))
    print(f"secured: SASL_SSL/SCRAM-SHA-512, {count} ACLs from deploy/acls.json; credentials in {kafka.root}")
    print(
        f"connect as a role: eval $(vitalstream kafka env --secure --port {args.port} --name {args.name} --role worker)"
    )


def _acls(args: argparse.Namespace) -> int:
    """Apply (or print) deploy/acls.json for VITALS_TOPIC_PREFIX and VITALS_APP_ID, as the VITALS_* principal."""
    from streamer.config import Settings
    from streamer.kafka.acls import apply_grants, as_commands, load_grants
    from streamer.kafka.errors import probe

    settings = Settings()
    renamed = dict(item.split("=", 1) for item in args.principal or ())
    grants = load_grants(settings.topic_prefix, settings.app_id, renamed)
    if args.print:
        print("\n".join(as_commands(grants)))
        return 0
    probe(settings)
    print(f"applied {apply_grants(settings.kafka_client_kwargs(), grants)} ACLs to {settings.kafka_bootstrap}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "kafka",
        help="start, stop or check the local single-node Kafka broker",
        description="The local single-node KRaft development broker (Apache Kafka jars from Maven Central into "
        ".kafka/libs; data, logs and pid under .kafka/NAME; listens on 127.0.0.1). up: start it and print its "
        "bootstrap (--secure: TLS, SASL_SSL/SCRAM-SHA-512 and the ACLs of deploy/acls.json); down: stop it; status: "
        "exit 0 when up; reset: stop it and wipe its data; env: the VITALS_* settings of a role; acls: apply "
        "deploy/acls.json to a cluster; docker-secrets: certificates for the compose secure profile. Reads "
        "VITALS_KAFKA_BOOTSTRAP, VITALS_TOPIC_PREFIX, VITALS_APP_ID and the connection settings for acls only; the "
        "other actions read no setting: --port and --name choose the instance.",
    )
    p.add_argument("action", choices=["up", "down", "status", "reset", "env", "acls", "docker-secrets"])
    p.add_argument("--port", type=int, default=9092, help="client port (controller uses port+1)")
    p.add_argument("--name", default="dev", help="instance name: data, logs and pid under .kafka/NAME")
    p.add_argument("--secure", action="store_true", help="TLS + SASL_SSL (SCRAM-SHA-512) + ACLs (deploy/acls.json)")
    p.add_argument("--role", default="admin", help="env: the principal to print settings for (admin, gateway, ...)")
    p.add_argument("--print", action="store_true", help="acls: print kafka-acls.sh commands instead of applying")
    p.add_argument("--principal", action="append", help="acls: ROLE=User:NAME to rename a role's principal")
    p.set_defaults(func=_cmd)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m streamer.cli.broker")
    register(parser.add_subparsers(dest="command", required=True))
    sys.exit(_cmd(parser.parse_args(["kafka", *sys.argv[1:]])))
