"""Stage 4 on real records: streaming equals offline, JSON state restarts exactly, failures become events."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import loadmat

from models import af, anomaly, checkpoint, sepsis
from models.datasets import RRSequence, data_dir, ecg_beats_and_morphology, load_sepsis
from models.features import VITALS
from streamer.config import Settings
from streamer.inference.stage import InferenceStage
from streamer.records import FeatureWindow

pytestmark = pytest.mark.unit

HOUR_MS = 3_600_000
T0_MS = 1_700_002_800_000  # a whole hour, so hour k of a stay falls in clock hour k


@pytest.fixture(scope="module")
def stage() -> InferenceStage:
    return InferenceStage(Settings(device="cpu"))


@pytest.fixture(scope="module")
def patients():
    folder = data_dir() / "challenge2019_sepsis"
    everyone = load_sepsis(folder, limit=400)
    septic = [p for p in everyone if p.labels.any()][:2]
    return septic + [p for p in everyone if not p.labels.any() and len(p.labels) > 30][:3]


def numerics_windows(patients) -> list[FeatureWindow]:
    """One numerics window per stay hour, devices interleaved in time order."""
    windows = []
    for d, p in enumerate(patients):
        for k, row in enumerate(p.vitals):
            start = T0_MS + k * HOUR_MS
            features = {name: None if np.isnan(v) else float(v) for name, v in zip(VITALS, row, strict=True)}
            windows.append(FeatureWindow(f"dev{d}", "numerics", start, start + 60_000, None, True, features))
    return sorted(windows, key=lambda w: (w.window_end_ms, w.device_id))


def ecg_windows(record: str, device_id: str, with_morph: bool = True) -> list[FeatureWindow]:
    """Sliding 10 s ECG windows as the ECG channel closes them: intervals and the morphology of their beats."""
    ecg_mv = loadmat(data_dir() / "challenge2017_af" / f"{record}.mat")["val"][0] / 1000.0
    peaks, morph = ecg_beats_and_morphology(ecg_mv.astype(np.float64), 300.0)
    peaks_ms = peaks * 1000.0 / 300.0
    windows = []
    for start in np.arange(0, peaks_ms[-1] - 10_000, 2_000):
        inside = np.flatnonzero((peaks_ms[1:] >= start) & (peaks_ms[1:] < start + 10_000)) + 1
        rr = tuple(float(peaks_ms[i] - peaks_ms[i - 1]) for i in inside)
        rows = tuple(tuple(float(v) for v in morph[i - 1]) for i in inside) if with_morph else ()
        start_ms = T0_MS + int(start)
        windows.append(FeatureWindow(device_id, "ecg", start_ms, start_ms + 10_000, 0.9, True, {}, rr, beat_morph=rows))
    return windows


def _by_device(scores, model: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in scores:
        if s.model.name == model:
            out.setdefault(s.device_id, []).append(s)
    return out


def test_every_score_carries_model_name_and_version(stage, patients) -> None:
    assert not stage.load_errors
    out = stage.run(numerics_windows(patients[:2]) + ecg_windows("A00015", "ecg0"), {})
    assert {s.model.name for s in out.scores} == {"sepsis", "anomaly", "af"}
    for s in out.scores:
        assert s.model.version == checkpoint.load_meta(s.model.name)["version"]
        assert s.above_threshold == (s.score >= s.threshold)
    assert out.events == ()


def test_sepsis_and_anomaly_streams_equal_offline_whole_stays(stage, patients) -> None:
    states: dict[str, dict] = {}
    windows = numerics_windows(patients)
    scores = []
    for s in range(0, len(windows), 37):  # arbitrary chunks of the stream
        scores += stage.run(windows[s : s + 37], states).scores
    probs, _ = sepsis.predict_stays([p.vitals for p in patients])
    ckpt = checkpoint.load(anomaly.NAME)
    mean, std = np.asarray(ckpt.meta["norm_mean"]), np.asarray(ckpt.meta["norm_std"])
    offline_anomaly = anomaly.stay_scores(ckpt.model, [p.vitals for p in patients], mean, std)
    septic_scores, anomaly_scores = _by_device(scores, "sepsis"), _by_device(scores, "anomaly")
    for d in range(len(patients)):
        # Hour k is scored when hour k + 1 opens; the last hour stays open.
        got = [s.score for s in septic_scores[f"dev{d}"]]
        np.testing.assert_allclose(got, probs[d][:-1], rtol=1e-5, atol=1e-6)
        assert [s.ts_ms for s in septic_scores[f"dev{d}"]] == [T0_MS + (k + 1) * HOUR_MS for k in range(len(got))]
        expected = offline_anomaly[d][~np.isnan(offline_anomaly[d])]
        np.testing.assert_allclose([s.score for s in anomaly_scores[f"dev{d}"]], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("record", "with_morph"), [("A00007", True), ("A00015", True), ("A00037", False)])
def test_af_stream_feeds_each_interval_once_and_equals_offline(stage, record: str, with_morph: bool) -> None:
    """Beat by beat in the stream equals the whole recording, with ECG morphology or (PPG-like) without."""
    states: dict[str, dict] = {}
    windows = ecg_windows(record, "ecg0", with_morph)
    out = stage.run(windows, states)
    ecg_mv = loadmat(data_dir() / "challenge2017_af" / f"{record}.mat")["val"][0] / 1000.0
    peaks, morph = ecg_beats_and_morphology(ecg_mv.astype(np.float64), 300.0)
    peaks_ms = peaks * 1000.0 / 300.0
    covered = peaks_ms[1:] < windows[-1].window_end_ms - T0_MS  # intervals ending inside some window
    assert states["ecg0"]["af:ecg"]["n_beats"] == int(covered.sum())
    seq = RRSequence(record, np.diff(peaks_ms)[covered], 0, morph=morph[covered])
    offline = af.record_probs(checkpoint.load("af").model, [seq], with_morph=with_morph)[0, af.A]
    assert out.scores[-1].score == pytest.approx(offline, abs=1e-5)
    assert all(0.0 <= s.score <= 1.0 for s in out.scores)


def test_json_state_restart_equals_uninterrupted_run(stage, patients) -> None:
    windows = numerics_windows(patients[:3]) + ecg_windows("A00015", "ecg0") + ecg_windows("A00016", "ecg1")
    half = len(windows) // 2
    states: dict[str, dict] = {}
    straight = stage.run(windows[:half], states).scores + stage.run(windows[half:], states).scores
    first_states: dict[str, dict] = {}
    first = stage.run(windows[:half], first_states).scores
    restored = json.loads(json.dumps(first_states))  # what a changelogged table gives back
    again = InferenceStage(Settings(device="cpu")).run(windows[half:], restored).scores
    assert [s.model_dump() for s in first + again] == [s.model_dump() for s in straight]
    assert restored == json.loads(json.dumps(states))


def test_same_windows_same_scores(patients) -> None:
    windows = numerics_windows(patients[:2]) + ecg_windows("A00016", "ecg1")
    a = InferenceStage(Settings(device="cpu")).run(windows, {})
    b = InferenceStage(Settings(device="cpu")).run(windows, {})
    assert [s.model_dump() for s in a.scores] == [s.model_dump() for s in b.scores]


def test_missing_weights_become_model_unavailable_once(tmp_path, patients) -> None:
    stage = InferenceStage(Settings(device="cpu"), weights_dir=tmp_path)
    assert set(stage.load_errors) == {"af", "sepsis", "anomaly"}
    windows = numerics_windows(patients[:2])
    states: dict[str, dict] = {}
    out = stage.run(windows[:10], states)
    assert out.scores == ()
    assert sorted((e.device_id, e.detail.split(":")[0]) for e in out.events) == [
        ("dev0", "anomaly"),
        ("dev0", "sepsis"),
        ("dev1", "anomaly"),
        ("dev1", "sepsis"),
    ]
    assert all(e.condition == "MODEL_UNAVAILABLE" and e.active for e in out.events)
    assert stage.run(windows[10:20], states).events == ()  # announced once per device and model


def test_failing_model_is_reported_and_recovers(patients, monkeypatch) -> None:
    stage = InferenceStage(Settings(device="cpu"))
    windows = numerics_windows(patients[:1])
    states: dict[str, dict] = {}
    stage.run(windows[:5], states)
    before = json.dumps(states["dev0"]["anomaly"], sort_keys=True)
    predictor = stage.models["anomaly"].batcher.predictor

    def broken(requests):
        raise RuntimeError("device lost")

    monkeypatch.setattr(predictor, "step_batch", broken)
    out = stage.run(windows[5:8], states)
    assert [(e.condition, e.active) for e in out.events] == [("MODEL_UNAVAILABLE", True)]
    assert {s.model.name for s in out.scores} == {"sepsis"}  # the other models go on
    assert json.dumps(states["dev0"]["anomaly"], sort_keys=True) == before  # no half-updated state
    monkeypatch.undo()
    out = stage.run(windows[8:12], states)
    assert [(e.condition, e.active) for e in out.events] == [("MODEL_UNAVAILABLE", False)]
    assert any(s.model.name == "anomaly" for s in out.scores)


def _ecg(start_ms: int, rr: list[float]) -> FeatureWindow:
    return FeatureWindow("d", "ecg", start_ms, start_ms + 10_000, 0.9, True, {}, rr_ms=tuple(rr))


def test_new_intervals_of_overlapping_windows() -> None:
    from streamer.inference.adapters import _new_intervals

    # A perfectly regular 800 ms rhythm: beats at 0, 800, ... The window [2000, 12000) after
    # [0, 10000) adds the intervals ending at 10400 and 11200 only.
    first = [800.0] * 12  # ending at 800 ... 9600
    second = [800.0] * 12  # ending at 2400 ... 11200
    assert _new_intervals(_ecg(2_000, second), 10_000, first) == [800.0, 800.0]
    # Irregular: the new window starts with the previous one's last three intervals.
    assert _new_intervals(_ecg(2_000, [700.0, 910.0, 650.0, 1000.0]), 10_000, [500.0, 700.0, 910.0, 650.0]) == [1000.0]
    # No overlap in time: everything is new; the first window of a stream likewise.
    assert _new_intervals(_ecg(12_000, [700.0, 900.0]), 10_000, [700.0, 900.0]) == [700.0, 900.0]
    assert _new_intervals(_ecg(0, [700.0, 900.0]), None, []) == [700.0, 900.0]


def test_silent_hours_are_rows_with_nothing_measured(stage, patients) -> None:
    p = patients[0]
    silent = {3, 4, 9}  # no numerics window at all in these hours
    windows = [w for w in numerics_windows([p]) if (w.window_start_ms - T0_MS) // HOUR_MS not in silent]
    scores = [s for s in stage.run(windows, {}).scores if s.model.name == "sepsis"]
    gapped = p.vitals.copy()
    gapped[sorted(silent)] = np.nan
    probs, _ = sepsis.predict_stays([gapped])
    scored_hours = [k for k in range(len(gapped) - 1) if k not in silent]
    np.testing.assert_allclose([s.score for s in scores], probs[0][scored_hours], rtol=1e-5, atol=1e-6)
    assert [s.ts_ms for s in scores] == [T0_MS + (k + 1) * HOUR_MS for k in scored_hours]
