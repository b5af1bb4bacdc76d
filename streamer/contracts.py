"""Wire contracts: the JSON that crosses Kafka, as frozen pydantic v2 models.

Units are in the field names; the LOINC, UCUM and IEEE 11073-10101 (MDC) codes of every numeric and waveform
field come from the one table in ``streamer.interop.codes`` and appear in the schemas as ``x-codes``.
Inside the pipeline we pass numpy arrays and frozen dataclasses; these classes live only at the edges.
``vitalstream schemas`` (``make schemas``) writes the JSON Schema files in ``schemas/``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from streamer.interop.codes import code_for, schema_extra, signal_schema_extra

SCHEMA_VERSION = 1
MAX_CHUNK_S = 5.0
MAX_SAMPLES = 20_000
MAX_SEQ = 2**63 - 1  # a signed 64-bit counter, as every Kafka client and database can hold it
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01 UTC: a timestamp beyond it is a unit or parsing bug, not a clock
MAX_REASON_CHARS = 2000

DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
PatientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


def _coded(name: str, **constraints: Any) -> Any:
    """An optional numeric field whose description and ``x-codes`` come from the codes table."""
    return Field(
        default=None, description=code_for(name).description(), json_schema_extra=schema_extra(name), **constraints
    )


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _Telemetry(_Wire):
    # Strict: a device that sends "72" for a number has a bug we want to see in the dead-letter topic.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)

    schema_version: Literal[1] = 1
    device_id: DeviceId = Field(description="Pseudonymous device id (never a name or serial printed on the device).")
    patient_id: PatientId | None = Field(default=None, description="Optional pseudonymous patient id.")
    ts_ms: int = Field(ge=0, le=MAX_TS_MS, description="Device clock, UTC milliseconds, of the first sample.")
    seq: int = Field(
        ge=0, le=MAX_SEQ, description="Per-device sequence number, increasing; used for duplicates and gaps."
    )


class VitalsMessage(_Telemetry):
    """Spot or periodic numerics. Every value is optional; at least one must be present."""

    kind: Literal["vitals"] = "vitals"
    heart_rate_bpm: float | None = _coded("heart_rate_bpm", gt=0, le=300)
    spo2_pct: float | None = _coded("spo2_pct", gt=0, le=100)
    resp_rate_bpm: float | None = _coded("resp_rate_bpm", ge=0, le=100)
    temp_c: float | None = _coded("temp_c", ge=20, le=45)
    sbp_mmhg: float | None = _coded("sbp_mmhg", gt=0, le=300)
    dbp_mmhg: float | None = _coded("dbp_mmhg", gt=0, le=250)
    map_mmhg: float | None = _coded("map_mmhg", gt=0, le=280)
    supplemental_o2: bool | None = Field(default=None, description="On supplemental oxygen (NEWS2).")
    spo2_scale: Literal[1, 2] | None = Field(default=None, description="NEWS2 SpO2 scale (2 for hypercapnic).")
    consciousness: Literal["A", "C", "V", "P", "U"] | None = Field(default=None, description="ACVPU")

    @model_validator(mode="after")
    def _consistent(self) -> VitalsMessage:
        numerics = (
            self.heart_rate_bpm,
            self.spo2_pct,
            self.resp_rate_bpm,
            self.temp_c,
            self.sbp_mmhg,
            self.dbp_mmhg,
            self.map_mmhg,
            self.consciousness,
        )
        if all(v is None for v in numerics):
            raise ValueError("empty: a vitals message carries no measurement")
        if self.sbp_mmhg is not None and self.dbp_mmhg is not None and self.dbp_mmhg >= self.sbp_mmhg:
            raise ValueError("impossible: diastolic pressure not below systolic")
        return self


# Sampling rates the signal path supports per signal (beat detection and filter design need these ranges).
SUPPORTED_FS_HZ: dict[str, tuple[float, float]] = {"ecg": (50.0, 1000.0), "ppg": (20.0, 1000.0), "resp": (1.0, 1000.0)}


class WaveformMessage(_Telemetry):
    """One chunk (0.5-5 s) of a sampled signal. ``value = sample * scale + offset`` when given."""

    kind: Literal["waveform"] = "waveform"
    signal: Literal["ecg", "ppg", "resp"] = Field(json_schema_extra=signal_schema_extra(("ecg", "ppg", "resp")))
    fs_hz: float = Field(
        gt=0, le=2000, description="Sampling rate, Hz (supported: ECG 50-1000, PPG 20-1000, resp 1-1000)."
    )
    samples: list[float] = Field(min_length=1, max_length=MAX_SAMPLES)
    scale: float | None = Field(default=None, description="Multiplier for integer samples (e.g. mV per ADC unit).")
    offset: float | None = None
    units: str | None = Field(default=None, max_length=16, description="UCUM units of the scaled value.")

    @model_validator(mode="after")
    def _duration(self) -> WaveformMessage:
        lo, hi = SUPPORTED_FS_HZ[self.signal]
        if not lo <= self.fs_hz <= hi:
            raise ValueError(f"rate: {self.signal} at {self.fs_hz} Hz is outside the supported {lo:g}-{hi:g} Hz")
        if len(self.samples) / self.fs_hz > MAX_CHUNK_S + 1e-9:
            raise ValueError(f"oversized: chunk longer than {MAX_CHUNK_S} s")
        if self.scale == 0:
            raise ValueError("impossible: scale is 0")
        return self


class MotionMessage(_Telemetry):
    """A 3-axis accelerometer chunk in g."""

    kind: Literal["motion"] = "motion"
    fs_hz: float = Field(gt=0, le=2000)
    x_g: list[float] = Field(min_length=1, max_length=MAX_SAMPLES, json_schema_extra=schema_extra("x_g"))
    y_g: list[float] = Field(min_length=1, max_length=MAX_SAMPLES, json_schema_extra=schema_extra("y_g"))
    z_g: list[float] = Field(min_length=1, max_length=MAX_SAMPLES, json_schema_extra=schema_extra("z_g"))

    @model_validator(mode="after")
    def _axes(self) -> MotionMessage:
        if not len(self.x_g) == len(self.y_g) == len(self.z_g):
            raise ValueError("malformed: accelerometer axes differ in length")
        if len(self.x_g) / self.fs_hz > MAX_CHUNK_S + 1e-9:
            raise ValueError(f"oversized: chunk longer than {MAX_CHUNK_S} s")
        if max(max(map(abs, self.x_g)), max(map(abs, self.y_g)), max(map(abs, self.z_g))) > 64:
            raise ValueError("impossible: acceleration above 64 g")
        return self


Telemetry = Annotated[VitalsMessage | WaveformMessage | MotionMessage, Field(discriminator="kind")]
TELEMETRY = TypeAdapter(Telemetry)


class ReasonCode(StrEnum):
    """Why a message went to the dead-letter topic."""

    OVERSIZED = "OVERSIZED"
    MALFORMED_JSON = "MALFORMED_JSON"
    SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
    UNSUPPORTED_SCHEMA_VERSION = "UNSUPPORTED_SCHEMA_VERSION"
    IMPOSSIBLE_VALUE = "IMPOSSIBLE_VALUE"
    NON_FINITE = "NON_FINITE"
    EMPTY_CHUNK = "EMPTY_CHUNK"
    BAD_SAMPLE_RATE = "BAD_SAMPLE_RATE"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    STALE_SEQ = "STALE_SEQ"
    KEY_MISMATCH = "KEY_MISMATCH"
    PROCESSING_ERROR = "PROCESSING_ERROR"


class DeadLetter(_Wire):
    """Envelope on ``vitals.telemetry.dlq``: the reason, and the original bytes (base64) with their origin."""

    schema_version: Literal[1] = 1
    reason_code: ReasonCode
    reason: str = Field(max_length=MAX_REASON_CHARS)
    original_b64: str = Field(description="The message value exactly as received, base64.")
    original_size_bytes: int = Field(ge=0)
    source_topic: str
    source_partition: int
    source_offset: int
    device_id: str | None = None
    dead_lettered_at_ms: int


class Priority(StrEnum):
    """IEC 60601-1-8 alarm priorities (plus ``info`` for information signals)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


