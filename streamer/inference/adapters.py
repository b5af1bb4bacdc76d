"""Per-model serving adapters: feature windows -> model steps -> scores, with JSON-able per-device state.

Each adapter splits its work in two so a failed model call never half-updates a device's state:
``plan`` computes the new input steps and the feature state they lead to without touching the
state; ``commit`` stores the hidden state and that feature state once the batch has run.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import checkpoint
from models.datasets import AF_CLASSES
from models.features import VITALS, TrendState, af_inputs, trend_inputs, vitals_inputs, vitals_row, vitals_targets
from models.sepsis import TREE_LAGS_H, tree_features, with_hours
from models.trees import TreePredictor
from streamer.inference.predictor import Predictor, StepResult, resolve_device
from streamer.records import FeatureWindow

HOUR_MS = 3_600_000
MAX_GAP_HOURS = 24  # a longer silence is not filled hour by hour; the stay continues after it
# Sliding ECG windows (2 s hop, overlap removed) answer fastest and matched the MIT-BIH rhythm annotations best;
# beat-count RR windows are coarser (one score per 32 beats). PPG pulse intervals come after ECG.
SOURCE_RANK = {"af:ecg": 0, "af:rr-ecg": 1, "af:ppg": 2, "af:rr-ppg": 3}
SOURCE_RANK_KEY = "af_source_rank"
MAX_TAIL = 64  # RR intervals of the last window kept to find the overlap with the next
AF_MIN_BEATS = 8  # no AF score before this many intervals: the state has seen too little rhythm


@dataclass
class Plan:
    """The steps one device adds to a batch, and what to score and store once they have run."""

    key: str
    x: np.ndarray  # (T, C)
    h: np.ndarray | None  # (L, H)
    marks: list[tuple[int, int]] = field(default_factory=list)  # (step index, ts_ms) to score
    pending: dict[str, Any] = field(default_factory=dict)  # feature state to store on success
    extra: Any = None  # what scoring needs beyond the model output


@dataclass(frozen=True)
class Score:
    ts_ms: int
    score: float


def _nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in a]


def _none_to_nan(a: Sequence[float | None] | None) -> np.ndarray:
    if a is None:
        return np.full(len(VITALS), np.nan)
    return np.array([np.nan if v is None else float(v) for v in a])


def _hidden(st: dict[str, Any]) -> np.ndarray | None:
    return None if st.get("h") is None else np.asarray(st["h"], dtype=np.float64)


class _Adapter:
    name = ""

    @classmethod
    def select(cls, windows: list[FeatureWindow], states: MutableMapping[str, dict]) -> list[FeatureWindow]:
        return windows


class _NumericsAdapter(_Adapter):
    """Models that read numerics windows, one state per device."""

    @classmethod
    def wants(cls, w: FeatureWindow) -> bool:
        return w.signal == "numerics"

    @classmethod
    def state_key(cls, w: FeatureWindow) -> str:
        return cls.name


class AfAdapter(_Adapter):
    """RR intervals of usable beat-count (``rr``), ECG or PPG windows: one source per device."""

    name = "af"

    def __init__(self, meta: dict[str, Any]) -> None:
        self.threshold = float(meta["thresholds"]["af"])
        self.n_inputs = int(meta["config"]["n_inputs"])  # 3: a version-1 (RR-only) network

    @classmethod
    def wants(cls, w: FeatureWindow) -> bool:
        return w.signal in ("ecg", "ppg", "rr") and w.usable and len(w.rr_ms) > 0

    @classmethod
    def state_key(cls, w: FeatureWindow) -> str:
        if w.signal == "rr":  # beat-count windows name their source by its rate feature
            return "af:rr-ppg" if "pulse_rate_bpm" in w.features else "af:rr-ecg"
        return f"af:{w.signal}"

    @classmethod
    def select(cls, windows: list[FeatureWindow], states: MutableMapping[str, dict]) -> list[FeatureWindow]:
        """Feed each device from its best source seen so far, so no beat is scored twice.

        ``rr`` windows (each beat once) before overlapping ECG/PPG windows, ECG before PPG. The
        choice is kept in the device state: once a device has sent a better source, the worse
        ones are ignored for AF even while the better one is unusable.
        """
        kept = []
        for w in windows:  # in order: a window is judged by the sources seen up to it, never by later ones,
            st = states.setdefault(w.device_id, {})  # so the choice does not depend on how windows are batched
            rank = SOURCE_RANK[cls.state_key(w)]
            st[SOURCE_RANK_KEY] = min(st.get(SOURCE_RANK_KEY, len(SOURCE_RANK)), rank)
            if rank <= st[SOURCE_RANK_KEY]:
                kept.append(w)
        return kept

    def plan(self, key: str, windows: Sequence[FeatureWindow], st: dict[str, Any]) -> Plan | None:
        steps, marks = [], []
        last_end, prev_rr, n_beats = st.get("last_end_ms"), st.get("prev_rr_ms"), int(st.get("n_beats", 0))
        tail = list(st.get("tail_rr_ms", []))
        for w in windows:
            new = _new_intervals(w, last_end, tail)
            last_end, tail = w.window_end_ms, [float(v) for v in w.rr_ms][-MAX_TAIL:]
            if not new:
                continue
            steps.append(af_inputs(new, prev_rr, _new_morph(w, len(new)))[:, : self.n_inputs])
            prev_rr, n_beats = float(new[-1]), n_beats + len(new)
            if n_beats >= AF_MIN_BEATS:
                marks.append((sum(len(s) for s in steps) - 1, w.window_end_ms))
        pending = {"last_end_ms": last_end, "prev_rr_ms": prev_rr, "n_beats": n_beats, "tail_rr_ms": tail}
        if not steps:
            st.update(pending)  # nothing to run; remember how far the windows went
            return None
        return Plan(key, np.concatenate(steps), _hidden(st), marks, pending)

    def scores(self, plan: Plan, out: np.ndarray, st: dict[str, Any]) -> list[Score]:
        a = AF_CLASSES.index("A")
        result = []
        for step, ts_ms in plan.marks:
            p = np.exp(out[step] - out[step].max())
            result.append(Score(ts_ms, float(p[a] / p.sum())))
        return result


def _new_morph(w: FeatureWindow, n_new: int) -> np.ndarray | None:
    """Morphology rows of the last ``n_new`` intervals (new ones are always a suffix), None without ECG."""
    if len(w.beat_morph) != len(w.rr_ms):
        return None
    return np.asarray(w.beat_morph[len(w.rr_ms) - n_new :], dtype=np.float64)


def _new_intervals(w: FeatureWindow, last_end_ms: int | None, prev_rr: Sequence[float]) -> list[float]:
    """The intervals of ``w`` not seen in the previous (overlapping) window of the same signal.

    Windows overlap (10 s sliding by 2 s) and ``rr_ms`` lists every interval ending in the window,
    so the new window starts with the previous one's last intervals: the longest such overlap that
    also fits in the overlapping time is dropped. Without a match (the beat stream changed), the
    intervals ending after the previous window's end are kept, taking the last beat at the end.
    """
    rr = [float(v) for v in w.rr_ms]
    if last_end_ms is None or last_end_ms <= w.window_start_ms:
        return rr
    overlap_ms = last_end_ms - w.window_start_ms
    for k in range(min(len(rr), len(prev_rr)), 0, -1):
        if sum(rr[1:k]) < overlap_ms and list(prev_rr[-k:]) == rr[:k]:
            return rr[k:]
    span, new, after = w.window_end_ms - last_end_ms, [], 0.0
    for v in reversed(rr):
        if after >= span:
            break
        new.append(v)
        after += v
    return new[::-1]


class VitalsAdapter(_NumericsAdapter):
    """Numerics windows for the anomaly forecaster (one step per window)."""

    name = "anomaly"

    def __init__(self, meta: dict[str, Any]) -> None:
        self.mean, self.std = np.asarray(meta["norm_mean"]), np.asarray(meta["norm_std"])
        self.threshold = float(meta["thresholds"]["alarm"])

    def plan(self, key: str, windows: Sequence[FeatureWindow], st: dict[str, Any]) -> Plan | None:
        rows = np.stack([vitals_row(w.features) for w in windows])  # (T, 7)
        x, last = vitals_inputs(rows, _none_to_nan(st.get("last")), self.mean, self.std)
        marks = [(i, w.window_end_ms) for i, w in enumerate(windows)]
        return Plan(key, x, _hidden(st), marks, {"last": _nan_to_none(last)}, extra=rows)

    def scores(self, plan: Plan, out: np.ndarray, st: dict[str, Any]) -> list[Score]:
        from models.anomaly import step_scores

        targets = vitals_targets(plan.extra, self.mean, self.std)  # (T, 7)
        prev = np.concatenate([_none_to_nan(st.get("pred"))[None, :], out[:-1]])  # forecasts of each step
        s = step_scores(prev, targets)
        plan.pending["pred"] = [float(v) for v in out[-1]]
        return [Score(ts, float(s[i])) for i, ts in plan.marks if not np.isnan(s[i])]


class SepsisAdapter(_NumericsAdapter):
    """Numerics windows averaged per clock hour; the model steps once per closed hour."""

    name = "sepsis"

    def __init__(self, meta: dict[str, Any]) -> None:
        self.mean, self.std = np.asarray(meta["norm_mean"]), np.asarray(meta["norm_std"])
        self.threshold = float(meta["thresholds"]["decision"])
        self.trees = meta.get("kind") == "trees"

    def plan(self, key: str, windows: Sequence[FeatureWindow], st: dict[str, Any]) -> Plan | None:
        hour, sums, counts = st.get("hour"), _none_to_nan(st.get("sums")), _none_to_nan(st.get("counts"))
        sums, counts = np.nan_to_num(sums), np.nan_to_num(counts)
        rows, marks = [], []
        for w in windows:
            h = w.window_end_ms // HOUR_MS
            if hour is not None and h > hour:
                rows.append(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
                marks.append((len(rows) - 1, int((hour + 1) * HOUR_MS)))
                gap = min(h - hour - 1, MAX_GAP_HOURS)  # silent hours are rows with nothing measured
                rows += [np.full(len(VITALS), np.nan)] * gap
                sums, counts = np.zeros(len(VITALS)), np.zeros(len(VITALS))
            hour = h if hour is None else max(hour, h)
            v = vitals_row(w.features)
            sums, counts = sums + np.nan_to_num(v), counts + ~np.isnan(v)
        pending = {"hour": hour, "sums": sums.tolist(), "counts": counts.tolist()}
        if not rows:
            st.update(pending)
            return None
        x, trend = trend_inputs(np.stack(rows), _trend_state(st), self.mean, self.std)
        n_hours = int(st.get("n_hours", 0))
        pending.update(
            last=_nan_to_none(trend.last),
            age_h=trend.age_h.tolist(),
            ema=[_nan_to_none(e) for e in trend.ema],
            n_hours=n_hours + len(rows),
        )
        x = with_hours(x, n_hours)
        if self.trees:  # memoryless trees see lagged changes: keep the last hours' inputs instead of h
            full = np.concatenate([np.asarray(st.get("x_hist", np.zeros((0, x.shape[1]))), dtype=np.float32), x])
            pending["x_hist"] = full[-max(TREE_LAGS_H) :].tolist()
            x = tree_features(full)[-len(x) :]
        return Plan(key, x, _hidden(st), marks, pending)

    def scores(self, plan: Plan, out: np.ndarray, st: dict[str, Any]) -> list[Score]:
        return [Score(ts, float(1.0 / (1.0 + np.exp(-out[i, 0])))) for i, ts in plan.marks]


def _trend_state(st: dict[str, Any]) -> TrendState:
    empty = TrendState.empty()
    if st.get("ema") is None:
        return TrendState(_none_to_nan(st.get("last")), empty.age_h, empty.ema)
    ema = np.stack([_none_to_nan(e) for e in st["ema"]])
    return TrendState(_none_to_nan(st.get("last")), np.asarray(st["age_h"], dtype=np.float64), ema)


def load_model(name: str, weights_dir: Path | None, device: str) -> Predictor | TreePredictor:
    """The shipped model by name: a GRU predictor, or the tree model where that won."""
    if checkpoint.load_meta(name, weights_dir).get("kind") == "trees":
        return TreePredictor.load(name, weights_dir)
    return Predictor(checkpoint.load(name, weights_dir), resolve_device(device))


def commit(plan: Plan, result: StepResult, st: dict[str, Any]) -> None:
    """Store the new hidden state and feature state after a successful model step."""
    st.update(plan.pending)
    st["h"] = result.h.tolist()
