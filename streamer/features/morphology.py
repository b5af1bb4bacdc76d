"""Per-beat ECG morphology (QRS width, P-wave consistency, T wave, beat-to-beat likeness) for the AF model.

Every beat's row depends only on the filtered ECG from 0.35 s before its R peak to 0.45 s after it and
on the previous R peak's surroundings, so a stream (any window holding the beat) and a whole recording
give the same row. A beat whose surroundings are not all available gets a row of zeros and valid = 0.
"""

from __future__ import annotations

import numpy as np

PRE_S, POST_S = 0.35, 0.45  # context of one beat: covers the P wave before and the T wave after
MORPH_NAMES: tuple[str, ...] = (
    "r_amp_log_ratio",  # R amplitude against the previous beat's (ectopy changes it)
    "qrs_width",  # width above half the R amplitude, in units of 100 ms
    "p_amp",  # P-window peak-to-peak over R amplitude (a P wave; AF has none, only f-waves)
    "p_corr",  # P window against the previous beat's (a real P wave repeats, f-waves do not)
    "qrs_corr",  # QRS against the previous beat's (PVCs and aberrant beats differ)
    "beat_corr",  # whole beat against the previous one
    "t_amp",  # T-window peak-to-peak over R amplitude
    "hf_noise",  # sample-to-sample roughness over R amplitude (noise, muscle artefact)
    "valid",  # 1 where the row was computed
)
N_MORPH = len(MORPH_NAMES)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / den) if den > 0 else 0.0


def _segments(x: np.ndarray, p: int, fs_hz: float) -> dict[str, np.ndarray]:
    s = lambda a, b: x[p + round(a * fs_hz) : p + round(b * fs_hz)]  # noqa: E731
    return {"p": s(-0.27, -0.09), "qrs": s(-0.1, 0.15), "beat": s(-0.3, 0.4), "t": s(0.15, 0.42)}


def _row(x: np.ndarray, p: int, q: int, fs_hz: float) -> np.ndarray:
    """Features of the beat at ``p`` with previous beat ``q`` (both with their context inside ``x``)."""
    w = round(0.04 * fs_hz)
    r_amp = float(np.max(np.abs(x[p - w : p + w + 1]))) + 1e-6
    r_prev = float(np.max(np.abs(x[q - w : q + w + 1]))) + 1e-6
    near = np.abs(x[p - round(0.1 * fs_hz) : p + round(0.1 * fs_hz) + 1]) >= 0.5 * r_amp
    centre = round(0.1 * fs_hz)
    back, ahead = near[centre::-1], near[centre:]  # from the peak outwards; the first False ends the QRS
    left = int(np.argmin(back)) if not back.all() else len(back)
    right = int(np.argmin(ahead)) if not ahead.all() else len(ahead)
    width_s = (left + right - 1) / fs_hz
    seg, prev = _segments(x, p, fs_hz), _segments(x, q, fs_hz)
    ctx = x[p - round(PRE_S * fs_hz) : p + round(POST_S * fs_hz)]
    return np.array(
        [
            np.clip(np.log(r_amp / r_prev), -2.0, 2.0),
            min(width_s / 0.1, 3.0),
            min(float(np.ptp(seg["p"])) / r_amp, 2.0),
            _corr(seg["p"], prev["p"]),
            _corr(seg["qrs"], prev["qrs"]),
            _corr(seg["beat"], prev["beat"]),
            min(float(np.ptp(seg["t"])) / r_amp, 2.0),
            min(float(np.std(np.diff(ctx))) / r_amp * 10.0, 5.0),
            1.0,
        ]
    )


def beat_morphology(x_filt: np.ndarray, peaks: np.ndarray, fs_hz: float, prev_peak: int | None = None) -> np.ndarray:
    """One row of ``MORPH_NAMES`` per peak (indices into ``x_filt``). Shape (len(peaks), N_MORPH).

    ``prev_peak`` is the beat before ``peaks[0]`` (the start of the first interval), if known.

    >>> fs = 250.0
    >>> x = np.zeros(2500); x[[500, 700, 900]] = 1.0
    >>> m = beat_morphology(x, np.array([700, 900]), fs, prev_peak=500)
    >>> m.shape, m[:, -1].tolist(), round(float(m[1, 4]), 3)
    ((2, 9), [1.0, 1.0], 1.0)
    """
    x = np.asarray(x_filt, dtype=np.float64)
    out = np.zeros((len(peaks), N_MORPH))
    pre, post = round(PRE_S * fs_hz), round(POST_S * fs_hz)
    before = [prev_peak, *[int(v) for v in peaks[:-1]]] if len(peaks) else []
    for i, (p, q) in enumerate(zip((int(v) for v in peaks), before, strict=True)):
        if q is None or q - pre < 0 or p + post > len(x) or q >= p:
            continue
        out[i] = _row(x, p, q, fs_hz)
    return out
