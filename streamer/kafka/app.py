"""The Faust application: settings to ``faust.App``, topics with raw bytes, and the worker entry point."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import faust

from streamer.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppTopics:
    telemetry: faust.TopicT
    telemetry_valid: faust.TopicT
    dlq: faust.TopicT
    features: faust.TopicT
    scores: faust.TopicT
    alerts: faust.TopicT
    alerts_ack: faust.TopicT


def _credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.ssl_certfile:
            context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile or ""))
    if settings.security_protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def build_app(settings: Settings) -> tuple[faust.App, AppTopics]:
    """A Faust app whose topics carry raw bytes: we validate and serialise ourselves (pydantic at the edges)."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        datadir=str(settings.data_dir),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        producer_acks=-1,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_max_request_size=16 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        stream_buffer_maxsize=4 * settings.stream_take_max,
        table_cleanup_interval=3600.0,
    )
    names = settings.topics

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    topics = AppTopics(
        telemetry=raw_topic(names.telemetry),
        telemetry_valid=raw_topic(names.telemetry_valid),
        dlq=raw_topic(names.dlq),
        features=raw_topic(names.features),
        scores=raw_topic(names.scores),
        alerts=raw_topic(names.alerts),
        alerts_ack=raw_topic(names.alerts_ack),
    )
    return app, topics


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Create the topics, wire the agents and run a Faust worker until SIGINT/SIGTERM."""
    from streamer.kafka.agents import wire
    from streamer.kafka.topics import ensure_topics
    from streamer.kafka.web import attach
    from streamer.logs import dict_config

    ensure_topics(settings)
    app, topics = build_app(settings)
    wire(app, topics, settings)
    attach(app, settings)
    # Faust's producer buffer holds 100 table writes before it blocks the stream; batches of
    # stream.take() touch up to stream_take_max devices at once, so let the buffer hold one batch.
    app.producer.buffer.max_messages = max(100, 2 * settings.stream_take_max)
    # JSON lines for log shippers; text keeps Faust's own (coloured on a terminal) format.
    logging_config = dict_config(loglevel.upper(), "json") if settings.log_format == "json" else None
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=logging_config)
    worker.execute_from_commandline()
    return 0