PRIORITY_RANK = {Priority.INFO: 0, Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}


class Condition(StrEnum):
    """Stable condition names; part of the alert schema."""

    SPO2_LOW = "SPO2_LOW"
    HR_HIGH = "HR_HIGH"
    HR_LOW = "HR_LOW"
    RESP_RATE_HIGH = "RESP_RATE_HIGH"
    RESP_RATE_LOW = "RESP_RATE_LOW"
    TEMP_HIGH = "TEMP_HIGH"
    TEMP_LOW = "TEMP_LOW"
    NEWS2_MEDIUM = "NEWS2_MEDIUM"
    NEWS2_HIGH = "NEWS2_HIGH"
    AF_EPISODE = "AF_EPISODE"
    ANOMALY = "ANOMALY"
    DETERIORATION_RISK = "DETERIORATION_RISK"
    LOW_SIGNAL_QUALITY = "LOW_SIGNAL_QUALITY"
    DEVICE_SILENT = "DEVICE_SILENT"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"


class AlertState(StrEnum):
    RAISED = "RAISED"
    ESCALATED = "ESCALATED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class ModelRef(_Wire):
    name: str
    version: str


class Evidence(_Wire):
    """Why the alert fired: the window, the values that crossed the rule, and the signal quality."""

    rule: str
    window_start_ms: int
    window_end_ms: int
    values: dict[str, float | int | str | None] = Field(default_factory=dict)
    signal_quality: float | None = Field(default=None, ge=0, le=1)


