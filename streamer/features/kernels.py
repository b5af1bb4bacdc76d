"""Compiled loops (numba) behind the per-window features: one call per window instead of a dozen numpy calls.

Each kernel computes a numpy formula that tests/features/test_kernels.py keeps as its reference (the code these
replaced). Counts and comparisons come out exactly; sums run left to right where numpy sums pairwise, so a mean or
a correlation can differ in its last bit or two (the tests hold them to 1e-12).
Compiled on first use and cached beside the module (``cache=True``): the first run on a machine pays a few
seconds, later processes load the machine code; :func:`warm_up` compiles ahead of the first window.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def hrv_stats(rr: np.ndarray, n_bins: int) -> tuple[float, float, float, float, float, float]:  # pragma: no cover
    """(mean, sdnn_ms, rmssd_ms, pnn50_pct, turning-point ratio or NaN, entropy bits) of >= 2 RR intervals."""
    n = len(rr)
    mean = rr.sum() / n
    ss = 0.0
    for v in rr:
        ss += (v - mean) * (v - mean)
    d2, big = 0.0, 0
    for i in range(n - 1):
        d = rr[i + 1] - rr[i]
        d2 += d * d
        big += abs(d) > 50.0
    turning = math.nan
    if n >= 3:
        count = 0
        for i in range(1, n - 1):
            a, b, c = rr[i - 1], rr[i], rr[i + 1]
            count += (b > a and b > c) or (b < a and b < c)
        turning = count / (n - 2)
    return mean, math.sqrt(ss / (n - 1)), math.sqrt(d2 / (n - 1)), 100.0 * big / (n - 1), turning, _entropy(rr, n_bins)


@njit(cache=True, nogil=True)
def _entropy(x: np.ndarray, n_bins: int) -> float:  # pragma: no cover
    """Shannon entropy (bits) of ``np.histogram(x, n_bins)``, binned by numpy's own equal-bin rule."""
    first, last = x.min(), x.max()
    if first == last:
        first, last = first - 0.5, last + 0.5
    step = (last - first) / n_bins
    edges = np.arange(n_bins + 1) * 1.0 * step + first  # as np.linspace(first, last, n_bins + 1) computes them
    edges[n_bins] = last
    counts = np.zeros(n_bins, dtype=np.int64)
    for v in x:
        k = int(((v - first) / (last - first)) * n_bins)
        k = min(k, n_bins - 1)
        if v < edges[k]:
            k -= 1
        if k != n_bins - 1 and v >= edges[k + 1]:
            k += 1
        counts[k] += 1
    out = 0.0
    for c in counts:
        if c > 0:
            p = c / len(x)
            out += p * math.log2(p)
    return -out


@njit(cache=True, nogil=True)
def flat_fraction(x: np.ndarray, min_run: float) -> float:  # pragma: no cover
    """Share of samples in runs of equal consecutive samples (counted as equal pairs) of at least ``min_run``."""
    flat, run = 0, 0
    for i in range(1, len(x) + 1):
        if i < len(x) and x[i] == x[i - 1]:
            run += 1
            continue
        if run >= min_run:
            flat += run
        run = 0
    return min(1.0, flat / len(x))


@njit(cache=True, nogil=True)
def rail_share(x: np.ndarray) -> float:  # pragma: no cover
    """Share of samples at the maximum plus the share at the minimum; -1 for a constant window."""
    lo, hi = x.min(), x.max()
    if lo == hi:
        return -1.0
    n_hi = n_lo = 0
    for v in x:
        n_hi += v == hi
        n_lo += v == lo
    return n_hi / len(x) + n_lo / len(x)


@njit(cache=True, nogil=True)
def span_extremes(
    values: np.ndarray, start: int, top: tuple[int, int], foot: tuple[int, int]
) -> tuple[float, float, bool]:  # pragma: no cover
    """(max over ``top``, min over ``foot``, both held) of a ring buffer's ``values`` whose index 0 is ``start``;
    each range [a, b) is clipped to the held samples, as ``RingBuffer.get`` clips it."""
    end = start + len(values)
    t0, t1 = max(top[0], start), min(top[1], end)
    f0, f1 = max(foot[0], start), min(foot[1], end)
    if t1 <= t0 or f1 <= f0:
        return 0.0, 0.0, False
    high = values[t0 - start]
    for i in range(t0 - start + 1, t1 - start):
        if values[i] > high or math.isnan(values[i]):  # a NaN wins, as in ndarray.max
            high = values[i]
    low = values[f0 - start]
    for i in range(f0 - start + 1, f1 - start):
        if values[i] < low or math.isnan(values[i]):
            low = values[i]
    return high, low, True


