"""A local Apache Kafka 4.1 broker (KRaft, one node on 127.0.0.1) from Maven Central jars, for development and CI.

``vitalstream kafka up|down|status`` (or ``python -m streamer.kafka.devbroker up``). Jars are resolved by Maven from
``tools/kafka/pom.xml`` into the git-ignored ``.kafka/libs``; data and logs live in ``.kafka/``. ``secure=True`` (``kafka up --secure``) starts it with TLS,
SASL_SSL/SCRAM-SHA-512 and StandardAuthorizer ACLs instead (:mod:`streamer.kafka.secure`).

Exceptions::

    DevKafkaError
    ├── JavaMissing
    └── BrokerDidNotStart
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


class DevKafkaError(RuntimeError):
    """The local broker could not be prepared, started or stopped."""


class JavaMissing(DevKafkaError):
    """No Java 17+ runtime or no Maven on PATH."""


class BrokerDidNotStart(DevKafkaError):
    """The broker process exited or did not answer metadata requests in time."""


@dataclass(frozen=True)
class LocalKafka:
    """Where the local broker keeps its jars, data and logs, and which ports it listens on."""

    home: Path = REPO_ROOT / ".kafka"
    name: str = "dev"  # the test session runs its own broker ("test") beside a developer's ("dev")
    port: int = 9092
    controller_port: int = 9093
    secure: bool = False  # TLS + SASL_SSL (SCRAM-SHA-512) + ACLs instead of PLAINTEXT

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def root(self) -> Path:
        return self.home / self.name

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_env(self, user: str = "admin") -> dict[str, str]:
        """The ``VITALS_*`` settings that reach this broker (as ``user`` when it is secured)."""
        if not self.secure:
            return {"VITALS_KAFKA_BOOTSTRAP": self.bootstrap}
        from streamer.kafka import secure

        return secure.client_env(self.bootstrap, self.root / "tls", user, secure.credentials(self.root)[user])

    def client_kwargs(self) -> dict[str, object]:
        """kafka-python connection keywords for the tool's own (super) user."""
        if not self.secure:
            return {"bootstrap_servers": self.bootstrap}
        from streamer.kafka import secure

        return secure.admin_kwargs(self.root, self.bootstrap)


def fetch_jars(kafka: LocalKafka) -> None:
    """Resolve the broker jars from Maven Central (cached in ~/.m2 and .kafka/libs)."""
    if kafka.libs.is_dir() and any(kafka.libs.glob("kafka_2.13-*.jar")):
        return
    if not shutil.which("mvn"):
        raise JavaMissing("Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven")
    log.info("resolving Kafka jars from Maven Central into %s", kafka.libs)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(REPO_ROOT / "tools" / "kafka" / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={kafka.libs}",
        "-DincludeScope=runtime",
    ]
    subprocess.run(cmd, check=True)


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise JavaMissing("Java 17+ is needed to run the local broker: apt-get install openjdk-17-jre-headless")
    return java


def _listener_lines(kafka: LocalKafka) -> list[str]:
    if kafka.secure:
        from streamer.kafka import secure

        tls = secure.make_tls(kafka.root)
        return secure.server_properties(kafka.port, kafka.controller_port, tls, secure.credentials(kafka.root))
    return [
        f"listeners=PLAINTEXT://127.0.0.1:{kafka.port},CONTROLLER://127.0.0.1:{kafka.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{kafka.port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ]


def _write_config(kafka: LocalKafka) -> Path:
    kafka.root.mkdir(parents=True, exist_ok=True)
    props = kafka.root / "server.properties"
    props.touch(mode=0o600)  # the secured broker's file holds the broker's own password
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{kafka.controller_port}",
                *_listener_lines(kafka),
                f"log.dirs={kafka.data}",
                "num.partitions=1",
                # A single node: every internal topic must live with one replica.
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "delete.topic.enable=true",
                "message.max.bytes=8388608",
                "",
            ]
        )
    )
    log4j = kafka.root / "log4j2.properties"
    log4j.write_text(
        "\n".join(
            [
                "status = warn",
                "appender.file.type = File",
                "appender.file.name = FILE",
                f"appender.file.fileName = {kafka.log_file}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "logger.kafka.name = kafka",
                "logger.kafka.level = INFO",
                "logger.apache.name = org.apache.kafka",
                "logger.apache.level = WARN",
                "",
            ]
        )
    )
    return props


def _classpath(kafka: LocalKafka) -> str:
    return str(kafka.libs / "*")


def _format_storage(kafka: LocalKafka, props: Path) -> None:
    if (kafka.data / "meta.properties").exists():
        return
    java, cp = _java(), _classpath(kafka)
    cluster_id = (
        subprocess.run(
            [java, "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    subprocess.run(
        [
            java,
            "-cp",
            cp,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(props),
            *_scram_args(kafka),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    log.info("formatted KRaft storage %s (cluster %s)", kafka.data, cluster_id)


def _scram_args(kafka: LocalKafka) -> list[str]:
    if not kafka.secure:
        return []
    from streamer.kafka import secure

    return secure.scram_format_args(secure.credentials(kafka.root))


def _pid(kafka: LocalKafka) -> int | None:
    try:
        pid = int(kafka.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def answers_metadata(bootstrap: str, timeout_s: float = 5.0, client_kwargs: dict[str, object] | None = None) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request (``client_kwargs``: TLS/SASL settings)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            pass
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="vitalstream-probe",
            **{k: v for k, v in (client_kwargs or {}).items() if k != "bootstrap_servers"},
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def up(kafka: LocalKafka, timeout_s: float = 90.0) -> str:
    """Start the broker unless it runs already; return its bootstrap address once it answers metadata."""
    if _pid(kafka) and answers_metadata(kafka.bootstrap, client_kwargs=kafka.client_kwargs()):
        return kafka.bootstrap
    fetch_jars(kafka)
    props = _write_config(kafka)
    _format_storage(kafka, props)
    kafka.log_file.parent.mkdir(parents=True, exist_ok=True)
    heap = os.environ.get("VITALS_KAFKA_HEAP", "-Xmx768m -Xms256m").split()
    cmd = [
        _java(),
        *heap,
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kafka.root / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={kafka.log_file.parent}",
        "-cp",
        _classpath(kafka),
        "kafka.Kafka",
        str(props),
    ]
    with open(kafka.log_file.parent / "stdout.log", "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    kafka.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerDidNotStart(f"broker exited with {proc.returncode}; see {kafka.log_file}")
        if answers_metadata(kafka.bootstrap, timeout_s=2.0, client_kwargs=kafka.client_kwargs()):
            log.info("Kafka is up at %s (pid %d, log %s)", kafka.bootstrap, proc.pid, kafka.log_file)
            return kafka.bootstrap
        time.sleep(0.5)
    down(kafka)
    raise BrokerDidNotStart(f"no metadata answer within {timeout_s:.0f} s; see {kafka.log_file}")


def down(kafka: LocalKafka, timeout_s: float = 30.0) -> bool:
    """Stop the broker; True if one was running."""
    pid = _pid(kafka)
    if pid is None:
        kafka.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid(kafka):
        time.sleep(0.2)
    if _pid(kafka):
        os.kill(pid, signal.SIGKILL)
    kafka.pid_file.unlink(missing_ok=True)
    return True


def status(kafka: LocalKafka) -> str:
    pid = _pid(kafka)
    if pid is None:
        return "down"
    answers = answers_metadata(kafka.bootstrap, client_kwargs=kafka.client_kwargs())
    return f"up at {kafka.bootstrap} (pid {pid})" if answers else f"starting (pid {pid})"
