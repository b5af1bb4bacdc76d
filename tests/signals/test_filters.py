"""Causal filters: chunk invariance, frequency response, method dispatch, serialisable state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from streamer.signals.filters import (
    CausalFilter,
    baseline_remove,
    despike,
    ecg_bandpass,
    powerline_notch,
    ppg_bandpass,
    resp_bandpass,
)
from streamer.state import decode_state, encode_state

pytestmark = pytest.mark.unit
FS = 250.0


def _tone(freq_hz: float, seconds: float = 8.0, fs_hz: float = FS) -> np.ndarray:
    t = np.arange(int(seconds * fs_hz)) / fs_hz
    return np.sin(2 * np.pi * freq_hz * t)


def _gain(y: np.ndarray) -> float:
    """Steady-state amplitude over the last half (the causal filters start from rest)."""
    tail = y[len(y) // 2 :]
    return float(np.sqrt(2) * np.std(tail))


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=1999), max_size=25),
    kind=st.sampled_from(["ecg", "ppg", "resp", "baseline", "notch50", "notch60"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_chunked_filtering_is_bit_identical(cuts, kind, seed) -> None:
    x = np.random.default_rng(seed).normal(size=2000)
    whole = CausalFilter.design(kind, FS).process(x)
    f = CausalFilter.design(kind, FS)
    edges = [0, *sorted(set(cuts)), len(x)]
    parts = [f.process(x[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_state_survives_json_round_trip() -> None:
    x = np.random.default_rng(1).normal(size=1000)
    f = CausalFilter.design("ecg", FS, "qrs")
    head = f.process(x[:333])
    g = CausalFilter.from_state(decode_state(encode_state(f.to_state())))
    assert np.array_equal(np.concatenate([head, g.process(x[333:])]), CausalFilter.design("ecg", FS, "qrs").process(x))


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_notch_removes_mains_and_keeps_qrs_band(mains_hz) -> None:
    assert _gain(powerline_notch(_tone(mains_hz), FS, mains_hz=mains_hz)) < 0.05
    assert _gain(powerline_notch(_tone(10.0), FS, mains_hz=mains_hz)) > 0.95


def test_bandpasses_pass_their_band_and_stop_outside() -> None:
    assert _gain(ecg_bandpass(_tone(10.0), FS)) > 0.9
    assert _gain(ecg_bandpass(_tone(0.05, 60.0), FS)) < 0.1  # baseline wander
    assert _gain(ecg_bandpass(_tone(10.0), FS, method="qrs")) > 0.9
    assert _gain(ecg_bandpass(_tone(1.0), FS, method="qrs")) < 0.15  # P/T-wave band
    assert _gain(ppg_bandpass(_tone(1.5), FS)) > 0.9
    assert _gain(ppg_bandpass(_tone(30.0), FS)) < 0.1  # order-2 edges: about (8/30)^2 = 0.07
    assert _gain(resp_bandpass(_tone(0.3, 120.0), FS)) > 0.85
    assert _gain(baseline_remove(_tone(0.05, 120.0), FS)) < 0.05


@pytest.mark.parametrize("fs_hz", [100.0, 125.0, 300.0, 360.0, 500.0])
def test_designs_are_stable_at_any_rate(fs_hz) -> None:
    for kind in ("ecg", "ppg", "resp", "baseline", "notch50"):
        sos = CausalFilter.design(kind, fs_hz)._sos
        assert np.all(np.abs(signal.sos2zpk(sos)[1]) < 1.0), kind


def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"valid methods are \['elgendi', 'wide'\]"):
        ppg_bandpass(np.zeros(10), FS, method="butter")
    with pytest.raises(ValueError, match="valid methods"):
        ecg_bandpass(np.zeros(10), FS, method="nope")
    with pytest.raises(ValueError, match="mains_hz"):
        powerline_notch(np.zeros(10), FS, mains_hz=55.0)


def test_despike_removes_single_sample_spikes_only() -> None:
    x = np.sin(np.linspace(0, 6, 300))
    spiky = x.copy()
    spiky[[50, 150, 250]] += 20.0
    cleaned = despike(spiky)
    assert np.max(np.abs(cleaned[1:] - x[:-1])) < 0.05  # one-sample delay, spikes gone
    chunked = np.concatenate([despike(spiky[:100]), despike(spiky[100:], prev=spiky[98:100])])
    assert np.array_equal(chunked, cleaned)
