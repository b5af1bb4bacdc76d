"""Gaps and late data through the whole processor: bridged, or reset and reported (never bridged over 1 s)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config import Settings, recordings_dir
from streamer.contracts import WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.signals.device import DeviceSignalProcessor

pytestmark = pytest.mark.unit
FS = 125.0


@pytest.fixture(scope="module")
def ppg() -> np.ndarray:
    return load_bidmc(recordings_dir() / "bidmc", "bidmc_12")["ppg"][: 80 * 125]


def _msg(x: np.ndarray, sec: int, seq: int, shift_ms: int = 0) -> WaveformMessage:
    chunk = list(x[sec * 125 : (sec + 1) * 125])
    return WaveformMessage(
        device_id="d1", ts_ms=EPOCH_MS + sec * 1000 + shift_ms, seq=seq, signal="ppg", fs_hz=FS, samples=chunk
    )


def test_missing_second_resets_and_no_window_straddles_it(ppg) -> None:
    proc = DeviceSignalProcessor("d1", Settings(late_grace_ms=0))
    windows = []
    for sec in range(80):
        if sec in (40, 41):
            continue  # two seconds lost: longer than the 1 s interpolation limit
        windows += proc.on_message(_msg(ppg, sec, sec)).windows
    windows += proc.flush().windows
    assert proc.stats["resets"] == 1 and proc.stats["gaps_bridged"] == 0
    hole = (EPOCH_MS + 40_000, EPOCH_MS + 42_000)
    assert not [w for w in windows if w.window_start_ms < hole[1] and w.window_end_ms > hole[0]]
    after = [w for w in windows if w.window_start_ms >= hole[1]]
    assert after and sum(w.usable for w in after) >= len(after) - 2  # restarted filters settle quickly


def test_short_hole_is_bridged_and_marked(ppg) -> None:
    proc = DeviceSignalProcessor("d1", Settings(late_grace_ms=0))
    windows = []
    for sec in range(60):
        # the chunk of second 30 is cut short by 0.4 s, leaving a 0.4 s hole before second 31
        x = ppg if sec != 30 else np.r_[ppg[: 30 * 125], ppg[30 * 125 : 30 * 125 + 75]]
        windows += proc.on_message(_msg(x, sec, sec)).windows
    windows += proc.flush().windows
    assert proc.stats["gaps_bridged"] == 1 and proc.stats["resets"] == 0
    marked = [w for w in windows if w.features["gap_s"]]
    assert marked and all(w.features["gap_s"] == pytest.approx(0.4) for w in marked)
    assert all(w.window_start_ms <= EPOCH_MS + 30_600 < w.window_end_ms for w in marked)


def test_wall_clock_releases_held_chunks_after_the_grace(ppg) -> None:
    proc = DeviceSignalProcessor("d1", Settings(late_grace_ms=2000))
    for sec in [*range(12), 13, 14]:
        proc.on_message(_msg(ppg, sec, sec), ingest_ts_ms=EPOCH_MS + sec * 1000 + 200)
    # chunk 12 never comes and nothing newer arrives: 13 and 14 wait behind the hole
    last_ingest = EPOCH_MS + 14_200
    assert proc.on_tick(last_ingest + 1000).windows == ()
    released = proc.on_tick(last_ingest + 2500)  # the grace has run out on the wall clock
    assert any(w.window_end_ms >= EPOCH_MS + 14_000 for w in released.windows)
    assert proc.stats["gaps_bridged"] == 1 and proc.stats["resets"] == 0  # 1 s: bridged, not more


def test_non_finite_samples_do_not_poison_the_filters(ppg) -> None:
    proc = DeviceSignalProcessor("d1", Settings())
    windows = []
    for sec in range(40):
        msg = _msg(ppg, sec, sec)
        if sec == 10:
            msg = msg.model_copy(update={"samples": [float("nan")] * 5 + msg.samples[5:]})
        windows += proc.on_message(msg).windows
    windows += proc.flush().windows
    assert proc.stats["nonfinite_samples"] == 5
    late = [w for w in windows if w.signal == "ppg" and w.window_start_ms >= EPOCH_MS + 12_000]
    assert late and all(w.usable and w.features["pulse_rate_bpm"] is not None for w in late)
