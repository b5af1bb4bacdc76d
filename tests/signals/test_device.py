"""DeviceSignalProcessor on real recordings: chunking invariance and exact restarts from saved state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.config import Settings, recordings_dir
from streamer.contracts import WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.records import FeatureWindow
from streamer.signals.device import DeviceSignalProcessor, StageOutput
from streamer.state import decode_state, encode_state

pytestmark = pytest.mark.unit
FS = 125.0
SECONDS = 70
SLOW_OK = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def recording() -> dict[str, np.ndarray]:
    d = load_bidmc(recordings_dir() / "bidmc", "bidmc_03")
    n = int(SECONDS * FS)
    return {"ecg": d["ecg"][:n], "ppg": d["ppg"][:n], "resp": d["resp"][:n]}


def _messages(rec: dict[str, np.ndarray], sizes: dict[str, list[int]]) -> list[WaveformMessage]:
    """Cut each signal with its own chunk sizes (cycled); order all chunks by device time."""
    out = []
    for name, x in rec.items():
        start, k = 0, 0
        while start < len(x):
            size = sizes[name][k % len(sizes[name])]
            ts_ms = EPOCH_MS + round(start * 1000 / FS)
            out.append((ts_ms, name, x[start : start + size]))
            start, k = start + size, k + 1
    out.sort(key=lambda m: (m[0], m[1]))
    return [
        WaveformMessage(device_id="d1", ts_ms=ts, seq=i, signal=name, fs_hz=FS, samples=list(chunk))
        for i, (ts, name, chunk) in enumerate(out)
    ]


def _run(msgs: list[WaveformMessage], proc: DeviceSignalProcessor | None = None) -> list[StageOutput]:
    proc = proc or DeviceSignalProcessor("d1", Settings())
    return [proc.on_message(m, ingest_ts_ms=m.ts_ms + 50) for m in msgs] + [proc.flush()]


def _windows(outputs: list[StageOutput]) -> list[FeatureWindow]:
    return sorted((w for o in outputs for w in o.windows), key=lambda w: (w.signal, w.window_start_ms))


def _assert_same(a: list[FeatureWindow], b: list[FeatureWindow]) -> None:
    assert [(w.signal, w.window_start_ms, w.window_end_ms, w.usable) for w in a] == [
        (w.signal, w.window_start_ms, w.window_end_ms, w.usable) for w in b
    ]
    for wa, wb in zip(a, b, strict=True):
        assert wa.rr_ms == pytest.approx(wb.rr_ms, abs=1e-9)
        assert math.isclose(wa.signal_quality or 0.0, wb.signal_quality or 0.0, abs_tol=1e-9)
        assert wa.features.keys() == wb.features.keys()
        for key, va in wa.features.items():
            vb = wb.features[key]
            assert (va is None) == (vb is None), key
            if va is not None:
                assert math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-9), (key, va, vb)


@pytest.fixture(scope="module")
def one_second(recording) -> list[FeatureWindow]:
    return _windows(_run(_messages(recording, {k: [int(FS)] for k in recording})))


def test_windows_cover_recording_with_beats(one_second) -> None:
    ppg = [w for w in one_second if w.signal == "ppg"]
    ecg = [w for w in one_second if w.signal == "ecg"]
    assert len(ppg) >= (SECONDS - 8) // 2 and len(ecg) >= (SECONDS - 10) // 2
    assert all(w.window_end_ms - w.window_start_ms == 8000 for w in ppg)
    assert all(w.window_start_ms % 2000 == 0 for w in one_second if w.signal != "rr")
    rates = [w.features["pulse_rate_bpm"] for w in ppg if w.usable]
    assert len(rates) > 0.8 * len(ppg)
    assert 70 < float(np.median(rates)) < 84  # monitor HR of bidmc_03 is about 76-77 bpm
    assert all(len(w.rr_ms) >= 5 for w in ecg if w.usable)
    rr = [w for w in one_second if w.signal == "rr" and w.features["source_ecg"] == 1.0]
    assert len(rr) >= SECONDS * 70 / 60 // 32 - 1  # one per 32 ECG beats at ~77 bpm
    assert all(w.features["n_beats"] == 32 and len(w.rr_ms) in (31, 32) for w in rr if w.usable)
    assert sum(w.usable for w in rr) >= len(rr) - 1


chunk_sizes = st.lists(st.integers(min_value=13, max_value=int(5 * FS)), min_size=1, max_size=12)


@SLOW_OK
@given(ecg=chunk_sizes, ppg=chunk_sizes, resp=chunk_sizes)
def test_any_chunking_gives_the_same_windows(recording, one_second, ecg, ppg, resp) -> None:
    got = _windows(_run(_messages(recording, {"ecg": ecg, "ppg": ppg, "resp": resp})))
    _assert_same(got, one_second)


def _drive(proc: DeviceSignalProcessor, steps: list[WaveformMessage | int]) -> list[StageOutput]:
    """Messages, and wall-clock ticks given as plain ints (ms)."""
    return [proc.on_tick(s) if isinstance(s, int) else proc.on_message(s, ingest_ts_ms=s.ts_ms + 50) for s in steps]


@SLOW_OK
@given(sizes=chunk_sizes, cut=st.floats(min_value=0.0, max_value=1.0), tick_every=st.integers(3, 40))
def test_restart_from_state_anywhere_gives_the_same_outputs(recording, sizes, cut, tick_every) -> None:
    msgs = _messages(recording, {"ecg": sizes, "ppg": sizes[::-1], "resp": sizes})
    steps: list[WaveformMessage | int] = []
    for i, m in enumerate(msgs):
        steps.append(m)
        if i % tick_every == 0:
            steps.append(m.ts_ms + 3000)  # quiet past the grace: held chunks are released
    k = int(cut * len(steps))
    first = DeviceSignalProcessor("d1", Settings(), patient_id="p1")
    head = _drive(first, steps[:k])
    state = decode_state(encode_state(first.to_state()))  # the worker's codec
    restored = DeviceSignalProcessor.from_state(state, Settings())
    tail = _drive(restored, steps[k:]) + [restored.flush()]
    uninterrupted = DeviceSignalProcessor("d1", Settings(), patient_id="p1")
    expected = _drive(uninterrupted, steps) + [uninterrupted.flush()]
    assert head + tail == expected  # frozen dataclasses: windows, features and events all equal


def test_state_encodes_and_is_bounded(recording) -> None:
    proc = DeviceSignalProcessor("d1", Settings())
    _run(_messages(recording, {k: [250] for k in recording})[:-3], proc)
    blob = encode_state(proc.to_state())
    assert len(blob) < 600_000  # ring buffers hold tens of seconds, not the whole recording (70 s of 3 signals)
