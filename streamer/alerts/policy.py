"""Stage 5: the per-device alert lifecycle (RAISED, ESCALATED, ACKNOWLEDGED, RESOLVED) and deduplication.

One ``AlertPolicy`` per device. It reads feature windows, model scores, technical events and
acknowledgements, and returns the alert transitions they cause. Time is event time only (window ends,
score and event timestamps; acknowledgements do not move it), so a replay gives the same alerts,
with the same ids, as the live stream. ``to_state``/``from_state`` carry everything as JSON.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict

from streamer.alerts.conditions import (
    DEFAULT_MODEL_THRESHOLD,
    LOW_QUALITY_RULE,
    MODEL_RULES,
    PHYSIOLOGICAL_RULES,
    Rule,
    Track,
    enter_message,
    fmt_value,
    held_text,
    news2_values,
    priority_of,
    rule_text,
    step,
)
from streamer.config import Settings
from streamer.contracts import (
    Alert,
    AlertAck,
    AlertState,
    Condition,
    Evidence,
    LatencyStamps,
    ModelRef,
    Priority,
    ScoreRecord,
)
from streamer.records import FeatureWindow, TechnicalEvent

log = logging.getLogger(__name__)

# Where each physiological value may come from, best first: (window signal, feature name). The
# device's own numerics win; a waveform-derived value is used only while no better source is fresh.
SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "heart_rate_bpm": (("numerics", "heart_rate_bpm"), ("ecg", "heart_rate_bpm"), ("ppg", "pulse_rate_bpm")),
    "resp_rate_bpm": (("numerics", "resp_rate_bpm"), ("resp", "resp_rate_bpm")),
    "spo2_pct": (("numerics", "spo2_pct"),),
    "temp_c": (("numerics", "temp_c"),),
}
# The signal whose quality vouches for a numerics value (waveform values are vouched for by their own).
GATE = {"heart_rate_bpm": "ecg", "resp_rate_bpm": "resp", "spo2_pct": "ppg", "temp_c": None}
QUALITY_SIGNALS = ("ecg", "ppg", "resp")  # signals whose window quality gates physiological values
TECHNICAL = (Condition.LOW_SIGNAL_QUALITY, Condition.DEVICE_SILENT, Condition.MODEL_UNAVAILABLE)


# Which window signal a model score is best taken from (lower is better).
SCORE_SOURCE_RANK = {"ecg": 0, "rr": 1, "ppg": 2}


def alert_id_for(device_id: str, condition: str, episode_start_ms: int) -> str:
    """Deterministic alert id: the first 32 hex digits of SHA-256 over the episode's identity."""
    return hashlib.sha256(f"{device_id}|{condition}|{episode_start_ms}".encode()).hexdigest()[:32]


