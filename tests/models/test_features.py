"""The model inputs are computable step by step: any split of a stream gives the whole-record inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly import step_scores
from models.features import VITALS, rr_inputs, vitals_inputs

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
