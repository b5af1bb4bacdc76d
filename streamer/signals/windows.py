"""Per-signal event-time plumbing: ordering, duplicates and gaps of chunks, ring buffers, window schedules.

A :class:`SampleStream` turns chunks (``ts_ms`` of the first sample, ``seq``, samples) into a gap-free run of
samples indexed from the start of the current *segment*. The sample clock is the device's: sample ``k`` of a
segment is at ``origin_ms + k * 1000 / fs_hz``, so any chunking of the same recording gives the same indices.

- Chunks whose ``seq`` and ``ts_ms`` were already seen, or whose samples were all seen, are duplicates and
  are dropped (a partial overlap keeps only its new tail). A reused ``seq`` with a new time (the device
  restarted its counter) is new data.
- A chunk that starts after the expected next sample is held for up to ``late_grace_ms`` of event time, so
  a late chunk filling the hole is put in order first. Likewise a segment's first chunk waits for the grace,
  in case an earlier one is still on its way.
- A hole still open after the grace is a gap: up to ``MAX_INTERP_S`` (1 s) it is bridged by a straight line
  and counted; a longer hole ends the segment (filters and buffers reset, reported to the caller).

:class:`WindowSchedule` places sliding windows on the epoch grid of ``hop_s`` (device time), so every device
and every chunking agrees on window starts.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_INTERP_S = 1.0


@dataclass(frozen=True)
class Samples:
    """New in-order samples of the current segment, starting at segment index ``start``."""

    start: int
    values: np.ndarray
    origin_ms: float  # device time of segment index 0
    n_interpolated: int = 0


@dataclass(frozen=True)
class Reset:
    """The current segment ended (gap longer than ``MAX_INTERP_S``); a new one starts at ``origin_ms``."""

    gap_ms: float
    origin_ms: float


class RingBuffer:
    """Keeps the most recent samples of a segment, addressed by absolute segment index."""

    def __init__(self, keep: int, start: int = 0, values: np.ndarray | None = None) -> None:
        self.keep = keep
        self.start = start
        self.values = np.zeros(0) if values is None else values

    @property
    def end(self) -> int:
        return self.start + len(self.values)

    def append(self, values: np.ndarray) -> None:
        self.values = np.concatenate([self.values, values])
        excess = len(self.values) - self.keep
        if excess > 0:
            self.values = self.values[excess:]
            self.start += excess

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples with index in [a, b) that are still held."""
        lo, hi = max(a, self.start), min(b, self.end)
        return self.values[lo - self.start : hi - self.start] if hi > lo else np.zeros(0)

    def to_state(self) -> dict[str, Any]:
        return {"keep": self.keep, "start": self.start, "values": self.values.copy()}  # an array: see streamer/state.py

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RingBuffer:
        return cls(state["keep"], state["start"], np.asarray(state["values"], dtype=float))


class BeatTable:
    """A segment's beats in index order, rows ``[index, decided_at, amplitude, baseline]`` of one float array:
    appended one at a time, dropped from the front, read as a view (``rows``) without building an array per
    window. Indices and decision times are whole numbers stored as floats (exact below 2**53)."""

    def __init__(self, rows: Any = None) -> None:
        rows = np.zeros((0, 4)) if rows is None else np.asarray(rows, dtype=float).reshape(-1, 4)
        self._buf = np.zeros((max(64, 2 * len(rows)), 4))
        self._buf[: len(rows)] = rows
        self._lo, self._hi = 0, len(rows)

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def rows(self) -> np.ndarray:
        """The beats held, oldest first: a view, valid until the next ``append``."""
        return self._buf[self._lo : self._hi]

    def append(self, index: int, decided: int, amplitude: float, baseline: float) -> None:
        if self._hi > self._lo and index < self._buf[self._hi - 1, 0]:
            raise ValueError(f"beat at {index} after one at {self._buf[self._hi - 1, 0]:.0f}: beats come in order")
        if self._hi == len(self._buf):  # full: move the held rows to the front, growing only if they fill half
            held = self.rows.copy()
            if 2 * len(held) > len(self._buf):
                self._buf = np.zeros((2 * len(self._buf), 4))
            self._buf[: len(held)] = held
            self._lo, self._hi = 0, len(held)
        self._buf[self._hi] = (index, decided, amplitude, baseline)
        self._hi += 1

    def drop_before(self, index: int) -> None:
        """Forget the beats whose index is below ``index``."""
        if self._hi > self._lo and self._buf[self._lo, 0] < index:
            self._lo += int(np.searchsorted(self.rows[:, 0], index, side="left"))


