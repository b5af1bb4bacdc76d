"""One signal of one device (ECG, PPG, resp or accelerometer magnitude): samples in, closed windows out.

A channel owns the :class:`~streamer.signals.windows.SampleStream` (order, duplicates, gaps), ring buffers of raw and
filtered samples, the causal filter, the streaming beat detector and the window schedule. A window closes once
the sample clock has passed its end plus a fixed lag (time for the beat detector to decide the beats in it),
and only beats decided by then count, so any chunking of a recording closes identical windows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from streamer.config import Settings
from streamer.features import kernels
from streamer.features.extract import (
    activity_g,
    breath_onsets,
    finite_or_none,
    resp_rate_from_beats,
    resp_rate_from_signal,
    rr_features,
)
from streamer.features.morphology import PRE_S, beat_morphology
from streamer.records import FeatureWindow
from streamer.signals.ecg_beats import EcgBeatDetector
from streamer.signals.filters import CausalFilter
from streamer.signals.ppg_beats import PpgBeatDetector
from streamer.signals.quality import breath_regularity_score, template_score, window_quality
from streamer.signals.windows import (
    BeatTable,
    Reset,
    RingBuffer,
    SampleClock,
    Samples,
    SampleStream,
    WindowSchedule,
)

log = logging.getLogger(__name__)
ActivityLookup = Callable[[float, float], float | None]
_LAG_S = {"ecg": 1.0, "ppg": 1.0, "resp": 0.0, "motion": 0.0}
_FILTERS = {"ecg": ("ecg", "standard"), "ppg": ("ppg", "elgendi"), "resp": ("resp", "standard")}
_MOTION_HIGH_G = 0.1
_RATE_NAME = {"ecg": "heart_rate_bpm", "ppg": "pulse_rate_bpm"}


def _window_s(signal: str, s: Settings) -> tuple[float, float]:
    return {
        "ecg": (s.ecg_window_s, s.ecg_hop_s),
        "ppg": (s.ppg_window_s, s.ppg_hop_s),
        "resp": (s.resp_window_s, s.resp_hop_s),
        "motion": (s.ppg_window_s, s.ppg_hop_s),
    }[signal]


class Channel(SampleClock):
    """Samples, filters, beats and windows of one signal of one device."""

    def __init__(self, signal: str, fs_hz: float, settings: Settings) -> None:
        self.signal, self.fs_hz = signal, float(fs_hz)
        window_s, hop_s = _window_s(signal, settings)
        self.stream = SampleStream(fs_hz, settings.late_grace_ms)
        self.schedule = WindowSchedule(round(window_s * 1000), round(hop_s * 1000))
        self.resp_window_ms = settings.resp_window_s * 1000.0
        self.sqi_threshold = settings.sqi_threshold
        self.lag = round(_LAG_S[signal] * fs_hz)
        self.rr_beats = settings.rr_window_beats
        # Samples: one window plus the close lag and a 5 s chunk; beats: long enough for PPG respiration.
        self.keep = round((window_s + 8.0) * fs_hz)
        self.beat_keep = round((max(window_s, settings.resp_window_s) + 12.0) * fs_hz)
        # Chunks of the current batch already filtered with the fleet's (``streamer/signals/fleet.py``):
        # (chunk, filtered, detector front), in the order ``_ingest`` will meet them.
        self.ready: list[tuple[Samples, np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = []
        self._new_segment()

    def _new_segment(self) -> None:
        self.origin_ms: float | None = None
        self.n = 0
        self.raw, self.filt = RingBuffer(self.keep), RingBuffer(self.keep)
        kind = _FILTERS.get(self.signal)
        self.filter = CausalFilter.design(kind[0], self.fs_hz, kind[1]) if kind else None
        detectors: dict[str, type[EcgBeatDetector] | type[PpgBeatDetector]] = {
            "ecg": EcgBeatDetector,
            "ppg": PpgBeatDetector,
        }
        detector = detectors.get(self.signal)
        self.detector: EcgBeatDetector | PpgBeatDetector | None = detector(self.fs_hz) if detector else None
        self.beats = BeatTable()  # [index, decided_at, amplitude, baseline]
        self.interp: list[list[int]] = []  # [start, end) of bridged samples
        self.beat_count = 0
        self.rr_due: list[list[int]] = []  # [first beat, last beat, decided_at] of RR windows to close
        self.schedule.next_start_ms = None

    # -- time ---------------------------------------------------------------------------------------
    # -- input --------------------------------------------------------------------------------------
    def push(self, ts_ms: int, seq: int, values: np.ndarray, activity: ActivityLookup) -> list[FeatureWindow]:
        return self.apply(self.stream.push(ts_ms, seq, values), activity)

    def release(self, activity: ActivityLookup) -> list[FeatureWindow]:
        """Stop waiting for late chunks (wall clock past the grace)."""
        return self.apply(self.stream.release(), activity)

    def end_segment(self, activity: ActivityLookup) -> list[FeatureWindow]:
        """Close what can be closed (end of data or a long gap); the next chunk starts afresh."""
        closed = self.release(activity)
        if self.origin_ms is not None:
            self._flush_detector()
            closed += self._close(activity, final=True)
        self._new_segment()
        self.stream.origin_ms, self.stream.n = None, 0
        return closed

    def apply(self, events: list[Samples | Reset], activity: ActivityLookup) -> list[FeatureWindow]:
        """What the stream gave for a chunk (``stream.push``) into buffers, beats and windows."""
        closed: list[FeatureWindow] = []
        for ev in events:
            if isinstance(ev, Reset):
                log.warning(
                    "%s: %.1f s gap (over the 1 s bridge limit); filters and buffers reset",
                    self.signal,
                    ev.gap_ms / 1000.0,
                )
                self._flush_detector()
                closed += self._close(activity, final=True, partial=False)  # none straddles the hole
                self._new_segment()
                continue
            self._ingest(ev)
            closed += self._close(activity, final=False)
        return closed

    def _flush_detector(self) -> None:
        if self.origin_ms is not None and self.detector is not None:
            for peak, decided in zip(*self.detector.flush_timed(), strict=True):
                self._add_beat(int(peak), int(decided))

    def _ingest(self, ev: Samples) -> None:
        if self.origin_ms is None:
            self.origin_ms = ev.origin_ms
            self.schedule.next_start_ms = self.schedule.first_start(self.origin_ms)
        if self.ready:
            chunk, filtered, front = self.ready.pop(0)
            assert chunk is ev, "a chunk filtered ahead is not the one ingested next"
        else:
            filtered, front = self.filter.process(ev.values) if self.filter else ev.values, None
        self.raw.append(ev.values)
        self.filt.append(filtered)
        if ev.n_interpolated:
            self.interp.append([ev.start, ev.start + ev.n_interpolated])
        self.n = ev.start + len(ev.values)
        if self.detector is not None:
            for peak, decided in zip(*self.detector.update_timed(ev.values, front), strict=True):
                self._add_beat(int(peak), int(decided))
        oldest = self.n - self.beat_keep
        self.beats.drop_before(oldest)
        if self.interp:
            self.interp = [g for g in self.interp if g[1] > oldest]

    def _add_beat(self, peak: int, decided: int) -> None:
        amplitude = baseline = 0.0
        if self.signal == "ppg":  # pulse amplitude and mid-level, for respiratory modulation
            prev = int(self.beats.rows[-1, 0]) if len(self.beats) else peak - round(self.fs_hz)
            top = (peak - round(0.1 * self.fs_hz), peak + round(0.1 * self.fs_hz) + 1)
            foot = (max(prev, peak - round(0.6 * self.fs_hz)), peak + 1)
            high, low, held = kernels.span_extremes(self.raw.values, self.raw.start, top, foot)
            if held:
                amplitude = float(high - low)
                baseline = float(high + low) / 2.0
        self.beats.append(peak, decided, amplitude, baseline)
        self.beat_count += 1
        if self.beat_count % self.rr_beats == 0:  # RR windows: every ``rr_window_beats`` beats
            first = int(self.beats.rows[max(0, len(self.beats) - self.rr_beats), 0])
            self.rr_due.append([first, peak, decided])

    # -- windows ------------------------------------------------------------------------------------
    def _close(self, activity: ActivityLookup, final: bool, partial: bool = True) -> list[FeatureWindow]:
        """Windows due; at the end of data (``final``) also the last, partly filled one if ``partial``."""
        if self.origin_ms is None:
            return []
        due = self.schedule.due(self.time_of(self.n if final else self.n - self.lag))
        if final and partial:
            due += self.schedule.partial(self.origin_ms, self.time_of(self.n))
        rr_windows = [self._rr_window(d[0], d[1], d[2], activity) for d in self.rr_due]
        self.rr_due = []
        return [self._window(s, e, activity, final) for s, e in due] + rr_windows

    def _bridged_s(self, a: int, b: int) -> float:
        """Seconds of samples in [a, b) that were bridged over a short gap."""
        return sum(max(0, min(g[1], b) - max(g[0], a)) for g in self.interp) / self.fs_hz

    def _rr_window(self, first: int, last: int, decided: int, activity: ActivityLookup) -> FeatureWindow:
        """The last ``rr_window_beats`` beats (and the interval into the first), for the AF model."""
        held = self.beats.rows[:, 0]
        beats = held[(held >= first) & (held <= last)].astype(np.int64)
        idx = np.concatenate([held[held < first][-1:].astype(np.int64), beats])
        # Only samples every chunking still holds when the last beat is decided.
        lo = max(first - round(0.5 * self.fs_hz), decided - self.keep // 2)
        start_ms, end_ms = round(self.time_of(first)), round(self.time_of(last))
        q, _ = window_quality(self.raw.get(lo, decided), self.fs_hz, None, activity(start_ms, end_ms))
        q = min(q, template_score(self.filt.get(lo, decided), beats[beats >= lo] - lo, self.fs_hz))
        usable = q >= self.sqi_threshold
        rr_ms = np.diff(idx) * 1000.0 / self.fs_hz
        feats = rr_features(rr_ms, len(beats), _RATE_NAME[self.signal])
        if not usable:
            feats = {k: (v if k == "n_beats" else None) for k, v in feats.items()}
        feats["source_ecg"] = float(self.signal == "ecg")
        feats["gap_s"] = self._bridged_s(first, last)
        rr = tuple(float(v) for v in rr_ms) if usable else ()
        record = self._record(start_ms, end_ms, q, usable, feats, rr)
        return replace(record, signal="rr")

    def _window(self, start_ms: int, end_ms: int, activity: ActivityLookup, final: bool) -> FeatureWindow:
        a, b = self.index_at(start_ms), self.index_at(end_ms)
        raw, filt = self.raw.get(a, b), self.filt.get(a, b)
        motion = activity(start_ms, end_ms)
        gap_s = self._bridged_s(a, b)
        if self.signal == "motion":
            level = activity_g(raw, np.zeros_like(raw), np.zeros_like(raw))
            feats = {
                "activity_g": level,
                "motion_high": None if level is None else float(level > _MOTION_HIGH_G),
            }
            return self._record(start_ms, end_ms, None, True, feats)
        if self.signal == "resp":
            # Clipping is tolerated (a saturated signal still crosses its mean once per breath); an irregular
            # breath rhythm is not.
            q, _ = window_quality(raw, self.fs_hz, None, motion, flat_run_s=2.0, clip_tolerance=1.0)
            q = min(q, breath_regularity_score(breath_onsets(filt, self.fs_hz), self.fs_hz))
            usable = q >= self.sqi_threshold
            rate = resp_rate_from_signal(filt, self.fs_hz) if usable else None
            return self._record(start_ms, end_ms, q, usable, {"resp_rate_bpm": rate, "gap_s": gap_s})
        return self._beat_window(start_ms, end_ms, (a, b), raw, filt, motion, gap_s, final)

    def _beat_window(
        self,
        start_ms: int,
        end_ms: int,
        span: tuple[int, int],
        raw: np.ndarray,
        filt: np.ndarray,
        motion: float | None,
        gap_s: float,
        final: bool,
    ) -> FeatureWindow:
        a, b = span
        horizon = math.inf if final else b + self.lag
        beats = self.beats.rows  # [index, decided_at, amplitude, baseline]
        known = beats[beats[:, 1] <= horizon]
        idx = known[:, 0].astype(np.int64)
        inside = (idx >= a) & (idx < b)
        first = int(np.argmax(inside)) if inside.any() else len(idx)
        with_prev = idx[max(first - 1, 0) : first + int(inside.sum())]
        rr_ms = np.diff(with_prev) * 1000.0 / self.fs_hz
        q, _ = window_quality(raw, self.fs_hz, None, motion)
        q = min(q, template_score(filt, idx[inside] - a, self.fs_hz))  # filtered: no baseline wander
        usable = q >= self.sqi_threshold
        feats = rr_features(rr_ms, int(inside.sum()), _RATE_NAME[self.signal])
        if self.signal == "ppg":
            feats["resp_rate_bpm_ppg"], feats["resp_rate_sqi_ppg"] = self._ppg_resp_rate(known, end_ms)
        if not usable:
            feats = {k: (v if k == "n_beats" else None) for k, v in feats.items()}
        feats["gap_s"] = gap_s
        rr = tuple(float(v) for v in rr_ms) if usable else ()
        record = self._record(start_ms, end_ms, q, usable, feats, rr)
        if self.signal != "ecg" or not rr:
            return record
        return replace(record, beat_morph=self._morphology(with_prev))

    def _morphology(self, peaks: np.ndarray) -> tuple[tuple[float, ...], ...]:
        """Morphology of each beat after the first of ``peaks``, read off the filtered ring buffer."""
        lo = max(int(peaks[0]) - round(PRE_S * self.fs_hz), self.filt.start)
        rows = beat_morphology(self.filt.get(lo, self.n), peaks[1:] - lo, self.fs_hz, prev_peak=int(peaks[0]) - lo)
        return tuple(tuple(float(v) for v in r) for r in rows)

    def _ppg_resp_rate(self, known: np.ndarray, end_ms: int) -> tuple[float | None, float | None]:
        """Respiratory rate from the beats (rows of ``known``) of the last ``resp_window_s`` and its spectral
        quality index."""
        lo = self.index_at(end_ms - self.resp_window_ms)
        hi = self.index_at(end_ms)
        rows = known[(known[:, 0] >= lo) & (known[:, 0] < hi)]
        rate, info = resp_rate_from_beats(rows[:, 0] / self.fs_hz, rows[:, 2], rows[:, 3])
        return rate, info.get("quality")

    def _record(
        self,
        start_ms: int,
        end_ms: int,
        q: float | None,
        usable: bool,
        feats: dict[str, float | None],
        rr_ms: tuple[float, ...] = (),
    ) -> FeatureWindow:
        clean = {k: finite_or_none(v) for k, v in feats.items()}
        return FeatureWindow("", self.signal, int(start_ms), int(end_ms), q, usable, clean, rr_ms)

    def activity_between(self, start_ms: float, end_ms: float) -> float | None:
        if self.origin_ms is None:
            return None
        seg = self.raw.get(self.index_at(start_ms), self.index_at(end_ms))
        return float(np.std(seg)) if len(seg) >= 2 else None

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        det = self.detector.to_state() if self.detector is not None else None
        return {
            "signal": self.signal,
            "fs_hz": self.fs_hz,
            "stream": self.stream.to_state(),
            "schedule": self.schedule.to_state(),
            "origin_ms": self.origin_ms,
            "n": self.n,
            "raw": self.raw.to_state(),
            "filt": self.filt.to_state(),
            "filter": self.filter.to_state() if self.filter else None,
            "detector": det,
            "beats": self.beats.rows.copy(),  # (n, [index, decided, amp, baseline])
            "interp": np.asarray(self.interp, dtype=np.int64).reshape(-1, 2),  # (n, [start, end))
            "beat_count": self.beat_count,
            "rr_due": np.asarray(self.rr_due, dtype=np.int64).reshape(-1, 3),  # (n, [first, last, decided])
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: Settings) -> Channel:
        self = cls(state["signal"], state["fs_hz"], settings)
        self.stream = SampleStream.from_state(state["stream"])
        self.schedule = WindowSchedule.from_state(state["schedule"])
        self.origin_ms, self.n = state["origin_ms"], state["n"]
        self.raw, self.filt = RingBuffer.from_state(state["raw"]), RingBuffer.from_state(state["filt"])
        self.filter = CausalFilter.from_state(state["filter"]) if state["filter"] else None
        if state["detector"] is not None:
            cls_ = EcgBeatDetector if self.signal == "ecg" else PpgBeatDetector
            self.detector = cls_.from_state(state["detector"])
        # Arrays, or lists where the state was decoded without ``arrays=True``: the same numbers either way.
        self.beats = BeatTable(state["beats"])
        self.interp = [[int(g[0]), int(g[1])] for g in state["interp"]]
        self.beat_count, self.rr_due = state["beat_count"], [[int(v) for v in d] for d in state["rr_due"]]
        return self
