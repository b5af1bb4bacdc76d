"""Per-window shortcuts (scalar clip, cached Hann window, in-place AF inputs) give numpy's bits exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.features import N_MORPH, af_inputs, rr_inputs
from streamer.features.extract import _hann
from streamer.signals.quality import _unit, motion_score
from streamer.signals.windows import SampleStream

pytestmark = pytest.mark.unit
scalars = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, math.nan, 0.5])


@given(v=scalars)
def test_unit_is_numpy_clip_bit_for_bit(v: float) -> None:
    want = float(np.clip(v, 0.0, 1.0))
    got = _unit(v)
    assert np.float64(got).tobytes() == np.float64(want).tobytes() or (math.isnan(got) and math.isnan(want))
    assert type(got) is float


@given(a=st.floats(-2.0, 2.0) | st.none())
def test_motion_score_of_numpy_scalars(a: float | None) -> None:
    want = 1.0 if a is None else float(np.clip((0.3 - np.float64(a)) / 0.25, 0.0, 1.0))
    assert motion_score(None if a is None else np.float64(a)) == want


@pytest.mark.parametrize("n", [1, 2, 32, 47, 120, 121])
def test_cached_hann_is_np_hanning(n: int) -> None:
    assert _hann(n).tobytes() == np.hanning(n).tobytes()
    assert _hann(n) is _hann(n)


def _af_reference(rr_ms, prev_rr_ms, morph):  # the concatenate + astype it replaced
    rr = rr_inputs(rr_ms, prev_rr_ms)
    m = np.zeros((len(rr), N_MORPH)) if morph is None else np.asarray(morph, dtype=np.float64).reshape(-1, N_MORPH)
    return np.concatenate([rr, m], axis=1).astype(np.float32)


@given(
    rr=st.lists(st.floats(100.0, 4000.0), max_size=30),
    prev=st.none() | st.floats(100.0, 4000.0),
    with_morph=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_af_inputs_bits(rr: list[float], prev: float | None, with_morph: bool, seed: int) -> None:
    morph = np.random.default_rng(seed).normal(0, 3, (len(rr), N_MORPH)) if with_morph else None
    got, want = af_inputs(rr, prev, morph), _af_reference(rr, prev, morph)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def _numpy_seen(pushes: list[tuple[int, int]], keep: int) -> tuple[np.ndarray, int]:  # the scan it replaced
    seen, dups = np.zeros((0, 2), dtype=np.int64), 0
    for seq, ts_ms in pushes:
        if np.any((seen[:, 0] == seq) & (seen[:, 1] == ts_ms)):
            dups += 1
            continue
        seen = np.concatenate([seen, [[seq, ts_ms]]])[-keep:]
    return seen, dups


@given(pushes=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6).map(lambda k: k * 1000)), max_size=40))
def test_seen_seq_dedup_is_the_numpy_scan(pushes: list[tuple[int, int]]) -> None:
    stream = SampleStream(125.0, 0, seen_seq_max=5)
    for seq, ts_ms in pushes:
        stream.push(ts_ms, seq, np.zeros(125))
    want, dups = _numpy_seen(pushes, 5)
    assert stream.seen_seq.dtype == np.int64 and stream.seen_seq.tobytes() == want.tobytes()
    assert stream.counts["duplicates"] >= dups  # plus resends dropped later by time
    restored = SampleStream.from_state(stream.to_state())
    assert restored.seen_seq.tobytes() == want.tobytes()
