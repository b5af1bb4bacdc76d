"""The RR mean of the features equals scipy's trimmed mean bit for bit (it re-implements it without the wrapper)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import trim_mean

from streamer.features.extract import TRIM_FRACTION, _robust_mean

pytestmark = pytest.mark.unit


@given(st.lists(st.floats(min_value=200.0, max_value=3000.0), min_size=1, max_size=80))
def test_robust_mean_is_scipys_trim_mean_exactly(rr: list[float]) -> None:
    x = np.asarray(rr)
    assert _robust_mean(x) == float(trim_mean(x, TRIM_FRACTION))
