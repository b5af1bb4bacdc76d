"""Stages 2 and 3 for one device: chunks in, closed feature windows and technical events out, restartable.

:class:`DeviceSignalProcessor` is what the Faust agent and the offline runner call. Each waveform signal (and
the accelerometer) gets a :class:`Channel`: a :class:`~streamer.signals.windows.SampleStream` (order, duplicates,
gaps), a causal filter, a streaming beat detector and a window schedule. Everything is plain data, so
``to_state()`` is JSON and ``from_state(to_state())`` continues exactly where the original would have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from streamer.config import Settings
from streamer.contracts import Condition, MotionMessage, VitalsMessage, WaveformMessage
from streamer.features.extract import numerics_features
from streamer.records import FeatureWindow, TechnicalEvent
from streamer.signals.channels import Channel
from streamer.signals.numerics import SeqWatermark, TumblingNumerics
from streamer.signals.windows import Reset, Samples

log = logging.getLogger(__name__)
_NUMERIC_KEYS = (
    "heart_rate_bpm",
    "spo2_pct",
    "resp_rate_bpm",
    "temp_c",
    "sbp_mmhg",
    "dbp_mmhg",
    "map_mmhg",
    "supplemental_o2",
    "spo2_scale",
    "consciousness",
)


Telemetry = VitalsMessage | WaveformMessage | MotionMessage


@dataclass(frozen=True)
class Admitted:
    """A chunk past its channel's SampleStream: what ``Channel.apply`` takes (``DeviceSignalProcessor.admit``)."""

    channel: Channel
    events: list[Samples | Reset]


@dataclass(frozen=True)
class StageOutput:
    windows: tuple[FeatureWindow, ...] = ()
    events: tuple[TechnicalEvent, ...] = ()  # LOW_SIGNAL_QUALITY / DEVICE_SILENT on and off


