"""Prometheus metrics of a worker, and the hooks the agents call (docs/OPERATIONS.md lists them with alert rules).

The metrics live in the process-wide default registry (prometheus-client), which also carries the process and
Python collectors; ``streamer.kafka.web`` serves it on ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
_FILL_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)

MESSAGES_IN = Counter("vitals_messages_in", "Records read by an agent from its input topic.", ["agent"])
VALID = Counter("vitals_ingest_valid", "Telemetry records accepted and forwarded to the valid topic.")
DUPLICATES = Counter("vitals_ingest_duplicates", "Telemetry records dropped as duplicates (seq already seen).")
DEAD_LETTERS = Counter("vitals_dead_letters", "Records sent to the dead-letter topic, by reason code.", ["reason"])
BATCH_SIZE = Histogram("vitals_batch_records", "Records per agent batch.", ["agent"], buckets=_SIZE_BUCKETS)
BATCH_SECONDS = Histogram(
    "vitals_batch_processing_seconds", "Time to process one agent batch.", ["agent"], buckets=_LATENCY_BUCKETS_S
)
INFERENCE_SECONDS = Histogram(
    "vitals_inference_seconds", "Time of one model batch (one forward step).", ["model"], buckets=_LATENCY_BUCKETS_S
)
INFERENCE_FILL = Histogram(
    "vitals_inference_batch_fill_ratio",
    "Model batch size over VITALS_BATCH_MAX_SIZE.",
    ["model"],
    buckets=_FILL_BUCKETS,
)
MODEL_LOADED = Gauge("vitals_model_loaded", "1 when the model's checkpoint loaded, else 0.", ["model"])
DEVICES = Gauge("vitals_devices", "Device runtimes held in memory by this worker.")
STATE_BYTES = Gauge("vitals_state_bytes", "Encoded device state last written to the changelog, summed over devices.")
ALERT_TRANSITIONS = Counter(
    "vitals_alert_transitions", "Alert transitions published.", ["condition", "priority", "state"]
)
INGEST_TO_PUBLISH = Histogram(
    "vitals_ingest_to_publish_seconds",
    "From ingest of the data behind an alert transition to its publication.",
    buckets=_LATENCY_BUCKETS_S,
)
CONSUMER_LAG = Gauge(
    "vitals_consumer_lag", "Highwater minus consumer position, per input partition.", ["topic", "partition"]
)
READY = Gauge("vitals_ready", "1 when /ready answers 200.")

_state_bytes: dict[str, int] = {}
_stages: list[Any] = []  # the watched inference stage; empty before wiring or when the stage failed to build


def models_loaded() -> bool:
    """Every model's checkpoint loaded (readiness): False before the pipeline is wired or when one failed."""
    return bool(_stages) and all(not stage.load_errors for stage in _stages)


def batch_done(agent: str, records: int, started_s: float) -> None:
    """One agent batch processed; ``started_s`` is its ``time.perf_counter()`` at the start."""
    MESSAGES_IN.labels(agent).inc(records)
    BATCH_SIZE.labels(agent).observe(records)
    BATCH_SECONDS.labels(agent).observe(time.perf_counter() - started_s)


def dead_lettered(reason: str) -> None:
    DEAD_LETTERS.labels(str(reason)).inc()


def alerts_published(alerts: Iterable[Any], publish_ts_ms: int) -> None:
    """Count alert transitions and observe ingest->publish latency of those that carry an ingest stamp."""
    for a in alerts:
        ALERT_TRANSITIONS.labels(a.condition.value, a.priority.value, a.state.value).inc()
        if a.latency.ingest_ts_ms:
            INGEST_TO_PUBLISH.observe(max(0, publish_ts_ms - a.latency.ingest_ts_ms) / 1000.0)


def state_written(device_id: str, n_bytes: int) -> None:
    _state_bytes[device_id] = n_bytes
    STATE_BYTES.set(sum(_state_bytes.values()))


def state_forgotten() -> None:
    """Partitions were revoked: this worker no longer holds those devices' state."""
    _state_bytes.clear()
    STATE_BYTES.set(0)


def observe_inference(model: str, batch_size: int, max_batch_size: int, seconds: float) -> None:
    INFERENCE_SECONDS.labels(model).observe(seconds)
    INFERENCE_FILL.labels(model).observe(batch_size / max_batch_size)


def watch_pipeline(device_count: Callable[[], int], stage: Any | None) -> None:
    """Gauges read at scrape time (devices held), batch observers on the inference stage's models, the models check."""
    DEVICES.set_function(device_count)
    _stages.clear()
    if stage is None:  # the stage itself failed to build: no model runs
        return
    _stages.append(stage)
    for name in stage.load_errors:
        MODEL_LOADED.labels(name).set(0)
    for name, model in stage.models.items():
        MODEL_LOADED.labels(name).set(1)
        model.batcher.observer = observe_inference


def set_lag(lags: dict[tuple[str, int], int]) -> None:
    """Replace the lag series by ``(topic, partition) -> lag`` (revoked partitions disappear)."""
    CONSUMER_LAG.clear()
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic, str(partition)).set(lag)
