"""Topic administration (kafka-python): the pipeline's topics and the worker's internal topics, created up front.

Internal topics (changelogs of the stages' partition state, the acknowledgements re-keyed by device) have the input
topics' partition count and are created here, before any worker starts, so no broker ever auto-creates one with a
single partition that could not follow the input partitions once there are two workers.
"""

from __future__ import annotations

import contextlib
import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streamer.config import Settings

log = logging.getLogger(__name__)

STAGES = ("ingest", "pipeline", "acks")
_WEEK_MS = str(7 * 24 * 3600 * 1000)

# Alerts are keyed by alert id: compaction keeps every alert's latest transition, and we keep every transition
# for a week too, so subscribers can replay the history: compact+delete.
# The dead-letter topic must take the largest input we accept plus its base64 envelope (4/3 larger).
_TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    "alerts": {"cleanup.policy": "compact,delete", "retention.ms": _WEEK_MS},
    "dlq": {"max.message.bytes": str(16 * 1024 * 1024)},
    # Oversized telemetry must reach the worker to be dead-lettered with a reason, not fail at the producer.
    "telemetry": {"max.message.bytes": str(8 * 1024 * 1024)},
}
# A changelog keeps the latest state of every key for ever; device states can reach a few MB.
_CHANGELOG_CONFIG = {"cleanup.policy": "compact", "max.message.bytes": str(16 * 1024 * 1024)}


def changelog_topic(settings: Settings, stage: str) -> str:
    return f"{settings.app_id}-{stage}-changelog"


def acks_by_device_topic(settings: Settings) -> str:
    """Acknowledgements re-keyed by device id, on the partition where the device's state lives."""
    return f"{settings.app_id}-acks-by-device"


def internal_topics(settings: Settings) -> dict[str, dict[str, str]]:
    topics = {changelog_topic(settings, s): _CHANGELOG_CONFIG for s in STAGES}
    topics[acks_by_device_topic(settings)] = {"retention.ms": _WEEK_MS}
    return topics


def topic_config(settings: Settings, name: str) -> dict[str, str]:
    """The configs a topic is created with. With three or more replicas, acks=all must mean two copies
    (min.insync.replicas=2) and a replica that lags may never become leader and drop acknowledged writes."""
    config = dict(internal_topics(settings).get(name) or _TOPIC_CONFIGS.get(_role(settings.topics, name), {}))
    if settings.replication_factor >= 3:
        config |= {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
    return config


def ensure_topics(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Create missing topics (idempotent); return the names that were created.

    Without ``names``: every pipeline topic and every internal topic of the worker ``settings.app_id``.
    """
    topics = settings.topics
    internal = internal_topics(settings)
    wanted = names or topics.all() + list(internal)
    admin = KafkaAdminClient(**settings.kafka_client_kwargs(), client_id=f"{settings.app_id}-admin")
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        new = [
            NewTopic(
                name=n,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=topic_config(settings, n),
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


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    """How many partitions each existing topic has (a worker refuses to start on a mismatch)."""
    admin = KafkaAdminClient(**settings.kafka_client_kwargs(), client_id=f"{settings.app_id}-admin")
    try:
        described = admin.describe_topics(names)
    finally:
        admin.close()
    return {d["name"]: len(d["partitions"]) for d in described if not d.get("error_code")}


def _role(topics: object, name: str) -> str:
    return next((role for role, value in vars(topics).items() if value == name), "")
