"""Causal filters with carried state: the same output whether a recording arrives whole or in chunks.

Every filter here is a plain recurrence (``scipy.signal.sosfilt`` / ``lfilter`` with ``zi``), so cutting the
input into chunks and carrying the state gives bit-identical output. The public functions follow NeuroKit's
habit (one function per job, a ``method`` keyword dispatching to private designs, a ``ValueError`` listing the
valid methods); :class:`CausalFilter` carries the state between chunks and serialises to a JSON-able dict.

>>> import numpy as np
>>> x = np.sin(np.linspace(0, 20, 500))
>>> f = CausalFilter.design("ppg", 125.0)
>>> np.allclose(np.concatenate([f.process(x[:200]), f.process(x[200:])]), ppg_bandpass(x, 125.0))
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal

# (low Hz, high Hz, Butterworth order); high is clipped below Nyquist so any fs from 100 to 500 Hz works.
_Band = tuple[float, float | None, int]  # (low Hz, high Hz or None for a highpass, order)
_ECG_BANDS: dict[str, _Band] = {
    "standard": (0.5, 40.0, 2),
    "qrs": (5.0, 15.0, 2),
    "monitor": (0.67, 40.0, 2),
}
_PPG_BANDS: dict[str, _Band] = {"elgendi": (0.5, 8.0, 2), "wide": (0.5, 12.0, 2)}
_RESP_BANDS: dict[str, _Band] = {"standard": (0.08, 1.0, 2)}
_HIGHPASS: dict[str, _Band] = {
    "highpass": (0.5, None, 2),
    "gentle": (0.15, None, 1),
}
_NOTCH_Q = 30.0
_NO_TAPS = np.zeros(0)
_NO_TAPS.flags.writeable = False


def _check(method: str, table: dict[str, Any], what: str) -> None:
    if method not in table:
        raise ValueError(f"{what}: unknown method {method!r}; valid methods are {sorted(table)}")


def _band_sos(low_hz: float, high_hz: float | None, order: int, fs_hz: float) -> np.ndarray:
    nyquist = fs_hz / 2.0
    if high_hz is None:
        return signal.butter(order, low_hz / nyquist, btype="highpass", output="sos")
    high = min(high_hz, 0.45 * fs_hz) / nyquist
    return signal.butter(order, [low_hz / nyquist, high], btype="bandpass", output="sos")


def _notch_sos(mains_hz: float, fs_hz: float) -> np.ndarray:
    if mains_hz >= 0.45 * fs_hz:  # mains at or above ~Nyquist: the anti-alias filter already removed it
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    b, a = signal.iirnotch(mains_hz, _NOTCH_Q, fs=fs_hz)
    return signal.tf2sos(b, a)


def design_sos(kind: str, fs_hz: float, method: str | None = None) -> np.ndarray:
    """Second-order sections for ``kind`` in {ecg, ppg, resp, baseline, notch50, notch60}."""
    return _shared_sos(kind, float(fs_hz), method).copy()


@functools.lru_cache(maxsize=256)
def _shared_sos(kind: str, fs_hz: float, method: str | None) -> np.ndarray:
    """One design per (kind, rate, method), shared by every channel and never written to (scipy's sosfilt wants
    a writeable array): designing costs ~1 ms, which a fleet would pay per device on every start and rebalance."""
    return _design(kind, fs_hz, method)


def _design(kind: str, fs_hz: float, method: str | None) -> np.ndarray:
    if kind in ("notch50", "notch60"):
        return _notch_sos(50.0 if kind == "notch50" else 60.0, fs_hz)
    tables: dict[str, dict[str, _Band]] = {
        "ecg": _ECG_BANDS,
        "ppg": _PPG_BANDS,
        "resp": _RESP_BANDS,
        "baseline": _HIGHPASS,
    }
    if kind not in tables:
        valid = sorted(tables) + ["notch50", "notch60"]
        raise ValueError(f"unknown filter kind {kind!r}; valid kinds are {valid}")
    table = tables[kind]
    chosen = method or next(iter(table))
    _check(chosen, table, f"{kind} filter")
    return _band_sos(*table[chosen], fs_hz)


def _offline(x: np.ndarray, kind: str, fs_hz: float, method: str) -> np.ndarray:
    return signal.sosfilt(design_sos(kind, fs_hz, method), np.asarray(x, dtype=float))


def ecg_bandpass(x: np.ndarray, fs_hz: float, *, method: str = "standard") -> np.ndarray:
    """Causal ECG bandpass from rest: ``standard`` 0.5-40 Hz, ``qrs`` 5-15 Hz (Pan-Tompkins), ``monitor``."""
    _check(method, _ECG_BANDS, "ecg_bandpass")
    return _offline(x, "ecg", fs_hz, method)


def ppg_bandpass(x: np.ndarray, fs_hz: float, *, method: str = "elgendi") -> np.ndarray:
    """Causal PPG bandpass from rest: ``elgendi`` 0.5-8 Hz (Elgendi et al. 2013), ``wide`` 0.5-12 Hz."""
    _check(method, _PPG_BANDS, "ppg_bandpass")
    return _offline(x, "ppg", fs_hz, method)


def resp_bandpass(x: np.ndarray, fs_hz: float, *, method: str = "standard") -> np.ndarray:
    """Causal respiration bandpass 0.08-1 Hz (5-60 breaths/min)."""
    _check(method, _RESP_BANDS, "resp_bandpass")
    return _offline(x, "resp", fs_hz, method)


def powerline_notch(x: np.ndarray, fs_hz: float, *, mains_hz: float = 50.0) -> np.ndarray:
    """Causal IIR notch at the mains frequency (50 or 60 Hz)."""
    if mains_hz not in (50.0, 60.0):
        raise ValueError(f"powerline_notch: mains_hz must be one of [50.0, 60.0], not {mains_hz}")
    return _offline(x, f"notch{int(mains_hz)}", fs_hz, "")


def baseline_remove(x: np.ndarray, fs_hz: float, *, method: str = "highpass") -> np.ndarray:
    """Causal baseline-wander removal: ``highpass`` 0.5 Hz order 2, ``gentle`` 0.15 Hz order 1."""
    _check(method, _HIGHPASS, "baseline_remove")
    return _offline(x, "baseline", fs_hz, method)


def despike(x: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
    """Remove one-sample spikes with a causal 3-point median (delay 1); ``prev``: last 2 inputs seen."""
    x = np.asarray(x, dtype=float)
    head = np.asarray(prev, dtype=float) if prev is not None else np.repeat(x[:1], 2)
    padded = np.concatenate([head[-2:], x])
    view = np.lib.stride_tricks.sliding_window_view(padded, 3)
    return np.median(view, axis=1)


@dataclass
class CausalFilter:
    """A filter whose state ``zi`` survives chunk boundaries and restarts (``to_state``/``from_state``)."""

    kind: str
    fs_hz: float
    method: str | None = None
    fir: tuple[float, ...] = ()  # set for FIR filters (moving averages, derivatives); else SOS by kind
    zi: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.fir:
            self._b = np.asarray(self.fir, dtype=float)
            self._b.flags.writeable = False  # also what to_state hands out
            self._sos = None
        else:
            self._sos = _shared_sos(self.kind, float(self.fs_hz), self.method)

    @classmethod
    def design(cls, kind: str, fs_hz: float, method: str | None = None) -> CausalFilter:
        return cls(kind=kind, fs_hz=float(fs_hz), method=method)

    @classmethod
    def from_fir(cls, taps: np.ndarray, fs_hz: float, kind: str = "fir") -> CausalFilter:
        return cls(kind=kind, fs_hz=float(fs_hz), fir=tuple(float(t) for t in taps))

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter one chunk; the state starts at rest (zeros) and carries to the next chunk."""
        x = np.asarray(x, dtype=float)
        if self._sos is not None:
            zi = self.zi if self.zi is not None else np.zeros((self._sos.shape[0], 2))
            y, self.zi = signal.sosfilt(self._sos, x, zi=zi)
        else:
            zi = self.zi if self.zi is not None else np.zeros(len(self._b) - 1)
            y, self.zi = signal.lfilter(self._b, [1.0], x, zi=zi)
        return y

    @staticmethod
    def process_rows(filters: Sequence[CausalFilter], x: np.ndarray) -> np.ndarray:
        """``f.process(row)`` for each filter and row of x (D, L) in one scipy call, each row with its own state.

        The filters must share one design (a group of channels of one signal and rate); the rows come out bit
        for bit as one ``process`` call each would give them.
        """
        first = filters[0]
        assert all(f.fir == first.fir and (f.kind, f.fs_hz, f.method) == (first.kind, first.fs_hz, first.method)
                   for f in filters), "process_rows needs filters of one design"  # fmt: skip
        x = np.asarray(x, dtype=float)
        if first._sos is not None:
            at_rest = np.zeros((first._sos.shape[0], 2))
            zi = np.stack([at_rest if f.zi is None else f.zi for f in filters], axis=1)  # (n_sections, D, 2)
            y, zf = signal.sosfilt(first._sos, x, axis=-1, zi=zi)
            states = [zf[:, i].copy() for i in range(len(filters))]
        else:
            taps_rest = np.zeros(len(first._b) - 1)
            zi = np.stack([taps_rest if f.zi is None else f.zi for f in filters])  # (D, n_taps - 1)
            y, zf = signal.lfilter(first._b, [1.0], x, axis=-1, zi=zi)
            states = list(zf)
        for f, state in zip(filters, states, strict=True):
            f.zi = state
        return y

    def reset(self) -> None:
        self.zi = None

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fs_hz": self.fs_hz,
            "method": self.method,
            "fir": self._b if self.fir else _NO_TAPS,
            "zi": None if self.zi is None else self.zi.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CausalFilter:
        zi = None if state["zi"] is None else np.asarray(state["zi"], dtype=float)
        fir = tuple(float(t) for t in np.asarray(state["fir"], dtype=float))  # an array or, decoded, a list
        return cls(state["kind"], state["fs_hz"], state["method"], fir, zi)


def group_delay_samples(f: CausalFilter, at_hz: float) -> int:
    """Group delay of a filter at one frequency, in whole samples (used to move peaks back in time)."""
    return _group_delay(f.kind, f.fs_hz, f.method, f.fir, at_hz)


@functools.lru_cache(maxsize=256)
def _group_delay(kind: str, fs_hz: float, method: str | None, fir: tuple[float, ...], at_hz: float) -> int:
    f = CausalFilter(kind, fs_hz, method, fir)
    if f.fir:
        b, a = np.asarray(f.fir), np.array([1.0])
    else:
        b, a = signal.sos2tf(f._sos)
    _, gd = signal.group_delay((b, a), w=[at_hz], fs=f.fs_hz)
    return int(round(float(gd[0])))
