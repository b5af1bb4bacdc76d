"""Stages 2-5 per device: windows and features, batched inference, alert policy; one code path, batch-invariant.

The Faust agent and the offline runner both hand batches of validated messages to :class:`Pipeline`. Results do
not depend on how messages were cut into batches: each device's policy sees, message by message, that message's
windows, then its technical events, then the scores of its windows. That is what makes ``vitalstream analyze``
give exactly the alerts that the live path publishes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.alerts.policy import AlertPolicy
from streamer.config import Settings
from streamer.contracts import Alert, AlertAck, FeatureRecord, ScoreRecord
from streamer.ingest.dedup import SeqStatus, SeqTracker
from streamer.ingest.validation import Message
from streamer.records import FeatureWindow, TechnicalEvent
from streamer.signals.device import Admitted, DeviceSignalProcessor, StageOutput
from streamer.signals.fleet import prefilter

log = logging.getLogger(__name__)


@dataclass
class PipelineOutput:
    features: list[FeatureRecord] = field(default_factory=list)
    scores: list[ScoreRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    duplicates: int = 0

    def extend(self, other: PipelineOutput) -> None:
        self.features += other.features
        self.scores += other.scores
        self.alerts += other.alerts
        self.duplicates += other.duplicates


@dataclass
class DeviceRuntime:
    """The live objects of one device; ``to_state`` is what the changelogged table keeps."""

    signals: DeviceSignalProcessor
    policy: AlertPolicy
    seen: SeqTracker
    models: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {
            "signals": self.signals.to_state(),
            "policy": self.policy.to_state(),
            "seen": self.seen.to_state(),
            "models": self.models,
        }


def feature_record(fw: FeatureWindow) -> FeatureRecord:
    return FeatureRecord(
        device_id=fw.device_id,
        patient_id=fw.patient_id,
        signal=fw.signal,  # type: ignore[arg-type]
        window_start_ms=fw.window_start_ms,
        window_end_ms=fw.window_end_ms,
        signal_quality=fw.signal_quality,
        usable=fw.usable,
        features=dict(fw.features),
        feature_version=fw.feature_version,
    )


class Pipeline:
    """Holds every device's runtime; ``states`` given to it are the durable copies (a Faust table or a dict)."""

    def __init__(self, settings: Settings, inference: Any | None = None, *, fleet_filters: bool = True) -> None:
        self.settings = settings
        self.inference = inference
        self.fleet_filters = fleet_filters  # False: each chunk filtered on its own (the reference in tests, bench)
        self.devices: dict[str, DeviceRuntime] = {}

    # -- device runtimes -------------------------------------------------------------------------------------
    def runtime(self, device_id: str, state: dict[str, Any] | None, patient_id: str | None = None) -> DeviceRuntime:
        rt = self.devices.get(device_id)
        if rt is not None:
            return rt
        s = self.settings
        if state:
            rt = DeviceRuntime(
                signals=DeviceSignalProcessor.from_state(state["signals"], s),
                policy=AlertPolicy.from_state(state["policy"], s),
                seen=SeqTracker.from_state(state["seen"], s.dedup_window),
                models=dict(state.get("models") or {}),
            )
        else:
            rt = DeviceRuntime(
                signals=DeviceSignalProcessor(device_id, s, patient_id=patient_id),
                policy=AlertPolicy(device_id, s, patient_id=patient_id),
                seen=SeqTracker(window=s.dedup_window),
            )
        self.devices[device_id] = rt
        return rt

    def forget(self) -> None:
        """Drop the live objects (after a rebalance the table is the truth)."""
        self.devices.clear()

    # -- stages ----------------------------------------------------------------------------------------------
    def process(
        self, batch: Sequence[tuple[Message, int | None]], states: MutableMapping[str, Any] | None = None
    ) -> PipelineOutput:
        """Run stages 2-5 over a batch of (validated message, ingest_ts_ms), in order.

        Every message is first admitted to its device (dedup, chunk order and gaps), then the batch's chunks are
        filtered fleet-wide as 2-D arrays (``streamer/signals/fleet.py``), then each message is finished in
        order: the same outputs, bit for bit, as ``on_message`` one message at a time.
        """
        out = PipelineOutput()
        admitted: list[tuple[DeviceRuntime, Message, int | None, Admitted | None]] = []
        for msg, ingest_ts_ms in batch:
            rt = self.runtime(msg.device_id, states.get(msg.device_id) if states is not None else None, msg.patient_id)
            # At-least-once redelivery after a restart: the state already holds this message.
            if rt.seen.check(msg.seq, msg.ts_ms) is not SeqStatus.NEW:
                out.duplicates += 1
                continue
            admitted.append((rt, msg, ingest_ts_ms, rt.signals.admit(msg)))
        if self.fleet_filters:
            prefilter(a for *_, a in admitted if a is not None)
        steps = [(rt, rt.signals.finish(msg, ingest, adm), ingest) for rt, msg, ingest, adm in admitted]
        self._finish(steps, out)
        return out

    def tick(self, now_ms: int) -> PipelineOutput:
        """Wall clock: close windows of quiet devices and raise DEVICE_SILENT (live path only)."""
        out = PipelineOutput()
        self._finish([(rt, rt.signals.on_tick(now_ms), None) for rt in self.devices.values()], out)
        return out

    def flush(self) -> PipelineOutput:
        """End of a recording: close what can be closed (offline runs, tests)."""
        out = PipelineOutput()
        self._finish([(rt, rt.signals.flush(), None) for rt in self.devices.values()], out)
        return out

    def ack(self, ack: AlertAck, device_id: str) -> list[Alert]:
        rt = self.devices.get(device_id)
        return rt.policy.on_ack(ack) if rt else []

    def _finish(self, steps: list[tuple[DeviceRuntime, StageOutput, int | None]], out: PipelineOutput) -> None:
        windows = [fw for _, stage, _ in steps for fw in stage.windows]
        scores, model_events = self._infer(windows)
        by_window: dict[tuple[str, str | None, int], list[ScoreRecord]] = defaultdict(list)
        for score in scores:
            by_window[(score.device_id, score.source, score.ts_ms)].append(score)
        model_events_by_device: dict[str, list[TechnicalEvent]] = defaultdict(list)
        for ev in model_events:
            model_events_by_device[ev.device_id].append(ev)
        for rt, stage, ingest_ts_ms in steps:
            policy = rt.policy
            for fw in stage.windows:
                out.features.append(feature_record(fw))
                out.alerts += policy.on_window(fw, ingest_ts_ms)
            for ev in stage.events:
                out.alerts += policy.on_event(ev, ingest_ts_ms)
            for fw in stage.windows:
                for score in by_window.pop((fw.device_id, fw.signal, fw.window_end_ms), ()):
                    out.scores.append(score)
                    out.alerts += policy.on_score(score, ingest_ts_ms)
            for ev in model_events_by_device.pop(policy.device_id, ()):
                out.alerts += policy.on_event(ev, ingest_ts_ms)
        for leftover in by_window.values():  # a score not tied to a window of this batch: still count it
            for score in leftover:
                out.scores.append(score)
                owner = self.devices.get(score.device_id)
                if owner is not None:
                    out.alerts += owner.policy.on_score(score, None)

    def _infer(self, windows: list[FeatureWindow]) -> tuple[Iterable[ScoreRecord], Iterable[TechnicalEvent]]:
        if self.inference is None or not windows:
            return (), ()
        model_states = {dev: rt.models for dev, rt in self.devices.items()}
        result = self.inference.run(windows, model_states)
        for dev, st in model_states.items():
            self.devices[dev].models = st
        return result.scores, result.events
