"""The RR-entropy histogram counts equal numpy's ``histogram`` for any finite input (it re-implements its equal-bin
path without the general-purpose checks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.features.extract import equal_bin_counts

pytestmark = pytest.mark.unit
rr_lists = st.lists(st.floats(min_value=200.0, max_value=3000.0), min_size=1, max_size=80)
# values on and near the bin edges, where the division rounds one way or the other
edgy = st.lists(st.integers(0, 64).map(lambda k: 600.0 + k * 0.0125 * 3), min_size=2, max_size=40)
tiny = st.lists(st.floats(min_value=1.0, max_value=1.0 + 1e-12), min_size=1, max_size=20)


@given(rr=rr_lists | edgy | tiny, n_bins=st.sampled_from([1, 2, 7, 16, 33]))
def test_equal_bin_counts_are_numpys_histogram(rr: list[float], n_bins: int) -> None:
    x = np.asarray(rr)
    assert equal_bin_counts(x, n_bins).tolist() == np.histogram(x, bins=n_bins)[0].tolist()
