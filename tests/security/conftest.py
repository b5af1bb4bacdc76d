"""The secured broker (TLS, SASL_SSL/SCRAM-SHA-512, StandardAuthorizer), once per session, and per-test ACLs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[object]:
    """A secured local broker on VITALS_TEST_SECURE_KAFKA_PORT (controller on port+1), stopped at the end."""
    from streamer.kafka.devbroker import LocalKafka, _pid, down, up

    port = int(os.environ.get("VITALS_TEST_SECURE_KAFKA_PORT", "19192"))
    kafka = LocalKafka(name=f"secure-{port}", port=port, controller_port=port + 1, secure=True)
    was_running = _pid(kafka) is not None
    up(kafka)
    yield kafka
    if not was_running:
        down(kafka)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@pytest.fixture
def secured_env(secure_kafka: object, topic_prefix: str) -> Callable[[str], dict[str, str]]:
    """``env(role)``: the VITALS_* environment of a principal, on this test's topics, whose ACLs are applied."""
    from streamer.config import Settings
    from streamer.kafka.acls import apply_grants, load_grants
    from streamer.kafka.topics import ensure_topics

    app_id = f"{topic_prefix}app"

    def env(role: str) -> dict[str, str]:
        values = secure_kafka.client_env(role)  # type: ignore[attr-defined]
        return {**values, "VITALS_TOPIC_PREFIX": topic_prefix, "VITALS_APP_ID": app_id, "VITALS_PARTITIONS": "2"}

    admin = Settings(**{k.removeprefix("VITALS_").lower(): v for k, v in env("admin").items()})
    ensure_topics(admin)
    apply_grants(admin.kafka_client_kwargs(), load_grants(topic_prefix, app_id))
    return env


@pytest.fixture
def cli() -> Callable[..., Run]:
    """``cli(env, *args, stdin=b"")``: run ``vitalstream`` in a child process with exactly these VITALS_* settings."""

    def run(env: dict[str, str], *args: str, stdin: bytes = b"", timeout_s: float = 90.0) -> Run:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VITALS_")}
        proc = subprocess.run(
            [sys.executable, "-m", "streamer.cli.main", *args],
            cwd=REPO_ROOT,
            env={**clean, **env},
            input=stdin,
            capture_output=True,
            timeout=timeout_s,  # a guard against a hang, not a measurement (bench/security_errors.py measures)
        )
        return Run(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    return run
