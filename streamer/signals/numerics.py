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
