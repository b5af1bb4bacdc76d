"""Causal streaming PPG systolic-peak detection, chunk by chunk, with carried state.

Two moving averages over the squared, clipped 0.5-8 Hz signal ("blocks of interest"), after
Elgendi et al., PLoS ONE 8(10):e76585 (2013), made causal by delaying the short average
to line up with the long one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.signal import lfilter

from streamer.signals.beats import _Detector, _run_chunked
from streamer.signals.filters import CausalFilter, group_delay_samples


class PpgBeatDetector(_Detector):
    """Streaming systolic-peak detector; ``update(chunk)`` returns absolute indices of new peaks."""

    def __init__(self, fs_hz: float) -> None:
        if not 20 <= fs_hz <= 1000:
            raise ValueError(f"PPG beat detection needs fs_hz in [20, 1000], got {fs_hz}")
        self.fs_hz = float(fs_hz)
        w1, w2 = max(1, round(0.111 * fs_hz)), max(2, round(0.667 * fs_hz))
        lag = (w2 - w1) // 2  # delay the short average so both are centred on the same sample
        self.bandpass = CausalFilter.design("ppg", fs_hz, "elgendi")
        self.ma_peak = CausalFilter.from_fir(np.r_[np.zeros(lag), np.full(w1, 1.0 / w1)], fs_hz, "ma_peak")
        self.ma_beat = CausalFilter.from_fir(np.full(w2, 1.0 / w2), fs_hz, "ma_beat")
        # Elgendi's offset is 2% of the mean squared signal; a 10 s one-pole average makes it causal.
        self.level_a = float(np.exp(-1.0 / (10.0 * fs_hz)))
        self.level_zi = 0.0
        self.n_seen = 0
        self.buf_start = 0
        self.y = np.zeros(0)
        self.in_block = False
        self.block_start = 0
        self.last_peak = -(10**9)
        self._derive_constants()

    def _derive_constants(self) -> None:
        self.w1 = max(1, round(0.111 * self.fs_hz))
        self.centre = (len(self.ma_beat.fir) - 1) // 2
        self.delay = group_delay_samples(self.bandpass, 1.5)
        self.refractory = round(0.3 * self.fs_hz)
        self.hist = round(3.0 * self.fs_hz)

    def _front(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, inside = front_rows([self], x[None, :])  # (1, L): the batch code path with one row, same bits
        return y[0], inside[0]

    def _advance(self, front: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int]]:
        y, inside = front
        start = self.n_seen
        self.y = np.concatenate([self.y, y])
        self.n_seen += len(y)
        edges = np.flatnonzero(np.diff(np.r_[self.in_block, inside].astype(np.int8)))
        peaks: list[tuple[int, int]] = []
        for e in edges:
            idx = start + int(e)  # first sample of the new run
            if not self.in_block:
                self.block_start = idx
            else:
                peaks.extend((p, idx) for p in self._close_block(self.block_start, idx))
            self.in_block = not self.in_block
        self._trim()
        return peaks

    def _close_block(self, b0: int, b1: int) -> list[int]:
        if b1 - b0 < self.w1:
            return []
        lo = max(b0 - self.centre, self.buf_start)
        hi = max(b1 - self.centre, lo + 1)
        seg = self.y[lo - self.buf_start : hi - self.buf_start]
        peak = lo + int(np.argmax(seg)) - self.delay
        if peak - self.last_peak < self.refractory or peak < 0:
            return []
        self.last_peak = peak
        return [peak]

    def _trim(self) -> None:
        keep_from = self.n_seen - self.hist
        if self.in_block:
            keep_from = min(keep_from, self.block_start - self.centre)
        if keep_from > self.buf_start:
            self.y = self.y[keep_from - self.buf_start :]
            self.buf_start = keep_from

    def to_state(self) -> dict[str, Any]:
        return {
            "fs_hz": self.fs_hz,
            "filters": [f.to_state() for f in (self.bandpass, self.ma_peak, self.ma_beat)],
            "ints": [self.n_seen, self.buf_start, self.block_start, self.last_peak],
            "level_zi": self.level_zi,
            "in_block": self.in_block,
            "y": self.y.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PpgBeatDetector:
        self = cls(state["fs_hz"])
        self.bandpass, self.ma_peak, self.ma_beat = (CausalFilter.from_state(s) for s in state["filters"])
        self.n_seen, self.buf_start, self.block_start, self.last_peak = state["ints"]
        self.level_zi, self.in_block = state["level_zi"], state["in_block"]
        self.y = np.asarray(state["y"], dtype=float)
        self._derive_constants()
        return self


def front_rows(detectors: Sequence[PpgBeatDetector], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bandpassed PPG and "inside a block of interest" for one chunk per detector, x: (D, L), one call per filter.

    Every detector must have the same ``fs_hz``; each row carries its own detector's filter states.
    """
    y = CausalFilter.process_rows([d.bandpass for d in detectors], x)  # (D, L)
    z = np.square(np.maximum(y, 0.0))
    a = detectors[0].level_a
    level, zf = lfilter([1.0 - a], [1.0, -a], z, axis=-1, zi=np.array([[d.level_zi] for d in detectors]))
    for d, state in zip(detectors, zf[:, 0], strict=True):
        d.level_zi = float(state)
    ma_peak = CausalFilter.process_rows([d.ma_peak for d in detectors], z)
    inside = ma_peak > CausalFilter.process_rows([d.ma_beat for d in detectors], z) + 0.02 * level
    return y, inside


def ppg_peaks(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Systolic-peak indices of a whole PPG recording, via the streaming detector over 1-s chunks."""
    return _run_chunked(PpgBeatDetector(fs_hz), x, fs_hz)
