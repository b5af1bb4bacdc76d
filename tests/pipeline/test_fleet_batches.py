"""The fleet path (a batch's chunks filtered as 2-D arrays) against the per-device path, message by message.

A mixed fleet on real BIDMC signals: PPG, ECG and respiration at 125 Hz, chunks of 1 s and 0.4 s, one device at
250 Hz that changes rate mid-stream, a bridged gap, a gap long enough to reset the segment, a chunk sent twice,
one delivered late, and numerics. Batches of several sizes (up to the whole recording at once) must give every
window, feature, RR interval, score and alert that one message at a time gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config import Settings, recordings_dir
from streamer.contracts import VitalsMessage, WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.pipeline import Pipeline, PipelineOutput
from streamer.signals import fleet

pytestmark = pytest.mark.unit
SECONDS = 50


@pytest.fixture(scope="module")
def records() -> list[dict[str, np.ndarray]]:
    return [load_bidmc(recordings_dir() / "bidmc", f"bidmc_{k:02d}") for k in (1, 3, 4)]


def _chunks(device: str, signal: str, x: np.ndarray, fs_hz: float, size: int, t0_ms: int) -> list[tuple]:
    return [(t0_ms + round(i * 1000 / fs_hz), device, signal, fs_hz, x[i : i + size]) for i in range(0, len(x), size)]


def _fleet(records: list[dict[str, np.ndarray]]) -> list[WaveformMessage | VitalsMessage]:
    n = SECONDS * 125
    parts: list[tuple] = []
    for d in range(6):  # PPG 1-s chunks, three records, devices out of step by a few seconds
        rec = records[d % 3]
        parts += _chunks(f"ppg-{d}", "ppg", rec["ppg"][d * 500 : d * 500 + n], 125.0, 125, EPOCH_MS + 1000 * d)
    rec = records[1]
    parts += _chunks("multi", "ecg", rec["ecg"][:n], 125.0, 125, EPOCH_MS)
    parts += _chunks("multi", "ppg", rec["ppg"][:n], 125.0, 50, EPOCH_MS)  # 0.4-s chunks: a group of their own
    parts += _chunks("multi", "resp", rec["resp"][:n], 125.0, 125, EPOCH_MS)
    fast = np.repeat(records[2]["ppg"][: n // 2], 2)  # 250 Hz for half the time, then 125 Hz
    parts += _chunks("rate", "ppg", fast[: len(fast) // 2], 250.0, 250, EPOCH_MS)
    parts += _chunks("rate", "ppg", records[2]["ppg"][n // 4 : n // 2], 125.0, 125, EPOCH_MS + SECONDS * 250)
    gappy = _chunks("gaps", "ppg", records[0]["ppg"][:n], 125.0, 125, EPOCH_MS)
    del gappy[30:34]  # 4 s missing: the segment resets
    del gappy[12]  # 1 s missing: bridged
    gappy.insert(20, gappy[19])  # sent twice
    gappy[8], gappy[10] = gappy[10], gappy[8]  # late
    parts += gappy
    parts.sort(key=lambda p: p[0])
    msgs: list[WaveformMessage | VitalsMessage] = [
        WaveformMessage(device_id=dev, ts_ms=ts, seq=i, signal=sig, fs_hz=fs, samples=[float(v) for v in x])
        for i, (ts, dev, sig, fs, x) in enumerate(parts)
    ]
    vitals = [
        VitalsMessage(device_id=f"ppg-{k % 6}", ts_ms=EPOCH_MS + 1000 * k + 300, seq=100_000 + k, heart_rate_bpm=80.0)
        for k in range(SECONDS)
    ]
    return sorted(msgs + vitals, key=lambda m: m.ts_ms)


def _run(msgs: list, batch_size: int, fleet_filters: bool) -> PipelineOutput:
    pipeline = Pipeline(Settings(), fleet_filters=fleet_filters)
    out = PipelineOutput()
    for k in range(0, len(msgs), batch_size):
        out.extend(pipeline.process([(m, m.ts_ms + 40) for m in msgs[k : k + batch_size]]))
    out.extend(pipeline.flush())
    return out


def _max_feature_diff(a: PipelineOutput, b: PipelineOutput) -> float:
    assert [(f.device_id, f.signal, f.window_end_ms) for f in a.features] == [
        (f.device_id, f.signal, f.window_end_ms) for f in b.features
    ]
    worst = 0.0
    for fa, fb in zip(a.features, b.features, strict=True):
        assert fa.features.keys() == fb.features.keys() and fa.usable == fb.usable
        for key, va in fa.features.items():
            vb = fb.features[key]
            assert (va is None) == (vb is None), (fa.device_id, key)
            if va is not None:
                worst = max(worst, abs(va - vb))
        if fa.signal_quality is not None:
            worst = max(worst, abs(fa.signal_quality - (fb.signal_quality or 0.0)))
    return worst


@pytest.fixture(scope="module")
def reference(records) -> tuple[list, PipelineOutput]:
    msgs = _fleet(records)
    return msgs, _run(msgs, 1, fleet_filters=False)  # per device, one message at a time


@pytest.mark.parametrize("batch_size", [7, 64, 10_000])
def test_fleet_batches_give_every_feature_of_the_per_device_path(reference, batch_size, monkeypatch) -> None:
    msgs, expected = reference
    filtered = []
    monkeypatch.setattr(
        fleet, "_filter_group", lambda members, f=fleet._filter_group: filtered.append(len(members)) or f(members)
    )
    got = _run(msgs, batch_size, fleet_filters=True)
    assert max(filtered) >= min(6, batch_size // 3)  # chunks of several devices really went through one call
    assert len(expected.features) > 150 and {f.signal for f in expected.features} >= {"ppg", "ecg", "resp", "rr"}
    assert _max_feature_diff(got, expected) <= 1e-9
    assert got.features == expected.features  # in fact bit for bit, windows and RR intervals included
    assert got.alerts == expected.alerts and got.duplicates == expected.duplicates


def test_a_fleet_batch_leaves_the_same_device_states(reference) -> None:
    msgs, _ = reference
    states = []
    for fleet_filters, size in ((False, 1), (True, 97)):
        pipeline = Pipeline(Settings(), fleet_filters=fleet_filters)
        for k in range(0, len(msgs), size):
            pipeline.process([(m, m.ts_ms + 40) for m in msgs[k : k + size]])
        states.append({d: repr(rt.to_state()) for d, rt in pipeline.devices.items()})
    assert states[0] == states[1]
