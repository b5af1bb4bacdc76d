"""ECG R peaks: tall T waves are not counted in a pause, flutter waves are not counted as beats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamer.config import recordings_dir
from streamer.signals.ecg_beats import EcgBeatDetector, ecg_r_peaks, vf_leakage

pytestmark = pytest.mark.unit

FS = 360.0


def tall_t_ecg(t_amp: float, pauses: tuple[int, ...] = (8, 14)) -> tuple[np.ndarray, np.ndarray]:
    """60 bpm narrow QRS with a T wave of ``t_amp`` (R = 1) 300 ms later; beats ``pauses`` are followed by a
    1.8 s pause (sinoatrial block), which sends the detector searching back."""
    t = np.arange(int(22 * FS)) / FS
    x, beats, at = np.zeros_like(t), [], 0.5
    for k in range(20):
        beats.append(at)
        x += np.exp(-0.5 * ((t - at) / 0.012) ** 2) - 0.3 * np.exp(-0.5 * ((t - at - 0.03) / 0.01) ** 2)
        x += t_amp * np.exp(-0.5 * ((t - at - 0.3) / 0.06) ** 2)
        at += 1.8 if k in pauses else 1.0
    return x, np.round(np.array(beats) * FS).astype(np.int64)


def test_a_t_wave_as_tall_as_the_r_wave_is_not_taken_for_a_beat_in_a_pause() -> None:
    # Search-back used to pick the largest candidate since the last beat, here its T wave: 22 beats for 20.
    x, ref = tall_t_ecg(1.0)
    found = ecg_r_peaks(x, FS)
    assert len(found) == len(ref)
    assert np.max(np.abs(found - ref)) <= 0.05 * FS


def test_search_back_still_finds_a_small_beat_after_a_pause() -> None:
    x, ref = tall_t_ecg(0.2, pauses=(8,))
    small = ref[10]
    x[small - 20 : small + 20] *= 0.35  # one low beat after the pause: only search-back can accept it
    found = ecg_r_peaks(x, FS)
    assert np.min(np.abs(found - small)) <= 0.05 * FS


@pytest.fixture(scope="module")
def flutter() -> tuple[np.ndarray, np.ndarray]:
    """MIT-BIH 100 (first minute, Moody & Mark 2001) with 20-40 s replaced by a 4.5 Hz (270/min) sinusoid:
    a crude ventricular flutter."""
    wfdb = pytest.importorskip("wfdb")
    path = str(recordings_dir() / "mitdb" / "100")
    x = wfdb.rdrecord(path, channels=[0], sampto=int(60 * FS)).p_signal[:, 0].copy()
    ann = wfdb.rdann(path, "atr", sampto=int(60 * FS))
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in "NA"])
    t = np.arange(len(x)) / FS
    inside = (t >= 20) & (t < 40)
    x[inside] = np.sin(2 * np.pi * 4.5 * t[inside])
    return x, ref


def test_flutter_waves_are_not_counted_as_beats_and_sinus_beats_are_again_after(flutter) -> None:
    x, ref = flutter
    found = ecg_r_peaks(x, FS)
    assert np.sum((found >= 20 * FS) & (found < 40 * FS)) <= 2  # was 57 (one per wave or so)
    after = ref[ref > 43 * FS]
    assert all(np.min(np.abs(found - r)) <= 0.15 * FS for r in after)
    before = ref[(ref > 10 * FS) & (ref < 19 * FS)]
    assert all(np.min(np.abs(found - r)) <= 0.15 * FS for r in before)


def test_flutter_logic_is_chunk_invariant_and_survives_a_state_round_trip(flutter) -> None:
    x, _ = flutter
    expected = ecg_r_peaks(x, FS)
    cut = int(30 * FS)  # in the middle of the flutter
    first = EcgBeatDetector(FS)
    head = [first.update(x[i : min(i + 97, cut)]) for i in range(0, cut, 97)]
    restored = EcgBeatDetector.from_state(json.loads(json.dumps(first.to_state())))
    tail = [restored.update(x[i : i + 1000]) for i in range(cut, len(x), 1000)]
    assert np.array_equal(np.concatenate([*head, *tail, restored.flush()]), expected)


def test_vf_leakage_separates_a_sinusoid_from_an_ecg(flutter) -> None:
    x, _ = flutter
    assert vf_leakage(x[int(25 * FS) : int(28 * FS)]) < 0.1
    assert vf_leakage(x[int(5 * FS) : int(8 * FS)]) > 0.406
    assert vf_leakage(np.zeros(100)) == 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_back_and_flutter_checks_are_chunk_invariant_in_long_pauses(seed) -> None:
    # 30/min with pauses: search-back accepts candidates seconds old, near the edge of the kept history.
    x, _ = tall_t_ecg(1.0, pauses=(3, 4, 9, 10, 15))
    x = np.repeat(x, 2)[: len(x)]  # half the rate: RR 2 s, pauses 3.6 s
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=60, replace=False))
    edges = [0, *cuts.tolist(), len(x)]
    det = EcgBeatDetector(FS)
    parts = [det.update(x[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert np.array_equal(np.concatenate([*parts, det.flush()]), ecg_r_peaks(x, FS))
