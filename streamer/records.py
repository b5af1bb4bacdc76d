"""Plain frozen records passed between the pipeline stages (no Kafka, no pydantic inside)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FEATURE_VERSION = "1"


@dataclass(frozen=True)
class FeatureWindow:
    """Features of one closed window of one device's signal (stage 3 output)."""

    device_id: str
    signal: str  # "ecg" | "ppg" | "resp" | "numerics" | "rr" | "motion"
    window_start_ms: int
    window_end_ms: int
    signal_quality: float | None
    usable: bool
    features: Mapping[str, float | None]
    rr_ms: tuple[float, ...] = ()  # RR (or pulse-to-pulse) intervals ending in this window, for the AF model
    # ECG only: the morphology row (streamer.features.morphology.MORPH_NAMES) of the beat ending each interval
    beat_morph: tuple[tuple[float, ...], ...] = ()
    patient_id: str | None = None
    feature_version: str = FEATURE_VERSION


@dataclass(frozen=True)
class TechnicalEvent:
    """A technical condition turning on or off (LOW_SIGNAL_QUALITY, DEVICE_SILENT, MODEL_UNAVAILABLE)."""

    device_id: str
    condition: str
    active: bool
    ts_ms: int
    detail: str = ""
    signal: str | None = None
    values: Mapping[str, float | None] = field(default_factory=dict)
