"""Runtime settings: one frozen pydantic-settings class, environment prefix ``VITALS_``."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


def recordings_dir() -> Path:
    """The folder of real PhysioNet recordings: ``$VITALS_RECORDINGS_DIR``, else ``../shared/data`` beside the repo.

    Distinct from ``Settings.data_dir`` (``VITALS_DATA_DIR``), where a worker keeps its own files.
    """
    env = os.environ.get("VITALS_RECORDINGS_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data").resolve()


class Settings(BaseSettings):
    """Every knob of a worker or a CLI command. ``VITALS_KAFKA_BOOTSTRAP=host:9092`` and so on."""

    model_config = SettingsConfigDict(env_prefix="VITALS_", frozen=True, extra="ignore")

    # Kafka connection.
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    # Worker.
    app_id: str = "vitalstream"
    data_dir: Path = Path("var/worker")
    # /health, /ready and /metrics (streamer/kafka/web.py); port 0 turns them off. 127.0.0.1 unless a container
    # or a Prometheus on another host must reach them (then 0.0.0.0 behind the cluster's network policy).
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"  # streamer/logs.py reads it before Settings exist, same values
    # The most records one stage's batch takes over all its partitions (each runner consumer's max_poll_records).
    # bench/stage_path.py --cut at 1,000 devices in one partition measured 524 us per message in batches of 62
    # against 332 in batches of 500, but a 1,000-device fleet on 8 partitions showed no difference between 500 and
    # 4,000 (456 against 459 us per message; the worker is bound by the GIL, not by batch overheads, there).
    stream_take_max: int = Field(default=500, ge=1)
    producer_max_batch_bytes: int = Field(default=1_048_576, ge=1024)
    producer_linger_ms: int = Field(default=5, ge=0)
    fhir_export: bool = False  # also publish FHIR R4 Bundles of features, scores and alerts on vitals.fhir

    # Ingest validation.
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    future_margin_ms: int = Field(default=60_000, ge=0)
    dedup_window: int = Field(default=4096, ge=16)
    # Device states are written to the changelog this long after they first change (0: with every batch); a
    # kill -9 repeats at most about this much input.
    checkpoint_s: float = Field(default=15.0, ge=0)

    # Windows and signal processing.
    ecg_window_s: float = Field(default=10.0, gt=0)
    ecg_hop_s: float = Field(default=2.0, gt=0)
    ppg_window_s: float = Field(default=8.0, gt=0)
    ppg_hop_s: float = Field(default=2.0, gt=0)
    resp_window_s: float = Field(default=32.0, gt=0)
    resp_hop_s: float = Field(default=2.0, gt=0)
    rr_window_beats: int = Field(default=32, ge=4)
    numerics_window_s: float = Field(default=60.0, gt=0)
    late_grace_ms: int = Field(default=2_000, ge=0)
    # Close a numerics window once the device's seqs show nothing more can come for it (a gap-free seq up to a
    # message at or past its end), instead of always waiting the late grace; off for devices whose timestamps do
    # not increase with seq.
    numerics_close_on_seq: bool = True
    silence_timeout_s: float = Field(default=30.0, gt=0)
    sqi_threshold: float = Field(default=0.5, ge=0, le=1)

    # Inference.
    batch_max_size: int = Field(default=256, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    weights_dir: Path | None = None

    # Alerts.
    escalate_after_s: float = Field(default=120.0, gt=0)

    @property
    def topics(self) -> Topics:
        return _topics(self.topic_prefix)  # asked for per message on the hot path: built once per prefix

    def kafka_client_kwargs(self) -> dict[str, object]:
        """Connection settings in the keyword form shared by kafka-python and aiokafka."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.ssl_cafile:
            kwargs["ssl_cafile"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            kwargs["ssl_certfile"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            kwargs["ssl_keyfile"] = str(self.ssl_keyfile)
        return kwargs


@functools.lru_cache(maxsize=64)
def _topics(prefix: str) -> Topics:
    return Topics.with_prefix(prefix)


@dataclass(frozen=True)
class Topics:
    """Topic names, each under the configurable prefix (multi-tenant clusters)."""

    telemetry: str
    telemetry_valid: str
    dlq: str
    features: str
    scores: str
    alerts: str
    alerts_ack: str

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(
            telemetry=f"{prefix}vitals.telemetry",
            telemetry_valid=f"{prefix}vitals.telemetry.valid",
            dlq=f"{prefix}vitals.telemetry.dlq",
            features=f"{prefix}vitals.features",
            scores=f"{prefix}vitals.scores",
            alerts=f"{prefix}vitals.alerts",
            alerts_ack=f"{prefix}vitals.alerts.ack",
        )

    def all(self) -> list[str]:
        return [
            self.telemetry,
            self.telemetry_valid,
            self.dlq,
            self.features,
            self.scores,
            self.alerts,
            self.alerts_ack,
        ]
