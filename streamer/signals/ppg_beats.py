"""Causal streaming PPG systolic-peak detection, chunk by chunk, with carried state.

Two moving averages over the squared, clipped 0.5-8 Hz signal ("blocks of interest"), after
Elgendi et al., PLoS ONE 8(10):e76585 (2013), made causal by delaying the short average
to line up with the long one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit
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
        peaks, decided, self.in_block, self.block_start, self.last_peak = close_blocks(
            self.y, self.buf_start, inside, start, self.in_block, self.block_start, self.last_peak,
            (self.w1, self.centre, self.delay, self.refractory),
        )  # fmt: skip
        self._trim()
        return list(zip(peaks.tolist(), decided.tolist(), strict=True))

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


@njit(cache=True, nogil=True)
def close_blocks(
    y: np.ndarray,
    buf_start: int,
    inside: np.ndarray,
    start: int,
    in_block: bool,
    block_start: int,
    last_peak: int,
    rules: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray, bool, int, int]:  # pragma: no cover
    """The per-sample block state machine over one chunk, compiled: a block of interest opens where ``inside``
    turns on and closes where it turns off; a block at least ``w1`` long gives its largest bandpassed sample,
    moved back by the filter delay, as a peak unless within the refractory time of the last one.

    ``y`` holds the bandpassed signal from absolute index ``buf_start``; the chunk starts at ``start``. Returns
    (peaks, the index each was decided at, in_block, block_start, last_peak).
    """
    w1, centre, delay, refractory = rules
    peaks = np.empty(len(inside), dtype=np.int64)
    decided = np.empty(len(inside), dtype=np.int64)
    k = 0
    for j in range(len(inside)):
        if inside[j] == in_block:
            continue
        idx = start + j  # first sample of the new run
        if not in_block:
            block_start = idx
        elif idx - block_start >= w1:
            lo = max(block_start - centre, buf_start)
            hi = max(idx - centre, lo + 1)
            best = lo
            for i in range(lo + 1, hi):  # the first largest sample, as np.argmax
                if y[i - buf_start] > y[best - buf_start]:
                    best = i
            peak = best - delay
            if peak - last_peak >= refractory and peak >= 0:
                last_peak = peak
                peaks[k], decided[k] = peak, idx
                k += 1
        in_block = not in_block
    return peaks[:k], decided[:k], in_block, block_start, last_peak


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


def warm_up() -> None:
    """Compile (or load from numba's cache) the block state machine now, through the real detector path."""
    t_s = np.arange(4 * 125) / 125.0
    ppg_peaks(np.sin(2 * np.pi * 1.2 * t_s) ** 8, 125.0)  # 72 bpm, pulse-like


def ppg_peaks(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Systolic-peak indices of a whole PPG recording, via the streaming detector over 1-s chunks."""
    return _run_chunked(PpgBeatDetector(fs_hz), x, fs_hz)
