"""Stage 4: micro-batched GRU inference over feature windows, with per-device state the caller persists.

Exceptions: none escape ``run``. A model that fails to load or to run turns into MODEL_UNAVAILABLE
technical events (on, then off when it works again) and the pipeline goes on with its rules.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.config import Settings
from streamer.contracts import Condition, ModelRef, ScoreRecord
from streamer.inference.adapters import AfAdapter, Plan, SepsisAdapter, VitalsAdapter, commit, load_model
from streamer.inference.batching import MicroBatcher
from streamer.inference.predictor import StepRequest, StepResult
from streamer.records import FeatureWindow, TechnicalEvent

log = logging.getLogger(__name__)

ADAPTERS: dict[str, type[Any]] = {"af": AfAdapter, "sepsis": SepsisAdapter, "anomaly": VitalsAdapter}
UNAVAILABLE_KEY = "unavailable"  # per-device list of models announced as unavailable


@dataclass(frozen=True)
class InferenceOutput:
    scores: tuple[ScoreRecord, ...]
    events: tuple[TechnicalEvent, ...]


@dataclass
class _Model:
    adapter: Any
    batcher: MicroBatcher
    ref: ModelRef


@dataclass
class _Work:
    """One model's share of a ``run`` call: the plans to batch and the devices concerned."""

    name: str
    plans: list[tuple[str, Plan]]  # (device_id, plan)
    last_ts: dict[str, int]  # device_id -> latest window end


class InferenceStage:
    """Loads the shipped checkpoints; ``run`` scores windows and updates ``states`` in place."""

    def __init__(self, settings: Settings, weights_dir: Path | None = None) -> None:
        self.settings = settings
        self.models: dict[str, _Model] = {}
        self.load_errors: dict[str, str] = {}
        for name, adapter_cls in ADAPTERS.items():
            try:
                predictor = load_model(name, weights_dir or settings.weights_dir, settings.device)
                batcher = MicroBatcher(predictor, settings.batch_max_size)
                ref = ModelRef(name=name, version=predictor.version)
                self.models[name] = _Model(adapter_cls(predictor.meta), batcher, ref)
            except Exception as exc:  # noqa: BLE001 - a model that cannot load is reported, not fatal
                self.load_errors[name] = f"{type(exc).__name__}: {exc}"
                log.error("model %s unavailable: %s", name, self.load_errors[name])

    def run(self, windows: Sequence[FeatureWindow], states: MutableMapping[str, dict]) -> InferenceOutput:
        scores: list[ScoreRecord] = []
        events: list[TechnicalEvent] = []
        for name in ADAPTERS:
            work = self._plan(name, windows, states, events)
            if work is None:
                continue
            try:
                results = self.models[name].batcher.infer_batch(self._requests(work))
            except Exception as exc:  # noqa: BLE001 - see module docstring
                self._failed(work, states, events, exc)
                continue
            self._finish(work, results, states, scores, events)
        return InferenceOutput(tuple(scores), tuple(events))

    def _plan(
        self,
        name: str,
        windows: Sequence[FeatureWindow],
        states: MutableMapping[str, dict],
        events: list[TechnicalEvent],
    ) -> _Work | None:
        wanted = ADAPTERS[name].select([w for w in windows if ADAPTERS[name].wants(w)], states)
        if not wanted:
            return None
        groups: dict[tuple[str, str], list[FeatureWindow]] = {}
        last_ts: dict[str, int] = {}
        for w in wanted:
            groups.setdefault((w.device_id, ADAPTERS[name].state_key(w)), []).append(w)
            last_ts[w.device_id] = max(last_ts.get(w.device_id, w.window_end_ms), w.window_end_ms)
        work = _Work(name, [], last_ts)
        if name not in self.models:
            self._failed(work, states, events, RuntimeError(self.load_errors.get(name, "not loaded")))
            return None
        try:
            for (device_id, key), ws in groups.items():
                st = states.setdefault(device_id, {}).setdefault(key, {})
                plan = self.models[name].adapter.plan(key, ws, st)
                if plan is not None:
                    work.plans.append((device_id, plan))
        except Exception as exc:  # noqa: BLE001 - see module docstring
            self._failed(work, states, events, exc)
            return None
        return work

    @staticmethod
    def _requests(work: _Work) -> list[StepRequest]:
        return [StepRequest(f"{d}/{p.key}", p.x, p.h) for d, p in work.plans]

    def _finish(
        self,
        work: _Work,
        results: list[StepResult],
        states: MutableMapping[str, dict],
        scores: list[ScoreRecord],
        events: list[TechnicalEvent],
    ) -> None:
        model = self.models[work.name]
        try:
            new_scores = [
                self._record(device_id, model, s.ts_ms, s.score, _source(plan.key))
                for (device_id, plan), result in zip(work.plans, results, strict=True)
                for s in model.adapter.scores(plan, result.out, states[device_id][plan.key])
            ]
        except Exception as exc:  # noqa: BLE001 - see module docstring
            self._failed(work, states, events, exc)
            return
        for (device_id, plan), result in zip(work.plans, results, strict=True):  # all or nothing
            commit(plan, result, states[device_id][plan.key])
        scores.extend(new_scores)
        self._available(work, states, events)

    @staticmethod
    def _record(device_id: str, model: _Model, ts_ms: int, score: float, source: str) -> ScoreRecord:
        thr = model.adapter.threshold
        return ScoreRecord(
            device_id=device_id,
            model=model.ref,
            ts_ms=ts_ms,
            score=score,
            threshold=thr,
            above_threshold=score >= thr,
            source=source,  # type: ignore[arg-type]
        )

    def _failed(self, work: _Work, states, events: list[TechnicalEvent], exc: Exception) -> None:
        log.error("model %s failed: %s", work.name, exc)
        for device_id, ts_ms in work.last_ts.items():
            flagged = states.setdefault(device_id, {}).setdefault(UNAVAILABLE_KEY, [])
            if work.name not in flagged:
                flagged.append(work.name)
                events.append(_event(device_id, work.name, True, ts_ms, f"{type(exc).__name__}: {exc}"[:500]))

    def _available(self, work: _Work, states, events: list[TechnicalEvent]) -> None:
        for device_id, ts_ms in work.last_ts.items():
            flagged = states.setdefault(device_id, {}).get(UNAVAILABLE_KEY, [])
            if work.name in flagged:
                flagged.remove(work.name)
                events.append(_event(device_id, work.name, False, ts_ms, "model running again"))


def _source(state_key: str) -> str:
    """The window signal behind a state key: "af:ecg" -> "ecg", "af:rr-ppg" -> "rr"; vitals models read numerics."""
    return state_key.split(":", 1)[1].split("-", 1)[0] if ":" in state_key else "numerics"


def _event(device_id: str, model: str, active: bool, ts_ms: int, detail: str) -> TechnicalEvent:
    return TechnicalEvent(
        device_id=device_id,
        condition=Condition.MODEL_UNAVAILABLE.value,
        active=active,
        ts_ms=ts_ms,
        detail=f"{model}: {detail}",
    )
