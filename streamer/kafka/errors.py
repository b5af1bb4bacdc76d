"""Kafka client failures (kafka-python and aiokafka) as one line that names the setting to check.

Used at the CLI boundary: :func:`probe` checks a connection before a command starts (so a wrong password, CA or
protocol fails in seconds instead of after a minute of retries), and :func:`explain` turns any client error into
one line. Errors are recognised by class name, so neither client library has to be imported to explain the other's.

Exceptions::

    KafkaSetupError      the broker cannot be used with these settings (``str(exc)`` is the one line)
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator

from streamer.config import Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 6.0
CONNECT_TIMEOUT_S = 3.0


class KafkaSetupError(RuntimeError):
    """The broker cannot be used with the current ``VITALS_*`` settings; the message is one line."""


def probe(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Connect, handshake, authenticate and fetch metadata once; raise :class:`KafkaSetupError` on any failure."""
    _check_files(settings)
    if not any(_reachable(server) for server in _servers(settings.kafka_bootstrap)):
        raise KafkaSetupError(
            f"no broker reachable at {settings.kafka_bootstrap}: check VITALS_KAFKA_BOOTSTRAP "
            "(host:port[,host:port]) and that the broker is running"
        )
    protocol = settings.security_protocol
    with _client_errors(sasl="SASL" in protocol, tls="SSL" in protocol) as collector:
        outcome = _bootstrap_in_background(settings, timeout_s, collector.decisive)
        # kafka-python retries an authentication or TLS failure until its timeout; the first one decides.
        collector.decisive.wait(timeout_s + 2.0)
        cause = collector.first_decisive()
        admin = outcome.get("admin")
        if cause is None and admin is not None:
            admin.close()  # type: ignore[attr-defined]
            return
        cause = cause or outcome.get("error") or (collector.seen[-1] if collector.seen else None)  # type: ignore[assignment]
    if not isinstance(cause, BaseException):
        raise KafkaSetupError(_unexplained(TimeoutError(f"no answer in {timeout_s:.0f} s"), settings))
    raise KafkaSetupError(explain(cause, settings) or _unexplained(cause, settings)) from cause


def _bootstrap_in_background(settings: Settings, timeout_s: float, done: threading.Event) -> dict[str, object]:
    """Bootstrap a kafka-python admin client in a daemon thread; the dict gets "admin" or "error", then ``done``."""
    from kafka import KafkaAdminClient

    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["admin"] = KafkaAdminClient(
                **settings.kafka_client_kwargs(),
                bootstrap_timeout_ms=int(timeout_s * 1000),
                request_timeout_ms=int(timeout_s * 1000),
                client_id=f"{settings.app_id}-probe",
            )
        except Exception as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="kafka-probe", daemon=True).start()
    return outcome


def require_topics(settings: Settings, topics: list[str], operation: str) -> None:
    """Raise :class:`KafkaSetupError` when the principal may not ``operation`` (READ, WRITE) one of ``topics``.

    kafka-python only logs a topic it may not even describe and then waits for records forever; this asks once.
    A topic that does not exist yet passes (it may be created later).
    """
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_client_kwargs(), client_id=f"{settings.app_id}-acl-check")
    try:
        described = admin.describe_topics(topics)
    finally:
        admin.close()
    for topic in described:
        ops = topic.get("authorized_operations")
        if topic["error_code"] == _TOPIC_AUTHORIZATION_FAILED or (ops and operation not in ops):
            raise KafkaSetupError(_refused(settings, f"{operation} on topic {topic['name']}"))


_TOPIC_AUTHORIZATION_FAILED = 29


def _refused(settings: Settings, what: str) -> str:
    who = f"VITALS_SASL_USERNAME={settings.sasl_username}" if settings.sasl_username else "this client"
    return (
        f"not authorised: the broker's ACLs do not grant {who} {what}: check VITALS_SASL_USERNAME, "
        "VITALS_TOPIC_PREFIX/VITALS_APP_ID and the ACLs (deploy/acls.json)"
    )


def explain(exc: BaseException, settings: Settings | None = None) -> str | None:
    """One line for a Kafka client, TLS or connection error; None when ``exc`` is none of those."""
    settings = settings or Settings()
    if isinstance(exc, KafkaSetupError):
        return str(exc)
    name = type(exc).__name__
    who = f"VITALS_SASL_USERNAME={settings.sasl_username}" if settings.sasl_username else "this client"
    if name in ("SaslAuthenticationFailedError", "AuthenticationFailedError", "_AuthenticationDropped"):
        return (
            f"authentication failed for {who} at {settings.kafka_bootstrap}: check VITALS_SASL_PASSWORD "
            f"(and VITALS_SASL_MECHANISM={settings.sasl_mechanism})"
        )
    if name == "UnsupportedSaslMechanismError":
        return f"the broker does not accept VITALS_SASL_MECHANISM={settings.sasl_mechanism}: check it"
    if name.endswith("AuthorizationFailedError") or name == "AuthorizationError":
        kind = name.removesuffix("AuthorizationFailedError").lower() or "resource"
        return _refused(settings, f"access to {kind} {_named(exc, settings) or '(see the broker log)'}")
    tls = _tls_failure(exc)
    if tls == "verify":
        return (
            f"the broker's TLS certificate at {settings.kafka_bootstrap} is not trusted: check VITALS_SSL_CAFILE"
            f"={settings.ssl_cafile} (the CA that signed the broker's certificate) [{_brief(exc)}]"
        )
    if tls == "handshake":
        return (
            f"TLS handshake with {settings.kafka_bootstrap} failed: check VITALS_SECURITY_PROTOCOL="
            f"{settings.security_protocol} (does that listener speak TLS?) and VITALS_KAFKA_BOOTSTRAP [{_brief(exc)}]"
        )
    if name in ("NoBrokersAvailable", "KafkaTimeoutError", "KafkaConnectionError", "RequestTimedOutError") or (
        isinstance(exc, ConnectionError | TimeoutError)
    ):
        return _connection_line(exc, settings)
    return None


