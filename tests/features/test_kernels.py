"""The compiled feature kernels against the numpy formulas they replaced (kept here as the reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.features import kernels
from streamer.features.extract import resp_rate_from_beats, spectral_concentration
from streamer.signals.quality import clip_score, flat_score, template_score
from streamer.signals.windows import RingBuffer

pytestmark = pytest.mark.unit
rr_lists = st.lists(st.floats(min_value=250.0, max_value=2500.0), min_size=2, max_size=80)
# values on and near the 16 bin edges of a 600-624 ms range, where the division rounds one way or the other
edgy = st.lists(st.integers(0, 64).map(lambda k: 600.0 + k * 0.375), min_size=2, max_size=40)
samples = st.lists(st.sampled_from([0.0, 1.0, 2.5, -1.0]) | st.floats(-5, 5), min_size=1, max_size=300)


def _numpy_hrv(rr: np.ndarray) -> tuple[float, ...]:
    diffs = np.diff(rr)
    counts, _ = np.histogram(rr, bins=16)
    p = counts[counts > 0] / len(rr)
    mid, left, right = rr[1:-1], rr[:-2], rr[2:]
    turning = ((mid > left) & (mid > right)) | ((mid < left) & (mid < right))
    tpr = float(np.sum(turning)) / (len(rr) - 2) if len(rr) >= 3 else math.nan
    return (float(np.mean(rr)), float(np.std(rr, ddof=1)), float(np.sqrt(np.mean(diffs**2))),
            100.0 * float(np.mean(np.abs(diffs) > 50.0)), tpr, float(-np.sum(p * np.log2(p))))  # fmt: skip


@given(rr=rr_lists | edgy)
def test_hrv_stats_are_the_numpy_formulas(rr: list[float]) -> None:
    x = np.asarray(rr)
    got, want = kernels.hrv_stats(x, 16), _numpy_hrv(x)
    for g, w in zip(got, want, strict=True):
        assert (math.isnan(g) and math.isnan(w)) or math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12), (got, want)


def _numpy_flat(x: np.ndarray, fs_hz: float, run_s: float) -> float:
    same = np.r_[False, np.diff(x) == 0, False]
    edges = np.flatnonzero(np.diff(same.astype(np.int8)))
    lengths = edges[1::2] - edges[::2]
    return 1.0 - min(1.0, int(np.sum(lengths[lengths >= run_s * fs_hz])) / len(x))


def _numpy_clip(x: np.ndarray, tolerance: float) -> float:
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        return 0.0
    at_rail = np.mean(x == hi) + np.mean(x == lo)
    return float(np.clip(1.0 - 10.0 * (at_rail - 2.0 / len(x) - tolerance), 0.0, 1.0))


@given(x=samples, run_s=st.sampled_from([0.016, 0.2, 2.0]), tolerance=st.sampled_from([0.0, 1.0]))
def test_flat_and_clip_scores_are_the_numpy_formulas_exactly(x: list[float], run_s: float, tolerance: float) -> None:
    arr = np.asarray(x)
    if len(arr) >= 2:
        assert flat_score(arr, 125.0, run_s) == _numpy_flat(arr, 125.0, run_s)
    assert clip_score(arr, tolerance) == _numpy_clip(arr, tolerance)


def _numpy_template(x: np.ndarray, beats: np.ndarray, fs_hz: float) -> float:
    if len(beats) < 3:
        return 0.0
    rr = np.diff(beats) / fs_hz
    rate = 60.0 / float(np.median(rr))
    if not 30.0 <= rate <= 220.0 or np.max(rr) > 3.0 * np.min(rr) + 0.5:
        return 0.0
    half = max(2, int(0.5 * float(np.median(rr)) * fs_hz))
    inside = beats[(beats >= half) & (beats + half < len(x))]
    if len(inside) < 2:
        return 0.0
    segments = x[inside[:, None] + np.arange(-half, half)[None, :]]
    segments = segments - segments.mean(axis=1, keepdims=True)
    template = segments.mean(axis=0)
    norms = np.linalg.norm(segments, axis=1) * np.linalg.norm(template)
    if np.any(norms == 0):
        return 0.0
    corr = float(np.mean(segments @ template / norms))
    return float(np.clip((corr - 0.5) / 0.4, 0.0, 1.0))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate_bpm=st.floats(25.0, 230.0), noise=st.floats(0.0, 2.0))
def test_template_score_is_the_numpy_formula(seed: int, rate_bpm: float, noise: float) -> None:
    rng = np.random.default_rng(seed)
    fs = 125.0
    x = np.sin(np.arange(1000) * 2 * np.pi * rate_bpm / 60 / fs) + noise * rng.normal(size=1000)
    beats = np.sort(rng.choice(1000, size=int(rng.integers(0, 14)), replace=False)).astype(np.int64)
    if rng.random() < 0.5:  # regular beats, so that most windows pass the plausibility checks
        beats = np.arange(int(rng.integers(0, 40)), 1000, int(fs * 60 / rate_bpm), dtype=np.int64)
    assert math.isclose(template_score(x, beats, fs), _numpy_template(x, beats, fs), abs_tol=1e-12)


def _numpy_resp_rate(t_s: np.ndarray, amplitude: np.ndarray, baseline: np.ndarray) -> tuple[float | None, dict]:
    """resp_rate_from_beats as numpy computed it, one modulation at a time (polyfit detrend, full rfft).

    One change: a constant modulation has no power. polyfit left ~1e-17 of rounding in it, which the normalisation
    to unit power blew up into a noise spectrum weighted like a real one; the closed-form line removes it exactly.
    """
    if len(t_s) < 6 or float(t_s[-1] - t_s[0]) < 12.0:
        return None, {}
    fused, info = None, {}
    for name, v in {"am": amplitude[1:], "bw": baseline[1:], "fm": np.diff(t_s)}.items():
        grid = np.arange(t_s[1], t_s[-1], 0.25)
        if len(v) < 4 or len(grid) < 32 or np.ptp(v) == 0:
            continue
        y = np.interp(grid, t_s[1:], v)
        y = (y - np.polyval(np.polyfit(grid - grid[0], y, 1), grid - grid[0])) * np.hanning(len(y))
        power, freqs = np.abs(np.fft.rfft(y, 4096)) ** 2, np.fft.rfftfreq(4096, 0.25)
        band = (freqs >= 0.1) & (freqs <= 0.7)
        if not np.any(power[band] > 0):
            continue
        freqs, power = freqs[band], power[band]
        info[name] = q = spectral_concentration(freqs, power)
        part = {"bw": 1.0, "am": 0.1, "fm": 0.1}[name] * q**4 * power / power.sum()
        fused = part if fused is None else fused + part
    if fused is None or not np.any(fused > 0):
        return None, info
    info["quality"] = spectral_concentration(freqs, fused)
    return 60.0 * float(freqs[np.argmax(fused)]), info


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_beats=st.integers(3, 60), breaths_bpm=st.floats(6.0, 40.0),
       flat=st.sampled_from(["", "am"]))  # fmt: skip
def test_ppg_resp_rate_is_the_numpy_computation(seed: int, n_beats: int, breaths_bpm: float, flat: str) -> None:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.5, 1.1, n_beats))
    breathing = np.sin(2 * np.pi * breaths_bpm / 60 * t)
    amp = 1.0 + 0.2 * breathing + 0.1 * rng.normal(size=n_beats)
    base = 0.3 * breathing + 0.1 * rng.normal(size=n_beats)
    if flat == "am":
        amp = np.ones(n_beats)  # no power in that modulation: it drops out
    rate, info = resp_rate_from_beats(t, amp, base)
    want_rate, want_info = _numpy_resp_rate(t, amp, base)
    assert rate == want_rate and info.keys() == want_info.keys()
    for key, value in info.items():
        assert math.isclose(value, want_info[key], rel_tol=1e-9), key


@given(
    x=st.lists(st.floats(-5, 5) | st.just(math.nan), min_size=1, max_size=60),
    start=st.integers(0, 40),
    ranges=st.lists(st.integers(-10, 120), min_size=4, max_size=4),
)
def test_span_extremes_are_ring_buffer_max_and_min_exactly(x: list[float], start: int, ranges: list[int]) -> None:
    ring = RingBuffer(len(x), start, np.asarray(x))
    top, foot = (ranges[0], ranges[1]), (ranges[2], ranges[3])
    high, low, held = kernels.span_extremes(ring.values, ring.start, top, foot)
    want_top, want_foot = ring.get(*top), ring.get(*foot)
    assert held == (len(want_top) > 0 and len(want_foot) > 0)
    if held:  # bit for bit, NaN included
        assert np.array_equal([high, low], [want_top.max(), want_foot.min()], equal_nan=True)
