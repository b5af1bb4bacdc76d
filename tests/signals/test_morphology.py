"""Per-beat ECG morphology: what it sees on synthetic beats, and the stream's rows equal the whole record's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.datasets import ecg_beats_and_morphology
from streamer.config import Settings, recordings_dir
from streamer.contracts import WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.features.morphology import MORPH_NAMES, N_MORPH, beat_morphology
from streamer.signals.device import DeviceSignalProcessor

pytestmark = pytest.mark.unit
FS = 250.0
COL = {name: i for i, name in enumerate(MORPH_NAMES)}


def _bump(n: int, centre: float, width_s: float, height: float) -> np.ndarray:
    t = np.arange(n) / FS
    return height * np.exp(-0.5 * ((t - centre) / width_s) ** 2)


def synthetic_ecg(peaks: list[int], *, p_wave: bool, wide: set[int] = frozenset(), seed: int = 0) -> np.ndarray:
    """Gaussian QRS (and P and T waves); AF-like without P waves: small irregular f-waves instead."""
    n = peaks[-1] + round(FS)
    x = np.zeros(n)
    for k, p in enumerate(peaks):
        c = p / FS
        x += _bump(n, c, 0.04 if k in wide else 0.012, 1.0) + _bump(n, c + 0.25, 0.04, 0.3)
        if p_wave:
            x += _bump(n, c - 0.17, 0.02, 0.15)
    if not p_wave:
        rng = np.random.default_rng(seed)
        t = np.arange(n) / FS
        x += 0.025 * np.sin(2 * np.pi * 6.3 * t + rng.uniform(0, 6)) * rng.uniform(0.5, 1.5, n // 50 + 1).repeat(50)[:n]
    return x


PEAKS = [250 + 200 * k + (7 * k * k) % 40 for k in range(12)]


def test_p_waves_repeat_in_sinus_rhythm_and_not_in_fibrillation() -> None:
    sinus = beat_morphology(synthetic_ecg(PEAKS, p_wave=True), np.array(PEAKS[1:]), FS, PEAKS[0])
    fib = beat_morphology(synthetic_ecg(PEAKS, p_wave=False), np.array(PEAKS[1:]), FS, PEAKS[0])
    assert np.all(sinus[:, COL["valid"]] == 1.0) and np.all(fib[:, COL["valid"]] == 1.0)
    assert sinus[:, COL["p_corr"]].min() > 0.9
    assert np.median(fib[:, COL["p_corr"]]) < 0.7
    assert sinus[:, COL["p_amp"]].mean() > 2 * fib[:, COL["p_amp"]].mean()
    assert np.allclose(sinus[:, COL["qrs_corr"]], 1.0, atol=1e-3)


def test_a_wide_beat_is_wider_and_unlike_its_neighbour() -> None:
    m = beat_morphology(synthetic_ecg(PEAKS, p_wave=True, wide={6}), np.array(PEAKS[1:]), FS, PEAKS[0])
    wide = 6 - 1  # row of peak 6
    assert m[wide, COL["qrs_width"]] > 2 * np.median(m[:, COL["qrs_width"]])
    assert m[wide, COL["qrs_corr"]] < 0.9 and m[wide + 1, COL["qrs_corr"]] < 0.9
    assert m[wide - 1, COL["qrs_corr"]] > 0.99


def test_beats_without_their_context_are_marked_invalid() -> None:
    x = synthetic_ecg(PEAKS, p_wave=True)
    m = beat_morphology(x[: PEAKS[-1] + 20], np.array(PEAKS), FS)  # no previous beat, last one cut short
    assert m.shape == (len(PEAKS), N_MORPH)
    assert m[0].tolist() == [0.0] * N_MORPH and m[-1].tolist() == [0.0] * N_MORPH
    assert np.all(m[1:-1, COL["valid"]] == 1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 200), st.integers(0, 300), st.integers(0, 2**16))
def test_a_row_depends_only_on_the_beat_and_its_neighbour(cut_front: int, cut_back: int, seed: int) -> None:
    x = synthetic_ecg(PEAKS, p_wave=False, seed=seed)
    whole = beat_morphology(x, np.array(PEAKS[1:]), FS, PEAKS[0])
    part = x[cut_front : len(x) - cut_back]
    got = beat_morphology(part, np.array(PEAKS[1:]) - cut_front, FS, PEAKS[0] - cut_front)
    ok = got[:, COL["valid"]] == 1.0
    assert ok.sum() >= len(PEAKS) - 4
    np.testing.assert_allclose(got[ok], whole[ok], rtol=1e-12, atol=1e-12)


def test_ecg_channel_rows_equal_the_whole_recording() -> None:
    """What the AF model is trained on (whole recording) is what the stream hands it (per window)."""
    fs = 125.0
    ecg = load_bidmc(recordings_dir() / "bidmc", "bidmc_03")["ecg"][: int(70 * fs)]
    peaks, rows = ecg_beats_and_morphology(ecg, fs)
    proc = DeviceSignalProcessor("d1", Settings())
    sizes = [125, 37, 211, 125, 45]
    start, windows, k = 0, [], 0
    while start < len(ecg):
        chunk = ecg[start : start + sizes[k % len(sizes)]]
        ts_ms = EPOCH_MS + round(start * 1000 / fs)
        msg = WaveformMessage(device_id="d1", ts_ms=ts_ms, seq=k, signal="ecg", fs_hz=fs, samples=list(chunk))
        windows += proc.on_message(msg, ingest_ts_ms=ts_ms + 50).windows
        start, k = start + len(chunk), k + 1
    windows += proc.flush().windows
    ecg_windows = [w for w in windows if w.signal == "ecg" and w.rr_ms]
    assert len(ecg_windows) >= 20
    peak_ms = peaks * 1000.0 / fs
    for w in ecg_windows:
        assert len(w.beat_morph) == len(w.rr_ms)
        inside = np.flatnonzero((peak_ms >= w.window_start_ms - EPOCH_MS) & (peak_ms < w.window_end_ms - EPOCH_MS))
        expected = rows[inside[inside >= 1] - 1]  # row i describes the beat ending interval i (peak i + 1)
        assert len(expected) == len(w.beat_morph)
        np.testing.assert_allclose(np.asarray(w.beat_morph), expected, rtol=1e-9, atol=1e-9)
    assert np.mean([r[-1] for w in ecg_windows for r in w.beat_morph]) > 0.9  # almost every row computed
