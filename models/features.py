"""Model inputs computed step by step from RR intervals or vitals: one feature path to train and serve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamer.features.morphology import N_MORPH

# Streaming feature names (the numerics window contract) and the Challenge 2019 columns they map to.
VITALS: tuple[str, ...] = (
    "heart_rate_bpm",
    "spo2_pct",
    "temp_c",
    "sbp_mmhg",
    "map_mmhg",
    "dbp_mmhg",
    "resp_rate_bpm",
)
PSV_COLUMNS: tuple[str, ...] = ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp")
# Plausible ranges: values outside are treated as not measured (artefacts, unit slips).
VITAL_RANGES: tuple[tuple[float, float], ...] = (
    (20, 300),
    (50, 100),
    (25, 45),
    (30, 300),
    (20, 250),
    (10, 200),
    (2, 80),
)
RR_MIN_MS, RR_MAX_MS = 200.0, 3000.0
N_RR_INPUTS = 3
N_VITAL_INPUTS = 2 * len(VITALS)
N_AF_INPUTS = N_RR_INPUTS + N_MORPH


def rr_inputs(rr_ms: Sequence[float] | np.ndarray, prev_rr_ms: float | None) -> np.ndarray:
    """Per beat: scaled RR, log ratio to the previous RR and its magnitude. Shape (T, 3).

    The log ratio is what makes AF visible (irregularly irregular beats); it needs the previous
    interval, which the caller carries across windows (``prev_rr_ms``).
    """
    rr = np.clip(np.asarray(rr_ms, dtype=np.float64), RR_MIN_MS, RR_MAX_MS)  # (T,)
    prev = np.concatenate([[rr[0] if prev_rr_ms is None else prev_rr_ms], rr[:-1]]) if len(rr) else rr
    ratio = np.clip(np.log(rr / np.clip(prev, RR_MIN_MS, RR_MAX_MS)), -1.0, 1.0)
    x = np.stack([(rr - 800.0) / 250.0, 4.0 * ratio, 4.0 * np.abs(ratio)], axis=1) if len(rr) else None
    return (x if x is not None else np.zeros((0, N_RR_INPUTS))).astype(np.float32)


def af_inputs(rr_ms: Sequence[float] | np.ndarray, prev_rr_ms: float | None, morph: np.ndarray | None) -> np.ndarray:
    """RR inputs beside each beat's ECG morphology (zeros and valid = 0 without it). Shape (T, 3 + N_MORPH).

    PPG pulse intervals have no morphology: the model sees the same RR inputs with valid = 0, as it
    did in training for the recordings whose morphology was hidden (see ``models.af``).
    """
    rr = rr_inputs(rr_ms, prev_rr_ms)  # (T, 3)
    out = np.zeros((len(rr), N_AF_INPUTS), dtype=np.float32)  # filled in place: no concatenate + astype
    out[:, :N_RR_INPUTS] = rr
    if morph is not None:
        out[:, N_RR_INPUTS:] = np.asarray(morph, dtype=np.float64).reshape(-1, N_MORPH)  # cast as astype would
    return out


def clean_vitals(values: np.ndarray) -> np.ndarray:
    """NaN where a vital is missing or outside its plausible range. (T, 7) -> (T, 7)."""
    v = np.asarray(values, dtype=np.float64).copy()
    for j, (lo, hi) in enumerate(VITAL_RANGES):
        bad = (v[:, j] < lo) | (v[:, j] > hi)
        v[bad, j] = np.nan
    return v


def vitals_row(features: Mapping[str, float | None]) -> np.ndarray:
    """One numerics window's medians in model column order, NaN when absent. Shape (7,)."""
    values = [features.get(k) for k in VITALS]
    return np.array([np.nan if v is None else float(v) for v in values])


def vitals_inputs(
    values: np.ndarray, last: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Last-observation-carried-forward z-scores and observed flags. (T, 7) -> (T, 14), new ``last``.

    ``last`` (7,) holds the last seen raw value of each vital (NaN if never), carried in per-device
    state so that a stream gives the same inputs as the whole record.
    """
    v = clean_vitals(values)  # (T, 7)
    observed = ~np.isnan(v)
    locf = np.empty_like(v)
    carry = np.asarray(last, dtype=np.float64).copy()
    for t in range(len(v)):
        carry = np.where(observed[t], v[t], carry)
        locf[t] = carry
    z = np.nan_to_num(np.clip((locf - mean) / std, -5.0, 5.0), nan=0.0)
    return np.concatenate([z, observed], axis=1).astype(np.float32), carry


TREND_ALPHAS = (1.0 / 4.0, 1.0 / 24.0)  # exponential means over about 4 h and about a day
AGE_CAP_H = 48.0
N_TREND_INPUTS = len(VITALS) * (3 + len(TREND_ALPHAS))


@dataclass(frozen=True)
class TrendState:
    """What the trend inputs carry from one hour to the next (per-device state in the stream)."""

    last: np.ndarray  # (7,) last raw value seen, NaN if never
    age_h: np.ndarray  # (7,) hours since each vital was last measured (since the start if never)
    ema: np.ndarray  # (len(TREND_ALPHAS), 7) exponential means of the carried-forward z-scores, NaN before any

    @classmethod
    def empty(cls) -> TrendState:
        n = len(VITALS)
        return cls(np.full(n, np.nan), np.zeros(n), np.full((len(TREND_ALPHAS), n), np.nan))


def trend_inputs(
    values: np.ndarray, state: TrendState, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, TrendState]:
    """``vitals_inputs`` plus, per vital, hours since last measured and the z-score's distance from its
    4 h and 24 h exponential means (a trend a memoryless model can read). (T, 7) -> (T, 35), new state.
    """
    x, last = vitals_inputs(values, state.last, mean, std)  # (T, 14)
    observed = x[:, len(VITALS) :] > 0
    age, ema = state.age_h.copy(), state.ema.copy()
    ages, trends = np.empty((len(x), len(VITALS))), np.empty((len(x), len(TREND_ALPHAS), len(VITALS)))
    for t in range(len(x)):
        age = np.where(observed[t], 0.0, age + 1.0)
        z = x[t, : len(VITALS)]
        start = np.isnan(ema) & observed[t][None, :]
        ema = np.where(start, z[None, :], ema)
        ema = np.where(np.isnan(ema), ema, ema + np.asarray(TREND_ALPHAS)[:, None] * (z[None, :] - ema))
        ages[t] = np.minimum(age, AGE_CAP_H) / 24.0
        trends[t] = np.nan_to_num(z[None, :] - ema)
    out = np.concatenate([x, ages, trends.reshape(len(x), -1)], axis=1).astype(np.float32)
    return out, TrendState(last, age, ema)


def vitals_targets(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """z-scored observed values (NaN where not observed), the anomaly forecaster's targets. (T, 7)."""
    return np.clip((clean_vitals(values) - mean) / std, -5.0, 5.0).astype(np.float32)
