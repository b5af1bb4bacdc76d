"""A wrong password, CA, protocol or address: one line naming the setting to check, and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
COMMANDS = [("tail", "alerts", "--idle-timeout", "2"), ("ack", "a1b2c3d4e5f6"), ("worker",)]


def _one_line_naming(run, setting: str) -> str:  # type: ignore[no-untyped-def]
    assert run.returncode != 0, run
    assert len(run.error_lines) == 1, run.stderr
    assert run.error_lines[0].startswith("error: ") and setting in run.error_lines[0], run.error_lines[0]
    return run.error_lines[0]


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from streamer.kafka.secure import make_ca

    return make_ca(tmp_path_factory.mktemp("other-ca"), "other", "/CN=not the broker's CA")


@pytest.mark.parametrize("command", COMMANDS[::2], ids=[c[0] for c in COMMANDS[::2]])
def test_wrong_password(secured_env, cli, command: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    env = {**secured_env("worker"), "VITALS_SASL_PASSWORD": "not-the-password"}
    line = _one_line_naming(cli(env, *command), "VITALS_SASL_PASSWORD")
    assert "authentication failed" in line


def test_wrong_ca(secured_env, cli, other_ca: Path) -> None:  # type: ignore[no-untyped-def]
    env = {**secured_env("alerts"), "VITALS_SSL_CAFILE": str(other_ca)}
    assert "not trusted" in _one_line_naming(cli(env, "alerts", "--idle-timeout", "2"), "VITALS_SSL_CAFILE")


def test_missing_ca_file(secured_env, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {**secured_env("worker"), "VITALS_SSL_CAFILE": str(tmp_path / "absent.pem")}
    _one_line_naming(cli(env, "worker"), "VITALS_SSL_CAFILE")


def test_plaintext_client_on_the_tls_listener(secured_env, cli) -> None:  # type: ignore[no-untyped-def]
    env = {"VITALS_KAFKA_BOOTSTRAP": secured_env("admin")["VITALS_KAFKA_BOOTSTRAP"]}
    _one_line_naming(cli(env, "tail", "alerts", "--idle-timeout", "2"), "VITALS_SECURITY_PROTOCOL")


def test_tls_client_on_a_plaintext_listener(secured_env, cli, kafka_bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    env = {**secured_env("worker"), "VITALS_KAFKA_BOOTSTRAP": kafka_bootstrap}
    _one_line_naming(cli(env, "ack", "a1b2c3d4e5f6"), "VITALS_SECURITY_PROTOCOL")


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_unreachable_broker(cli, command: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        env = {"VITALS_KAFKA_BOOTSTRAP": f"127.0.0.1:{sock.getsockname()[1]}"}
        _one_line_naming(cli(env, *command), "VITALS_KAFKA_BOOTSTRAP")
