"""Signal quality of one window in [0, 1]: flat line, clipping, motion, and how alike the beats are.

The overall index is the minimum of the components, so any single failure makes the window unusable. The
beat-template component follows Orphanidou et al., IEEE JBHI 19(3):832-838 (2015): average the beats
into a template and score the mean correlation of each beat with it, after checking that the rate and RR
intervals are physiologically plausible.
"""

from __future__ import annotations

import numpy as np

_FLAT_RUN_S = 0.2  # a run of identical samples this long is a flat line (lead off, sensor stuck)
_MOTION_OK_G, _MOTION_BAD_G = 0.05, 0.3
_CORR_BAD, _CORR_GOOD = 0.5, 0.9
_RATE_RANGE_BPM = (30.0, 220.0)


def flat_score(x: np.ndarray, fs_hz: float, run_s: float = _FLAT_RUN_S) -> float:
    """1 minus the fraction of the window spent in flat runs (consecutive identical samples)."""
    if len(x) < 2:
        return 0.0
    same = np.r_[False, np.diff(x) == 0, False]
    edges = np.flatnonzero(np.diff(same.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    lengths = ends - starts
    flat = int(np.sum(lengths[lengths >= run_s * fs_hz]))
    return 1.0 - min(1.0, flat / len(x))


def clip_score(x: np.ndarray, tolerance: float = 0.0) -> float:
    """1 minus 10 x (the share of samples sitting at the window's extreme values, less ``tolerance``)."""
    if len(x) == 0:
        return 0.0
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        return 0.0
    at_rail = np.mean(x == hi) + np.mean(x == lo)
    return float(np.clip(1.0 - 10.0 * (at_rail - 2.0 / len(x) - tolerance), 0.0, 1.0))


def motion_score(activity: float | None) -> float:
    """1 at rest, falling linearly to 0 at heavy motion; 1 when there is no accelerometer."""
    if activity is None:
        return 1.0
    return float(np.clip((_MOTION_BAD_G - activity) / (_MOTION_BAD_G - _MOTION_OK_G), 0.0, 1.0))


def template_score(x: np.ndarray, beats: np.ndarray, fs_hz: float) -> float:
    """Mean correlation of each beat with the window's average beat, mapped from [0.5, 0.9] to [0, 1].

    ``beats`` are sample indices into ``x``. Implausible rate or RR spread gives 0.
    """
    beats = np.asarray(beats, dtype=np.int64)
    if len(beats) < 3:
        return 0.0
    rr = np.diff(beats) / fs_hz
    median_rr = float(np.median(rr))
    rate = 60.0 / median_rr
    if not _RATE_RANGE_BPM[0] <= rate <= _RATE_RANGE_BPM[1] or rr.max() > 3.0 * rr.min() + 0.5:
        return 0.0
    half = max(2, int(0.5 * median_rr * fs_hz))
    inside = beats[(beats >= half) & (beats + half < len(x))]
    if len(inside) < 2:
        return 0.0
    segments = x[inside[:, None] + np.arange(-half, half)[None, :]]  # (n_beats, 2 * half)
    segments = segments - segments.mean(axis=1, keepdims=True)
    template = segments.mean(axis=0)
    # np.linalg.norm's own arithmetic for real rows and a real vector, without its dispatch
    norms = np.sqrt(np.add.reduce(segments * segments, axis=1)) * np.sqrt(template.dot(template))
    if np.any(norms == 0):
        return 0.0
    corr = float(np.mean(segments @ template / norms))
    return float(np.clip((corr - _CORR_BAD) / (_CORR_GOOD - _CORR_BAD), 0.0, 1.0))


def breath_regularity_score(onsets: np.ndarray, fs_hz: float) -> float:
    """1 when breath-to-breath intervals are regular (CV <= 0.35), falling to 0 at CV 0.8 or < 3 breaths."""
    if len(onsets) < 4:
        return 0.0
    intervals = np.diff(onsets) / fs_hz
    cv = float(np.std(intervals) / np.mean(intervals))
    return float(np.clip((0.8 - cv) / 0.45, 0.0, 1.0))


def window_quality(
    x: np.ndarray,
    fs_hz: float,
    beats: np.ndarray | None = None,
    activity: float | None = None,
    *,
    flat_run_s: float = _FLAT_RUN_S,
    clip_tolerance: float = 0.0,
) -> tuple[float, dict[str, float]]:
    """Overall quality in [0, 1] and its components (``beats=None`` skips the template check, e.g. resp).

    Respiration is judged with ``flat_run_s=2`` and ``clip_tolerance=1`` (clipping ignored) plus
    :func:`breath_regularity_score`: a saturated impedance signal (BIDMC's RESP sits at a rail in up to half
    of its samples in some records) still crosses its mean once per breath.
    """
    parts = {
        "flat": flat_score(x, fs_hz, flat_run_s),
        "clip": clip_score(x, clip_tolerance),
        "motion": motion_score(activity),
    }
    if beats is not None:
        parts["template"] = template_score(x, beats, fs_hz)
    return min(parts.values()), parts
