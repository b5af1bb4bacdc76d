"""The model inputs are computable step by step: any split of a stream gives the whole-record inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly import step_scores
from models.features import (
    N_AF_INPUTS,
    N_TREND_INPUTS,
    VITALS,
    TrendState,
    af_inputs,
    rr_inputs,
    trend_inputs,
    vitals_inputs,
)
from streamer.features.morphology import N_MORPH

pytestmark = pytest.mark.unit

rr_lists = st.lists(st.floats(min_value=150, max_value=3500), min_size=2, max_size=60)


@settings(max_examples=50, deadline=None)
@given(rr_lists, st.data())
def test_rr_inputs_split_anywhere_equal_whole(rr: list[float], data) -> None:
    cut = data.draw(st.integers(min_value=1, max_value=len(rr) - 1))
    whole = rr_inputs(rr, None)
    parts = np.concatenate([rr_inputs(rr[:cut], None), rr_inputs(rr[cut:], rr[cut - 1])])
    np.testing.assert_array_equal(parts, whole)
    assert whole.shape == (len(rr), 3) and np.all(np.isfinite(whole))


def test_rr_inputs_see_irregularity() -> None:
    regular = rr_inputs([800.0] * 20, None)
    irregular = rr_inputs(np.random.default_rng(0).uniform(400, 1200, 20), None)
    assert np.abs(regular[:, 1]).max() == 0.0
    assert np.abs(irregular[1:, 2]).mean() > 0.5


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=30), st.integers(0, 2**16), st.data())
def test_vitals_inputs_split_anywhere_equal_whole(n: int, seed: int, data) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal([80, 96, 37, 120, 85, 65, 18], [15, 3, 1, 20, 10, 10, 4], size=(n, len(VITALS)))
    values[rng.random(values.shape) < 0.4] = np.nan
    values[rng.random(values.shape) < 0.05] = 1e4  # implausible: treated as not measured
    mean, std = np.full(7, 50.0), np.full(7, 10.0)
    empty = np.full(7, np.nan)
    whole, last_whole = vitals_inputs(values, empty, mean, std)
    cut = data.draw(st.integers(min_value=1, max_value=n - 1))
    a, last = vitals_inputs(values[:cut], empty, mean, std)
    b, last_b = vitals_inputs(values[cut:], last, mean, std)
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)
    np.testing.assert_array_equal(last_b, last_whole)
    assert set(np.unique(whole[:, 7:])) <= {0.0, 1.0}


def test_anomaly_score_averages_only_observed_vitals() -> None:
    pred = np.zeros((3, 7))
    target = np.full((3, 7), np.nan)
    target[0, 0], target[0, 1] = 2.0, 4.0  # (4 + 16) / 2
    target[1, 6] = -3.0
    s = step_scores(pred, target)
    assert s[0] == pytest.approx(10.0) and s[1] == pytest.approx(9.0) and np.isnan(s[2])


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=40), st.integers(0, 2**16), st.data())
def test_trend_inputs_split_anywhere_equal_whole(n: int, seed: int, data) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal([80, 96, 37, 120, 85, 65, 18], [15, 3, 1, 20, 10, 10, 4], size=(n, len(VITALS)))
    values[rng.random(values.shape) < 0.5] = np.nan
    mean, std = np.full(7, 50.0), np.full(7, 10.0)
    whole, end = trend_inputs(values, TrendState.empty(), mean, std)
    cut = data.draw(st.integers(min_value=1, max_value=n - 1))
    a, mid = trend_inputs(values[:cut], TrendState.empty(), mean, std)
    b, end_b = trend_inputs(values[cut:], mid, mean, std)
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)
    np.testing.assert_array_equal(end_b.age_h, end.age_h)
    assert whole.shape == (n, N_TREND_INPUTS) and np.all(np.isfinite(whole))


def test_trend_inputs_count_hours_since_measured_and_see_a_rise() -> None:
    hr = np.array([80.0, np.nan, np.nan, 90.0, 100.0, 110.0, 120.0])
    values = np.full((len(hr), len(VITALS)), np.nan)
    values[:, 0] = hr
    x, state = trend_inputs(values, TrendState.empty(), np.full(7, 80.0), np.full(7, 10.0))
    age = x[:, 14] * 24.0  # hours since HR was measured
    np.testing.assert_allclose(age, [0, 1, 2, 0, 0, 0, 0], atol=1e-6)
    short_trend = x[:, 21]  # HR z-score above its 4 h exponential mean
    assert short_trend[0] == 0.0 and np.all(np.diff(short_trend[3:]) > 0) and short_trend[-1] > 1.0
    assert state.age_h[1] == len(hr)  # SpO2 never measured: hours since the stream began


def test_af_inputs_carry_morphology_or_mark_it_missing() -> None:
    rr = [800.0, 790.0, 810.0]
    morph = np.arange(3 * N_MORPH, dtype=float).reshape(3, N_MORPH)
    with_m, without = af_inputs(rr, None, morph), af_inputs(rr, None, None)
    assert with_m.shape == without.shape == (3, N_AF_INPUTS)
    np.testing.assert_array_equal(with_m[:, :3], without[:, :3])
    np.testing.assert_array_equal(with_m[:, 3:], morph.astype(np.float32))
    assert np.all(without[:, 3:] == 0.0)
