"""Challenge 2019 clinical utility on tiny cases whose values are derived by hand from the definition."""

from __future__ import annotations

import numpy as np
import pytest

from models.utility import best_predictions, normalized_utility, patient_utility

pytestmark = pytest.mark.unit


def _septic(n: int = 20, first_label: int = 10) -> np.ndarray:
    # SepsisLabel is 1 from row 10, so t_sepsis = 10 + 6 = 16.
    y = np.zeros(n, dtype=int)
    y[first_label:] = 1
    return y


def _only(n: int, *hours: int) -> np.ndarray:
    p = np.zeros(n, dtype=bool)
    p[list(hours)] = True
    return p


def test_non_septic_false_alarms_cost_005_each() -> None:
    assert patient_utility(np.zeros(10), _only(10, 1, 4, 8)) == pytest.approx(-0.15)
    assert patient_utility(np.zeros(10), np.zeros(10)) == 0.0


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        (4, 0.0),  # dt = -12: the reward starts at 0
        (2, -0.05),  # dt = -14: an early alarm is worth a false one, not less
        (7, 0.5),  # dt = -9: halfway up the 6-hour ramp
        (10, 1.0),  # dt = -6: the optimum
        (13, 2 / 3),  # dt = -3: (3 - (-3)) / 9 of the way down
        (19, 0.0),  # dt = +3: the reward has fallen to 0
    ],
)
def test_single_true_positive_reward(hour: int, expected: float) -> None:
    y = _septic()
    # Missed hours after dt = -6 cost -2 (dt + 6) / 9 each: -(2/9)(1 + ... + 9) = -10 when all are missed.
    missed = sum(-2 * (dt + 6) / 9 for dt in range(-5, 4) if 16 + dt != hour)
    assert patient_utility(y, _only(20, hour)) == pytest.approx(expected + missed)


def test_all_negative_on_a_septic_patient_costs_minus_10() -> None:
    assert patient_utility(_septic(), np.zeros(20)) == pytest.approx(-10.0)


def test_hours_after_dt_plus_3_count_nothing() -> None:
    y = _septic(n=26)
    assert patient_utility(y, _only(26, 20, 22, 25)) == pytest.approx(-10.0)


def test_best_predictions_window_and_score() -> None:
    y = _septic()
    assert np.flatnonzero(best_predictions(y)).tolist() == list(range(4, 20))
    # Ramp up 0, 1/6, ..., 1 (sum 3.5), then down 8/9, ..., 0 (sum 4).
    assert patient_utility(y, best_predictions(y)) == pytest.approx(7.5)
    early = _septic(n=12, first_label=0)  # t_sepsis = 6: the window starts at hour 0, clipped
    assert np.flatnonzero(best_predictions(early)).tolist() == list(range(0, 10))


def test_normalized_utility_anchors_and_a_mixed_case() -> None:
    labels = [_septic(), np.zeros(15, dtype=int)]
    assert normalized_utility(labels, [best_predictions(y) for y in labels]) == pytest.approx(1.0)
    assert normalized_utility(labels, [np.zeros(len(y)) for y in labels]) == pytest.approx(0.0)
    # Septic: +1 at dt = -6 and -10 for the missed hours after it; non-septic: two false alarms.
    observed = (1.0 - 10.0) + 2 * -0.05
    expected = (observed - (-10.0)) / (7.5 - (-10.0))
    assert expected == pytest.approx(0.9 / 17.5)
    assert normalized_utility(labels, [_only(20, 10), _only(15, 3, 9)]) == pytest.approx(expected)