class AlertPolicy:
    """Per-device alert state machine; plain data in, ``Alert`` transitions out, no clocks read."""

    def __init__(self, device_id: str, settings: Settings, patient_id: str | None = None):
        self.device_id, self.settings, self.patient_id = device_id, settings, patient_id
        # Longer than this without a value breaks a persistence run, and ends a source's claim to be fresh.
        self._fresh_ms = int(settings.silence_timeout_s * 1000)
        self.tracks: dict[str, Track] = {}
        self.episodes: dict[str, dict] = {}  # condition -> the open episode
        self.quality: dict[str, dict] = {}  # signal -> {"low": bool, "ts_ms": int}, from windows
        self.tech: dict[str, list[str]] = {}  # condition -> active keys (signal or model), from events
        self.seen: dict[str, int] = {}  # "signal/feature" -> last device time it gave a value
        self.watermark_ms: int | None = None
        self.last_onset_ms: dict[str, int] = {}  # condition -> onset of its latest episode

    # -- inputs ---------------------------------------------------------------------------------
    def on_window(self, fw: FeatureWindow, ingest_ts_ms: int | None = None) -> list[Alert]:
        t = self._advance(fw.device_id, fw.window_end_ms)
        self.patient_id = self.patient_id or fw.patient_id
        ctx = {"start": fw.window_start_ms, "end": t, "ingest": ingest_ts_ms}
        out: list[Alert] = []
        if fw.signal in QUALITY_SIGNALS:
            sqi, threshold = fw.signal_quality, self.settings.sqi_threshold
            low = (not fw.usable) or (sqi is not None and sqi < threshold)
            self.quality[fw.signal] = {"low": low, "ts_ms": t, "sqi": sqi}
            out += self._low_quality_step(ctx)
        values = self._values(fw)
        for rule in PHYSIOLOGICAL_RULES:
            if rule.value in values:
                out += self._step(rule, values[rule.value], ctx, self._evidence_values(rule, values))
        return out + self._escalate(t, ingest_ts_ms)

    def on_score(self, score: ScoreRecord, ingest_ts_ms: int | None = None) -> list[Alert]:
        t = self._advance(score.device_id, score.ts_ms)
        rule = MODEL_RULES.get(score.model.name)
        if rule is None:
            log.debug("no alert rule for model %s", score.model.name)
            return self._escalate(t, ingest_ts_ms)
        if self._score_outranked(score, t):
            return self._escalate(t, ingest_ts_ms)
        threshold = DEFAULT_MODEL_THRESHOLD if score.threshold is None else score.threshold
        if score.threshold is None and score.above_threshold is not None:
            ratio = 1.0 if score.above_threshold else 0.0  # the model decided; no threshold to scale by
        elif threshold > 0:
            ratio = score.score / threshold
        else:
            ratio = 1.0 if score.score >= threshold else 0.0
        ctx = {"start": t, "end": t, "ingest": ingest_ts_ms, "model": score.model.model_dump()}
        values = {"score": score.score, "threshold": threshold, "score_ratio": round(ratio, 6)}
        return self._step(rule, ratio, ctx, values) + self._escalate(t, ingest_ts_ms)

    def on_event(self, ev: TechnicalEvent, ingest_ts_ms: int | None = None) -> list[Alert]:
        t = self._advance(ev.device_id, ev.ts_ms)
        if ev.condition not in {c.value for c in TECHNICAL}:
            log.warning("ignoring technical event with unknown condition %r", ev.condition)
            return self._escalate(t, ingest_ts_ms)
        keys = set(self.tech.get(ev.condition, []))
        key = ev.signal or ev.detail or ""
        keys = keys | {key} if ev.active else keys - {key}
        self.tech[ev.condition] = sorted(keys)
        ctx = {"start": ev.ts_ms, "end": t, "ingest": ingest_ts_ms}
        values = {"active": ",".join(sorted(keys)) or None, "detail": ev.detail or None, **ev.values}
        out = self._set_technical(Condition(ev.condition), ctx, values)
        return out + self._escalate(t, ingest_ts_ms)

    def on_ack(self, ack: AlertAck) -> list[Alert]:
        if ack.device_id is not None and ack.device_id != self.device_id:
            return []
        for ep in self.episodes.values():
            if ep["alert_id"] == ack.alert_id and ep["state"] in (AlertState.RAISED, AlertState.ESCALATED):
                ep["state"] = AlertState.ACKNOWLEDGED.value
                ctx = {"start": ack.ts_ms, "end": ack.ts_ms, "ingest": None}
                return [self._alert(ep, ctx, "acknowledgement", {"by": ack.by}, f"Acknowledged by {ack.by}.")]
        return []  # unknown, resolved or already acknowledged: idempotent, nothing to say

    # -- state ----------------------------------------------------------------------------------
    def to_state(self) -> dict:
        return {
            "device_id": self.device_id,
            "patient_id": self.patient_id,
            "tracks": {k: asdict(v) for k, v in self.tracks.items()},
            "episodes": {k: dict(v) for k, v in self.episodes.items()},
            "quality": {k: dict(v) for k, v in self.quality.items()},
            "tech": {k: list(v) for k, v in self.tech.items()},
            "seen": dict(self.seen),
            "watermark_ms": self.watermark_ms,
            "last_onset_ms": dict(self.last_onset_ms),
        }

    @classmethod
    def from_state(cls, state: dict, settings: Settings) -> AlertPolicy:
        policy = cls(state["device_id"], settings, state.get("patient_id"))
        policy.tracks = {k: Track(**v) for k, v in state["tracks"].items()}
        policy.episodes = {k: dict(v) for k, v in state["episodes"].items()}
        policy.quality = {k: dict(v) for k, v in state["quality"].items()}
        policy.tech = {k: list(v) for k, v in state["tech"].items()}
        policy.seen = dict(state["seen"])
        policy.watermark_ms = state["watermark_ms"]
        policy.last_onset_ms = dict(state.get("last_onset_ms", {}))
        return policy

    # -- internals ------------------------------------------------------------------------------
    def _advance(self, device_id: str, ts_ms: int) -> int:
        if device_id != self.device_id:  # a routing bug upstream: fail loudly rather than mix patients
            raise ValueError(f"input for device {device_id!r} given to the policy of {self.device_id!r}")
        self.watermark_ms = ts_ms if self.watermark_ms is None else max(self.watermark_ms, ts_ms)
        return ts_ms

    def _signal_low(self, signal: str | None) -> bool:
        if signal is None:
            return False
        if signal in self.tech.get(Condition.LOW_SIGNAL_QUALITY.value, []):
            return True
        q = self.quality.get(signal)
        return bool(q and q["low"] and (self.watermark_ms or 0) - q["ts_ms"] <= self._fresh_ms)

    def _values(self, fw: FeatureWindow) -> dict[str, float | None]:
        """The physiological values this window speaks for (None: missing or suppressed)."""
        values: dict[str, float | None] = {}
        for name, sources in SOURCES.items():
            for rank, (signal, feature) in enumerate(sources):
                if signal == fw.signal and feature in fw.features and not self._outranked(sources[:rank], fw):
                    value = fw.features[feature] if fw.usable else None
                    if value is not None:
                        self.seen[f"{signal}/{feature}"] = fw.window_end_ms
                    gate = GATE[name] if signal == "numerics" else signal
                    values[name] = None if self._signal_low(gate) else value
        if fw.signal == "numerics":
            values.update(news2_values(fw.features if fw.usable else {}, values))
        return values

    def _score_outranked(self, score: ScoreRecord, t: int) -> bool:
        """A model scored from a weaker source (AF from PPG pulse intervals) yields while a better one (ECG) is fresh.

        Two sources interleaved on one persistence track would flap: only the best fresh source drives it.
        """
        if score.source is None:
            return False
        self.seen[f"score:{score.model.name}/{score.source}"] = t
        rank = SCORE_SOURCE_RANK.get(score.source, len(SCORE_SOURCE_RANK))
        better = [s for s, r in SCORE_SOURCE_RANK.items() if r < rank]
        last = [self.seen.get(f"score:{score.model.name}/{s}") for s in better]
        return any(ts is not None and t - ts <= self._fresh_ms for ts in last)

    def _outranked(self, better: tuple[tuple[str, str], ...], fw: FeatureWindow) -> bool:
        last = [self.seen.get(f"{s}/{f}") for s, f in better]
        return any(ts is not None and fw.window_end_ms - ts <= self._fresh_ms for ts in last)

    def _evidence_values(self, rule: Rule, values: dict) -> dict:
        if rule.value.startswith("news2"):
            return {k: v for k, v in values.items() if k.startswith("news2") or k in SOURCES}
        return {rule.value: values[rule.value]}

    def _step(self, rule: Rule, value: float | None, ctx: dict, values: dict) -> list[Alert]:
        track = self.tracks.setdefault(rule.condition.value, Track())
        change = step(rule, track, value, ctx["start"], ctx["end"], self._fresh_ms)
        if change is None:
            return []
        values = {**values, "enter": str(rule.enter), "exit": str(rule.exit)}
        if change == "enter":
            onset = track.changed_ms if track.changed_ms is not None else ctx["start"]
            what = enter_message(rule, value, values)
            return self._open(rule.condition, onset, ctx, rule_text(rule, "enter"), values, what)
        shown = values.get("score", value) if rule.kind == "model" else value
        what = f"{rule.label} back to {fmt_value(shown)} ({rule.exit}) for {held_text(rule, 'exit')}"
        return self._resolve(rule.condition, ctx, rule_text(rule, "exit"), values, what)

    def _low_quality_step(self, ctx: dict) -> list[Alert]:
        low = [s for s in sorted(self.quality) if self._signal_low(s)]
        track = self.tracks.setdefault(LOW_QUALITY_RULE.condition.value, Track())
        step(LOW_QUALITY_RULE, track, 1.0 if low else 0.0, ctx["start"], ctx["end"], self._fresh_ms)
        return self._set_technical(Condition.LOW_SIGNAL_QUALITY, ctx, {"low_signals": ",".join(low) or None})

    def _set_technical(self, condition: Condition, ctx: dict, values: dict) -> list[Alert]:
        """Open or close a technical episode to match its desired state (events, or the quality track)."""
        desired = bool(self.tech.get(condition.value))
        if condition is Condition.LOW_SIGNAL_QUALITY:
            # The alert follows the persistence track only: the processor's quality events switch suppression on
            # and off at once, but an alert per spoilt window would be the alarm fatigue we exist to prevent.
            desired = self.tracks.get(condition.value, Track()).active
        is_open = condition.value in self.episodes
        if desired and not is_open:
            track = self.tracks.get(condition.value, Track())
            onset = track.changed_ms if track.active and track.changed_ms is not None else ctx["start"]
            text = f"{condition.value}: {values.get('active') or values.get('low_signals') or 'active'}"
            return self._open(condition, onset, ctx, "technical condition active", values, text)
        if is_open and not desired:
            text = f"{condition.value} cleared"
            return self._resolve(condition, ctx, "technical condition cleared", values, text)
        return []

    def _open(self, condition: Condition, onset_ms: int, ctx, rule: str, values, what: str) -> list[Alert]:
        if condition.value in self.episodes:
            return []  # one open episode per condition
        # A new episode never reuses an earlier onset (e.g. two technical events with one timestamp),
        # so its id is new too.
        previous = self.last_onset_ms.get(condition.value)
        onset_ms = onset_ms if previous is None or onset_ms > previous else previous + 1
        self.last_onset_ms[condition.value] = onset_ms
        ep = {
            "alert_id": alert_id_for(self.device_id, condition.value, onset_ms),
            "condition": condition.value,
            "priority": priority_of(condition).value,
            "state": AlertState.RAISED.value,
            "start_ms": onset_ms,
            "raised_ms": ctx["end"],
            "model": ctx.get("model"),
        }
        self.episodes[condition.value] = ep
        return [self._alert(ep, ctx, rule, values, what)]

    def _resolve(self, condition: Condition, ctx: dict, rule: str, values: dict, what: str) -> list[Alert]:
        ep = self.episodes.pop(condition.value, None)
        if ep is None:
            return []
        ep["state"] = AlertState.RESOLVED.value
        return [self._alert(ep, ctx, rule, values, what + ": resolved.")]

    def _escalate(self, t: int, ingest_ts_ms: int | None) -> list[Alert]:
        out = []
        after_ms = self.settings.escalate_after_s * 1000
        for ep in sorted(self.episodes.values(), key=lambda e: (e["raised_ms"], e["condition"])):
            due = ep["priority"] == Priority.HIGH and ep["state"] == AlertState.RAISED
            if due and t - ep["raised_ms"] >= after_ms:
                ep["state"] = AlertState.ESCALATED.value
                ctx = {"start": ep["raised_ms"], "end": t, "ingest": ingest_ts_ms}
                what = f"{ep['condition']} unacknowledged for {(t - ep['raised_ms']) / 1000:g} s: escalated."
                rule = f"high priority unacknowledged >= {after_ms / 1000:g} s"
                out.append(self._alert(ep, ctx, rule, {}, what))
        return out

    def _alert(self, ep: dict, ctx: dict, rule: str, values: dict, message: str) -> Alert:
        gate = self.quality.get(_GATE_BY_CONDITION.get(ep["condition"], ""), {})
        sqi = gate.get("sqi")
        return Alert(
            alert_id=ep["alert_id"],
            device_id=self.device_id,
            patient_id=self.patient_id,
            condition=Condition(ep["condition"]),
            priority=Priority(ep["priority"]),
            state=AlertState(ep["state"]),
            episode_start_ms=ep["start_ms"],
            transition_ts_ms=ctx["end"],
            message=message,
            evidence=Evidence(
                rule=rule,
                window_start_ms=min(ctx["start"], ctx["end"]),
                window_end_ms=ctx["end"],
                values={k: _jsonable(v) for k, v in values.items()},
                signal_quality=None if sqi is None else min(max(float(sqi), 0.0), 1.0),
            ),
            model=ModelRef(**ep["model"]) if ep.get("model") else None,
            latency=LatencyStamps(device_ts_ms=ctx["end"], ingest_ts_ms=ctx["ingest"]),
        )


_GATE_BY_CONDITION = {r.condition.value: r.signal for r in PHYSIOLOGICAL_RULES if r.signal}


def _jsonable(value: object) -> float | int | str | None:
    if value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value  # type: ignore[return-value]
    return str(value)
