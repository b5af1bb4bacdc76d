"""Tumbling windows of numeric vitals (1 minute by default), and their state kept column by column.

Rows are the numeric fields of one vitals message. ``to_state`` stores a window as columns: a column of floats and
Nones as one float array (NaN for None), so the state codec writes it as raw bytes; the columns are kept up to date
as rows arrive, so packing them costs a few array copies per window, not a pass over its rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class TumblingNumerics:
    """1-minute (configurable) tumbling windows of numeric vitals, closed by later event time or on demand."""

    def __init__(self, window_ms: int, late_grace_ms: int) -> None:
        self.window_ms = window_ms
        self.late_grace_ms = late_grace_ms
        self.open: dict[int, list[dict[str, Any]]] = {}
        self.closed_before_ms = -math.inf  # windows starting before this were already emitted
        self._columns: dict[int, _Columns] = {}  # the open rows column by column, kept as they arrive

    def add(self, ts_ms: int, values: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
        start = ts_ms // self.window_ms * self.window_ms
        if start < self.closed_before_ms:
            return []  # later than the grace: its window is gone (counted by the caller as too late)
        self.open.setdefault(start, []).append(values)
        self._columns.setdefault(start, _Columns(tuple(values))).add(values)
        return self.close_until(ts_ms - self.late_grace_ms)

    def close_until(self, event_ms: float) -> list[tuple[int, list[dict[str, Any]]]]:
        due = sorted(s for s in self.open if s + self.window_ms <= event_ms)
        if due:
            self.closed_before_ms = max(self.closed_before_ms, due[-1] + self.window_ms)
        for s in due:
            self._columns.pop(s, None)
        return [(s, self.open.pop(s)) for s in due]

    def close_all(self) -> list[tuple[int, list[dict[str, Any]]]]:
        return self.close_until(math.inf)

    def to_state(self) -> dict[str, Any]:
        closed = None if math.isinf(self.closed_before_ms) else self.closed_before_ms
        packed = [self._pack(s, rows) for s, rows in self.open.items()]
        return {"open": packed, "closed_before_ms": closed}

    def _pack(self, start_ms: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        cols = self._columns.get(start_ms)
        if cols is None or cols.ragged or cols.n != len(rows):
            return _columns(start_ms, rows)
        return cols.pack(start_ms)

    def load_state(self, state: dict[str, Any]) -> None:
        # [start, rows] pairs: the layout before the column form (states already in a changelog)
        self.open = dict(_rows(w) if isinstance(w, dict) else (int(w[0]), list(w[1])) for w in state["open"])
        self._columns = {}
        for start, rows in self.open.items():
            for row in rows:
                self._columns.setdefault(start, _Columns(tuple(row))).add(row)
        c = state["closed_before_ms"]
        self.closed_before_ms = -math.inf if c is None else c


class SeqWatermark:
    """How far a device's data is known to be complete, from its sequence numbers: ``complete_ms``.

    A device numbers every message it sends (``seq``, one counter over all kinds) and stamps it in order, so a
    message not received yet has a higher seq than those around it and no earlier timestamp than the one just
    below it. With every seq up to ``top`` received, everything still to come is stamped at ``top_ts_ms`` or
    later: a numerics window ending by then can close at once instead of waiting the late grace
    (``VITALS_NUMERICS_CLOSE_ON_SEQ``). What it knows depends only on the messages and their order, so a replay
    and the live run close the same windows with the same rows.

    A gap (a message lost or still on its way) stops ``top`` there: windows then close by the grace, as without
    the watermark. Seqs received above a gap are held (``ahead``); past ``max_ahead`` of them the gap is given up,
    ``top`` jumps to the highest received, and the watermark counts for nothing until the grace has closed past
    every timestamp it had seen (``floor_ms``): the lost messages may have been stamped anywhere up to there.
    The same holds for the first message of a device and after its counter restarts, when earlier messages may
    still be on their way, unless that first seq is 0.
    """

    def __init__(self, max_ahead: int = 64) -> None:
        self.max_ahead = max_ahead
        self.top: int | None = None
        self.top_ts_ms = -math.inf
        self.seen_ts_ms = -math.inf  # the newest timestamp received
        self.ahead: dict[int, int] = {}  # seq -> ts of those received above a gap
        self.floor_ms: float | None = None  # counts for nothing until the grace has closed past this

    def add(self, seq: int, ts_ms: int) -> None:
        if self.top is None or (seq <= self.top and ts_ms > self.seen_ts_ms):  # first, or the counter restarted
            self.floor_ms = None if seq == 0 and self.top is None else max(self.seen_ts_ms, ts_ms)
            self.top, self.top_ts_ms, self.ahead = seq, ts_ms, {}
        elif seq == self.top + 1:
            self.top, self.top_ts_ms = seq, max(self.top_ts_ms, ts_ms)
            while self.top + 1 in self.ahead:
                self.top += 1
                self.top_ts_ms = max(self.top_ts_ms, self.ahead.pop(self.top))
        elif seq > self.top + 1:
            self.ahead[seq] = ts_ms
            if len(self.ahead) > self.max_ahead:  # give the gap up
                self.floor_ms = max(self.floor_ms or -math.inf, self.seen_ts_ms, ts_ms)
                self.top, self.top_ts_ms = max(self.ahead), max(self.top_ts_ms, *self.ahead.values())
                self.ahead = {}
        self.seen_ts_ms = max(self.seen_ts_ms, ts_ms)

    def complete_ms(self, closed_before_ms: float) -> float:
        """Event time before which nothing more can arrive; -inf while the watermark counts for nothing."""
        if self.floor_ms is not None:
            if closed_before_ms <= self.floor_ms:
                return -math.inf
            self.floor_ms = None
        return self.top_ts_ms

    def to_state(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "top_ts_ms": None if math.isinf(self.top_ts_ms) else self.top_ts_ms,
            "seen_ts_ms": None if math.isinf(self.seen_ts_ms) else self.seen_ts_ms,
            "ahead": np.array(list(self.ahead.items()), dtype=np.int64).reshape(-1, 2),
            "floor_ms": self.floor_ms,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, max_ahead: int = 64) -> SeqWatermark:
        """``None`` (a state from before the watermark): as a new device, so it waits for the grace once."""
        self = cls(max_ahead)
        if state:
            self.top = state["top"]
            self.top_ts_ms = -math.inf if state["top_ts_ms"] is None else state["top_ts_ms"]
            self.seen_ts_ms = -math.inf if state["seen_ts_ms"] is None else state["seen_ts_ms"]
            self.ahead = {int(k): int(v) for k, v in np.asarray(state["ahead"], dtype=np.int64).reshape(-1, 2)}
            self.floor_ms = state["floor_ms"]
        return self


class _Columns:
    """One open window's rows column by column as they arrive: ``_columns`` of them, without a pass over them."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.n = 0
        self.ragged = False  # a row with other keys: ``_columns`` does the whole window
        self.values: dict[str, list[Any]] = {k: [] for k in keys}
        self.floats: dict[str, list[float] | None] = {k: [] for k in keys}  # None: not a float column

    def add(self, row: dict[str, Any]) -> None:
        if tuple(row) != self.keys:
            self.ragged = True
            return
        self.n += 1
        for key, v in row.items():
            self.values[key].append(v)
            floats = self.floats[key]
            if floats is None:
                continue
            if v is None:
                floats.append(math.nan)
            elif type(v) is float and not math.isnan(v):
                floats.append(v)
            else:
                self.floats[key] = None

    def pack(self, start_ms: int) -> dict[str, Any]:
        cols = {
            k: {"values": list(self.values[k])} if f is None else {"f8": np.array(f, dtype=float)}
            for k, f in self.floats.items()
        }
        return {"start_ms": start_ms, "n": self.n, "columns": cols, "present": None}


def _columns(start_ms: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A window's rows column by column: a column of floats and Nones is one float array (NaN for None)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cols: dict[str, Any] = {}
    for key in keys:
        values = [r.get(key) for r in rows]
        if all(v is None or (type(v) is float and not math.isnan(v)) for v in values):
            cols[key] = {"f8": np.array([math.nan if v is None else v for v in values], dtype=float)}
        else:
            cols[key] = {"values": values}
    ragged = any(len(r) != len(keys) for r in rows)
    present = [[k in r for k in keys] for r in rows] if ragged else None
    return {"start_ms": start_ms, "n": len(rows), "columns": cols, "present": present}


def _rows(window: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    cols = window["columns"]
    keys = list(cols)
    values = {k: _column_values(c) for k, c in cols.items()}
    present = window["present"] or [[True] * len(keys)] * window["n"]
    rows = [{k: values[k][i] for k, have in zip(keys, present[i], strict=True) if have} for i in range(window["n"])]
    return int(window["start_ms"]), rows


def _column_values(col: dict[str, Any]) -> list[Any]:
    if "f8" in col:
        return [None if math.isnan(v) else float(v) for v in col["f8"]]
    return list(col["values"])
