"""Accelerometer: activity windows, and motion lowering the quality of the PPG recorded at the same time."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config import Settings, recordings_dir
from streamer.contracts import MotionMessage, WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.signals.device import DeviceSignalProcessor

pytestmark = pytest.mark.unit
MOVING_S = (20, 40)  # the wearer moves between these seconds


def _run() -> list:
    ppg = load_bidmc(recordings_dir() / "bidmc", "bidmc_06")["ppg"][: 60 * 125]
    rng = np.random.default_rng(7)
    proc = DeviceSignalProcessor("d1", Settings())
    windows, seq = [], 0
    for sec in range(60):
        ts = EPOCH_MS + sec * 1000
        t = sec + np.arange(50) / 50.0
        moving = MOVING_S[0] <= sec < MOVING_S[1]
        swing = 0.6 * np.sin(2 * np.pi * 2.0 * t) if moving else np.zeros(50)
        z = 1.0 + swing + rng.normal(0, 0.005, 50)
        motion = MotionMessage(
            device_id="d1",
            ts_ms=ts,
            seq=seq,
            fs_hz=50.0,
            x_g=list(rng.normal(0, 0.005, 50)),
            y_g=list(rng.normal(0, 0.005, 50)),
            z_g=list(z),
        )
        wave = WaveformMessage(
            device_id="d1",
            ts_ms=ts,
            seq=seq + 1,
            signal="ppg",
            fs_hz=125.0,
            samples=list(ppg[sec * 125 : (sec + 1) * 125]),
        )
        seq += 2
        windows += proc.on_message(motion).windows + proc.on_message(wave).windows
    return windows + list(proc.flush().windows)


def _inside(w, span: tuple[int, int]) -> bool:
    start, end = (w.window_start_ms - EPOCH_MS) / 1000, (w.window_end_ms - EPOCH_MS) / 1000
    return span[0] <= start and end <= span[1]


def test_motion_windows_report_activity() -> None:
    motion = [w for w in _run() if w.signal == "motion"]
    still = [w for w in motion if _inside(w, (0, MOVING_S[0]))]
    moving = [w for w in motion if _inside(w, MOVING_S)]
    assert still and moving
    assert all(w.features["activity_g"] < 0.02 and w.features["motion_high"] == 0.0 for w in still)
    assert all(w.features["activity_g"] > 0.3 and w.features["motion_high"] == 1.0 for w in moving)


def test_motion_makes_concurrent_ppg_unusable() -> None:
    ppg = [w for w in _run() if w.signal == "ppg"]
    still = [w for w in ppg if _inside(w, (0, MOVING_S[0])) or _inside(w, (MOVING_S[1], 60))]
    moving = [w for w in ppg if _inside(w, MOVING_S)]
    assert all(w.usable for w in still)
    assert moving and not any(w.usable for w in moving)
