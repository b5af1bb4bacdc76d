"""The device-state codec: exact round trips, versioning, and a real device that continues bit-identically."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.config import Settings, recordings_dir
from streamer.contracts import VitalsMessage, WaveformMessage
from streamer.evaluation.signals import EPOCH_MS, load_bidmc
from streamer.records import FeatureWindow
from streamer.signals.device import DeviceSignalProcessor, StageOutput
from streamer.state import StateCodecError, decode_state, encode_state

pytestmark = pytest.mark.unit

floats = st.floats(allow_nan=False, width=64)
leaves = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | floats | st.text(max_size=8)
trees = st.recursive(
    leaves | st.lists(floats, min_size=8, max_size=40),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=6), kids, max_size=5),
    max_leaves=30,
)


@given(tree=trees)
def test_any_json_tree_round_trips_exactly(tree) -> None:
    assert decode_state(encode_state(tree)) == json.loads(json.dumps(tree))


def test_float_buffers_keep_every_bit_and_come_back_as_arrays_on_request() -> None:
    values = [0.1, -0.0, 1e-308, 5e-324, math.pi, -1e300, 2.5, 7.0, float("inf")]
    back = decode_state(encode_state({"x": values}))["x"]
    assert [v.hex() for v in back] == [v.hex() for v in values]
    arr = decode_state(encode_state({"x": np.arange(10, dtype=np.int64)}), arrays=True)["x"]
    assert arr.dtype == np.int64 and arr.tolist() == list(range(10))
    zi = np.arange(6.0).reshape(3, 2)  # second-order sections carry (n_sections, 2) filter states
    assert decode_state(encode_state({"zi": zi}))["zi"] == zi.tolist()


def test_foreign_or_future_bytes_are_refused_with_a_reason() -> None:
    blob = encode_state({"a": 1})
    with pytest.raises(StateCodecError, match="magic"):
        decode_state(zlib.compress(b"{}"))
    with pytest.raises(StateCodecError, match="version 9"):
        decode_state(blob[:2] + bytes([9]) + blob[3:])
    with pytest.raises(StateCodecError, match="corrupt"):
        decode_state(blob[:6])


def test_states_written_by_older_workers_zlib_still_restore() -> None:
    """A changelog written before the switch to Zstandard (flags 0: zlib) restores to the same tree, and an
    unknown compression is refused with a reason instead of being guessed at."""
    import zstandard

    state = {"zi": np.linspace(-1, 1, 40), "seen": {"max_seq": 7}, "n": 3}
    blob = encode_state(state)
    assert blob[3] == 1  # what is written now
    body = zstandard.ZstdDecompressor().decompress(blob[4:])
    old = blob[:3] + bytes([0]) + zlib.compress(body, 1)
    assert decode_state(old) == decode_state(blob) == _plain(state)
    with pytest.raises(StateCodecError, match="compression 7"):
        decode_state(blob[:3] + bytes([7]) + blob[4:])
    with pytest.raises(StateCodecError, match="corrupt"):
        decode_state(blob[:3] + bytes([0]) + blob[4:])  # a Zstandard body under the zlib flag


def _plain(tree):
    """The tree with numpy arrays as lists: what ``decode_state`` gives back."""
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_plain(v) for v in tree]
    return tree.tolist() if isinstance(tree, np.ndarray) else tree


def _chunks(seconds: int) -> list[WaveformMessage]:
    rec = load_bidmc(recordings_dir() / "bidmc", "bidmc_03")
    out = []
    for signal in ("ecg", "ppg", "resp"):
        x = rec[signal][: seconds * 125]
        for k in range(seconds):
            out.append((EPOCH_MS + k * 1000, signal, x[k * 125 : (k + 1) * 125]))
    out.sort(key=lambda m: (m[0], m[1]))
    return [
        WaveformMessage(device_id="d1", ts_ms=ts, seq=i, signal=s, fs_hz=125.0, samples=[float(v) for v in x])
        for i, (ts, s, x) in enumerate(out)
    ]


def _vitals(seconds: int) -> list[VitalsMessage]:
    return [
        VitalsMessage(device_id="d1", ts_ms=EPOCH_MS + k * 1000 + 500, seq=10_000 + k, heart_rate_bpm=70.0 + k % 7,
                      spo2_pct=None if k % 5 == 0 else 96.0, consciousness="A" if k % 3 else None)
        for k in range(seconds)
    ]  # fmt: skip


def _numbers_in_lists(tree, path: str = "") -> list[str]:
    """Paths of lists holding more than 8 numbers: buffers that ``to_state`` left as Python lists."""
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _numbers_in_lists(v, f"{path}.{k}")]
    if isinstance(tree, list | tuple):
        flat = sum(1 for v in tree if isinstance(v, int | float) and not isinstance(v, bool))
        inner = [p for i, v in enumerate(tree) for p in _numbers_in_lists(v, f"{path}[{i}]")]
        nested = sum(1 for v in tree if isinstance(v, list | tuple))
        return inner + ([path] if flat > 8 or nested > 8 else [])
    return []


@pytest.mark.parametrize("arrays", [False, True], ids=["lists", "arrays"])
def test_a_restored_device_continues_bit_identically_and_its_state_is_no_larger_than_json(arrays) -> None:
    msgs = sorted(_chunks(75) + _vitals(75), key=lambda m: (m.ts_ms, m.seq))
    cut = 180
    first = DeviceSignalProcessor("d1", Settings())
    head = [first.on_message(m, ingest_ts_ms=m.ts_ms + 50) for m in msgs[:cut]]
    state = first.to_state()
    assert _numbers_in_lists(state) == []  # numeric buffers are arrays: the codec stores them as raw bytes
    blob = encode_state(state)
    restored = DeviceSignalProcessor.from_state(decode_state(blob, arrays=arrays), Settings())
    tail = [restored.on_message(m, ingest_ts_ms=m.ts_ms + 50) for m in msgs[cut:]] + [restored.flush()]
    whole = DeviceSignalProcessor("d1", Settings())
    expected = [whole.on_message(m, ingest_ts_ms=m.ts_ms + 50) for m in msgs] + [whole.flush()]
    assert any(w.signal == "numerics" for out in tail for w in out.windows)  # the open minute was restored too
    assert head + tail == expected  # frozen dataclasses: every window, feature and event equal
    assert json.dumps(decode_state(blob)) == json.dumps(_plain(state))  # as text: NaN (a missing vital) is not == NaN
    assert len(blob) < len(zlib.compress(json.dumps(_plain(state)).encode(), 1))  # about 18% smaller, 3 waveforms


def test_a_state_in_the_list_layout_of_earlier_versions_still_restores() -> None:
    """Changelogs written before ``to_state`` returned arrays: beats, seq history and numerics rows as lists."""
    msgs = sorted(_chunks(40) + _vitals(40), key=lambda m: (m.ts_ms, m.seq))
    first = DeviceSignalProcessor("d1", Settings())
    for m in msgs[:100]:
        first.on_message(m, ingest_ts_ms=m.ts_ms + 50)
    old = _plain(first.to_state())
    old["numerics"]["open"] = [[s, rows] for s, rows in first.numerics.open.items()]
    for ch in old["channels"].values():
        ch["stream"]["seen_seq"] = first.channels[ch["signal"]].stream.seen_seq.tolist()
    restored = DeviceSignalProcessor.from_state(old, Settings())
    again = DeviceSignalProcessor.from_state(first.to_state(), Settings())
    rest = msgs[100:]
    assert [restored.on_message(m, m.ts_ms + 50) for m in rest] == [again.on_message(m, m.ts_ms + 50) for m in rest]


def test_a_user_key_named_like_a_buffer_reference_is_plain_data() -> None:
    for tree in ({"$nd": False}, {"$nd": [1, 2]}, {"$nd": "x"}, {"a": {"$nd": None}}):
        assert decode_state(encode_state(tree)) == tree


STATE_BEFORE_ARRAYS = Path(__file__).parents[1] / "data" / "state" / "device_d8f041a.bin"


def test_a_state_written_by_the_code_before_array_states_continues_bit_identically() -> None:
    """``device_d8f041a.bin``: ECG, PPG, respiration and vitals of bidmc_03, the first 150 messages of ``_chunks(60)``
    and ``_vitals(60)``, encoded by commit d8f041a (beats, seq history, numerics rows and FIR taps as lists)."""
    msgs = sorted(_chunks(60) + _vitals(60), key=lambda m: (m.ts_ms, m.seq))

    def continued(settings: Settings) -> tuple[list[StageOutput], list[StageOutput]]:
        restored = DeviceSignalProcessor.from_state(decode_state(STATE_BEFORE_ARRAYS.read_bytes()), settings)
        whole = DeviceSignalProcessor("d1", settings)
        for m in msgs[:150]:
            whole.on_message(m, ingest_ts_ms=m.ts_ms + 50)
        tail = [restored.on_message(m, ingest_ts_ms=m.ts_ms + 50) for m in msgs[150:]] + [restored.flush()]
        return tail, [whole.on_message(m, ingest_ts_ms=m.ts_ms + 50) for m in msgs[150:]] + [whole.flush()]

    # That code closed numerics windows by the late grace only; so does the restored device here.
    tail, expected = continued(Settings(numerics_close_on_seq=False))
    assert sum(len(out.windows) for out in tail) > 20 and tail == expected
    # With the seq watermark its state knows none: the same windows, its numerics closed by the grace meanwhile.
    tail, expected = continued(Settings())
    windows = [w for out in tail for w in out.windows]
    assert sorted(windows, key=_order) == sorted((w for out in expected for w in out.windows), key=_order)
    assert [w for w in windows if w.signal != "numerics"] == [
        w for out in expected for w in out.windows if w.signal != "numerics"
    ]


def _order(w: FeatureWindow) -> tuple[str, int]:
    return (w.signal, w.window_start_ms)