class SampleClock:
    """Sample index <-> device time on a segment whose index 0 is at ``origin_ms``."""

    fs_hz: float
    origin_ms: float | None

    def time_of(self, index: float) -> float:
        assert self.origin_ms is not None
        return self.origin_ms + index * 1000.0 / self.fs_hz

    def index_at(self, ts_ms: float) -> int:
        """First segment index whose time is at or after ``ts_ms``."""
        assert self.origin_ms is not None
        return math.ceil(round((ts_ms - self.origin_ms) * self.fs_hz / 1000.0, 6))


class SampleStream(SampleClock):
    """Orders, de-duplicates and gap-checks one signal's chunks into a contiguous run of samples."""

    def __init__(self, fs_hz: float, late_grace_ms: int, seen_seq_max: int = 512) -> None:
        self.fs_hz = float(fs_hz)
        self.late_grace_ms = late_grace_ms
        self.seen_seq_max = seen_seq_max
        self.origin_ms: float | None = None
        self.n = 0  # samples emitted in this segment
        self.last_value = 0.0
        self.pending: list[tuple[int, int, np.ndarray]] = []  # (ts_ms, seq, samples), sorted by ts_ms
        # (seq, ts_ms) of recent chunks: a device that restarts its counter reuses seq with new times
        # (seq, ts_ms) of recent chunks, oldest first, with a count per pair: a set lookup per chunk instead of a
        # numpy scan and a concatenate of up to 512 rows (~25 us a chunk); ``seen_seq`` is the stored array
        self._seen: deque[tuple[int, int]] = deque()
        self._seen_n: Counter[tuple[int, int]] = Counter()
        self.newest_end_ms = -math.inf
        self.counts = {"duplicates": 0, "late_reordered": 0, "gaps_bridged": 0, "resets": 0}

    def push(self, ts_ms: int, seq: int, samples: np.ndarray) -> list[Samples | Reset]:
        key = (int(seq), int(ts_ms))
        if key in self._seen_n:
            self.counts["duplicates"] += 1
            return []
        self._remember(key)
        self.newest_end_ms = max(self.newest_end_ms, ts_ms + len(samples) * 1000.0 / self.fs_hz)
        self.pending.append((int(ts_ms), int(seq), np.array(samples, dtype=float)))
        self.pending.sort(key=lambda p: (p[0], p[1]))
        return self._drain(force=False)

    @property
    def seen_seq(self) -> np.ndarray:
        return np.array(self._seen, dtype=np.int64).reshape(-1, 2)  # (n, [seq, ts_ms]), oldest first

    @seen_seq.setter
    def seen_seq(self, rows: np.ndarray) -> None:
        self._seen, self._seen_n = deque(), Counter()
        for seq, ts_ms in np.asarray(rows, dtype=np.int64).reshape(-1, 2).tolist():
            self._remember((seq, ts_ms))

    def _remember(self, key: tuple[int, int]) -> None:
        self._seen.append(key)
        self._seen_n[key] += 1
        while self.seen_seq_max and len(self._seen) > self.seen_seq_max:  # max 0 keeps all, as [-0:] did
            old = self._seen.popleft()
            self._seen_n[old] -= 1
            if not self._seen_n[old]:
                del self._seen_n[old]

    def release(self) -> list[Samples | Reset]:
        """Give up waiting for any hole (wall-clock timeout, end of recording)."""
        return self._drain(force=True)

    def _offset(self, ts_ms: int) -> int:
        assert self.origin_ms is not None
        return round((ts_ms - self.origin_ms) * self.fs_hz / 1000.0) - self.n

    def _drain(self, force: bool) -> list[Samples | Reset]:
        out: list[Samples | Reset] = []
        while self.pending:
            ts_ms, _, values = self.pending[0]
            if self.origin_ms is None:  # a segment starts only once an earlier chunk can no longer come
                if not force and self.newest_end_ms - ts_ms <= self.late_grace_ms:
                    break
                self.origin_ms = float(ts_ms)
            offset = self._offset(ts_ms)
            if offset > 0 and not force and self.newest_end_ms - ts_ms <= self.late_grace_ms:
                break  # a hole before this chunk: wait for the late chunk within the grace
            self.pending.pop(0)
            out.extend(self._consume(offset, values, ts_ms))
        return out

    def _consume(self, offset: int, values: np.ndarray, ts_ms: int) -> list[Samples | Reset]:
        if offset < 0:  # overlap with samples already emitted: keep only the new tail
            if len(values) + offset <= 0:
                # The same start time seen before: a resend under a new seq. Otherwise a chunk later than the
                # grace whose place was already decided (gap bridged or segment reset): counted and reported.
                resent = sum(1 for _, t in self._seen if t == ts_ms) > 1
                key = "duplicates" if resent else "late_dropped"
                self.counts[key] = self.counts.get(key, 0) + 1
                return []
            self.counts["late_reordered"] += 1
            values, offset = values[-offset:], 0
        out: list[Samples | Reset] = []
        n_interp = 0
        if offset > 0:
            gap_ms = offset * 1000.0 / self.fs_hz
            if gap_ms > MAX_INTERP_S * 1000.0:
                self.counts["resets"] += 1
                self.origin_ms, self.n = float(ts_ms), 0
                out.append(Reset(gap_ms=gap_ms, origin_ms=float(ts_ms)))
            else:
                self.counts["gaps_bridged"] += 1
                ramp = np.linspace(self.last_value, values[0], offset + 2)[1:-1]
                values, n_interp = np.concatenate([ramp, values]), offset
        assert self.origin_ms is not None
        out.append(Samples(self.n, values, self.origin_ms, n_interp))
        self.n += len(values)
        self.last_value = float(values[-1])
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "fs_hz": self.fs_hz,
            "late_grace_ms": self.late_grace_ms,
            "origin_ms": self.origin_ms,
            "n": self.n,
            "last_value": self.last_value,
            "pending": [[ts, seq, values.copy()] for ts, seq, values in self.pending],
            "seen_seq": self.seen_seq,
            "newest_end_ms": None if math.isinf(self.newest_end_ms) else self.newest_end_ms,
            "counts": dict(self.counts),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SampleStream:
        self = cls(state["fs_hz"], state["late_grace_ms"])
        self.origin_ms, self.n, self.last_value = state["origin_ms"], state["n"], state["last_value"]
        self.pending = [(int(p[0]), int(p[1]), np.asarray(p[2], dtype=float)) for p in state["pending"]]
        self.seen_seq = np.asarray(state["seen_seq"], dtype=np.int64).reshape(-1, 2)
        end = state["newest_end_ms"]
        self.newest_end_ms = -math.inf if end is None else end
        self.counts = dict(state["counts"])
        return self


