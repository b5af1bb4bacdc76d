"""Stages 2-4 on a real ECG: processor windows feed the AF model each beat once, from one source."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat

from models.datasets import data_dir
from streamer.config import Settings
from streamer.contracts import WaveformMessage
from streamer.inference.stage import InferenceStage
from streamer.signals.device import DeviceSignalProcessor
from streamer.signals.ecg_beats import ecg_r_peaks

pytestmark = pytest.mark.unit

T0_MS = 1_700_000_000_000


def _windows(record: str, settings: Settings) -> list:
    ecg_mv = loadmat(data_dir() / "challenge2017_af" / f"{record}.mat")["val"][0] / 1000.0
    proc = DeviceSignalProcessor("wear1", settings)
    windows = []
    for seq, start in enumerate(range(0, len(ecg_mv) - 300 + 1, 300)):  # 1-s chunks
        chunk = [float(v) for v in ecg_mv[start : start + 300]]
        msg = WaveformMessage(
            device_id="wear1", ts_ms=T0_MS + seq * 1000, seq=seq, signal="ecg", fs_hz=300.0, samples=chunk
        )
        windows += proc.on_message(msg).windows
    return windows + list(proc.flush().windows)


@pytest.mark.parametrize("record", ["A00007", "A00067", "A00132"])
def test_processor_windows_feed_af_once_per_interval(record: str) -> None:
    settings = Settings(device="cpu")
    windows = _windows(record, settings)
    ecg_windows = [w for w in windows if w.signal == "ecg" and w.usable]
    assert ecg_windows, "the recording should give usable ECG windows"
    stage = InferenceStage(settings)
    states: dict[str, dict] = {}
    out = stage.run(windows, states)
    af_scores = [s for s in out.scores if s.model.name == "af"]
    assert af_scores and all(s.model.version == stage.models["af"].ref.version for s in af_scores)
    dev = states["wear1"]
    # Sliding ECG windows win over the beat-count RR windows of the same ECG: those are not scored as well.
    assert "af:rr-ecg" not in dev
    # Each interval that ends inside a usable ECG window is fed once.
    ecg_mv = loadmat(data_dir() / "challenge2017_af" / f"{record}.mat")["val"][0] / 1000.0
    ends_ms = T0_MS + ecg_r_peaks(ecg_mv.astype(np.float64), 300.0)[1:] * 1000.0 / 300.0
    inside = np.zeros(len(ends_ms), dtype=bool)
    for w in ecg_windows:
        inside |= (ends_ms >= w.window_start_ms) & (ends_ms < w.window_end_ms)
    assert dev["af:ecg"]["n_beats"] == int(inside.sum())
    assert len(af_scores) == len({s.ts_ms for s in af_scores})  # one score per window end, no doubles


def test_vitals_messages_through_the_processor_score_like_whole_stays() -> None:
    from models import sepsis
    from models.datasets import load_sepsis
    from models.features import VITALS
    from streamer.contracts import VitalsMessage

    hour_ms = 3_600_000
    t0 = 1_700_002_800_000  # a whole hour
    patient = next(p for p in load_sepsis(data_dir() / "challenge2019_sepsis", limit=50) if len(p.labels) > 20)
    settings = Settings(device="cpu")
    proc = DeviceSignalProcessor("bed7", settings)
    windows, sent = [], []
    for k, row in enumerate(patient.vitals):
        values = {n: float(v) for n, v in zip(VITALS, row, strict=True) if np.isfinite(v)}
        if not values:
            continue  # a message needs at least one value: the hour stays silent
        msg = VitalsMessage(device_id="bed7", ts_ms=t0 + k * hour_ms, seq=k, **values)
        windows += proc.on_message(msg).windows
        sent.append(k)
    windows += proc.flush().windows
    assert [w.signal for w in windows] == ["numerics"] * len(sent)
    scores = [s for s in InferenceStage(settings).run(windows, {}).scores if s.model.name == "sepsis"]
    # The stream starts with its first message (leading empty hours are not part of it).
    probs, _ = sepsis.predict_stays([patient.vitals[sent[0] : sent[-1] + 1]])
    expected = probs[0][[k - sent[0] for k in sent[:-1]]]
    np.testing.assert_allclose([s.score for s in scores], expected, rtol=1e-5, atol=1e-6)