def _tls_failure(exc: BaseException) -> str | None:
    """ "verify" (untrusted certificate), "handshake" (any other TLS failure) or None; kafka-python wraps
    ssl errors in a KafkaConnectionError("Handshake failed: ...") that keeps only their text."""
    text = str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return "verify"
    if isinstance(exc, ssl.SSLError) or text.startswith("Handshake failed") or "[SSL:" in text:
        return "handshake"
    return None


def _connection_line(exc: BaseException, settings: Settings) -> str:
    if "SSL" not in settings.security_protocol:
        return (
            f"the broker at {settings.kafka_bootstrap} dropped a {settings.security_protocol} connection: check "
            "VITALS_SECURITY_PROTOCOL (a TLS or SASL listener needs SSL/SASL_SSL) and VITALS_KAFKA_BOOTSTRAP "
            f"[{_brief(exc)}]"
        )
    return (
        f"no usable broker at {settings.kafka_bootstrap}: check VITALS_KAFKA_BOOTSTRAP and "
        f"VITALS_SECURITY_PROTOCOL={settings.security_protocol} [{_brief(exc)}]"
    )


def _named(exc: BaseException, settings: Settings) -> str:
    """The pipeline's topics or group that the error text mentions (the clients word it differently)."""
    text = str(exc)
    candidates = [*settings.topics.all(), settings.app_id]
    found = [n for n in candidates if re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])", text)]
    return ", ".join(found[:3])


def _unexplained(exc: BaseException, settings: Settings) -> str:
    return f"cannot use the broker at {settings.kafka_bootstrap}: check the VITALS_KAFKA_* settings [{_brief(exc)}]"


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _check_files(settings: Settings) -> None:
    for env, path in (
        ("VITALS_SSL_CAFILE", settings.ssl_cafile),
        ("VITALS_SSL_CERTFILE", settings.ssl_certfile),
        ("VITALS_SSL_KEYFILE", settings.ssl_keyfile),
    ):
        if path is not None and not path.is_file():
            raise KafkaSetupError(f"{env}={path} does not exist or is not a file: check {env}")
    if "SASL" in settings.security_protocol and not (settings.sasl_mechanism and settings.sasl_username):
        raise KafkaSetupError(
            f"VITALS_SECURITY_PROTOCOL={settings.security_protocol} needs VITALS_SASL_MECHANISM and "
            "VITALS_SASL_USERNAME (and VITALS_SASL_PASSWORD)"
        )


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    servers = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        try:
            servers.append((host.strip("[]") or "localhost", int(port)))
        except ValueError:
            raise KafkaSetupError(f"VITALS_KAFKA_BOOTSTRAP={bootstrap!r} is not host:port[,host:port]") from None
    return servers


def _reachable(server: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(server, timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


class _Collector(logging.Handler):
    """Keeps the exceptions kafka-python logs while it retries, which it never raises itself."""

    def __init__(self, sasl: bool, tls: bool) -> None:
        super().__init__(logging.DEBUG)
        self.sasl, self.tls, self.drops = sasl, tls, 0
        self.seen: list[BaseException] = []
        self.spoke_kafka = False  # a connection got as far as the broker's ApiVersions answer
        self.decisive = threading.Event()  # set on an authentication/TLS failure, or when the bootstrap ends

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        errors = [a for a in args if isinstance(a, BaseException)]
        if errors and self.sasl and self.spoke_kafka:
            # TLS and ApiVersions went through, then the broker hung up: it does that when SASL authentication
            # fails, often before kafka-python has read the error response.
            errors.insert(0, _AuthenticationDropped("the broker closed the connection during SASL authentication"))
        if errors and not self.tls and not self.spoke_kafka and "socket disconnected" in str(errors[0]):
            self.drops += 1  # accepted, then hung up before any Kafka answer: a TLS listener does that to plaintext
            if self.drops >= 2:
                errors.insert(0, _ListenerDropped("the broker hung up before answering ApiVersions"))
        self.seen.extend(errors)
        self.spoke_kafka = self.spoke_kafka or "Broker version identified" in str(record.msg)
        if self.seen_decisive():
            self.decisive.set()

    def first_decisive(self) -> BaseException | None:
        return next((e for e in self.seen if _is_decisive(e)), None)

    def seen_decisive(self) -> bool:
        return self.first_decisive() is not None


class _AuthenticationDropped(ConnectionError):
    """The broker closed the connection during SASL authentication."""


class _ListenerDropped(ConnectionError):
    """The broker closed a plaintext connection before any Kafka answer (it expects TLS, or another protocol)."""


def _is_decisive(exc: BaseException) -> bool:
    """Failures that retrying cannot cure: credentials, mechanism, certificates, authorisation."""
    name = type(exc).__name__
    return (
        _tls_failure(exc) is not None
        or isinstance(exc, _AuthenticationDropped | _ListenerDropped)
        or name in ("SaslAuthenticationFailedError", "AuthenticationFailedError", "UnsupportedSaslMechanismError")
        or name.endswith("AuthorizationFailedError")
    )


@contextlib.contextmanager
def _client_errors(sasl: bool, tls: bool) -> Iterator[_Collector]:
    """Collect kafka-python's logged connection errors, and keep its retry chatter off the console meanwhile."""
    logger = logging.getLogger("kafka")
    collector, level, propagate = _Collector(sasl, tls), logger.level, logger.propagate
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.INFO)
    logger.propagate = log.isEnabledFor(logging.DEBUG)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(level)
        logger.propagate = propagate