@njit(cache=True, nogil=True)
def template_corr(
    x: np.ndarray, beats: np.ndarray, fs_hz: float, rate_lo: float, rate_hi: float
) -> float:  # pragma: no cover
    """Mean correlation of each beat with the average beat (``quality.template_score`` before its mapping);
    NaN where the score is 0 (implausible rate or RR spread, too few beats, a flat beat)."""
    if len(beats) < 3:
        return math.nan
    rr = np.diff(beats) / fs_hz
    median_rr = np.median(rr)
    rate = 60.0 / median_rr
    if not rate_lo <= rate <= rate_hi or rr.max() > 3.0 * rr.min() + 0.5:
        return math.nan
    half = max(2, int(0.5 * median_rr * fs_hz))
    inside = beats[(beats >= half) & (beats + half < len(x))]
    if len(inside) < 2:
        return math.nan
    seg = np.empty((len(inside), 2 * half))  # (n_beats, 2 * half)
    for i, b in enumerate(inside):
        seg[i] = x[b - half : b + half]
        seg[i] -= seg[i].sum() / (2 * half)
    template = np.zeros(2 * half)
    for i in range(len(inside)):
        template += seg[i]
    template /= len(inside)
    t_norm = math.sqrt((template * template).sum())
    total = 0.0
    for i in range(len(inside)):
        norm = math.sqrt((seg[i] * seg[i]).sum()) * t_norm
        if norm == 0:
            return math.nan
        total += (seg[i] * template).sum() / norm
    return total / len(inside)


@njit(cache=True, nogil=True)
def detrended(
    grid: np.ndarray, t_s: np.ndarray, series: np.ndarray, window: np.ndarray
) -> np.ndarray:  # pragma: no cover
    """Each row of ``series`` (sampled at ``t_s``) linearly interpolated on ``grid``, less its least-squares line,
    times ``window``: (S, len(grid))."""
    x = grid - grid[0]
    mx = x.sum() / len(x)
    sxx = ((x - mx) * (x - mx)).sum()
    out = np.empty((len(series), len(grid)))
    for r in range(len(series)):
        y = np.interp(grid, t_s, series[r])
        my = y.sum() / len(y)
        slope = ((x - mx) * (y - my)).sum() / sxx
        out[r] = (y - (slope * x + (my - slope * mx))) * window
    return out


@njit(cache=True, nogil=True)
def _concentration(freqs: np.ndarray, power: np.ndarray, half_hz: float) -> float:  # pragma: no cover
    peak = freqs[np.argmax(power)]
    near = 0.0
    for i in range(len(freqs)):
        if abs(freqs[i] - peak) <= half_hz:
            near += power[i]
    return near / power.sum()


@njit(cache=True, nogil=True)
def fuse_spectra(
    freqs: np.ndarray, powers: np.ndarray, priors: np.ndarray, half_hz: float
) -> tuple[float, float, np.ndarray]:  # pragma: no cover
    """Rows of band power, each normalised and weighted by its prior and its concentration to the 4th power, summed:
    (peak frequency of the sum, its concentration, each row's concentration); NaN where there is nothing."""
    conc = np.full(len(powers), np.nan)
    fused = np.zeros(len(freqs))
    used = False
    for r in range(len(powers)):
        power = powers[r]
        if not (power > 0).any():
            continue
        q = _concentration(freqs, power, half_hz)
        conc[r] = q
        fused += priors[r] * q**4 * power / power.sum()
        used = True
    if not used or not (fused > 0).any():
        return math.nan, math.nan, conc
    return freqs[np.argmax(fused)], _concentration(freqs, fused, half_hz), conc


def warm_up() -> None:
    """Compile (or load from the cache) every kernel now, not inside the first window."""
    x = np.linspace(0.0, 1.0, 64)
    hrv_stats(x + 800.0, 16)
    flat_fraction(x, 2.0)
    rail_share(x)
    span_extremes(x, 0, (1, 3), (0, 2))
    template_corr(np.sin(x * 40.0), np.array([10, 30, 50], dtype=np.int64), 20.0, 30.0, 220.0)
    rows = np.stack([np.sin(x), np.cos(x), x])
    fuse_spectra(x, detrended(x, x, rows, np.hanning(len(x))), np.ones(3), 0.05)
