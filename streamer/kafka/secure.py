"""The secured development broker: a throw-away CA and TLS certificate, SCRAM-SHA-512 users, StandardAuthorizer.

Everything lives in the git-ignored ``.kafka/<name>/``: ``tls/`` (CA and server certificate, made with ``openssl``)
and ``credentials.json`` (one random password per principal, mode 0600). The users are written into the KRaft
metadata when the storage is formatted (``kafka-storage format --add-scram``), so they exist before first start.
The ACLs are data, ``deploy/acls.json``, applied by :mod:`streamer.kafka.acls`.

The controller listener (loopback only) uses SASL PLAIN with the broker's own static user: KRaft controllers
cannot check SCRAM credentials, which live in the metadata they serve.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

# Principals of the local secured broker: "admin" is the tool's own super user, "broker" the broker's;
# "nobody" is a valid login with no ACLs, for proving that authorisation, not authentication, refuses it.
USERS = ("admin", "broker", "gateway", "worker", "alerts", "nobody")
SUPER_USERS = ("admin", "broker")
MECHANISM = "SCRAM-SHA-512"


class SecureSetupError(RuntimeError):
    """Certificates or credentials for the secured broker could not be made."""


def credentials(root: Path) -> dict[str, str]:
    """The password of every principal, generated once per broker folder."""
    path = root / "credentials.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    root.mkdir(parents=True, exist_ok=True)
    creds = {user: secrets.token_urlsafe(18) for user in USERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=1)
    return creds


def _openssl(*args: str, cwd: Path) -> None:
    if not shutil.which("openssl"):
        raise SecureSetupError("openssl is needed for the secured broker's certificates: apt-get install openssl")
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SecureSetupError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")


def make_ca(folder: Path, name: str = "ca", subject: str = "/CN=vitalstream throw-away dev CA") -> Path:
    """A self-signed CA (``name.pem`` and ``name.key``) in ``folder``; returns the certificate's path."""
    folder.mkdir(parents=True, exist_ok=True)
    pem = folder / f"{name}.pem"
    if not pem.exists():
        _openssl(
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", subject),
            *("-keyout", f"{name}.key", "-out", pem.name),
            *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
            cwd=folder,
        )
        (folder / f"{name}.key").chmod(0o600)
    return pem


def make_tls(root: Path) -> Path:
    """CA plus a server certificate for 127.0.0.1/localhost; returns the folder (``ca.pem``, ``server.pem``)."""
    tls = root / "tls"
    make_ca(tls)
    server_pem = tls / "server.pem"
    if server_pem.exists():
        return tls
    (tls / "server.ext").write_text(
        "subjectAltName=DNS:localhost,DNS:kafka-secure,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"),
        *("-keyout", "server.key", "-out", "server.csr"),
        cwd=tls,
    )
    _openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-days", "30", "-extfile", "server.ext", "-out", "server.crt"),
        cwd=tls,
    )
    # Kafka's PEM keystore: the PKCS#8 key followed by the certificate chain, in one file.
    key, cert = (tls / "server.key").read_text(), (tls / "server.crt").read_text()
    fd = os.open(server_pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + cert)
    (tls / "server.key").chmod(0o600)
    return tls


def _jaas(module: str, user: str, password: str, *extra: str) -> str:
    fields = " ".join([f'username="{user}"', f'password="{password}"', *extra])
    return f"org.apache.kafka.common.security.{module} required {fields};"


def server_properties(port: int, controller_port: int, tls: Path, creds: dict[str, str]) -> list[str]:
    """The listener, TLS, SASL and authoriser lines of a secured single-node broker."""
    broker = creds["broker"]
    return [
        f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name=SASL_SSL",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={_jaas('scram.ScramLoginModule', 'broker', broker)}",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "listener.name.controller.plain.sasl.jaas.config="
        + _jaas("plain.PlainLoginModule", "broker", broker, f'user_broker="{broker}"'),
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls / 'server.pem'}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls / 'ca.pem'}",
        "ssl.client.auth=none",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=" + ";".join(f"User:{u}" for u in SUPER_USERS),
        "allow.everyone.if.no.acl.found=false",
    ]


def scram_format_args(creds: dict[str, str]) -> list[str]:
    """``kafka-storage format`` arguments that create every SCRAM user before the first start."""
    args: list[str] = []
    for user in USERS:
        args += ["--add-scram", f"{MECHANISM}=[name={user},password={creds[user]}]"]
    return args


def client_env(bootstrap: str, tls: Path, user: str, password: str) -> dict[str, str]:
    """The ``VITALS_*`` settings that connect as ``user``."""
    return {
        "VITALS_KAFKA_BOOTSTRAP": bootstrap,
        "VITALS_SECURITY_PROTOCOL": "SASL_SSL",
        "VITALS_SSL_CAFILE": str(tls / "ca.pem"),
        "VITALS_SASL_MECHANISM": MECHANISM,
        "VITALS_SASL_USERNAME": user,
        "VITALS_SASL_PASSWORD": password,
    }


def admin_kwargs(root: Path, bootstrap: str) -> dict[str, object]:
    """kafka-python connection keywords for the tool's own super user, ``admin``."""
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(root / "tls" / "ca.pem"),
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": "admin",
        "sasl_plain_password": credentials(root)["admin"],
    }


def docker_files(root: Path) -> Path:
    """``root/docker/``: the secured profile of docker-compose.yml mounts it at /secrets (same CA and users).

    ``server.properties`` for the container (a listener for containers, ``kafka-secure:9095``, and one published on
    the host's loopback, ``127.0.0.1:9096``), and ``format.args`` for ``kafka-storage format`` with the SCRAM users.
    """
    tls, creds = make_tls(root), credentials(root)
    out = root / "docker"
    (out / "tls").mkdir(parents=True, exist_ok=True)
    for name in ("ca.pem", "server.pem"):
        (out / "tls" / name).write_bytes((tls / name).read_bytes())
    lines = server_properties(9095, 9093, Path("/secrets/tls"), creds)
    listeners = {
        "listeners": "SASL_SSL://:9095,HOST://:9096,CONTROLLER://:9093",
        "advertised.listeners": "SASL_SSL://kafka-secure:9095,HOST://127.0.0.1:9096",
        "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,HOST:SASL_SSL",
    }
    lines = [f"{k}={listeners[k]}" if (k := line.split("=", 1)[0]) in listeners else line for line in lines]
    jaas = next(line for line in lines if line.startswith("listener.name.sasl_ssl.scram"))
    lines.append(jaas.replace("listener.name.sasl_ssl.", "listener.name.host.", 1))
    lines += [
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.voters=1@localhost:9093",
        "log.dirs=/var/lib/kafka/data",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "message.max.bytes=8388608",
    ]
    (out / "server.properties").write_text("\n".join(lines) + "\n")
    (out / "worker.env").write_text(f"VITALS_SASL_USERNAME=worker\nVITALS_SASL_PASSWORD={creds['worker']}\n")
    (out / "format.args").write_text(" ".join(f"'{a}'" for a in scram_format_args(creds)) + "\n")
    for path in out.rglob("*"):
        if path.is_file():
            path.chmod(0o644)  # read by the container's own user; the folder itself stays git-ignored
    return out