class DeviceSignalProcessor:
    """Windows, filters, beats, quality and features of one device's telemetry."""

    def __init__(self, device_id: str, settings: Settings, patient_id: str | None = None) -> None:
        self.device_id = device_id
        self.settings = settings
        self.patient_id = patient_id
        self.channels: dict[str, Channel] = {}
        self.numerics = TumblingNumerics(round(settings.numerics_window_s * 1000), settings.late_grace_ms)
        # Numerics windows also close as soon as the device's seqs show them complete (``SeqWatermark``).
        self.watermark = SeqWatermark() if settings.numerics_close_on_seq else None
        self.last_ingest_ms: int | None = None
        self.clock_offset_ms = 0  # wall clock minus device clock, from the last message
        self.silent = False
        self.low_quality: dict[str, bool] = {}
        self.counts = {"numerics_too_late": 0}
        self._held = False  # a rate change was admitted: the rest of the batch goes through finish alone

    # -- inputs -------------------------------------------------------------------------------------
    def on_message(self, msg: Telemetry, ingest_ts_ms: int | None = None) -> StageOutput:
        return self.finish(msg, ingest_ts_ms, self.admit(msg))

    def admit(self, msg: Telemetry) -> Admitted | None:
        """First half of ``on_message``: a chunk through its channel's SampleStream (order, duplicates, gaps).

        A batch admits all its messages, then finishes them in order, so that the chunks in between can be
        filtered for the whole fleet at once (``streamer/signals/fleet.py``). None: ``finish`` does the whole
        message (numerics; a rate change, and after one every later message of this device in the batch).
        """
        if isinstance(msg, VitalsMessage) or self._held:
            return None
        signal = msg.signal if isinstance(msg, WaveformMessage) else "motion"
        known = self.channels.get(signal)
        if known is not None and known.fs_hz != float(msg.fs_hz):
            self._held = True  # the channel restarts in finish; this batch's later chunks must wait for that
            return None
        channel = self._channel(signal, msg.fs_hz)
        return Admitted(channel, channel.stream.push(msg.ts_ms, msg.seq, self._samples(msg)))

    def finish(self, msg: Telemetry, ingest_ts_ms: int | None, admitted: Admitted | None) -> StageOutput:
        """Second half of ``on_message``: buffers, beats, windows, features and events of one message."""
        self._held = False  # every message of the batch is admitted by now
        events: list[TechnicalEvent] = []
        if self.silent:
            self.silent = False
            events.append(self._event(Condition.DEVICE_SILENT, False, msg.ts_ms, "data again"))
        self.last_ingest_ms = ingest_ts_ms if ingest_ts_ms is not None else msg.ts_ms
        self.clock_offset_ms = self.last_ingest_ms - msg.ts_ms
        self.patient_id = msg.patient_id or self.patient_id
        if self.watermark is not None:
            self.watermark.add(msg.seq, msg.ts_ms)
        if isinstance(msg, VitalsMessage):
            closed = self._numerics(msg)
        elif admitted is not None:
            closed = admitted.channel.apply(admitted.events, self._activity)
        else:
            signal = msg.signal if isinstance(msg, WaveformMessage) else "motion"
            closed = self._retire_on_rate_change(signal, msg.fs_hz)
            closed += self._channel(signal, msg.fs_hz).push(msg.ts_ms, msg.seq, self._samples(msg), self._activity)
        if self.watermark is not None and self.numerics.open:
            complete_ms = self.watermark.complete_ms(self.numerics.closed_before_ms)
            closed += self._numeric_windows(self.numerics.close_until(complete_ms))
        return self._output(closed, events)

    def on_tick(self, now_ms: int) -> StageOutput:
        """Wall clock: stop waiting for late chunks; after ``silence_timeout_s`` close all and raise
        DEVICE_SILENT once."""
        if self.last_ingest_ms is None:
            return StageOutput()
        quiet_ms = now_ms - self.last_ingest_ms
        windows: list[FeatureWindow] = []
        if quiet_ms > self.settings.late_grace_ms:
            for ch in self._ordered_channels():
                windows += ch.release(self._activity)
        device_now_ms = now_ms - self.clock_offset_ms
        windows += self._numeric_windows(self.numerics.close_until(device_now_ms - self.settings.late_grace_ms))
        events: list[TechnicalEvent] = []
        if not self.silent and quiet_ms >= self.settings.silence_timeout_s * 1000:
            self.silent = True
            windows += self._close_everything()
            device_ts = now_ms - self.clock_offset_ms  # events carry device time, like windows
            events.append(self._event(Condition.DEVICE_SILENT, True, device_ts, f"no data for {quiet_ms} ms"))
        return self._output(windows, events)

    def flush(self) -> StageOutput:
        """End of a recording or session: close every window that has data."""
        return self._output(self._close_everything(), [])

    # -- internals ----------------------------------------------------------------------------------
    def _samples(self, msg: WaveformMessage | MotionMessage) -> np.ndarray:
        if isinstance(msg, WaveformMessage):
            values = np.asarray(msg.samples, dtype=float) * (msg.scale or 1.0) + (msg.offset or 0.0)
        else:
            values = np.sqrt(np.square(msg.x_g) + np.square(msg.y_g) + np.square(msg.z_g))
        return self._finite(values)

    def _finite(self, values: np.ndarray) -> np.ndarray:
        """NaN or infinite samples would poison the filter states for good: interpolate them in the chunk."""
        ok = np.isfinite(values)
        if ok.all():
            return values
        self.counts["nonfinite_samples"] = self.counts.get("nonfinite_samples", 0) + int((~ok).sum())
        if not ok.any():
            return np.zeros_like(values)  # a flat line: the quality check will flag it
        idx = np.arange(len(values))
        return np.interp(idx, idx[ok], values[ok])

    def _retire_on_rate_change(self, signal: str, fs_hz: float) -> list[FeatureWindow]:
        ch = self.channels.get(signal)
        if ch is None or ch.fs_hz == float(fs_hz):
            return []
        log.warning("device %s: %s rate changed to %s Hz; restarting it", self.device_id, signal, fs_hz)
        del self.channels[signal]
        return ch.end_segment(self._activity)

    def _channel(self, signal: str, fs_hz: float) -> Channel:
        if signal not in self.channels:
            self.channels[signal] = Channel(signal, float(fs_hz), self.settings)
        return self.channels[signal]

    def _ordered_channels(self) -> list[Channel]:
        # motion first, so that ECG/PPG windows closed in the same call see the latest activity
        return sorted(self.channels.values(), key=lambda ch: (ch.signal != "motion", ch.signal))

    def _close_everything(self) -> list[FeatureWindow]:
        closed: list[FeatureWindow] = []
        for ch in self._ordered_channels():
            closed += ch.end_segment(self._activity)
        return closed + self._numeric_windows(self.numerics.close_all())

    def _activity(self, start_ms: float, end_ms: float) -> float | None:
        motion = self.channels.get("motion")
        return None if motion is None else motion.activity_between(start_ms, end_ms)

    def _numerics(self, msg: VitalsMessage) -> list[FeatureWindow]:
        values = {k: getattr(msg, k) for k in _NUMERIC_KEYS}
        before = sum(len(v) for v in self.numerics.open.values())
        closed = self.numerics.add(msg.ts_ms, values)
        if sum(len(v) for v in self.numerics.open.values()) + sum(len(r) for _, r in closed) == before:
            self.counts["numerics_too_late"] += 1
        return self._numeric_windows(closed)

    def _numeric_windows(self, closed: list[tuple[int, list[dict[str, Any]]]]) -> list[FeatureWindow]:
        width = self.numerics.window_ms
        return [
            FeatureWindow(self.device_id, "numerics", start, start + width, None, True, numerics_features(rows))
            for start, rows in closed
        ]

    def _output(self, windows: list[FeatureWindow], events: list[TechnicalEvent]) -> StageOutput:
        stamped = [_with_patient(w, self.device_id, self.patient_id) for w in windows]
        for w in stamped:
            events += self._quality_transition(w)
        return StageOutput(tuple(stamped), tuple(events))

    def _quality_transition(self, w: FeatureWindow) -> list[TechnicalEvent]:
        if w.signal_quality is None or w.signal not in ("ecg", "ppg", "resp"):
            return []
        low = w.signal_quality < self.settings.sqi_threshold
        if low == self.low_quality.get(w.signal, False):
            return []
        self.low_quality[w.signal] = low
        detail = f"{w.signal} quality {w.signal_quality:.2f} vs threshold {self.settings.sqi_threshold}"
        return [self._event(Condition.LOW_SIGNAL_QUALITY, low, w.window_end_ms, detail, w.signal, w.signal_quality)]

    def _event(
        self,
        condition: Condition,
        active: bool,
        ts_ms: int,
        detail: str,
        signal: str | None = None,
        quality: float | None = None,
    ) -> TechnicalEvent:
        values = {} if quality is None else {"signal_quality": quality}
        return TechnicalEvent(self.device_id, str(condition), active, int(ts_ms), detail, signal, values)

    @property
    def stats(self) -> dict[str, int]:
        """Counts of duplicates, late chunks put in order, gaps bridged and segment resets (all signals)."""
        total = dict(self.counts)
        for ch in self.channels.values():
            for key, value in ch.stream.counts.items():
                total[key] = total.get(key, 0) + value
        return total

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "patient_id": self.patient_id,
            "channels": {name: ch.to_state() for name, ch in self.channels.items()},
            "numerics": self.numerics.to_state(),
            "watermark": None if self.watermark is None else self.watermark.to_state(),
            "last_ingest_ms": self.last_ingest_ms,
            "clock_offset_ms": self.clock_offset_ms,
            "silent": self.silent,
            "low_quality": dict(self.low_quality),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: Settings) -> DeviceSignalProcessor:
        self = cls(state["device_id"], settings, state["patient_id"])
        self.channels = {name: Channel.from_state(s, settings) for name, s in state["channels"].items()}
        self.numerics.load_state(state["numerics"])
        if self.watermark is not None:
            self.watermark = SeqWatermark.from_state(state.get("watermark"))
        self.last_ingest_ms, self.silent = state["last_ingest_ms"], state["silent"]
        self.clock_offset_ms = state["clock_offset_ms"]
        self.low_quality, self.counts = dict(state["low_quality"]), dict(state["counts"])
        return self


def _with_patient(w: FeatureWindow, device_id: str, patient_id: str | None) -> FeatureWindow:
    if w.device_id == device_id and w.patient_id == patient_id:
        return w
    return replace(w, device_id=device_id, patient_id=patient_id)