class LatencyStamps(_Wire):
    device_ts_ms: int = Field(description="Device time of the data that caused the transition.")
    ingest_ts_ms: int | None = Field(default=None, description="Broker/ingest time of that data.")
    publish_ts_ms: int | None = Field(default=None, description="Wall clock when the alert was published.")


class Alert(_Wire):
    """One alert transition on ``vitals.alerts``: keyed by alert_id (compaction keeps every alert's latest
    transition), on the partition of its device (per-device order holds)."""

    schema_version: Literal[1] = 1
    alert_id: str = Field(description="Deterministic: hash of (device_id, condition, episode_start_ms).")
    device_id: DeviceId
    patient_id: PatientId | None = None
    condition: Condition
    priority: Priority
    state: AlertState
    episode_start_ms: int
    transition_ts_ms: int = Field(description="Event time of this transition.")
    message: str
    evidence: Evidence
    model: ModelRef | None = None
    latency: LatencyStamps


class AlertAck(_Wire):
    """An acknowledgement on ``vitals.alerts.ack`` (keyed by alert_id)."""

    schema_version: Literal[1] = 1
    alert_id: str = Field(min_length=1, max_length=128)
    device_id: DeviceId | None = None
    by: str = Field(default="unknown", max_length=64, description="Pseudonymous user or system id.")
    ts_ms: int = Field(ge=0, le=MAX_TS_MS)
    note: str | None = Field(default=None, max_length=500)


class FeatureRecord(_Wire):
    """Per-window features on ``vitals.features``; names carry units."""

    schema_version: Literal[1] = 1
    device_id: DeviceId
    patient_id: PatientId | None = None
    signal: Literal["ecg", "ppg", "resp", "numerics", "rr", "motion"]
    window_start_ms: int
    window_end_ms: int
    signal_quality: float | None = Field(default=None, ge=0, le=1)
    usable: bool
    features: dict[str, float | None]
    feature_version: str


class ScoreRecord(_Wire):
    """One model output on ``vitals.scores``."""

    schema_version: Literal[1] = 1
    device_id: DeviceId
    model: ModelRef
    ts_ms: int
    score: float
    threshold: float | None = None
    above_threshold: bool | None = None
    source: Literal["ecg", "ppg", "rr", "resp", "numerics", "motion"] | None = Field(
        default=None, description="The window signal the model read (af scores ECG and PPG rhythm separately)."
    )


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "vitals": VitalsMessage,
    "waveform": WaveformMessage,
    "motion": MotionMessage,
    "dead_letter": DeadLetter,
    "alert": Alert,
    "alert_ack": AlertAck,
    "features": FeatureRecord,
    "score": ScoreRecord,
}


def json_schemas() -> dict[str, dict[str, object]]:
    """The JSON Schema of every wire contract, plus the telemetry union, by file stem."""
    out: dict[str, dict[str, object]] = {n: m.model_json_schema() for n, m in WIRE_MODELS.items()}
    out["telemetry"] = TELEMETRY.json_schema()
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(json_schemas().items()):
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