@dataclass
class WindowSchedule:
    """Sliding windows ``[k * hop, k * hop + length)`` on the device's epoch-ms grid."""

    window_ms: int
    hop_ms: int
    next_start_ms: int | None = None

    def first_start(self, segment_origin_ms: float) -> int:
        """First grid start at or after the segment origin (a window never straddles a reset)."""
        return math.ceil(segment_origin_ms / self.hop_ms) * self.hop_ms

    def due(self, covered_until_ms: float) -> list[tuple[int, int]]:
        """Windows that end at or before ``covered_until_ms``; advances the schedule past them."""
        out = []
        while self.next_start_ms is not None and self.next_start_ms + self.window_ms <= covered_until_ms:
            out.append((self.next_start_ms, self.next_start_ms + self.window_ms))
            self.next_start_ms += self.hop_ms
        return out

    def partial(self, data_start_ms: float, data_end_ms: float, min_fraction: float = 0.5) -> list[tuple[int, int]]:
        """At the end of a segment: the window in progress, if data cover at least ``min_fraction`` of it."""
        out = []
        while self.next_start_ms is not None and self.next_start_ms < data_end_ms:
            start, end = self.next_start_ms, self.next_start_ms + self.window_ms
            if data_end_ms - max(start, data_start_ms) >= min_fraction * self.window_ms:
                out.append((start, end))
            self.next_start_ms += self.hop_ms
        return out

    def to_state(self) -> dict[str, Any]:
        return {"window_ms": self.window_ms, "hop_ms": self.hop_ms, "next_start_ms": self.next_start_ms}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WindowSchedule:
        return cls(state["window_ms"], state["hop_ms"], state["next_start_ms"])
