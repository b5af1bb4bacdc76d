"""Stage 1, deduplication: which sequence numbers of a device were already seen (resends, counter resets)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class SeqStatus(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass
class SeqTracker:
    """Which sequence numbers of one device were seen: exact within a window below the highest seq.

    A seq more than ``window`` below the highest one cannot be checked any more; it is reported STALE (and
    dead-lettered by the caller) rather than silently passed on or dropped. A device that restarts its counter
    (a lower seq with a timestamp newer than anything seen, e.g. after a reboot) starts a new epoch instead of
    having its data taken for duplicates.
    """

    window: int = 4096
    max_seq: int = -1
    recent: set[int] = field(default_factory=set)
    duplicates: int = 0
    max_ts_ms: int = -1
    resets: int = 0

    def check(self, seq: int, ts_ms: int | None = None) -> SeqStatus:
        if ts_ms is not None:
            if ts_ms > self.max_ts_ms and seq <= self.max_seq:
                self.max_seq, self.recent, self.resets = -1, set(), self.resets + 1
            self.max_ts_ms = max(self.max_ts_ms, ts_ms)
        # Below the window first: the persisted state keeps only the window, so a restored tracker could not call
        # such a seq a duplicate; checking it first makes a live and a restored tracker answer alike.
        if seq <= self.max_seq - self.window:
            return SeqStatus.STALE
        if seq in self.recent:
            self.duplicates += 1
            return SeqStatus.DUPLICATE
        self.recent.add(seq)
        if seq > self.max_seq:
            self.max_seq = seq
            floor = seq - self.window
            if len(self.recent) > 2 * self.window:
                self.recent = {s for s in self.recent if s > floor}
        return SeqStatus.NEW

    def to_state(self) -> dict[str, object]:
        floor = self.max_seq - self.window
        return {
            "max_seq": self.max_seq,
            "recent": _ranges(s for s in self.recent if s > floor),
            "duplicates": self.duplicates,
            "max_ts_ms": self.max_ts_ms,
            "resets": self.resets,
        }

    @classmethod
    def from_state(cls, state: dict[str, object] | None, window: int) -> SeqTracker:
        if not state:
            return cls(window=window)
        recent = {s for lo, hi in state["recent"] for s in range(lo, hi + 1)}  # type: ignore[attr-defined]
        return cls(
            window=window,
            max_seq=int(state["max_seq"]),  # type: ignore[call-overload]
            recent=recent,
            duplicates=int(state["duplicates"]),  # type: ignore[call-overload]
            max_ts_ms=int(state.get("max_ts_ms", -1)),  # type: ignore[call-overload]
            resets=int(state.get("resets", 0)),  # type: ignore[call-overload]
        )


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Compress sorted integers into [lo, hi] runs: the usual state is one run."""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out
