"""Topic administration (kafka-python): create the pipeline's topics with the configured partition count."""

from __future__ import annotations

import contextlib
import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamer.config import Settings

log = logging.getLogger(__name__)

# Alerts are compaction-friendly (latest transition per key survives) but we keep every transition for a week
# too, so subscribers can replay the history: compact+delete.
# The dead-letter topic must take the largest input we accept plus its base64 envelope (4/3 larger).
_TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    "alerts": {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
    "dlq": {"max.message.bytes": str(16 * 1024 * 1024)},
    # Oversized telemetry must reach the worker to be dead-lettered with a reason, not fail at the producer.
    "telemetry": {"max.message.bytes": str(8 * 1024 * 1024)},
}


def ensure_topics(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Create missing topics (idempotent); return the names that were created."""
    topics = settings.topics
    wanted = names or topics.all()
    admin = KafkaAdminClient(**settings.kafka_client_kwargs(), client_id=f"{settings.app_id}-admin")
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        new = [
            NewTopic(
                name=n,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=_TOPIC_CONFIGS.get(_role(topics, n), {}),
            )
            for n in missing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race: fine
                admin.create_topics(new, timeout_ms=30_000)
            log.info("created topics %s (%d partitions)", missing, settings.partitions)
        return missing
    finally:
        admin.close()


def _role(topics: object, name: str) -> str:
    return next((role for role, value in vars(topics).items() if value == name), "")
