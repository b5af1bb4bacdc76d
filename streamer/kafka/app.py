"""The Faust application: settings to ``faust.App`` and its clients, the worker entry point that hosts the stages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Any

import faust
import mode

from streamer.config import Settings

log = logging.getLogger(__name__)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.ssl_certfile:
        context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile or ""))
    return context


def _credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def aiokafka_kwargs(settings: Settings) -> dict[str, object]:
    """Connection keywords for the stages' own aiokafka clients (the same credentials as the Faust app)."""
    kwargs: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.security_protocol,
    }
    context = _ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return kwargs


def build_app(settings: Settings) -> faust.App:
    """The Faust app that hosts the stages: lifecycle, signals and logging; its own consumer reads no topic."""
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        datadir=str(settings.data_dir),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
    )


class StageHost(mode.Service):
    """Runs the :class:`streamer.kafka.worker.DeliveryWorker` for the app's lifetime; a stage that fails crashes
    the worker loudly (a supervisor restarts it and the stages resume from their changelogs)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.worker: Any | None = None  # the DeliveryWorker once started (readiness, lag)
        self._task: asyncio.Future[None] | None = None

    async def on_start(self) -> None:
        from streamer.kafka.worker import DeliveryWorker

        self.worker = DeliveryWorker(self.settings, aiokafka_kwargs(self.settings))
        self._task = asyncio.ensure_future(self._run(self.worker))

    async def _run(self, worker: Any) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("a stage failed; stopping the worker")
            await self.crash(exc)

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _StagesFirstWorker(faust.Worker):  # type: ignore[misc]
    """On SIGTERM the stages leave their groups first. The app stops its own (idle) consumer before its
    dependencies, which took 30-40 s here; meanwhile the stages' partitions sat with a process that no longer
    read them, and the other worker took them over only after that."""

    def __init__(self, host: StageHost, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._host = host

    async def on_stop(self) -> None:
        await self._host.stop()  # (stopping it again as the app's dependency does nothing)
        await super().on_stop()


def check_partitions(settings: Settings) -> None:
    """Refuse to start when an internal topic's partition count differs from the input topics' (state could not
    follow its partition)."""
    from streamer.kafka.topics import internal_topics, partition_counts

    names = [settings.topics.telemetry, settings.topics.telemetry_valid, *internal_topics(settings)]
    counts = partition_counts(settings, names)
    deadline = time.monotonic() + 30.0
    while len(counts) != len(names) and time.monotonic() < deadline:  # topics created a moment ago may not be
        time.sleep(0.5)  # in the metadata yet (UNKNOWN_TOPIC_OR_PARTITION for a second or more on a busy broker)
        counts = partition_counts(settings, names)
    wrong: dict[str, int | None] = {n: c for n, c in counts.items() if c != settings.partitions}
    wrong |= {n: None for n in names if n not in counts}
    if wrong:
        raise SystemExit(f"topics with a partition count other than {settings.partitions} (None: missing): {wrong}")


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Create the topics, check their partitions, host the stages in a Faust worker until SIGINT/SIGTERM."""
    from streamer.kafka.topics import ensure_topics
    from streamer.kafka.web import attach
    from streamer.logs import dict_config

    ensure_topics(settings)
    check_partitions(settings)
    app = build_app(settings)
    host = StageHost(settings, loop=app.loop, beacon=app.beacon)
    app.add_dependency(host)
    attach(app, settings, lambda: host.worker)
    if settings.fhir_export:
        from streamer.kafka.fhir_export import wire_fhir_export

        wire_fhir_export(app, settings)
    # JSON lines for log shippers; text keeps Faust's own (coloured on a terminal) format.
    logging_config = dict_config(loglevel.upper(), "json") if settings.log_format == "json" else None
    worker = _StagesFirstWorker(host, app, loglevel=loglevel, quiet=True, logging_config=logging_config)
    worker.execute_from_commandline()
    return 0
