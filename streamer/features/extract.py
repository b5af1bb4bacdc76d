"""Per-window features (stage 3): beats and RR intervals, heart rate, HRV, AF irregularity, respiratory rate,
numerics summaries and activity. Names carry units and follow the feature-name contract in the README.

Respiratory rate from PPG fuses three beat-by-beat modulations (amplitude, baseline and beat-interval, i.e.
AM/BW/FM, after Karlen et al., IEEE TBME 60(7):1946-1953, 2013): each is resampled at 4 Hz, and their
6-42 breaths/min spectra are summed, weighted by a prior and by a spectral quality index, instead of refusing
when they disagree.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft

from streamer.features import kernels

_RR_MIN_MS, _RR_MAX_MS = 250.0, 2500.0  # 24-240 bpm: outside that an interval is a missed or extra beat
_RESP_BAND_HZ = (0.1, 0.7)  # 6-42 breaths/min
TRIM_FRACTION = 0.2  # 0.1 fits MIT-BIH ECG best, 0.25 BIDMC PPG; 0.2 serves both (development records)
_CONCENTRATION_HALF_HZ = 0.05
# Baseline wander is the strongest of the three PPG respiratory modulations in ICU adults (Charlton PH et al.,
# Physiol Meas 37(4):610-626, 2016; Pimentel et al. 2017 on BIDMC); amplitude and interval modulation only
# steer the estimate when their own spectrum is far cleaner. Weights chosen on even-numbered BIDMC records
# and checked on the odd ones, and the reverse (docs/RESULTS.md).
_MODULATION_PRIOR = {"bw": 1.0, "am": 0.1, "fm": 0.1}
_MODULATIONS = ("am", "bw", "fm")
_PRIORS = np.array([_MODULATION_PRIOR[m] for m in _MODULATIONS])
_N_FFT = 4096
_FREQS_HZ = np.fft.rfftfreq(_N_FFT, 0.25)
_IN_BAND = np.flatnonzero((_FREQS_HZ >= _RESP_BAND_HZ[0]) & (_FREQS_HZ <= _RESP_BAND_HZ[1]))  # noqa: SIM300
_BAND = slice(int(_IN_BAND[0]), int(_IN_BAND[-1]) + 1)  # the band's bins are contiguous
_BAND_HZ = _FREQS_HZ[_BAND]
NUMERIC_FIELDS = ("heart_rate_bpm", "spo2_pct", "resp_rate_bpm", "temp_c", "sbp_mmhg", "dbp_mmhg", "map_mmhg")
_ACVPU = {"A": 0.0, "C": 1.0, "V": 2.0, "P": 3.0, "U": 4.0}
HRV_NAMES = (
    "n_beats",
    "sdnn_ms",
    "rmssd_ms",
    "pnn50_pct",
    "rr_cv",
    "rr_irregularity",
    "rr_turning_point_ratio",
    "rr_shannon_entropy_bits",
)


def clean_rr(rr_ms: np.ndarray) -> np.ndarray:
    """Physiologically plausible RR intervals only (a missed beat gives one long, an extra one a short)."""
    rr_ms = np.asarray(rr_ms, dtype=float)
    return rr_ms[(rr_ms >= _RR_MIN_MS) & (rr_ms <= _RR_MAX_MS)]


def rr_features(rr_ms: np.ndarray, n_beats: int, rate_name: str) -> dict[str, float | None]:
    """Rate, HRV and irregularity of the RR intervals of one window.

    >>> f = rr_features(np.array([800.0, 820.0, 790.0, 810.0]), 5, "heart_rate_bpm")
    >>> round(f["heart_rate_bpm"], 1), round(f["rmssd_ms"], 1)
    (74.5, 23.8)
    """
    rr = clean_rr(rr_ms)
    out: dict[str, float | None] = dict.fromkeys((rate_name, *HRV_NAMES))
    out["n_beats"] = float(n_beats)
    if len(rr) < 2:
        return out
    # Entropy of the RR histogram (16 equal bins over the window's range): AF spreads it out.
    mean_rr, sdnn, rmssd, pnn50, turning, entropy = kernels.hrv_stats(rr, 16)
    out[rate_name] = 60_000.0 / _robust_mean(rr)
    out["sdnn_ms"] = sdnn
    out["rmssd_ms"] = rmssd
    out["pnn50_pct"] = pnn50
    out["rr_cv"] = sdnn / mean_rr
    out["rr_irregularity"] = rmssd / mean_rr  # normalised RMSSD: high in AF, low in sinus rhythm
    out["rr_turning_point_ratio"] = None if math.isnan(turning) else turning
    out["rr_shannon_entropy_bits"] = entropy
    return out


def _robust_mean(rr: np.ndarray) -> float:
    """Mean RR with the shortest and longest 20% left out: a monitor-like average in bigeminy (where a median
    flips between the short and the long interval) that one missed or extra beat cannot drag."""
    # scipy.stats.trim_mean's own algorithm (partition, slice, mean), without its per-call array-API wrapper,
    # which cost ~3 ms a window under load (bench/pipeline_profile.py); the same bits (tests/features/).
    n = len(rr)
    lo = int(TRIM_FRACTION * n)
    if n == 0:
        return float("nan")
    return float(np.mean(np.partition(rr, (lo, n - lo - 1))[lo : n - lo]))


@functools.lru_cache(maxsize=256)
def _hann(n: int) -> np.ndarray:
    """``np.hanning(n)``, built once per length (~10 us a PPG window); the kernel only reads it."""
    return np.hanning(n)


def _band_spectra(t_s: np.ndarray, series: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Power spectra in the respiratory band of series sampled irregularly at the same times ``t_s``.

    ``series`` (S, n) -> (freqs_hz (F,), power (S, F)): each row resampled at 4 Hz, detrended, Hann-windowed and
    zero-padded, all rows in one FFT call. None when the series are too short.
    """
    if series.shape[1] < 4:
        return None
    grid = np.arange(t_s[0], t_s[-1], 0.25)  # 4 Hz
    if len(grid) < 32:
        return None
    y = kernels.detrended(grid, np.ascontiguousarray(t_s), np.ascontiguousarray(series), _hann(len(grid)))
    spectrum = scipy.fft.rfft(y, _N_FFT, axis=-1)[:, _BAND]  # (S, F); zero-padding: 0.06 breaths/min bins at 4 Hz
    return _BAND_HZ, np.abs(spectrum) ** 2


