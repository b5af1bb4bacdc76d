"""Streaming beat detectors: chunk invariance, state round trip, real-recording sanity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.config import recordings_dir
from streamer.signals.ecg_beats import EcgBeatDetector, ecg_r_peaks
from streamer.signals.ppg_beats import PpgBeatDetector, close_blocks, ppg_peaks
from streamer.state import decode_state, encode_state

pytestmark = pytest.mark.unit

DATA = recordings_dir()


@pytest.fixture(scope="module")
def mitdb_100() -> tuple[np.ndarray, float, np.ndarray]:
    wfdb = pytest.importorskip("wfdb")
    rec = wfdb.rdrecord(str(DATA / "mitdb" / "100"), channels=[0], sampto=360 * 60)
    ann = wfdb.rdann(str(DATA / "mitdb" / "100"), "atr", sampto=360 * 60)
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in "NLRAaJSVFejE/fQ"])
    return rec.p_signal[:, 0], float(rec.fs), beats


@pytest.fixture(scope="module")
def bidmc_ppg() -> np.ndarray:
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(DATA / "bidmc" / "bidmc_01_Signals.csv.gz", skipinitialspace=True, nrows=125 * 90)
    return frame["PLETH"].to_numpy()


def _chunked(detector, x: np.ndarray, cuts: list[int]) -> np.ndarray:
    edges = [0, *sorted(c for c in cuts if 0 < c < len(x)), len(x)]
    out = [detector.update(x[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    return np.concatenate([*out, detector.flush()])


def test_ecg_peaks_match_reference_beats(mitdb_100) -> None:
    x, fs, ref = mitdb_100
    found = ecg_r_peaks(x, fs)
    ref = ref[ref > 10 * fs]
    nearest = np.min(np.abs(found[None, :] - ref[:, None]), axis=1)
    assert np.mean(nearest <= 0.15 * fs) > 0.99
    assert abs(len(found[found > 10 * fs]) - len(ref)) <= 3


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=360 * 60 - 1), min_size=1, max_size=40))
def test_ecg_chunking_does_not_change_peaks(mitdb_100, cuts) -> None:
    x, fs, _ = mitdb_100
    assert np.array_equal(_chunked(EcgBeatDetector(fs), x, cuts), ecg_r_peaks(x, fs))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=125 * 90 - 1), min_size=1, max_size=40))
def test_ppg_chunking_does_not_change_peaks(bidmc_ppg, cuts) -> None:
    assert np.array_equal(_chunked(PpgBeatDetector(125.0), bidmc_ppg, cuts), ppg_peaks(bidmc_ppg, 125.0))


@pytest.mark.parametrize("cls", [EcgBeatDetector, PpgBeatDetector])
def test_state_round_trip_mid_stream(mitdb_100, bidmc_ppg, cls) -> None:
    x, fs = (mitdb_100[0], mitdb_100[1]) if cls is EcgBeatDetector else (bidmc_ppg, 125.0)
    whole = cls(fs)
    expected = np.concatenate([whole.update(x[:7777]), whole.update(x[7777:])])
    first = cls(fs)
    head = first.update(x[:7777])
    restored = cls.from_state(decode_state(encode_state(first.to_state())))
    assert np.array_equal(np.concatenate([head, restored.update(x[7777:])]), expected)


def test_ppg_rate_on_real_recording(bidmc_ppg) -> None:
    peaks = ppg_peaks(bidmc_ppg, 125.0)
    rate_bpm = 60 * 125.0 / np.median(np.diff(peaks))
    assert 85 < rate_bpm < 98  # monitor PULSE for bidmc_01 is about 91-93 bpm


@pytest.mark.parametrize("fs_hz", [100.0, 125.0, 250.0, 300.0, 500.0])
def test_ecg_any_rate_from_100_to_500_hz(mitdb_100, fs_hz) -> None:
    from scipy.signal import resample_poly

    x, fs, ref = mitdb_100
    y = resample_poly(x, int(fs_hz), int(fs))
    found = ecg_r_peaks(y, fs_hz)
    assert abs(len(found) - len(ref)) <= 4


def test_bad_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="fs_hz"):
        EcgBeatDetector(10.0)


def _blocks_in_python(y, buf_start, inside, start, in_block, block_start, last_peak, rules):
    """The block state machine as it was written in Python before it was compiled: the reference."""
    w1, centre, delay, refractory = rules
    out = []
    edges = np.flatnonzero(np.diff(np.r_[in_block, inside].astype(np.int8)))
    for e in edges:
        idx = start + int(e)
        if not in_block:
            block_start = idx
        elif idx - block_start >= w1:
            lo = max(block_start - centre, buf_start)
            hi = max(idx - centre, lo + 1)
            peak = lo + int(np.argmax(y[lo - buf_start : hi - buf_start])) - delay
            if not (peak - last_peak < refractory or peak < 0):
                last_peak = peak
                out.append((peak, idx))
        in_block = not in_block
    return out, in_block, block_start, last_peak


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), in_block=st.booleans(), ties=st.booleans())
def test_compiled_block_state_machine_is_the_python_one(seed, in_block, ties) -> None:
    rng = np.random.default_rng(seed)
    n_buf, n = int(rng.integers(200, 500)), int(rng.integers(1, 200))
    y = rng.integers(0, 4, n_buf).astype(float) if ties else rng.normal(size=n_buf)  # ties: argmax takes the first
    inside = rng.random(n) < rng.uniform(0.2, 0.8)
    buf_start, start = 1000, 1000 + n_buf - n
    args = (y, buf_start, inside, start, in_block, start - int(rng.integers(0, 60)), start - int(rng.integers(0, 90)))
    rules = (int(rng.integers(1, 20)), int(rng.integers(0, 40)), int(rng.integers(0, 10)), int(rng.integers(1, 40)))
    peaks, decided, *rest = close_blocks(*args, rules)
    want, *want_rest = _blocks_in_python(*args, rules)
    assert list(zip(peaks.tolist(), decided.tolist(), strict=True)) == want and list(rest) == list(want_rest)