def spectral_concentration(freqs_hz: np.ndarray, power: np.ndarray) -> float:
    """Share of the band's power within +-0.05 Hz (3 breaths/min) of its peak: 1 for one clean rhythm.

    >>> f = np.linspace(0.1, 0.7, 601)
    >>> round(spectral_concentration(f, np.exp(-(((f - 0.25) / 0.01) ** 2))), 2)
    1.0
    """
    near = np.abs(freqs_hz - freqs_hz[np.argmax(power)]) <= _CONCENTRATION_HALF_HZ
    return float(power[near].sum() / power.sum())


def resp_rate_from_beats(
    t_s: np.ndarray, amplitude: np.ndarray, baseline: np.ndarray
) -> tuple[float | None, dict[str, float | None]]:
    """Respiratory rate (breaths/min) from PPG beat times, beat amplitudes and beat baselines, and its quality.

    Each modulation's band spectrum is normalised to unit power, weighted by its prior and by its own
    spectral concentration to the 4th power (a clean respiratory peak counts, a smeared spectrum hardly does),
    and the weighted spectra are summed; the rate is the peak of the sum and ``quality`` (in [0, 1]) its
    concentration. No window is refused for disagreement: the quality index says how far to trust it.
    The second value holds ``quality`` and each modulation's own concentration (``am``/``bw``/``fm``).
    """
    if len(t_s) < 6 or float(t_s[-1] - t_s[0]) < 12.0:
        return None, {}
    series = np.stack([np.asarray(amplitude, dtype=float)[1:], np.asarray(baseline, dtype=float)[1:], np.diff(t_s)])
    spectra = _band_spectra(t_s[1:], series)  # am, bw, fm: (3, F)
    if spectra is None:
        return None, {}
    peak_hz, quality, each = kernels.fuse_spectra(*spectra, _PRIORS, _CONCENTRATION_HALF_HZ)
    info: dict[str, float | None] = {k: float(q) for k, q in zip(_MODULATIONS, each, strict=True) if not math.isnan(q)}
    if math.isnan(peak_hz):
        return None, info
    info["quality"] = float(quality)
    return 60.0 * float(peak_hz), info


def breath_onsets(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Sample indices where a (bandpassed) respiration signal rises through its mean, with hysteresis."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or float(np.std(x)) == 0.0:
        return np.zeros(0, dtype=np.int64)
    x = x - np.mean(x)
    outside = np.flatnonzero(np.abs(x) > 0.3 * float(np.std(x)))  # clearly above or below the mean
    side = np.sign(x[outside])
    return outside[1:][(side[1:] > 0) & (side[:-1] < 0)]  # below -> above: one breath


def resp_rate_from_signal(x: np.ndarray, fs_hz: float) -> float | None:
    """Breaths/min of a (bandpassed) respiration signal: onsets per minute over the window.

    Clipping does not matter here (a saturated signal still crosses its mean once per breath).
    """
    if len(x) < 10 * fs_hz:
        return None
    rises = breath_onsets(x, fs_hz)
    if len(rises) < 2:
        return None
    return 60.0 * fs_hz * (len(rises) - 1) / float(rises[-1] - rises[0])


def activity_g(x_g: np.ndarray, y_g: np.ndarray, z_g: np.ndarray) -> float | None:
    """Activity level: standard deviation of the acceleration magnitude (g); gravity drops out."""
    if len(x_g) < 2:
        return None
    magnitude = np.sqrt(np.square(x_g) + np.square(y_g) + np.square(z_g))
    return float(np.std(magnitude))


def numerics_features(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Median, min and max of each numeric vital in the window; NEWS2 context from the latest value seen."""
    out: dict[str, float | None] = {}
    for name in NUMERIC_FIELDS:
        values = np.array([r[name] for r in rows if r.get(name) is not None], dtype=float)
        have = len(values) > 0
        out[name] = float(np.median(values)) if have else None
        out[f"{name}_min"] = float(np.min(values)) if have else None
        out[f"{name}_max"] = float(np.max(values)) if have else None
    o2 = [r["supplemental_o2"] for r in rows if r.get("supplemental_o2") is not None]
    scale = [r["spo2_scale"] for r in rows if r.get("spo2_scale") is not None]
    avpu = [r["consciousness"] for r in rows if r.get("consciousness") is not None]
    out["supplemental_o2"] = (1.0 if o2[-1] else 0.0) if o2 else None
    out["spo2_scale"] = float(scale[-1]) if scale else None
    out["consciousness_code"] = _ACVPU[avpu[-1]] if avpu else None
    return out


def finite_or_none(value: float | None) -> float | None:
    """JSON-safe feature value: NaN and infinities become None."""
    return None if value is None or not math.isfinite(value) else float(value)
